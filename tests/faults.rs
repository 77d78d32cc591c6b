//! The fault campaign's reproducers (issue 11), as regression tests: each failure it found
//! is fixed, and each test here is the script that showed it. Killed waiters and parties,
//! huge and infinite timeouts, huge sizes, a hostile peer of the forkserver, argument
//! types, and the signals that end a script (SIGTERM, SIGHUP, Ctrl-C). Every wait is
//! bounded; nothing asserts on timing.

use crate::common::*;
use std::time::Duration;

per_method!(
    condition_notify_after_a_waiter_was_killed,
    condition_notify_one_and_notify_all,
    barrier_parties_that_die_after_a_release,
    huge_and_infinite_timeouts,
    barrier_action_and_shared_memory_by_name_in_children,
    sigint_ignored_at_start_stays_ignored_in_pool_workers,
    sigterm_and_sighup_clean_up_and_end_by_the_signal,
    ctrl_c_in_every_blocking_call,
);

/// Notify used to wait for a "woken" acknowledgement that a SIGKILLed waiter never sends.
fn condition_notify_after_a_waiter_was_killed(m: &str) {
    let out = run_script(
        r#"
fn waiter(c, log, id) {
    c.acquire();
    log.put(`${id} waiting`);
    let r = c.wait(30);
    log.put(`${id} woken ${r}`);
    c.release();
}
if __name__ == "__main__" {
    // The campaign's script, as it was.
    let c = Condition();
    let p = Process(|c| { c.acquire(); c.wait(5); }, [c]);
    p.start(); time::sleep(0.5); p.kill(); p.join();
    c.acquire(); c.notify(); c.release();
    print(`notify returned ${p.exitcode}`);

    // Deterministic: the killed waiter is surely waiting (it released the lock), and a
    // live one waits behind it. notify(1) skips the dead one and wakes the live one.
    let c = Condition();
    let log = Queue();
    let dead = Process(waiter, [c, log, "dead"]);
    dead.start();
    print(log.get(true, 20));
    hold(c, || ());
    let live = Process(waiter, [c, log, "live"]);
    live.start();
    print(log.get(true, 20));
    hold(c, || ());
    dead.kill(); dead.join(20);
    hold(c, || c.notify(1));
    print(log.get(true, 20));
    live.join(20);
    print(`${dead.exitcode} ${live.exitcode}`);
    // notify_all and notify with only dead waiters return too.
    let dead = Process(waiter, [c, log, "dead2"]);
    dead.start();
    print(log.get(true, 20));
    hold(c, || ());
    dead.kill(); dead.join(20);
    hold(c, || { c.notify(); c.notify(5); c.notify_all(); });
    print("all returned");
}
"#,
        m,
    );
    assert_eq!(
        out.ok(),
        "notify returned -9\ndead waiting\nlive waiting\nlive woken true\n-9 0\ndead2 waiting\nall returned\n"
    );
}

fn condition_notify_one_and_notify_all(m: &str) {
    let out = run_script(
        r#"
fn waiter(c, log, id) {
    c.acquire();
    log.put(`${id} waiting`);
    let r = c.wait(30);
    log.put(`${id} woken ${r}`);
    c.release();
}
fn start(c, log, id) {
    let p = Process(waiter, [c, log, id]);
    p.start();
    print(log.get(true, 20));
    // Once the lock is free again, the waiter is inside wait().
    hold(c, || ());
    p
}
if __name__ == "__main__" {
    let c = Condition();
    let log = Queue();
    let ps = [start(c, log, "a"), start(c, log, "b")];
    hold(c, || c.notify(1));
    // Exactly one wakes: the one waiting longest.
    print(log.get(true, 20));
    try { print(log.get(true, 0.5)); } catch (e) { print(e.type) }
    ps.push(start(c, log, "c"));
    ps.push(start(c, log, "d"));
    hold(c, || c.notify_all());
    let woken = [];
    for i in 0..3 { woken.push(log.get(true, 20)); }
    woken.sort();
    print(woken);
    for p in ps { p.join(20); }
    print(ps.map(|p| p.exitcode));
}
"#,
        m,
    );
    assert_eq!(
        out.ok(),
        "a waiting\nb waiting\na woken true\nEmpty\nc waiting\nd waiting\n\
         [\"b woken true\", \"c woken true\", \"d woken true\"]\n[0, 0, 0, 0]\n"
    );
}

