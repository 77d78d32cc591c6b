//! Queue, JoinableQueue, SimpleQueue and wait(): every method and error; several
//! producers and consumers; no item lost when its producer exits; no deadlock where
//! Python's feeder thread deadlocks.

use crate::common::*;

per_method!(
    many_producers_and_consumers_get_every_item_once,
    items_outlive_their_producer,
    put_large_then_join_does_not_deadlock,
    joinable_queue_with_daemon_consumers,
    wait_sees_queues_connections_and_sentinels,
    bounded_queue_blocks_producers,
    big_items_travel_apart_from_the_log,
);

fn many_producers_and_consumers_get_every_item_once(m: &str) {
    let out = run_script(
        r#"
fn producer(q, id) { for i in 0..300 { q.put([id, i]); } }
fn consumer(q, results) {
    let got = [];
    loop { let x = q.get(); if x == () { break; } got.push(`${x[0]}:${x[1]}`); }
    results.put(got);
}
if __name__ == "__main__" {
    let q = Queue();
    let results = SimpleQueue();
    let cs = [];
    for c in 0..3 { let p = Process(consumer, [q, results]); p.start(); cs.push(p); }
    let ps = [];
    for id in 0..3 { let p = Process(producer, [q, id]); p.start(); ps.push(p); }
    for p in ps { p.join(); }
    for c in 0..3 { q.put(()); }
    let all = [];
    for c in 0..3 { all += results.get(); }
    for p in cs { p.join(); }
    let n = all.len();
    all.sort(); all.dedup();
    print(`${n} ${all.len()} ${q.qsize()} ${q.empty()}`);
}
"#,
        m,
    );
    assert_eq!(out.ok(), "900 900 0 true\n");
}

