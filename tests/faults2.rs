//! The faults a new campaign found (issue 24, items 8–14), as regression tests: resource
//! limits (set with `ulimit` inside the test), stopped peers, network partitions between
//! namespaces the test makes, and hostile headers. Every wait is bounded; nothing asserts on
//! timing.

use crate::common::*;

/// Runs a script under `bash -c "<limits>; exec ..."`: resource limits set with `ulimit` in
/// the test (and, with `as_nobody`, as user 65534 so that `ulimit -u` holds: root is not
/// bound by it).
fn run_limited(src: &str, method: &str, limits: &str, as_nobody: bool, args: &[&str]) -> Out {
    let script = write_script(src);
    let mut cmd = vec![bin().to_str().unwrap().to_string(), "--start-method".into(), method.into()];
    cmd.push(script.0.to_str().unwrap().to_string());
    cmd.extend(args.iter().map(|a| a.to_string()));
    if as_nobody {
        cmd.splice(0..0, ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"].map(String::from));
    }
    let line = format!("{limits}; exec \"$@\"");
    let mut all = vec!["-c", line.as_str(), "sh"];
    all.extend(cmd.iter().map(String::as_str));
    run_program(std::path::Path::new("/bin/bash"), &all, None)
}

/// Whether user 65534 can be switched to (root, with `setpriv`).
fn can_be_nobody() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && std::process::Command::new("setpriv").arg("--version").output().is_ok_and(|o| o.status.success())
}

per_method!(a_start_that_throws_runs_nothing);

/// Out of descriptors, a `start()` that throws used to have forked already (fork: its
/// `pidfd_open` failed after the fork) and the target ran anyway, its child never joined.
/// Now every start that throws runs nothing: as many children ran as starts succeeded.
fn a_start_that_throws_runs_nothing(m: &str) {
    for n in [24, 27, 32, 41] {
        let out = run_limited(
            r#"
if __name__ == "__main__" {
    let ps = [];
    for i in 0..200 {
        let p = Process(|| print("ran"), []);
        try { p.start(); ps.push(p); } catch (e) { print(`${e.type} ${e.errno}`); break; }
    }
    for p in ps { p.join(); }
    print(`started ${ps.len()}`);
    print(`left ${active_children().len()}`);
}
"#,
            m,
            &format!("ulimit -n {n}"),
            false,
            &[],
        );
        let s = out.ok();
        let ran = s.lines().filter(|l| *l == "ran").count();
        let rest: Vec<&str> = s.lines().filter(|l| *l != "ran").collect();
        assert_eq!(rest, ["OSError 24".to_string(), format!("started {ran}"), "left 0".into()], "ulimit -n {n}:\n{s}");
    }
}

per_method!(out_of_descriptors_or_processes_is_an_os_error_naming_the_limit);

/// Running out of descriptors (`ulimit -n`) or processes (`ulimit -u`) while making a pool
/// or starting a process is an `OSError` naming the errno (`EMFILE`, `EAGAIN`) and the
/// limit to raise. It used to be a `SerializationError` (a handle's descriptor could not be
/// copied) or `RuntimeError: the forkserver could not start the process` with nothing on
/// stderr, under `fork` too, where the user chose no forkserver.
fn out_of_descriptors_or_processes_is_an_os_error_naming_the_limit(m: &str) {
    let src = r#"
if __name__ == "__main__" {
    let qs = [];
    try { for i in 0..(ARGV[0].parse_int()) { qs.push(Queue()); } } catch (e) { print(`${e.type}: ${e.message}`) }
    try {
        let p = Pool(4);
        print(p.map(|x| x * 2, 0..4));
        p.terminate();
    } catch (e) { print(`${e.type}: ${e.message}`) }
    try { let p = Process(|a| print(a.len()), [qs]); p.start(); p.join(); } catch (e) { print(`${e.type}: ${e.message}`) }
}
"#;
    let check = |out: &Out, errno: &str, limit: &str, context: &str| {
        let mut errors = 0;
        for line in out.ok().lines() {
            if line.starts_with('[') || line.parse::<usize>().is_ok() {
                continue;
            }
            errors += 1;
            assert!(line.starts_with("OSError: "), "{context}: {line}");
            assert!(line.contains(errno) && line.contains(limit), "{context}: {line}");
            if m == "fork" {
                assert!(!line.contains("forkserver"), "{context}: {line}");
            }
        }
        errors
    };
    let mut failed = 0;
    for n in (14..=40).step_by(2) {
        let out = run_limited(src, m, &format!("ulimit -n {n}"), false, &["0"]);
        failed += check(&out, "EMFILE", "ulimit -n", &format!("ulimit -n {n}"));
        // Handles whose descriptors cannot all be copied to the child.
        let out = run_limited(src, m, &format!("ulimit -n {}", n + 20), false, &["6"]);
        failed += check(&out, "EMFILE", "ulimit -n", &format!("ulimit -n {} with queues", n + 20));
    }
    assert!(failed > 0, "no limit was reached");
    if !can_be_nobody() {
        eprintln!("skipping the ulimit -u part: it needs root and setpriv (root is not bound by ulimit -u)");
        return;
    }
    for u in [2, 3, 4] {
        let out = run_limited(src, m, &format!("ulimit -u {u}"), true, &["0"]);
        let errors = check(&out, "EAGAIN", "ulimit -u", &format!("ulimit -u {u}"));
        assert!(errors > 0, "ulimit -u {u}: {}", out.stdout);
    }
}