/// A party that dies after its round was released (here: stopped while waiting, so that it
/// cannot leave the round, then killed) used to block the next round forever.
fn barrier_parties_that_die_after_a_release(m: &str) {
    let out = run_script(
        r#"
fn state(pid) { let s = open_file(`/proc/${pid}/stat`, "r").read_string().split(")")[1]; s.trim(); s.sub_string(0, 1) }
// Starts a party that waits at `b`, and returns once it sleeps inside wait() (counted,
// and blocked: it released the barrier's mutex).
fn waiting_party(b) {
    let p = Process(|b| b.wait(30), [b]);
    p.start();
    for i in 0..2000 {
        if b.n_waiting == 1 && state(p.pid) == "S" { break }
        time::sleep(0.01);
    }
    p
}
// Releases a round of two whose other party dies before it leaves the round.
fn release_then_kill(b) {
    let p = waiting_party(b);
    os::kill(p.pid, "SIGSTOP");
    print(`released ${b.wait(30)}`);
    p.kill();
    p.join(20);
    print(`party ${p.exitcode}`);
}
if __name__ == "__main__" {
    let b = Barrier(2);
    release_then_kill(b);
    // The next round cannot fill (one party): the timeout breaks it.
    try { b.wait(0.5); print("passed alone?") } catch (e) { print(e.type) }
    print(b.broken);

    // The next round fills with a new party and goes through, without timeouts.
    let b = Barrier(2);
    release_then_kill(b);
    let q = Process(|b| b.wait(), [b]);
    q.start();
    print(`next round ${b.wait() >= 0}`);
    q.join(20);
    print(`${q.exitcode} ${b.broken} ${b.n_waiting}`);
}
"#,
        m,
    );
    assert_eq!(
        out.ok(),
        "released 1\nparty -9\nBrokenBarrierError\ntrue\nreleased 1\nparty -9\nnext round true\n0 false 0\n"
    );
}

/// Huge or infinite timeouts used to panic (a Duration overflow); NaN and negative ones
/// are ValueError.
fn huge_and_infinite_timeouts(m: &str) {
    let out = run_script(
        r#"
fn noop() {}
fn sq(x) { x * x }
fn kind(f, t) { try { f.call(t); return "ok"; } catch (e) { return e.type; } }
if __name__ == "__main__" {
    let inf = 1.0 / 0.0;
    let nan = 0.0 / 0.0;
    let q = Queue(); q.put(1);
    let bq = Queue(2);
    let p = Process(noop); p.start(); p.join();
    let ends = Pipe();
    let pool = Pool(1);
    let c = Condition();
    let s = Semaphore(1);
    let e = Event(); e.set();
    let l = Lock();
    let b = Barrier(1);

    print(q.get(true, inf));
    bq.put(2, true, inf); print(bq.get(true, 1e300));
    q.put(3, true, 1e300); print(q.get(true, 1e300));
    p.join(1e300); print(p.exitcode);
    ends[0].send("x"); print(ends[1].poll(1e300)); print(ends[1].recv());
    print(pool.apply_async(sq, [3]).get(1e300));
    let it = pool.imap(sq, [4]); print(it.next(1e300));
    print(b.wait(1e300));
    print(hold(c, || c.wait_for(|| true, inf)));
    q.put(5); print(wait([q], 1e300).len()); print(q.get());
    print(s.acquire(true, 1e300)); s.release();
    print(e.wait(inf));
    time::sleep(0);
    print(l.acquire(true, inf)); l.release();
    print(c.acquire(true, 1e300)); c.release();
    let r = pool.apply_async(sq, [5]); r.wait(inf); print(r.ready());

    q.put(6); bq.put(7);
    let r = pool.apply_async(sq, [6]); r.wait();
    let it = pool.imap(sq, [8]);
    let calls = [
        |t| q.get(true, t), |t| bq.put(8, true, t), |t| p.join(t), |t| ends[1].poll(t), |t| r.get(t),
        |t| r.wait(t), |t| it.next(t), |t| b.wait(t), |t| hold(c, || c.wait_for(|| true, t)),
        |t| hold(c, || c.wait(t)), |t| wait([q], t), |t| s.acquire(true, t), |t| e.wait(t),
        |t| time::sleep(t), |t| l.acquire(true, t), |t| c.acquire(true, t),
    ];
    print(calls.map(|f| kind(f, nan)));
    print(calls.map(|f| kind(f, -1)));
    print(calls.map(|f| kind(f, -0.5)));
    pool.terminate();
}
"#,
        m,
    );
    let ve = format!("[{}]", vec!["\"ValueError\""; 16].join(", "));
    assert_eq!(
        out.ok(),
        format!("1\n2\n3\n0\ntrue\nx\n9\n16\n0\ntrue\n1\n5\ntrue\ntrue\ntrue\ntrue\ntrue\n{ve}\n{ve}\n{ve}\n")
    );
}

