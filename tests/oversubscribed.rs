//! Waits on a crowded machine, and large messages through reused memfds: correctness only
//! (the adaptive polling must never lose a wake-up or an item; a reused memfd must never
//! show a message the receiver has not read yet, or an old one). No assertion looks at
//! the clock; every run is bounded by the harness.

use crate::common::run_script;

#[test]
fn sixteen_processes_ping_pong_on_few_cpus() {
    // 8 pairs over pipes, 4 pairs over Events, 6 processes contending one lock, and a
    // queue with 4 producers and 2 consumers: far more processes than CPUs, all waiting.
    let out = run_script(
        r#"
fn echo(c, n) { for i in 0..n { c.send(c.recv() + 1); } }
fn pong(ping, pong, n) { for i in 0..n { ping.wait(); ping.clear(); pong.set(); } }
fn bump(v, n) { let l = v.get_lock(); for i in 0..n { l.acquire(); v.value += 1; l.release(); } }
fn produce(q, k, n) { for i in 0..n { q.put(k * 100000 + i); } }
fn consume(q, out, n) { let s = 0; for i in 0..n { s += q.get(); } out.put(s); }
if __name__ == "__main__" {
    let n = 300;
    let ps = [];
    let pipes = [];
    for k in 0..8 {
        let ends = Pipe();
        let p = Process(echo, [ends[1], n]);
        p.start();
        ps.push(p);
        pipes.push(ends[0]);
    }
    let events = [];
    for k in 0..4 {
        let a = Event(); let b = Event();
        let p = Process(pong, [a, b, n]);
        p.start();
        ps.push(p);
        events.push([a, b]);
    }
    let v = Value("i", 0);
    for k in 0..6 { let p = Process(bump, [v, 2000]); p.start(); ps.push(p); }
    let q = Queue(16); let sums = Queue();
    for k in 0..4 { let p = Process(produce, [q, k, 500]); p.start(); ps.push(p); }
    for k in 0..2 { let p = Process(consume, [q, sums, 1000]); p.start(); ps.push(p); }
    for i in 0..n {
        for c in pipes { c.send(i); }
        for c in pipes { if c.recv() != i + 1 { throw "wrong echo"; } }
        for e in events { e[0].set(); e[1].wait(); e[1].clear(); }
    }
    for p in ps { p.join(); if p.exitcode != 0 { throw `exit code ${p.exitcode}`; } }
    let total = sums.get() + sums.get();
    let want = 0;
    for k in 0..4 { for i in 0..500 { want += k * 100000 + i; } }
    print(`${v.value} ${total == want} ${q.empty()}`);
}
"#,
        "fork",
    );
    assert_eq!(out.ok().trim(), "12000 true true");
}

#[test]
fn reused_memfds_carry_each_message_whole() {
    // Large messages of many sizes, one after the other and in bursts, both ways: the
    // sender reuses a memfd only after its receiver has read it, so every message arrives
    // with its own bytes.
    let out = run_script(
        r#"
fn peer(c) {
    for round in 0..3 {
        for k in 0..12 {
            let size = 70000 + k * 97001;
            c.send_bytes(blob(size, k + round * 16));
        }
        let got = c.recv();   // the parent's burst back, as values
        for k in 0..got.len() {
            let b = got[k];
            if b.len() != 65537 * (k + 2) || b[0] != k || b[-1] != k { throw "bad echo"; }
        }
    }
    // Sizes that shrink after growing (a reused memfd is larger than the message).
    for k in 0..8 { c.send(blob(2000000 - k * 200000, 200 + k)); }
}
if __name__ == "__main__" {
    let ends = Pipe();
    let p = Process(peer, [ends[1]]);
    p.start();
    let c = ends[0];
    let ok = true;
    for round in 0..3 {
        for k in 0..12 {
            let b = c.recv_bytes();
            let v = k + round * 16;
            if b.len() != 70000 + k * 97001 || b[0] != v || b[b.len() / 2] != v || b[-1] != v { ok = false; }
        }
        let burst = [];
        for k in 0..6 { burst.push(blob(65537 * (k + 2), k)); }
        c.send(burst);
    }
    for k in 0..8 {
        let b = c.recv();
        if b.len() != 2000000 - k * 200000 || b[0] != 200 + k || b[-1] != 200 + k { ok = false; }
    }
    p.join();
    let q = Queue();
    for k in 0..5 { q.put(blob(300000 * (k + 1), k)); }
    for k in 0..5 { let b = q.get(); if b.len() != 300000 * (k + 1) || b[-1] != k { ok = false; } }
    print(`${ok} ${p.exitcode}`);
}
"#,
        "fork",
    );
    assert_eq!(out.ok().trim(), "true 0");
}