per_method!(more_than_253_handles_to_one_child);

/// A child given more handles than one message can carry descriptors (253): spawn and
/// forkserver used to throw `OSError: cannot pass more than 253 descriptors in one
/// message` (fork worked); the descriptors now go in several messages.
fn more_than_253_handles_to_one_child(m: &str) {
    for n in ["254", "1000"] {
        let out = run_script_args(
            r#"
fn bump(vs) { for v in vs { v.value += 1 } }
if __name__ == "__main__" {
    let vs = [];
    for i in 0..ARGV[0].parse_int() { vs.push(Value("i", i, false)) }
    let p = Process(bump, [vs]); p.start(); p.join();
    let ok = true;
    for i in 0..vs.len() { if vs[i].value != i + 1 { ok = false } }
    print(`${p.exitcode} ${ok}`);
}
"#,
            m,
            &[n],
        );
        assert_eq!(out.ok(), "0 true\n", "{n} handles");
    }
}

/// A spawn child's boot reader used to allocate and zero-fill whatever size the 16-byte
/// header announced before any of it arrived (1 GiB of memory while waiting for 3 bytes;
/// killed in a 256 MiB cgroup). It now grows its buffer with what arrives: here a child
/// told "1 GiB follows" and given 3 bytes stays small, and ends (exit code 1, a message)
/// when the connection closes.
#[test]
fn a_boot_header_announcing_a_gigabyte_allocates_what_arrives() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let mut child = std::process::Command::new(bin())
        .env("RHAI_MP_CHILD", "spawn")
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    ours.set_read_timeout(Some(LIMIT)).unwrap();
    let mut answer = [0u8; 1];
    ours.read_exact(&mut answer).unwrap();
    // The frame header (see runtime/core/src/transport/stream.rs): length, descriptor
    // count, magic; then 3 bytes of the gigabyte.
    let mut header = Vec::new();
    header.extend_from_slice(&(1u64 << 30).to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&0x524d_5031u32.to_le_bytes());
    ours.write_all(&header).unwrap();
    ours.write_all(b"abc").unwrap();
    let rss_kib = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    // Watch it while it waits for the rest (a zero-filled gigabyte takes far less than this
    // to show up).
    let mut most = 0;
    for _ in 0..100 {
        most = most.max(rss_kib(child.id()));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(ours);
    let status = wait_bounded(&mut child, LIMIT).expect("the child did not end when its stdin closed");
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(most < 128 * 1024, "the waiting child used {most} KiB");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("no boot message arrived"), "{err}");
}

per_method!(queues_fit_under_an_address_space_limit);