/// A barrier's action closure (capturing a Value) runs in children; a named block opens
/// without `create: false`; an anonymous block's name lets another process attach to it.
fn barrier_action_and_shared_memory_by_name_in_children(m: &str) {
    let name = format!("rhai-mp-test-{}-faults-{m}", std::process::id());
    let out = run_script_args(
        r#"
fn party(b) { for i in 0..3 { b.wait(30); } }
if __name__ == "__main__" {
    let v = Value("i", 0);
    let b = Barrier(2, #{action: || hold(v.get_lock(), || v.value += 1)});
    let ps = [Process(party, [b]), Process(party, [b])];
    for p in ps { p.start(); }
    for p in ps { p.join(30); }
    print(`action ran ${v.value} times; ${ps.map(|p| p.exitcode)}`);

    let named = SharedMemory(#{name: ARGV[0], create: true, size: 16});
    named[0] = 7;
    let p = Process(|n| { let s = SharedMemory(#{name: n}); s[1] = s[0] + 1; s.close(); }, [ARGV[0]]);
    p.start(); p.join(30);
    print(`named ${named[1]} ${p.exitcode}`);
    named.close(); named.unlink();

    let anon = SharedMemory(64);
    anon[0] = 42;
    let p = Process(|n| { let s = SharedMemory(#{name: n}); s[1] = s[0] + 1; print(s.size); }, [anon.name]);
    p.start(); p.join(30);
    print(`anonymous ${anon[1]} ${p.exitcode}`);
}
"#,
        m,
        &[&name],
    );
    let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
    assert_eq!(out.ok(), "action ran 3 times; [0, 0]\nnamed 8 0\n64\nanonymous 43 0\n");
}

/// Started with SIGINT ignored (as under `nohup`, or `&` in a non-interactive shell),
/// rhai-mp keeps it ignored, in its pool workers too: a SIGINT to the whole group changes
/// nothing, the map completes.
fn sigint_ignored_at_start_stays_ignored_in_pool_workers(m: &str) {
    let src = r#"
fn slow(x) { time::sleep(0.25); x * x }
if __name__ == "__main__" {
    let p = Pool(2);
    p.map(|x| x, [1, 2]);
    print("started");
    let r = p.map(slow, 0..12, 1);
    print(r.len());
    print(r[11]);
    p.close(); p.join();
}
"#;
    let mut run = start_script_with(src, m, &[], |cmd| {
        // SAFETY: signal(2) is async-signal-safe; between fork and exec only it runs.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(cmd, || {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                Ok(())
            });
        }
    });
    assert_eq!(run.line(), "started", "{m}");
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(200));
        run.signal_group(libc::SIGINT);
    }
    let (code, err) = run.wait();
    let rest = run.rest();
    assert_eq!(code, Some(0), "{m}: {err}");
    assert_eq!(rest, ["12", "121"], "{m}: {err}");
    assert!(wait_group_gone(run.pid()).is_empty(), "{m}: processes left behind");
}

/// SIGTERM or SIGHUP to the script: every child — daemon, not daemon, pool worker — and
/// the manager's server end, and the script dies of the same signal.
fn sigterm_and_sighup_clean_up_and_end_by_the_signal(m: &str) {
    use std::os::unix::process::ExitStatusExt;
    let src = r#"
fn sleeper() { time::sleep(60) }
fn pid(x) { time::sleep(0.01); os::getpid() }
if __name__ == "__main__" {
    let d = Process(sleeper, #{daemon: true}); d.start();
    let n = Process(sleeper); n.start();
    let pool = Pool(2);
    pool.map(pid, 0..4, 1);
    let mgr = Manager();
    let dict = mgr.dict(); dict["a"] = 1;
    print(`${d.pid} ${n.pid} ${mgr.pid}`);
    time::sleep(60);
    print("not reached");
}
"#;
    for (sig, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP")] {
        let mut run = start_script(src, m);
        let pids: Vec<i32> = run.line().split(' ').map(|p| p.parse().unwrap()).collect();
        let members = group_members(run.pid());
        // The script, two children, the manager's server, two workers (and under
        // forkserver the server).
        assert!(members.len() >= 6, "{m} {name}: {members:?}");
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: kill(2) on the script's pid.
        unsafe { libc::kill(run.pid(), sig) };
        let (status, err) = run.wait_status(LIMIT, &format!("{m} {name}: "));
        assert_eq!(status.signal(), Some(sig), "{m} {name}: {status:?} {err}");
        assert!(run.rest().is_empty(), "{m} {name}");
        for pid in pids {
            assert!(wait_gone(pid), "{m} {name}: {pid} outlived the script");
        }
        let left = wait_group_gone(run.pid());
        assert!(left.is_empty(), "{m} {name}: left behind: {left:?} (of {members:?})");
    }
}

/// Ctrl-C (SIGINT to the script's process) stops each blocking call with
/// `KeyboardInterrupt`, exit code 130; the daemon child is terminated.
fn ctrl_c_in_every_blocking_call(m: &str) {
    let src = r#"
fn sleeper() { time::sleep(60) }
if __name__ == "__main__" {
    let q = Queue(); let l = Lock(); let ev = Event();
    let p = Process(sleeper, #{daemon: true}); p.start();
    l.acquire();
    print(p.pid);
    switch ARGV[0] {
        "sleep" => time::sleep(30),
        "get" => q.get(),
        "acquire" => l.acquire(),
        "join" => p.join(),
        "wait" => ev.wait(),
        "loop" => { let n = 0; while true { n += 1; } },
    }
    print("not reached");
}
"#;
    for case in ["sleep", "get", "acquire", "join", "wait", "loop"] {
        let mut run = start_script_with(src, m, &[case], |_| {});
        let pid: i32 = run.line().parse().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: kill(2) on the script's pid.
        unsafe { libc::kill(run.pid(), libc::SIGINT) };
        let (code, err) = run.wait();
        assert_eq!(code, Some(130), "{m} {case}: {err}");
        assert!(err.contains("KeyboardInterrupt"), "{m} {case}: {err}");
        assert!(run.rest().is_empty(), "{m} {case}");
        assert!(wait_gone(pid), "{m} {case}: the daemon child outlived Ctrl-C");
        assert!(wait_group_gone(run.pid()).is_empty(), "{m} {case}: processes left behind");
    }
}

/// Huge sizes are a typed error, never an abort; large but possible ones work.
#[test]
fn huge_sizes_are_typed_errors() {
    let out = run_script(
        r#"
fn kind(f) { try { f.call(); return "ok"; } catch (e) { return e.type; } }
if __name__ == "__main__" {
    let name = `rhai-mp-test-${os::getpid()}-huge`;
    let mgr = Manager();
    print([
        kind(|| Array("i", 1 << 40)), kind(|| Array("q", 1 << 61)), kind(|| RawArray("d", 1 << 50)),
        kind(|| SharedMemory(1 << 50)), kind(|| SharedMemory(#{name: name, create: true, size: 1 << 50})),
        kind(|| mgr.list(0..(1 << 50))), kind(|| Process(|| (), 0..(1 << 50))),
    ]);
    print([kind(|| Pool(100000)), kind(|| Barrier(1 << 40)), kind(|| Semaphore(1 << 40)), kind(|| BoundedSemaphore(1 << 40))]);
    try { SharedMemory(#{name: name}); print("left behind") } catch (e) { print(e.type) }
    let q = Queue(1 << 62);
    q.put(1); print(`${q.get()} ${q.full()}`);
    let ends = Pipe();
    ends[0].send_bytes(blob(3, 1));
    print(ends[1].recv_bytes(1 << 62).len());
    // Built in place, item by item (never a 100-million-item Rhai array first): 256 is out
    // of range for "B" (a ValueError, as the reference says, at once), while zeros and
    // in-range items work.
    try { Array("B", 0..100000000); print("no error") } catch (e) { print(e.type) }
    let a = Array("B", 100000000);
    let b = Array("i", 0..10000000);
    print(`${a.len()} ${a[-1]} ${b.len()} ${b[-1]}`);
    print(mgr.list(0..3));
}
"#,
        "spawn",
    );
    assert_eq!(
        out.ok(),
        "[\"MemoryError\", \"MemoryError\", \"MemoryError\", \"MemoryError\", \"MemoryError\", \"MemoryError\", \"MemoryError\"]\n\
         [\"ValueError\", \"ValueError\", \"ValueError\", \"ValueError\"]\nFileNotFoundError\n1 false\n3\n\
         ValueError\n100000000 0 10000000 9999999\n[0, 1, 2]\n"
    );
}

/// Wrong argument types and misuse: typed errors, not Rhai's "function not found".
#[test]
fn smaller_faults() {
    let out = run(&[
        "-e",
        r#"
fn kind(f) { try { f.call(); return "ok"; } catch (e) { return e.type; } }
let s = Semaphore(2147483647);
print(kind(|| s.release()));
print(s.get_value());
let q = Queue(-1);
for i in 0..100 { q.put_nowait(i); }
print(`${q.qsize()} ${q.full()}`);
let p = Process(|| ());
print(kind(|| p.name = 5));
print(kind(|| wait("x")));
print(kind(|| hold(Lock(), 5)));
print(kind(|| current_process().terminate()));
print(kind(|| current_process().kill()));
"#,
    ]);
    assert_eq!(
        out.ok(),
        "ValueError\n2147483647\n100 false\nTypeError\nTypeError\nTypeError\nAssertionError\nAssertionError\n"
    );
}

/// A peer of the forkserver that sends nothing, garbage, a header claiming 1 GiB, or a
/// byte a second delays no one: three processes start and finish while such connections
/// are open (the server used to read a request to its end, with a 10-second timeout per
/// read, before it looked at the next connection).
#[test]
fn forkserver_is_not_delayed_by_hostile_connections() {
    use nix::sys::socket::{self as sock, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let go = std::env::temp_dir().join(format!("rhai-mp-test-{}-forkserver-go", std::process::id()));
    let _ = std::fs::remove_file(&go);
    let src = r#"
fn noop() {}
if __name__ == "__main__" {
    let p = Process(noop); p.start(); p.join(30);
    print("server up");
    let marker = path("GO");
    for i in 0..3000 { if marker.exists { break } time::sleep(0.01); }
    let ps = [];
    for i in 0..3 { let p = Process(|i| print(`child ${i}`), [i]); p.start(); ps.push(p); }
    for p in ps { p.join(30); }
    print(ps.map(|p| p.exitcode));
}
"#
    .replace("GO", go.to_str().unwrap());
    let mut run = start_script(&src, "forkserver");
    assert_eq!(run.line(), "server up");
    let prefix = format!("@rhai-mp-forkserver-{}-", run.pid());
    let table = std::fs::read_to_string("/proc/net/unix").unwrap();
    let name = table
        .lines()
        .filter_map(|l| l.split_whitespace().nth(7))
        .find(|n| n.starts_with(&prefix))
        .unwrap_or_else(|| {
            run.kill_group();
            panic!("no socket {prefix}… in /proc/net/unix")
        })
        .to_string();
    let connect = || -> OwnedFd {
        let fd = sock::socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
        sock::connect(fd.as_raw_fd(), &UnixAddr::new_abstract(&name.as_bytes()[1..]).unwrap()).unwrap();
        fd
    };
    let send = |fd: &OwnedFd, bytes: &[u8]| {
        let _ = sock::send(fd.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL);
    };
    // A frame header (as `transport/stream.rs` writes it: length, descriptor count, magic)
    // claiming 1 GiB of payload.
    let mut header = [0u8; 16];
    header[0..8].copy_from_slice(&(1u64 << 30).to_le_bytes());
    header[12..16].copy_from_slice(&0x524d_5031u32.to_le_bytes());
    // Silent.
    let silent = connect();
    // Garbage.
    let garbage = connect();
    send(&garbage, &[0x5a; 100]);
    // The 1 GiB header, then nothing; and after a (wrong) key.
    let huge = connect();
    send(&huge, &header);
    let huge_after_key = connect();
    send(&huge_after_key, &[[0x5a; 32].as_slice(), &header].concat());
    // The 1 GiB header, then a byte a second until the script ends: a server that reads a
    // request to its end before serving the next one would wait for it forever.
    /// Stops the trickle when the test ends, however it ends.
    struct Stop(Arc<AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let stop = Stop(Arc::new(AtomicBool::new(false)));
    let trickle = {
        let fd = connect();
        send(&fd, &header);
        let stop = stop.0.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let _ = sock::send(fd.as_raw_fd(), b"k", MsgFlags::MSG_NOSIGNAL);
                for _ in 0..10 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
    };
    std::fs::write(&go, "").unwrap();
    let (code, err) = run.wait();
    drop(stop);
    trickle.join().unwrap();
    let _ = std::fs::remove_file(&go);
    drop((silent, garbage, huge, huge_after_key));
    let mut rest = run.rest();
    assert_eq!(code, Some(0), "{err}");
    let last = rest.pop();
    rest.sort();
    assert_eq!(rest, ["child 0", "child 1", "child 2"], "{err}");
    assert_eq!(last.as_deref(), Some("[0, 0, 0]"), "{err}");
}

/// Found while writing these tests: under forkserver, a daemon child whose script was
/// SIGKILLed right after `start()` could outlive it (in up to a third of the runs): the server
/// died (with its script) between forking the child and the child's setting its
/// parent-death signal, which then never came. Many quick rounds of the race.
#[test]
fn a_daemon_never_outlives_its_killed_script_under_forkserver() {
    let src = r#"
if __name__ == "__main__" {
    let p = Process(|| time::sleep(60), #{daemon: true});
    p.start();
    print(p.pid);
    time::sleep(60);
}
"#;
    let mut daemons = Vec::new();
    for _ in 0..20 {
        let mut run = start_script(src, "forkserver");
        let pid: i32 = run.line().parse().unwrap();
        // SAFETY: kill(2) on the script's pid.
        unsafe { libc::kill(run.pid(), libc::SIGKILL) };
        let _ = run.child.wait();
        daemons.push((pid, run.pid()));
    }
    for (pid, script) in daemons {
        let gone = wait_gone(pid);
        if !gone {
            // SAFETY: kill(2) on the leftover daemon.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        assert!(gone, "daemon {pid} outlived its SIGKILLed script {script}");
    }
}
