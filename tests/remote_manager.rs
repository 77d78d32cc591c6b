//! Managers over TCP (`BaseManager(#{address, authkey})`, `Manager(#{address, ..})`): every
//! proxy type's methods and errors, start/connect/register/get from separate programs, the
//! handshake (right, wrong and no key), blocking calls from several clients at once, a
//! client killed holding a lock, Ctrl-C while a call waits, shutdown, a dead server,
//! garbage and oversized frames and a stalled peer on the port, `serve_forever` in a
//! child and in the main process. Real TCP on 127.0.0.1 only.

use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

per_method!(
    every_proxy_type,
    proxies_cross_processes,
    blocking_calls_from_several_clients,
    a_killed_client_gives_up_its_lock,
    barriers_and_conditions_across_processes,
);

/// A port nothing listens on right now (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The methods and errors of every proxy type a TCP manager makes.
fn every_proxy_type(m: &str) {
    let out = run_script(
        r#"
fn t(f) { let r = "ok"; try { f.call(); } catch (e) { r = e.type; } r }
if __name__ == "__main__" {
    let m = Manager(#{address: "127.0.0.1:0", authkey: "k"});
    print(type_of(m.address));
    let q = m.Queue(2);
    q.put(1); q.put([2, "x"], true);
    print(`${t(|| q.put_nowait(3))} ${t(|| q.put(3, true, 0.1))} ${q.qsize()} ${q.full()} ${q.empty()}`);
    print(`${q.get()} ${q.get(true, 1)} ${t(|| q.get(false))} ${t(|| q.get(true, 0.1))} ${t(|| q.get_nowait())}`);
    q.close(); q.join_thread(); q.cancel_join_thread();
    print(`${t(|| q.task_done())} ${t(|| q.join())} ${t(|| q.get(1))} ${t(|| q.get(true, -1))}`);
    let jq = m.JoinableQueue();
    jq.put("a"); jq.get(); jq.task_done(); jq.join();
    print(`${t(|| jq.task_done())} ${t(|| jq.acquire())}`);
    let l = m.Lock();
    print(`${l.acquire()} ${l.acquire(false)} ${l.acquire(true, 0.1)}`);
    l.release();
    print(`${t(|| l.release())} ${l.owner_died} ${l}`);
    let r = m.RLock();
    print(`${r.acquire()} ${r.acquire()} ${r.to_string().contains("count=2")}`);
    r.release(); r.release();
    print(`${t(|| r.release())}`);
    let s = m.Semaphore(2);
    print(`${s.acquire()} ${s.acquire()} ${s.acquire(false)} ${s.get_value()}`);
    s.release(); s.release(); s.release();
    print(`${s.get_value()} ${t(|| m.Semaphore(-1))} ${t(|| s.wait())}`);
    let bs = m.BoundedSemaphore(1);
    bs.acquire(); bs.release();
    print(`${t(|| bs.release())} ${bs}`);
    let ev = m.Event();
    print(`${ev.is_set()} ${ev.wait(0.1)}`);
    ev.set();
    print(`${ev.is_set()} ${ev.wait()} ${ev.wait(0)} ${ev}`);
    ev.clear();
    print(`${ev.is_set()} ${t(|| ev.wait(-1))}`);
    let c = m.Condition();
    print(`${t(|| c.wait())} ${t(|| c.notify())}`);
    print(hold(c, || c.wait(0.1)));
    print(hold(c, || c.wait_for(|| true)));
    print(hold(c, || { c.notify(2); c.notify_all(); "notified" }));
    let c2 = m.Condition(m.Lock());
    print(hold(c2, || c2.wait(0.05)));
    print(`${t(|| m.Condition(l))} ${t(|| m.Condition(5))}`);
    let b = m.Barrier(1, #{action: || print("action ran")});
    print(`${b.wait()} ${b.parties} ${b.n_waiting} ${b.broken}`);
    let b2 = m.Barrier(2, #{timeout: 0.1});
    print(`${t(|| b2.wait())} ${b2.broken}`);
    b2.reset();
    print(`${b2.broken} ${t(|| m.Barrier(0))}`);
    b2.abort();
    print(`${t(|| b2.wait(5))}`);
    let v = m.Value("i", 5); v.value += 1;
    let a = m.Array("d", [1, 2]); a[0] = 0.5;
    let d = m.dict(#{x: 1}); let li = m.list([1]); let ns = m.Namespace(); ns.y = 2;
    print(`${v.value} ${a} ${d} ${li} ${ns}`);
    print(`${t(|| v.acquire())} ${t(|| q.set())} ${t(|| d.wait())} ${t(|| m.Value("z", 1))}`);
    print(hold(l, || "held"));
    print(hold(s, || "held"));
    print(`${t(|| hold(q, || 1))}`);
    m.register("queue", q);
    m.register("answer", 42);
    print(`${m.get("answer")} ${type_of(m.get("queue"))} ${t(|| m.get("nothing"))}`);
}
"#,
        m,
    );
    assert_eq!(
        out.ok(),
        "string
Full Full 2 true false
1 [2, \"x\"] Empty Empty Empty
ValueError ValueError TypeError ValueError
ValueError TypeError
true false false
ValueError false <Lock unlocked>
true true true
AssertionError
true true false 0
3 ValueError TypeError
ValueError <BoundedSemaphore value=1>
false false
true true true <Event set>
false ValueError
AssertionError AssertionError
false
true
notified
false
ok TypeError
action ran
0 1 0 false
BrokenBarrierError true
false ValueError
BrokenBarrierError
6 array('d', [0.5, 2.0]) {\"x\": 1} [1] Namespace(y=2)
TypeError TypeError TypeError TypeError
held
held
TypeError
42 Proxy KeyError
",
        "{}",
        out.stderr
    );
}

/// A server program and a client program, as on two machines: start, connect, register,
/// get; the key checked both ways; shutdown from the client.
#[test]
fn two_programs_share_objects() {
    let mut server = start_script(
        r#"
if __name__ == "__main__" {
    let m = Manager(#{address: "127.0.0.1:0", authkey: "secret"});
    let jobs = m.Queue();
    let done = m.Event();
    m.register("jobs", jobs);
    m.register("done", done);
    print(m.address);
    for i in 0..3 { jobs.put(i * 10); }
    print(done.wait(50));
    print(`left: ${jobs.qsize()}`);
}
"#,
        "spawn",
    );
    let address = server.line();
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    let client = r#"
if __name__ == "__main__" {
    let m = BaseManager(#{address: ARGV[0], authkey: ARGV[1]});
    try {
        m.connect();
    } catch (e) {
        print(e.type);
        return;
    }
    let jobs = m.get("jobs");
    let total = 0;
    for i in 0..3 { total += jobs.get(true, 10); }
    print(total);
    m.get("done").set();
}
"#;
    // A wrong key and no key are refused; the server goes on serving.
    assert_eq!(run_script_args(client, "spawn", &[&address, "wrong"]).ok(), "AuthenticationError\n");
    let nokey = r#"
if __name__ == "__main__" {
    let m = BaseManager(#{address: ARGV[0]});
    try { m.connect(); print("connected") } catch (e) { print(e.type) }
    try { m.dict(); } catch (e) { print(e.type) }
}
"#;
    assert_eq!(run_script_args(nokey, "spawn", &[&address]).ok(), "AuthenticationError\nAssertionError\n");
    assert_eq!(run_script_args(client, "spawn", &[&address, "secret"]).ok(), "30\n");
    assert_eq!(server.line(), "true");
    assert_eq!(server.line(), "left: 0");
    let (code, err) = server.wait();
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("secret"), "the key was logged: {err}");
}

/// Connecting where nothing listens, bad addresses, using a manager before it starts,
/// starting twice, and a connected client that shuts the server down.
#[test]
fn connecting_and_shutting_down() {
    let port = free_port();
    let out = run_script_args(
        r#"
fn t(f) { let r = "ok"; try { f.call(); } catch (e) { r = e.type; } r }
if __name__ == "__main__" {
    let nobody = BaseManager(#{address: `127.0.0.1:${ARGV[0]}`, authkey: "k"});
    print(t(|| nobody.connect()));
    print(`${t(|| nobody.dict())} ${t(|| BaseManager(#{address: "nohost"}))} ${t(|| BaseManager(#{address: "1.2.3.4:99999"}))}`);
    print(`${t(|| BaseManager(#{addres: "127.0.0.1:0"}))} ${t(|| BaseManager(#{authkey: 5}))} ${t(|| BaseManager(#{address: 5}))}`);
    let m = BaseManager(#{address: "127.0.0.1:0", authkey: "k"});
    m.start();
    print(`${t(|| m.start())} ${t(|| m.serve_forever())} ${type_of(m.pid)}`);
    let d = m.dict(#{a: 1});
    let other = BaseManager(#{address: m.address, authkey: "k"});
    other.connect();
    print(other.dict().len());
    other.shutdown();
    print(`${t(|| d["a"])} ${t(|| m.dict())} ${t(|| other.dict())}`);
    let local = BaseManager();
    print(t(|| local.connect()));
    local.start();
    print(local.dict(#{b: 2})["b"]);
}
"#,
        "spawn",
        &[&port.to_string()],
    );
    assert_eq!(
        out.ok(),
        "ConnectionRefusedError\nAssertionError ValueError ValueError\nValueError TypeError TypeError\nProcessError ProcessError i64\n0\nBrokenPipeError BrokenPipeError BrokenPipeError\nValueError\n2\n"
    );
}

/// Proxies of a TCP manager work when sent through a local queue, a pipe, to a pool task,
/// stored in the manager itself, and to a child; objects of this host cannot go in.
fn proxies_cross_processes(m: &str) {
    let out = run_script(
        r#"
fn bump(d) { d["n"] += 1; d["n"] }
if __name__ == "__main__" {
    let m = Manager(#{address: "127.0.0.1:0", authkey: "k"});
    let d = m.dict(#{n: 0});
    let q = m.Queue();
    let local = Queue();
    local.put(d);
    print(bump(local.get()));
    let ends = Pipe();
    ends[0].send(q);
    ends[1].recv().put("through a pipe");
    print(q.get(true, 10));
    let pool = Pool(2);
    print(pool.apply(bump, [d]));
    pool.close(); pool.join();
    let holder = m.dict();
    holder["q"] = q;
    holder["q"].put("stored");
    print(q.get(true, 10));
    let p = Process(|q, d| { q.put(bump(d)) }, [q, d]);
    p.start(); p.join();
    print(q.get(true, 10));
    try { holder["local"] = Queue(); } catch (e) { print(`${e.type}: ${e.message}`) }
    try { holder["lock"] = Lock(); } catch (e) { print(e.type) }
    let lm = Manager();
    try { holder["local proxy"] = lm.dict(); } catch (e) { print(e.type) }
}
"#,
        m,
    );
    let stdout = out.ok();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(&lines[..5], ["1", "through a pipe", "2", "stored", "3"], "{stdout}");
    assert!(lines[5].starts_with("SerializationError: "), "{stdout}");
    assert!(lines[5].contains("Queue") && lines[5].contains("m.Queue()"), "{stdout}");
    assert_eq!(&lines[6..], ["SerializationError", "SerializationError"], "{stdout}");
}

/// Blocking calls of several clients at once: the server serves everyone while some wait
/// (two getters on one queue, a waiter on an event, one on a held lock).
fn blocking_calls_from_several_clients(m: &str) {
    let out = run_script(
        r#"
if __name__ == "__main__" {
    let m = Manager(#{address: "127.0.0.1:0", authkey: "k"});
    let q = m.Queue(); let out = m.Queue(); let ev = m.Event(); let l = m.Lock(); let d = m.dict(#{n: 0});
    let ps = [];
    for i in 0..2 {
        ps.push(Process(|q, out| out.put(`got ${q.get(true, 30)}`), [q, out]));
    }
    ps.push(Process(|ev, out| out.put(`event ${ev.wait(30)}`), [ev, out]));
    l.acquire();
    ps.push(Process(|l, out| { let got = l.acquire(true, 30); out.put(`lock ${got}`); l.release(); }, [l, out]));
    for p in ps { p.start(); }
    // While they wait in the server, others are served.
    for i in 0..200 { d["n"] += 1; }
    print(d["n"]);
    q.put(1); q.put(2); ev.set(); l.release();
    let got = [];
    for i in 0..4 { got.push(out.get(true, 30)); }
    got.sort();
    print(got);
    for p in ps { p.join(30); print(p.exitcode); }
}
"#,
        m,
    );
    assert_eq!(out.ok(), "200\n[\"event true\", \"got 1\", \"got 2\", \"lock true\"]\n0\n0\n0\n0\n", "{}", out.stderr);
}

/// A client killed (SIGKILL) while it holds a proxied lock: the lock is released, the next
/// holder sees `owner_died` and a warning names the dead pid.
fn a_killed_client_gives_up_its_lock(m: &str) {
    let out = run_script(
        r#"
if __name__ == "__main__" {
    let m = Manager(#{address: "127.0.0.1:0", authkey: "k"});
    let l = m.RLock(); let ready = m.Event();
    let p = Process(|l, ready| { l.acquire(); l.acquire(); ready.set(); time::sleep(60); }, [l, ready]);
    p.start();
    print(ready.wait(30));
    print(l.acquire(false));
    os::kill(p.pid, "SIGKILL");
    p.join(30);
    print(`${p.exitcode} ${l.acquire(true, 30)} ${l.owner_died}`);
    l.release();
    print(l.owner_died);
    print(`dead ${p.pid}`);
}
"#,
        m,
    );
    let stdout = out.ok();
    let dead = stdout.lines().last().unwrap().trim_start_matches("dead ");
    assert_eq!(stdout, format!("true\nfalse\n-9 true true\nfalse\ndead {dead}\n"), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("pid {dead}")) && out.stderr.contains("owner_died"), "{}", out.stderr);
}

/// A barrier with an action and a condition, shared by processes through a TCP manager.
fn barriers_and_conditions_across_processes(m: &str) {
    let out = run_script(
        r#"
if __name__ == "__main__" {
    let m = Manager(#{address: "127.0.0.1:0", authkey: "k"});
    let hits = m.Value("i", 0);
    let b = m.Barrier(3, #{action: || hits.value += 100, timeout: 30});
    let c = m.Condition(); let d = m.dict(#{ready: false}); let out = m.Queue();
    let ps = [];
    for i in 0..2 {
        ps.push(Process(|b, c, d, out| {
            let i = b.wait();
            out.put(i);
            hold(c, || c.wait_for(|| d["ready"], 30));
            out.put("woken");
        }, [b, c, d, out]));
    }
    for p in ps { p.start(); }
    let mine = b.wait();
    let idx = [mine, out.get(true, 30), out.get(true, 30)];
    idx.sort();
    print(`${idx} ${hits.value}`);
    hold(c, || { d["ready"] = true; c.notify_all(); });
    print(`${out.get(true, 30)} ${out.get(true, 30)}`);
    for p in ps { p.join(30); }
    let b2 = m.Barrier(2, #{action: || throw "action failed"});
    let p = Process(|b2, out| {
        try { b2.wait(30); out.put("passed") } catch (e) { out.put(if type_of(e) == "string" { e } else { e.type }) }
    }, [b2, out]);
    p.start();
    let mine = "passed";
    try { b2.wait(30); } catch (e) { mine = if type_of(e) == "string" { e } else { e.type } }
    let both = [mine, out.get(true, 30)];
    both.sort();
    print(both);
    p.join(30);
}
"#,
        m,
    );
    assert_eq!(out.ok(), "[0, 1, 2] 100\nwoken woken\n[\"BrokenBarrierError\", \"action failed\"]\n", "{}", out.stderr);
}

/// Ctrl-C while a proxied `get` waits: the call is cancelled in the server, the script
/// catches `KeyboardInterrupt`, and the connection and the queue go on (nothing lost).
#[test]
fn ctrl_c_cancels_a_waiting_call() {
    for m in METHODS {
        let mut run = start_script(
            r#"
if __name__ == "__main__" {
    let m = Manager(#{address: "127.0.0.1:0", authkey: "k"});
    let q = m.Queue();
    let l = m.Lock();
    l.acquire();
    print("waiting");
    try { q.get(); print("got?") } catch (e) { print(e.type) }
    q.put("after");
    print(q.get(true, 10));
    print(q.qsize());
    // The lock this process held is still held (the connection survived).
    print(l.acquire(false));
}
"#,
            m,
        );
        assert_eq!(run.line(), "waiting", "{m}");
        std::thread::sleep(Duration::from_millis(300));
        run.signal_group(libc::SIGINT);
        let (code, err) = run.wait();
        assert_eq!(code, Some(0), "{m}: {err}");
        assert_eq!(run.rest(), ["KeyboardInterrupt", "after", "0", "false"], "{m}: {err}");
    }
}

/// A server that dies (SIGKILL): calls throw `BrokenPipeError`, waiting ones included,
/// nothing hangs.
#[test]
fn a_dead_server() {
    for m in METHODS {
        let out = run_script(
            r#"
if __name__ == "__main__" {
    let m = Manager(#{address: "127.0.0.1:0", authkey: "k"});
    let q = m.Queue(); let d = m.dict();
    let p = Process(|q, pid| { time::sleep(0.3); os::kill(pid, "SIGKILL"); }, [q, m.pid]);
    p.start();
    try { q.get(); } catch (e) { print(e.type) }
    try { d["a"] = 1; } catch (e) { print(e.type) }
    let again = BaseManager(#{address: m.address, authkey: "k"});
    try { again.connect(); } catch (e) { print(e.type) }
    p.join();
}
"#,
            m,
        );
        assert_eq!(out.ok(), "BrokenPipeError\nBrokenPipeError\nConnectionRefusedError\n", "{m}: {}", out.stderr);
    }
}

/// What a raw socket sends to the port: garbage, an oversized frame, a frame cut short
/// (a stalled peer). Each is dropped; a real client is served meanwhile.
#[test]
fn garbage_and_stalled_peers_are_dropped() {
    let mut server = start_script(
        r#"
if __name__ == "__main__" {
    let m = Manager(#{address: "127.0.0.1:0", authkey: "k"});
    m.register("d", m.dict(#{n: 0}));
    print(m.address);
    time::sleep(60);
}
"#,
        "spawn",
    );
    let address = server.line();
    let connect = || {
        let s = TcpStream::connect(&address).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    };
    let client = r#"
if __name__ == "__main__" {
    let m = BaseManager(#{address: ARGV[0], authkey: "k"});
    m.connect();
    let d = m.get("d");
    d["n"] += 1;
    print(d["n"]);
}
"#;
    // Reads until the server closes the connection; what it sent before (its hello).
    let drained = |mut s: TcpStream| -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
                Err(e) => panic!("the server neither answered nor closed: {e}"),
            }
        }
    };
    // Garbage.
    let mut s = connect();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let got = drained(s);
    assert!(got.windows(15).any(|w| w == b"rhai-mp manager"), "no hello");
    // A frame that announces 4 GiB.
    let mut s = connect();
    s.write_all(&u32::MAX.to_le_bytes()).unwrap();
    drained(s);
    // A peer that stalls mid-frame and one that connects and says nothing: others are
    // served while they hang, then they are dropped.
    let mut stalled = connect();
    stalled.write_all(&[200, 0]).unwrap();
    let silent = connect();
    assert_eq!(run_script_args(client, "spawn", &[&address]).ok(), "1\n");
    drained(stalled);
    drained(silent);
    assert_eq!(run_script_args(client, "spawn", &[&address]).ok(), "2\n");
    server.kill_group();
}

/// `serve_forever()` in a child process at a known address; a client stops it with
/// `shutdown()`. In the main process, SIGTERM ends it and the script goes on.
#[test]
fn serve_forever_in_a_child_and_in_main() {
    let port = free_port();
    let out = run_script_args(
        r#"
if __name__ == "__main__" {
    let address = `127.0.0.1:${ARGV[0]}`;
    let p = Process(|address| BaseManager(#{address: address, authkey: "k"}).serve_forever(), [address]);
    p.start();
    let m = BaseManager(#{address: address, authkey: "k"});
    let connected = false;
    for i in 0..200 {
        try { m.connect(); connected = true; break; } catch (e) { time::sleep(0.05); }
    }
    print(connected);
    let d = m.dict(#{a: 1});
    print(d["a"]);
    m.shutdown();
    p.join(30);
    print(p.exitcode);
}
"#,
        "spawn",
        &[&port.to_string()],
    );
    assert_eq!(out.ok(), "true\n1\n0\n", "{}", out.stderr);

    let port = free_port();
    let mut run = start_script(
        &format!(
            r#"
if __name__ == "__main__" {{
    let m = BaseManager(#{{address: "127.0.0.1:{port}", authkey: "k"}});
    print("serving");
    m.serve_forever();
    print("stopped");
}}
"#
        ),
        "spawn",
    );
    assert_eq!(run.line(), "serving");
    // Wait until it listens (bounded), then stop it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    run.signal_group(libc::SIGTERM);
    let (code, err) = run.wait();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(run.rest(), ["stopped"]);
}

/// Addresses: a host name, and IPv6 where the machine has it.
#[test]
fn addresses_by_name_and_ipv6() {
    let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let out = run_script_args(
        r#"
if __name__ == "__main__" {
    let named = Manager(#{address: "localhost:0", authkey: "k"});
    let c = BaseManager(#{address: named.address, authkey: "k"});
    c.connect();
    print(c.dict(#{a: 1})["a"]);
    if ARGV[0] == "true" {
        let six = Manager(#{address: "[::1]:0", authkey: "k"});
        print(six.address.starts_with("[::1]:"));
        print(six.list([1, 2]).len());
    } else {
        print(true); print(2);
    }
}
"#,
        "spawn",
        &[&ipv6.to_string()],
    );
    assert_eq!(out.ok(), "1\ntrue\n2\n", "{}", out.stderr);
}

/// The README's two-machine example (`scripts/cluster/`), both halves on 127.0.0.1.
#[test]
fn the_two_machine_example_runs() {
    let server_src = std::fs::read_to_string(root().join("scripts/cluster/manager_server.rhai")).unwrap();
    let client = root().join("scripts/cluster/manager_client.rhai");
    let script = write_script(&server_src);
    let mut cmd = std::process::Command::new(bin());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.args([script.0.to_str().unwrap(), "127.0.0.1:0", "s3cret", "20"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut server = cmd.spawn().unwrap();
    let mut stdout = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let address = line.trim().strip_prefix("serving at ").expect("the server's address").to_string();
    let out = run(&[client.to_str().unwrap(), &address, "s3cret"]);
    assert!(out.ok().starts_with("this machine did 20 jobs"), "{}", out.stderr);
    let mut rest = String::new();
    let done = std::thread::spawn(move || {
        let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
        rest
    });
    let status = crate::common::wait_bounded(&mut server, LIMIT).expect("the server did not end");
    // SAFETY: kill(2) with a negative pid signals the server's own process group (leftovers).
    unsafe { libc::kill(-(server.id() as i32), libc::SIGKILL) };
    assert_eq!(status.code(), Some(0));
    assert_eq!(done.join().unwrap(), "20 results; the sum of the squares of 0..20 is 2470\n");
}