/// Each `Queue()` used to map a 1 GiB window of its log in every process that held it:
/// under `ulimit -v 2000000` a `Pool(2)` could not start (`OSError: Cannot allocate
/// memory`) and under `ulimit -v 4000000` only three queues fit. A process now maps what
/// the records it touches need, and maps more as the log grows: here a pool starts, 20
/// queues are made and used by the parent and a child, and one log grows to 24 MiB in the
/// child and is read in the parent (records of 96 KiB, written and read through the
/// mapping, which both map again larger several times).
fn queues_fit_under_an_address_space_limit(m: &str) {
    let out = run_limited(
        r#"
fn fill(qs, big) {
    for i in 0..qs.len() { qs[i].put(i * 10); }
    for i in 0..256 { big.put(pad(i, 96 * 1024)); }
}
fn pad(i, n) { let b = blob(n, i % 256); b }
if __name__ == "__main__" {
    let p = Pool(2);
    print(p.map(|x| x * 2, 0..4));
    let qs = [];
    for i in 0..20 { qs.push(Queue()); }
    let big = Queue();
    let c = Process(fill, [qs, big]); c.start();
    let sum = 0;
    for q in qs { sum += q.get(true, 30); }
    let ok = true;
    for i in 0..256 {
        let b = big.get(true, 30);
        if b.len() != 96 * 1024 || b[0] != i % 256 || b[b.len() - 1] != i % 256 { ok = false; }
    }
    c.join();
    for i in 0..20 { qs[i].put(i); }
    let back = 0;
    for q in qs { back += q.get(false); }
    print(`${sum} ${ok} ${back} ${c.exitcode}`);
    p.terminate();
}
"#,
        m,
        "ulimit -v 2000000",
        false,
        &[],
    );
    assert_eq!(out.ok(), "[0, 2, 4, 6]\n1900 true 190 0\n", "{}", out.stderr);
}

/// A process (forked from the test) that holds the mutexes of every queue process `pid` has
/// open (its memfds named `rhai-mp-queue`, opened through `/proc/PID/fd`), then stops
/// itself: a peer SIGSTOPped while using the queues, made deterministic. Dropping it (or
/// [`LockHolder::release`]) SIGKILLs and reaps it; the robust mutexes then tell the next
/// locker that their owner died.
struct LockHolder {
    pid: i32,
}

impl LockHolder {
    fn hold(pid: i32) -> LockHolder {
        use std::ffi::CString;
        use std::os::unix::fs::MetadataExt;
        let mut paths = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
            let target = std::fs::read_link(entry.path()).unwrap_or_default();
            // Each queue once (a process may hold several descriptors of one).
            let inode = std::fs::metadata(entry.path()).map(|m| m.ino()).unwrap_or(0);
            if target.to_string_lossy().starts_with("/memfd:rhai-mp-queue") && seen.insert(inode) {
                paths.push(CString::new(entry.path().to_str().unwrap()).unwrap());
            }
        }
        assert!(!paths.is_empty(), "process {pid} has no queue open");
        // SAFETY: the child only makes system calls (open, mmap, the pthread lock on a
        // process-shared mutex, kill) on memory prepared before the fork, then ends.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork failed");
        if child == 0 {
            // SAFETY: in the forked child: system calls on paths made before the fork, and
            // the lock of a process-shared mutex in the mapping just made.
            unsafe {
                for p in &paths {
                    let fd = libc::open(p.as_ptr(), libc::O_RDWR);
                    let at = libc::mmap(
                        std::ptr::null_mut(),
                        4096,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_SHARED,
                        fd,
                        0,
                    );
                    if fd < 0
                        || at == libc::MAP_FAILED
                        || libc::pthread_mutex_lock(at as *mut libc::pthread_mutex_t) != 0
                    {
                        libc::_exit(1);
                    }
                }
                libc::kill(libc::getpid(), libc::SIGSTOP);
                loop {
                    libc::pause();
                }
            }
        }
        let holder = LockHolder { pid: child };
        // Bounded: wait for it to stop (holding the locks) or fail.
        let mut ended = None;
        let stopped = eventually(LIMIT, || {
            let mut status = 0;
            // SAFETY: waitpid on our own child.
            let r = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG | libc::WUNTRACED) };
            if r != 0 && !(r == child && libc::WIFSTOPPED(status)) {
                ended = Some(status);
            }
            r != 0
        });
        assert!(ended.is_none(), "the lock holder ended (status {ended:?}) instead of stopping");
        assert!(stopped, "the lock holder did not stop");
        holder
    }

    fn release(self) {}
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        // SAFETY: signalling and reaping our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// SIGKILLs process group `.0` (a script and its children, maybe stopped) when the test
/// fails.
struct KillOnPanic(i32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // SAFETY: kill(2) on the group of a script this test started.
            unsafe { libc::kill(-self.0, libc::SIGKILL) };
        }
    }
}