fn items_outlive_their_producer(m: &str) {
    let out = run_script(
        r#"
fn producer(q) { for i in 0..2000 { q.put(#{i: i, s: `item ${i}`}); } }
if __name__ == "__main__" {
    let q = Queue();
    let p = Process(producer, [q]);
    p.start();
    p.join();
    print(`producer exited with ${p.exitcode}; ${q.qsize()} queued`);
    let sum = 0;
    for i in 0..2000 { let x = q.get(); if x.i != i { print(`out of order at ${i}`); } sum += x.i; }
    print(sum);
}
"#,
        m,
    );
    assert_eq!(out.ok(), "producer exited with 0; 2000 queued\n1999000\n");
}

fn put_large_then_join_does_not_deadlock(m: &str) {
    // Python's documented deadlock: the child puts a large item and the parent joins it
    // before getting. rhai-mp has no feeder thread to wait for.
    let out = run_script(
        r#"
fn f(q) { let s = ""; s.pad(1000000, 'X'); q.put(s); }
if __name__ == "__main__" {
    let queue = Queue();
    let p = Process(f, [queue]);
    p.start();
    p.join();
    let obj = queue.get();
    print(`${p.exitcode} ${obj.len()}`);
}
"#,
        m,
    );
    assert_eq!(out.ok(), "0 1000000\n");
}

fn joinable_queue_with_daemon_consumers(m: &str) {
    // Seed 003: producers join() the queue; daemon consumers call task_done().
    let out = run_script(
        r#"
fn consumer(q, done) { loop { let res = q.get(); done.put(res); q.task_done(); } }
fn producer(food, q) { for i in 0..2 { q.put(`${food} ${i + 1}`); } q.join(); }
if __name__ == "__main__" {
    let q = JoinableQueue();
    let done = Queue();
    let ps = [];
    for food in ["bun", "fruit", "rice"] { ps.push(Process(producer, [food, q])); }
    for c in 0..2 { let p = Process(consumer, [q, done]); p.daemon = true; p.start(); }
    for p in ps { p.start(); }
    for p in ps { p.join(); }
    let eaten = [];
    while !done.empty() { eaten.push(done.get()); }
    eaten.sort();
    print(eaten);
}
"#,
        m,
    );
    assert_eq!(out.ok(), "[\"bun 1\", \"bun 2\", \"fruit 1\", \"fruit 2\", \"rice 1\", \"rice 2\"]\n");
}

fn wait_sees_queues_connections_and_sentinels(m: &str) {
    let out = run_script(
        r#"
fn later(q, conn, signal) { signal.recv(); q.put("item"); conn.send("msg"); }
if __name__ == "__main__" {
    let q = Queue();
    let ends = Pipe();
    let signal = Pipe();
    let p = Process(later, [q, ends[1], signal[1]]);
    p.start();
    print(wait([q, ends[0], p], 0));
    signal[0].send(1);
    let ready = [];
    while ready.len() < 2 { ready = wait([q, ends[0]], 20); }
    print(ready.len());
    print(q.get());
    print(ends[0].recv());
    p.join();
    let r = wait([p, p.sentinel, q], 5);
    print(`${r.len()} ${r[0] == p} ${type_of(r[1])}`);
    try { wait([1.5]); } catch (e) { print(`${e.type}: ${e.message}`); }
    try { wait([q], -1); } catch (e) { print(e.type); }
    print(wait([]));
}
"#,
        m,
    );
    assert_eq!(
        out.ok(),
        "[]\n2\nitem\nmsg\n2 true i64\nTypeError: objects[0]: wait() takes connections, listeners, queues, processes and sentinels, not f64\nValueError\n[]\n"
    );
}

/// Items of a megabyte and more travel in memfds beside the log (reused by their producer
/// once read, read in place by their consumer): many queued at once by two producers, with
/// handles inside, sizes that shrink and grow, taken by two consumers — every one arrives
/// once and intact, and small items keep their order among them.
fn big_items_travel_apart_from_the_log(m: &str) {
    let out = run_script(
        r#"
fn producer(q, id) {
    for n in [3000000, 1048576, 2000000, 1048576 - 100, 5000000, 1100000] {
        let b = blob(n, id);
        b[n - 1] = n % 251;
        let ends = Pipe(false);
        q.put(#{id: id, n: n, b: b, ints: [n, -n, id], conn: ends[0]});
        ends[1].send(n);
        q.put(["small", id, n]);
    }
}
fn consumer(q, out) {
    let seen = [];
    loop {
        let item = q.get();
        if item == () { break; }
        if type_of(item) == "array" { continue; }
        let ok = item.b.len() == item.n && item.b[0] == item.id && item.b[item.n - 1] == item.n % 251
            && item.ints == [item.n, -item.n, item.id] && item.conn.recv() == item.n;
        seen.push(`${item.id}:${item.n}:${ok}`);
    }
    out.put(seen);
}
if __name__ == "__main__" {
    let q = Queue();
    let out = Queue();
    let ps = [Process(producer, [q, 1]), Process(producer, [q, 2])];
    for p in ps { p.start(); }
    for p in ps { p.join(); }
    let cs = [Process(consumer, [q, out]), Process(consumer, [q, out])];
    for c in cs { c.start(); }
    q.put(()); q.put(());
    let all = out.get() + out.get();
    for c in cs { c.join(); }
    all.sort();
    print(all.len());
    print(all.filter(|s| !s.ends_with("true")));
    // One process, in order: big and small items interleaved.
    let q = Queue();
    for n in [10, 2000000, 20, 1500000, 30] { q.put(blob(n, 9)); }
    let lens = [];
    for i in 0..5 { lens.push(q.get().len()); }
    print(lens);
}
"#,
        m,
    );
    assert_eq!(out.ok(), "12\n[]\n[10, 2000000, 20, 1500000, 30]\n");
}

fn bounded_queue_blocks_producers(m: &str) {
    let out = run_script(
        r#"
fn fill(q, n) { for i in 0..n { q.put(i); } }
if __name__ == "__main__" {
    let q = Queue(3);
    let p = Process(fill, [q, 50]);
    p.start();
    let sum = 0;
    for i in 0..50 { sum += q.get(); if q.qsize() > 3 { print("over maxsize"); } }
    p.join();
    print(sum);
}
"#,
        m,
    );
    assert_eq!(out.ok(), "1225\n");
}

#[test]
fn queue_methods_and_errors() {
    let out = run(&[
        "-e",
        r#"
fn show(e) { print(`${e.type}: ${e.message}`); }
let q = Queue(2);
print(`${q.empty()} ${q.full()} ${q.qsize()}`);
q.put(1); q.put_nowait("two");
print(`${q.empty()} ${q.full()} ${q.qsize()}`);
try { q.put(3, false); } catch (e) { show(e) }
try { q.put_nowait(3); } catch (e) { show(e) }
try { q.put(3, true, 0.05); } catch (e) { show(e) }
print(q.get());
print(q.get_nowait());
try { q.get(false); } catch (e) { show(e) }
try { q.get_nowait(); } catch (e) { show(e) }
try { q.get(true, 0.05); } catch (e) { show(e) }
try { q.get(true, -1); } catch (e) { show(e) }
try { q.put(1, "yes"); } catch (e) { show(e) }
let unbounded = Queue(-1); for i in 0..50 { unbounded.put_nowait(i) } print(unbounded.qsize());
print(JoinableQueue(-5).full());
try { Queue("big"); } catch (e) { show(e) }
try { q.put(timestamp()); } catch (e) { show(e) }
try { q.task_done(); } catch (e) { show(e) }
try { q.join(); } catch (e) { show(e) }
try { q.join_thread(); } catch (e) { show(e) }
q.put([1]);
q.cancel_join_thread();
q.close();
q.join_thread();
try { q.put(1); } catch (e) { show(e) }
try { q.get(); } catch (e) { show(e) }
print(q);
let u = Queue(); for i in 0..1000 { u.put(i); } print(u.full()); print(u.qsize());
let j = JoinableQueue();
j.put("a"); j.put("b");
j.get(); j.task_done(); j.get(); j.task_done();
try { j.task_done(); } catch (e) { show(e) }
j.join();
print(j);
let s = SimpleQueue();
print(s.empty()); s.put(#{a: 1}); print(s.empty()); print(s.get()); s.close();
try { s.put(1); } catch (e) { show(e) }
print(s);
"#,
    ]);
    assert_eq!(
        out.ok(),
        "true false 0\nfalse true 2\n\
         Full: the queue is full (2 items)\nFull: the queue is full (2 items)\nFull: the queue is full (2 items)\n\
         1\ntwo\n\
         Empty: the queue is empty\nEmpty: the queue is empty\nEmpty: the queue is empty (no item arrived within the timeout)\n\
         ValueError: timeout of get() must be non-negative, not -1\n\
         TypeError: block of put() must be a bool, not string\n\
         50\n\
         false\n\
         TypeError: maxsize of Queue() must be an integer, not string\n\
         SerializationError: a value of type 'timestamp' cannot be sent to another process (at obj)\n\
         ValueError: task_done() needs a JoinableQueue, not a Queue\n\
         ValueError: join() needs a JoinableQueue, not a Queue\n\
         AssertionError: Queue not closed\n\
         ValueError: Queue is closed\nValueError: Queue is closed\n\
         <Queue qsize=1 maxsize=2 closed>\n\
         false\n1000\n\
         ValueError: task_done() called too many times\n\
         <JoinableQueue qsize=0 maxsize=0>\n\
         true\nfalse\n#{\"a\": 1}\n\
         OSError: handle is closed\n<SimpleQueue closed>\n"
    );
}

#[test]
fn a_killed_process_holding_the_queue_lock_does_not_hang_others() {
    // Many processes hammer one queue; some are SIGKILLed mid-way (possibly while holding
    // its mutex). The survivors and the parent must still be able to use the queue.
    let out = run_script(
        r#"
fn hammer(q) { let i = 0; loop { q.put(i); q.get(); i += 1; } }
if __name__ == "__main__" {
    let q = Queue();
    let ps = [];
    for n in 0..4 { let p = Process(hammer, [q]); p.start(); ps.push(p); }
    time::sleep(0.2);
    for p in ps { p.kill(); }
    for p in ps { p.join(); }
    // Drain what is left (get(false): a count left stale by a killed process is rebuilt
    // under the queue's lock).
    loop { try { q.get(false); } catch (e) { if e.type == "Empty" { break; } throw e; } }
    q.put("still works");
    print(q.get(true, 5));
}
"#,
        "fork",
    );
    assert_eq!(out.ok(), "still works\n");
}
