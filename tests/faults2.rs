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