/// Runs a script that stops itself (`os::kill(os::getpid(), "SIGSTOP")`, after printing
/// `stop`) twice: at the first stop, a [`LockHolder`] takes its queues' mutexes and stops;
/// at the second, the holder is killed. Each time the script is then continued. Returns
/// the lines it printed (but the `stop`s) and its exit code.
fn run_with_queue_locks_held(src: &str, method: &str) -> (Vec<String>, Option<i32>, String) {
    let mut run = start_script(src, method);
    let _kill = KillOnPanic(run.pid());
    let mut lines = Vec::new();
    let mut wait_stop = |run: &mut Running| {
        loop {
            let l = run.line();
            if l == "stop" {
                break;
            }
            lines.push(l);
        }
        assert!(eventually(LIMIT, || is_stopped(run.pid())), "the script did not stop");
    };
    wait_stop(&mut run);
    let holder = LockHolder::hold(run.pid());
    // SAFETY: kill(2) on the script, which this test started.
    unsafe { libc::kill(run.pid(), libc::SIGCONT) };
    wait_stop(&mut run);
    holder.release();
    // SAFETY: as above.
    unsafe { libc::kill(run.pid(), libc::SIGCONT) };
    lines.extend(run.rest());
    let (code, err) = run.wait();
    (lines, code, err)
}

/// A peer stopped while holding a queue's mutex used to hold up every call on the queue,
/// timed or not: `q.get(true, 0.1)` and `q.get(false)` blocked until it was continued. Now
/// every timed call gives up by its deadline and `get(false)` / `put(x, false)` never wait
/// on it (`Empty`, `Full`, as Python's `get(False)` gives up on its lock); once the holder
/// is killed, the queues work again (robust mutex).
#[test]
fn timeouts_hold_while_a_stopped_peer_holds_a_queues_lock() {
    let (lines, code, err) = run_with_queue_locks_held(
        r#"
if __name__ == "__main__" {
    let q = Queue(); let j = JoinableQueue(); let f = Queue(1);
    q.put("before"); f.put(0);
    print("stop"); os::kill(os::getpid(), "SIGSTOP");
    let t0 = time::perf_counter();
    let what = [];
    for x in [q, j, f] {
        try { x.get(true, 0.1); what.push("got") } catch (e) { what.push(e.type) }
        try { x.get(false); what.push("got") } catch (e) { what.push(e.type) }
        try { x.get_nowait(); what.push("got") } catch (e) { what.push(e.type) }
        try { x.put(1, true, 0.1); what.push("put") } catch (e) { what.push(e.type) }
        try { x.put(1, false); what.push("put") } catch (e) { what.push(e.type) }
    }
    print(what);
    print(`in time: ${time::perf_counter() - t0 < 20.0}`);
    print("stop"); os::kill(os::getpid(), "SIGSTOP");
    print(q.get(true, 10)); q.put(2); print(q.get(false));
    j.put(3); print(j.get(true, 10)); j.task_done(); j.join();
    print(f.get(false)); f.put(4, false); print(f.get(true, 10));
}
"#,
        "spawn",
    );
    let empty_full = ["Empty", "Empty", "Empty", "Full", "Full"];
    let expected = [
        format!("{:?}", empty_full.repeat(3)),
        "in time: true".into(),
        "before".into(),
        "2".into(),
        "3".into(),
        "0".into(),
        "4".into(),
    ];
    assert_eq!(lines, expected, "{err}");
    assert_eq!(code, Some(0), "{err}");
}

per_method!(a_pool_result_times_out_while_a_stopped_peer_holds_its_queues);

/// `AsyncResult.get(0.1)` behind a stopped peer holding the pool's task and result queues'
/// mutexes used to block until it was continued; it now throws `TimeoutError` in time, the
/// call reaches the worker once the holder is gone, and the pool goes on.
fn a_pool_result_times_out_while_a_stopped_peer_holds_its_queues(m: &str) {
    let (lines, code, err) = run_with_queue_locks_held(
        r#"
if __name__ == "__main__" {
    let p = Pool(1);
    print(p.apply_async(|| 7).get(30));
    print("stop"); os::kill(os::getpid(), "SIGSTOP");
    let t0 = time::perf_counter();
    let r = p.apply_async(|| 1);
    try { r.get(0.1); print("got") } catch (e) { print(e.type) }
    r.wait(0.1);
    print(r.ready());
    try { p.apply_async(|| 2).get(0); print("got") } catch (e) { print(e.type) }
    print(`in time: ${time::perf_counter() - t0 < 20.0}`);
    print("stop"); os::kill(os::getpid(), "SIGSTOP");
    print(r.get(30));
    print(p.map(|x| x + 1, [1, 2]));
    p.close(); p.join();
}
"#,
        m,
    );
    assert_eq!(lines, ["7", "TimeoutError", "false", "TimeoutError", "in time: true", "1", "[2, 3]"], "{err}");
    assert_eq!(code, Some(0), "{err}");
}
