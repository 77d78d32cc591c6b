//! Manager: every proxy method and error, proxies in children, pools, queues and pipes,
//! nested proxies, concurrent updates, shutdown, a dead server, authentication.

use crate::common::*;

per_method!(
    dict_proxy_methods,
    list_namespace_value_array_methods,
    proxies_work_in_children_pools_queues_and_pipes,
    concurrent_increments_lose_nothing,
    primitives_made_by_a_manager,
    errors_come_back_typed,
    shutdown_scope_and_a_dead_server,
);

fn dict_proxy_methods(m: &str) {
    let out = run_script(
        r#"
if __name__ == "__main__" {
    let mgr = Manager();
    let d = mgr.dict();
    d[1] = "1"; d["2"] = 2; d[0.25] = (); d[true] = 'c'; d[1.0] = "float one"; d["1"] = "string one";
    print(d);
    print(d.keys());
    print(d.values());
    print(d.len());
    print(`${1 in d} ${"1" in d} ${2 in d} ${d.contains(0.25)} ${d.contains("x")}`);
    print(`${d[1]} ${d[1.0]} ${d["1"]} ${d[true]}`);
    print(`${d.get("2")} ${d.get("none")} ${d.get("none", 7)}`);
    print(d.remove("2"));
    print(d.remove("2"));
    print(d.items()[0]);
    print(d.to_map());
    let seen = []; for k in d { seen.push(k) } print(seen);
    d.clear();
    print(`${d} ${d.len()}`);
    let e = mgr.dict(#{a: 1});
    let f = mgr.dict([[1, "x"], ['y', 2]]);
    print(`${e} ${f}`);
    d["n"] = 1;
    d["n"] += 5;
    print(d["n"]);
    print(type_of(d));
}
"#,
        m,
    );
    assert_eq!(
        out.ok(),
        r#"{1: "1", "2": 2, 0.25: (), true: 'c', 1.0: "float one", "1": "string one"}
[1, "2", 0.25, true, 1.0, "1"]
["1", 2, (), c, "float one", "string one"]
6
true true false true false
1 float one string one c
2  7
2

[1, "1"]
#{"0.25": (), "1": "string one", "1.0": "float one", "true": c}
[1, 0.25, true, 1.0, "1"]
{} 0
{"a": 1} {1: "x", 'y': 2}
6
Proxy
"#
    );
}

fn list_namespace_value_array_methods(m: &str) {
    let out = run_script(
        r#"
if __name__ == "__main__" {
    let mgr = Manager();
    let l = mgr.list(0..3);
    l.push(10); l.insert(0, -1); l.insert(100, 99); l.insert(-100, -5);
    print(l);
    print(`${l.pop()} ${l.remove(0)} ${l.len()} ${l[-1]} ${l[0]}`);
    l[0] = "zero";
    print(l.to_array());
    l.reverse(); print(l);
    let s = mgr.list([3, 1.5, 2]); s.sort(); print(s);
    let w = mgr.list(["b", "a"]); w.sort(); print(w);
    let xs = []; for x in mgr.list("ab") { xs.push(x) } print(xs);
    print(`${2 in s} ${5 in s} ${mgr.list().len()}`);
    let ns = mgr.Namespace();
    ns.x = 1; ns.name = "n"; ns.value = 3;
    ns.x += 1;
    print(`${ns.x} ${ns.name} ${ns.value} ${"x" in ns}`);
    print(ns);
    print(ns.to_map());
    let v = mgr.Value("i", 5);
    v.value += 1;
    print(`${v.value} ${v}`);
    let fv = mgr.Value("d", 1);
    print(fv.value);
    let a = mgr.Array("i", [1, 2, 3]);
    a[0] = 10; a[-1] = 30;
    print(`${a[0]} ${a.len()} ${a.to_array()} ${a}`);
    let z = mgr.Array("d", 2);
    print(z);
    let ys = []; for x in a { ys.push(x) } print(ys);
    let k = 100;
    let fs = mgr.list([|x| x + k]);
    for f in fs { print(f.call(1)) }
    print(mgr.Value("d", 0.5, false).value + mgr.Array("i", 2, true).len());
}
"#,
        m,
    );
    assert_eq!(
        out.ok(),
        r#"[-5, -1, 0, 1, 2, 10, 99]
99 -5 5 10 -1
["zero", 0, 1, 2, 10]
[10, 2, 1, 0, "zero"]
[1.5, 2, 3]
["a", "b"]
[a, b]
true false 0
2 n 3 true
Namespace(name="n", value=3, x=2)
#{"name": "n", "value": 3, "x": 2}
6 Value('i', 6)
1.0
10 3 [10, 2, 30] array('i', [10, 2, 30])
array('d', [0.0, 0.0])
[10, 2, 30]
101
2.5
"#
    );
}

fn proxies_work_in_children_pools_queues_and_pipes(m: &str) {
    let out = run_script(
        r#"
fn child(d, l, ns) { d[1] = "1"; d["2"] = 2; d[0.25] = (); l.reverse(); ns.seen = true; }
fn via(q, c) { let d = q.get(); d["from queue"] = 1; let l = c.recv(); l.push("from pipe"); }
if __name__ == "__main__" {
    let mgr = Manager();
    let d = mgr.dict(); let l = mgr.list(0..4); let ns = mgr.Namespace();
    let p = Process(child, [d, l, ns]); p.start(); p.join();
    print(`${d} ${l} ${ns.seen} ${p.exitcode}`);
    let q = Queue(); let ends = Pipe();
    q.put(d); ends[0].send(l);
    let p = Process(via, [q, ends[1]]); p.start(); p.join();
    print(`${d["from queue"]} ${l[-1]}`);
    let pool = Pool(2);
    pool.map(|i| { l.push(i * 10); d[i] = i; }, 0..4, 1);
    print(`${l.len()} ${d.len()}`);
    print(pool.apply(|d| d["2"], [d]));
    pool.terminate();
    // Nested proxies stay proxies.
    let inner = mgr.dict(#{k: 1});
    let outer = mgr.list([inner]);
    let back = outer[0];
    back["k"] = 99;
    print(`${inner["k"]} ${type_of(back)}`);
    d["nested"] = mgr.list([1]);
    let p = Process(|d| d["nested"].push(2), [d]); p.start(); p.join();
    print(d["nested"]);
}
"#,
        m,
    );
    assert_eq!(out.ok(), "{1: \"1\", \"2\": 2, 0.25: ()} [3, 2, 1, 0] true 0\n1 from pipe\n9 7\n2\n99 Proxy\n[1, 2]\n");
}

fn concurrent_increments_lose_nothing(m: &str) {
    let out = run_script(
        r#"
fn bump(d, ns, lock, n) {
    for i in 0..n { hold(lock, || { d["count"] += 1; ns.total += 2; }); }
}
if __name__ == "__main__" {
    let mgr = Manager();
    let d = mgr.dict(#{count: 0});
    let ns = mgr.Namespace(); ns.total = 0;
    let lock = mgr.Lock();
    let ps = [];
    for i in 0..4 { let p = Process(bump, [d, ns, lock, 50]); p.start(); ps.push(p); }
    for p in ps { p.join(); }
    print(`${d["count"]} ${ns.total}`);
    // Without a lock, single requests never interleave: each push lands.
    let l = mgr.list();
    let ps = [];
    for i in 0..4 { let p = Process(|l| { for j in 0..50 { l.push(j) } }, [l]); p.start(); ps.push(p); }
    for p in ps { p.join(); }
    print(l.len());
}
"#,
        m,
    );
    assert_eq!(out.ok(), "200 400\n200\n");
}

fn primitives_made_by_a_manager(m: &str) {
    let out = run_script(
        r#"
fn waiter(e, c, b, q, jq, s) { e.wait(10); b.wait(); q.put("child"); jq.put(1); s.release(); }
if __name__ == "__main__" {
    let mgr = Manager();
    let e = mgr.Event(); let c = mgr.Condition(); let b = mgr.Barrier(2);
    let q = mgr.Queue(); let jq = mgr.JoinableQueue(); let s = mgr.Semaphore(0);
    let r = mgr.RLock(); r.acquire(); r.acquire(); r.release(); r.release();
    let bs = mgr.BoundedSemaphore(1);
    try { bs.release() } catch (err) { print(`bounded: ${err.type}`) }
    let lock = mgr.Lock();
    try { lock.release() } catch (err) { print(`lock: ${err.type}`) }
    let p = Process(waiter, [e, c, b, q, jq, s]); p.start();
    e.set(); b.wait();
    print(q.get(true, 10));
    jq.get(); jq.task_done(); jq.join();
    print(s.acquire(true, 10));
    p.join();
    let q2 = mgr.Queue(1); q2.put(1);
    try { q2.put(2, false) } catch (err) { print(`full: ${err.type}`) }
    let c2 = mgr.Condition(mgr.Lock());
    hold(c2, || c2.notify_all());
    let b2 = mgr.Barrier(1, #{timeout: 1});
    print(b2.wait());
    try { mgr.Semaphore(-1) } catch (err) { print(`semaphore: ${err.type}`) }
    print(p.exitcode);
}
"#,
        m,
    );
    assert_eq!(
        out.ok(),
        "bounded: ValueError\nlock: ValueError\nchild\ntrue\nfull: Full\n0\nsemaphore: ValueError\n0\n"
    );
}

fn errors_come_back_typed(m: &str) {
    let out = run_script(
        r#"
if __name__ == "__main__" {
    let mgr = Manager();
    let d = mgr.dict(); let l = mgr.list([1]); let ns = mgr.Namespace();
    let v = mgr.Value("i", 1);
    for f in [
        || d["missing"], || d[[1]] = 1, || d[#{}], || l[5], || l[-2], || l["x"], || l.pop() + l.pop(),
        || mgr.list().pop(), || ns.nothing, || d.push(1), || ns.keys(), || v.len(), || v.value = "x",
        || mgr.Value("q?", 1), || mgr.Value("i", "x"), || mgr.Array("i", ["x"]), || mgr.list(5),
        || mgr.dict(5), || mgr.list([1, "a"]).sort(), || d["f"] = current_process(),
    ] {
        try { f.call(); print("no error") } catch (e) { print(e.type) }
    }
    try { d["missing"] } catch (e) { print(`${e.message} ${e.key}`) }
}
"#,
        m,
    );
    assert_eq!(
        out.ok(),
        "KeyError\nTypeError\nTypeError\nIndexError\nIndexError\nTypeError\nIndexError\nIndexError\nKeyError\nTypeError\nTypeError\nTypeError\nTypeError\nTypeError\nTypeError\nTypeError\nTypeError\nTypeError\nTypeError\nSerializationError\n\"missing\" missing\n"
    );
}

fn shutdown_scope_and_a_dead_server(m: &str) {
    let out = run_script(
        r#"
fn gone(pid) { let g = false; try { os::kill(pid, 0) } catch (e) { g = true } g }
fn hammer(d) { loop { d["x"] = 1; } }
if __name__ == "__main__" {
    let mgr = Manager();
    let d = mgr.dict(); d["a"] = 1;
    let pid = mgr.pid;
    mgr.shutdown();
    mgr.shutdown();
    print(`shutdown: ${gone(pid)}`);
    try { d["a"] } catch (e) { print(`after shutdown: ${e.type}`) }
    try { mgr.dict() } catch (e) { print(`new proxy: ${e.type}`) }
    let pid = 0;
    {
        let scoped = Manager();
        pid = scoped.pid;
        print(`alive: ${!gone(pid)}`);
    }
    print(`scope: ${gone(pid)}`);
    // A proxy keeps its manager running in the process that made it.
    let l = Manager().list([1, 2]);
    print(`kept: ${l}`);
    // The server killed while a child is using it: the child gets an error, no hang.
    let mgr = Manager();
    let d = mgr.dict();
    let p = Process(hammer, [d]); p.start();
    d["started"] = true;
    os::kill(mgr.pid, "SIGKILL");
    p.join(30);
    print(`child: ${p.exitcode}`);
    try { d["x"] } catch (e) { print(`parent: ${e.type}`) }
}
"#,
        m,
    );
    assert_eq!(
        out.stdout,
        "shutdown: true\nafter shutdown: BrokenPipeError\nnew proxy: BrokenPipeError\nalive: true\nscope: true\nkept: [1, 2]\nchild: 1\nparent: BrokenPipeError\n",
        "{}",
        out.stderr
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("BrokenPipeError"), "{}", out.stderr);
}

/// Ctrl-C during a pool call interrupts the script, not the manager's server: its data
/// outlives a caught `KeyboardInterrupt`.
#[test]
fn ctrl_c_spares_the_manager() {
    for m in METHODS {
        let mut run = start_script(
            r#"
fn slow(x) { time::sleep(30); x }
if __name__ == "__main__" {
    let mgr = Manager();
    let d = mgr.dict(#{a: 1});
    let p = Pool(2);
    p.map(|x| x, [1, 2]);
    print("started");
    try { p.map(slow, 0..4, 1) } catch (e) { print(e.type) }
    d["a"] += 1;
    print(d["a"]);
}
"#,
            m,
        );
        assert_eq!(run.line(), "started", "{m}");
        std::thread::sleep(std::time::Duration::from_millis(300));
        run.signal_group(libc::SIGINT);
        let (code, err) = run.wait();
        let rest = run.rest();
        assert_eq!(code, Some(0), "{m}: {err}");
        assert_eq!(rest, ["KeyboardInterrupt", "2"], "{m}: {err}");
    }
}

/// The server refuses a connection that does not answer its challenge, and dies
/// with its parent (and at the end of the script).
#[test]
fn authentication_and_lifetime() {
    use nix::sys::socket::{self as sock, AddressFamily, SockFlag, SockType, UnixAddr};
    use std::os::fd::{AsFd, AsRawFd};
    for m in METHODS {
        let src = r#"
if __name__ == "__main__" {
    let mgr = Manager();
    let d = mgr.dict(); d["secret"] = 42;
    print(`${mgr.address} ${mgr.pid}`);
    time::sleep(30);
}
"#;
        let mut run = start_script(src, m);
        let line = run.line();
        let (address, pid) = line.split_once(' ').unwrap();
        let pid: i32 = pid.parse().unwrap();
        // A client that does not answer the handshake's challenge is refused: the server
        // sends its hello, answers no request and closes the connection.
        for junk in [&[0u8; 48][..], b"garbage"] {
            let fd = sock::socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None).unwrap();
            sock::connect(fd.as_raw_fd(), &UnixAddr::new_abstract(address.as_bytes()).unwrap()).unwrap();
            let _ = sock::setsockopt(&fd, sock::sockopt::ReceiveTimeout, &nix::sys::time::TimeVal::new(20, 0));
            let mut buf = [0u8; 256];
            let n = sock::recv(fd.as_fd().as_raw_fd(), &mut buf, sock::MsgFlags::empty()).unwrap();
            assert!(buf[..n].windows(15).any(|w| w == b"rhai-mp manager"), "{m}: no hello");
            let _ = sock::send(fd.as_raw_fd(), junk, sock::MsgFlags::empty());
            match sock::recv(fd.as_fd().as_raw_fd(), &mut buf, sock::MsgFlags::empty()) {
                Ok(0) => {}
                Ok(n) => panic!("{m}: the server answered {n} bytes to a bad handshake"),
                Err(e) => panic!("{m}: the server neither answered nor closed: {e}"),
            }
        }
        // The parent is SIGKILLed: the server dies too.
        run.child.kill().unwrap();
        let _ = run.child.wait();
        assert!(wait_gone(pid), "{m}: the manager's server {pid} outlived its parent");
        run.kill_group();
    }
    // At the end of a script the server is stopped.
    for m in METHODS {
        let out =
            run_script("if __name__ == \"__main__\" { let mgr = Manager(); let d = mgr.dict(); print(mgr.pid); }", m);
        let pid: i32 = out.ok().trim().parse().unwrap();
        assert!(wait_gone(pid), "{m}: the manager's server {pid} outlived the script");
    }
}
