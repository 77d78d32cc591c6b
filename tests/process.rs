//! Process: every method and property, under each start method.

use crate::common::*;

per_method!(
    start_join_properties,
    closures_carry_captured_values,
    values_cross_unchanged,
    names_and_parents,
    exit_codes,
    join_timeout_and_is_alive,
    children_are_joined_at_exit,
    daemon_children_are_terminated_at_exit,
    daemon_children_die_with_a_killed_parent,
    daemon_cannot_have_children,
    run_calls_in_this_process,
    close_and_use_after_close,
    active_children_lists_live_children,
    output_lines_are_never_torn,
);

fn start_join_properties(m: &str) {
    let out = run_script(
        r#"
fn work(a, b) { print(`child ${a + b} ${current_process().name}`); }
if __name__ == "__main__" {
    let p = Process(work, [1, 2]);
    print(`before: pid=${p.pid} exitcode=${p.exitcode} alive=${p.is_alive()} daemon=${p.daemon}`);
    p.start();
    print(`sentinel is int: ${type_of(p.sentinel) == "i64"}`);
    print(`pid is int: ${type_of(p.pid) == "i64"} ident same: ${p.ident == p.pid}`);
    p.join();
    print(`after: exitcode=${p.exitcode} alive=${p.is_alive()}`);
    print(`${p}`.contains("stopped exitcode=0"));
}
"#,
        m,
    );
    let s = out.ok();
    assert!(s.contains("before: pid= exitcode= alive=false daemon=false"), "{s}");
    assert!(s.contains("child 3 Process-1"), "{s}");
    assert!(s.contains("sentinel is int: true"), "{s}");
    assert!(s.contains("pid is int: true ident same: true"), "{s}");
    assert!(s.contains("after: exitcode=0 alive=false"), "{s}");
    assert!(s.ends_with("true\n"), "{s}");
}

fn closures_carry_captured_values(m: &str) {
    let out = run_script(
        r#"
if __name__ == "__main__" {
    let base = 40;
    let items = [1, 2, #{k: "v"}];
    let common = 5;
    let add = |x| x + base + common;
    let show = |x| print(`${add.call(x)} ${items} ${common}`);
    let p = Process(show, [2]);
    p.start();
    p.join();
    print(`exit ${p.exitcode}`);
}
"#,
        m,
    );
    let s = out.ok();
    assert!(s.contains(r#"47 [1, 2, #{"k": "v"}] 5"#), "{s}");
    assert!(s.contains("exit 0"), "{s}");
}

fn values_cross_unchanged(m: &str) {
    let out = run_script(
        r#"
fn show(v) { print(`child: ${v}`); }
if __name__ == "__main__" {
    let v = [(), true, false, 42, -7, 2.5, 'x', "héllo", blob(3, 0xff), [1, [2, [3]]], #{a: 1, "b c": [#{}]}, Fn("show"), 9223372036854775807];
    print(`parent: ${v}`);
    let p = Process(show, [v]);
    p.start();
    p.join();
}
"#,
        m,
    );
    let s = out.ok();
    let parent = s.lines().find_map(|l| l.strip_prefix("parent: ")).unwrap();
    let child = s.lines().find_map(|l| l.strip_prefix("child: ")).expect(s);
    assert_eq!(parent, child);
}

fn names_and_parents(m: &str) {
    let out = run_script(
        r#"
fn inner() {
    let me = current_process();
    print(`inner ${me.name} parent ${parent_process().name} ${parent_process().pid == os::getppid() || get_start_method() == "forkserver"}`);
}
fn outer(main_pid) {
    print(`outer ${current_process().name} parent pid ok ${parent_process().pid == main_pid}`);
    let a = Process(inner); a.start(); a.join();
    let b = Process(inner, #{name: "custom"}); b.start(); b.join();
}
if __name__ == "__main__" {
    print(`main ${current_process().name} parent ${parent_process()}`);
    let p = Process(outer, [os::getpid()]);
    let q = Process(outer, [os::getpid()]);
    print(`${p.name} ${q.name}`);
    p.start(); p.join();
    q.name = "renamed";
    q.start(); q.join();
}
"#,
        m,
    );
    let s = out.ok();
    for want in [
        "main MainProcess parent ",
        "Process-1 Process-2",
        "outer Process-1 parent pid ok true",
        "inner Process-1:1 parent Process-1 true",
        "outer renamed parent pid ok true",
        "inner Process-2:1 parent renamed true",
    ] {
        assert!(s.contains(want), "missing {want:?} in\n{s}");
    }
}

fn exit_codes(m: &str) {
    let out = run_script(
        r#"
fn ok() {}
fn fails() { let a = [1]; a[3] }
fn throws() { throw "custom failure" }
fn exits(n) { exit(n) }
fn sleeps() { time::sleep(30) }
if __name__ == "__main__" {
    for t in [[Fn("ok"), []], [Fn("fails"), []], [Fn("throws"), []], [Fn("exits"), [7]], [Fn("exits"), [()]]] {
        let p = Process(t[0], t[1]); p.start(); p.join();
        print(`${t[0]} -> ${p.exitcode}`);
    }
    let p = Process(sleeps); p.start(); p.terminate(); p.join(); print(`terminate -> ${p.exitcode}`);
    let p = Process(sleeps); p.start(); p.kill(); p.join(); print(`kill -> ${p.exitcode}`);
    // Once it runs, SIGINT is a KeyboardInterrupt in the child, uncaught: exit code 1, as
    // Python's (sent earlier, while it boots, it may still die of the signal: -2).
    let ev = Event();
    let p = Process(|e| { e.set(); time::sleep(30) }, [ev]); p.start(); ev.wait(30);
    os::kill(p.pid, "SIGINT"); p.join(); print(`SIGINT -> ${p.exitcode}`);
    let p = Process(sleeps); p.start(); os::kill(p.pid, 9); p.join(); print(`9 -> ${p.exitcode}`);
}
"#,
        m,
    );
    let s = out.ok();
    for want in [
        "Fn(ok) -> 0",
        "Fn(fails) -> 1",
        "Fn(throws) -> 1",
        "Fn(exits) -> 7",
        "Fn(exits) -> 0",
        "terminate -> -15",
        "kill -> -9",
        "SIGINT -> 1",
        "9 -> -9",
    ] {
        assert!(s.contains(want), "missing {want:?} in\n{s}");
    }
    // The child's uncaught error is reported on stderr, naming the child and its position.
    assert!(out.stderr.contains("Process Process-2 (pid "), "{}", out.stderr);
    assert!(out.stderr.contains("IndexError: Array index 3 out of bounds"), "{}", out.stderr);
    assert!(out.stderr.contains(":3:"), "{}", out.stderr);
    assert!(out.stderr.contains("RuntimeError: custom failure"), "{}", out.stderr);
}

fn join_timeout_and_is_alive(m: &str) {
    let out = run_script(
        r#"
fn sleeps() { time::sleep(30) }
if __name__ == "__main__" {
    let p = Process(sleeps);
    p.start();
    p.join(0.05);
    print(`after timeout: alive=${p.is_alive()} exitcode=${p.exitcode}`);
    p.join(0);
    p.terminate();
    p.join(20);
    print(`after terminate: alive=${p.is_alive()} exitcode=${p.exitcode}`);
    p.join(());
}
"#,
        m,
    );
    let s = out.ok();
    assert!(s.contains("after timeout: alive=true exitcode=\n"), "{s}");
    assert!(s.contains("after terminate: alive=false exitcode=-15"), "{s}");
}

fn children_are_joined_at_exit(m: &str) {
    // The child writes a file after a while; if the main process joins it at exit, the file
    // is there the moment the main process has ended.
    let marker = std::env::temp_dir().join(format!("rhai-mp-joined-{}-{m}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let out = run_script_args(
        r#"
fn late(path) { time::sleep(0.3); let f = open_file(path, "w"); f.write("done"); print("child finished"); }
if __name__ == "__main__" {
    let p = Process(late, [ARGV[0]]);
    p.start();
    print("main done");
}
"#,
        m,
        &[marker.to_str().unwrap()],
    );
    assert!(marker.exists(), "the main process ended before its child");
    let _ = std::fs::remove_file(&marker);
    assert_eq!(out.ok(), "main done\nchild finished\n");
}

fn daemon_children_are_terminated_at_exit(m: &str) {
    let out = run_script(
        r#"
fn forever() { time::sleep(60); print("daemon should not get here"); }
if __name__ == "__main__" {
    let p = Process(forever, #{daemon: true});
    print(p.daemon);
    p.start();
    print(p.pid);
}
"#,
        m,
    );
    let s = out.ok();
    let pid: i32 = s.lines().nth(1).unwrap().parse().unwrap();
    assert!(s.starts_with("true\n"));
    assert!(wait_gone(pid), "daemon {pid} still alive after its parent ended");
    assert!(!s.contains("should not"));
}

fn daemon_children_die_with_a_killed_parent(m: &str) {
    let script = write_script(
        r#"
fn forever() { time::sleep(60); }
if __name__ == "__main__" {
    let p = Process(forever);
    p.daemon = true;
    p.start();
    print(p.pid);
    time::sleep(60);
}
"#,
    );
    let mut child = std::process::Command::new(bin())
        .args(["--start-method", m, script.0.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    let pid: i32 = first.trim().parse().expect("the script prints the daemon's pid");
    assert!(!is_gone(pid));
    child.kill().unwrap(); // SIGKILL: no at-exit code runs in the parent
    child.wait().unwrap();
    assert!(wait_gone(pid), "daemon {pid} outlived its SIGKILLed parent");
}

fn daemon_cannot_have_children(m: &str) {
    let out = run_script(
        r#"
fn sub() {}
fn d() {
    try { Process(sub).start(); print("no error"); } catch (e) { print(`${e.type}: ${e.message}`); }
}
if __name__ == "__main__" {
    let p = Process(d, #{daemon: true}); p.start(); p.join();
    try { p.daemon = false; } catch (e) { print(`${e.type}: ${e.message}`); }
}
"#,
        m,
    );
    let s = out.ok();
    assert!(s.contains("AssertionError: daemonic processes are not allowed to have children"), "{s}");
    assert!(s.contains("AssertionError: process has already started"), "{s}");
}

fn run_calls_in_this_process(m: &str) {
    let out = run_script(
        r#"
if __name__ == "__main__" {
    let me = os::getpid();
    let p = Process(|x| print(`ran ${x} here: ${os::getpid() == me}`), [3]);
    p.run();
    print(`still unstarted: ${p.pid}`);
    Process(#{}).run();
}
"#,
        m,
    );
    let s = out.ok();
    assert!(s.contains("ran 3 here: true"), "{s}");
    assert!(s.contains("still unstarted: \n"), "{s}");
}

fn close_and_use_after_close(m: &str) {
    let out = run_script(
        r#"
fn sleeps() { time::sleep(30) }
if __name__ == "__main__" {
    let p = Process(sleeps);
    p.start();
    try { p.close(); } catch (e) { print(`${e.type}: ${e.message}`); }
    p.kill();
    p.join();
    p.close();
    print(p);
    for f in [|| p.is_alive(), || p.join(), || p.exitcode, || p.pid, || p.start(), || p.sentinel] {
        try { f.call(); print("no error"); } catch (e) { print(`${e.type}: ${e.message}`); }
    }
}
"#,
        m,
    );
    let s = out.ok();
    assert!(s.contains("ValueError: Cannot close a process while it is still running"), "{s}");
    assert!(s.contains("<Process name='Process-1' closed>"), "{s}");
    assert_eq!(s.matches("ValueError: process object is closed").count(), 6, "{s}");
}

fn active_children_lists_live_children(m: &str) {
    let out = run_script(
        r#"
fn sleeps(t) { time::sleep(t) }
if __name__ == "__main__" {
    print(active_children());
    let a = Process(sleeps, [30]); a.start();
    let b = Process(sleeps, [0]); b.start(); b.join();
    let kids = active_children();
    print(`${kids.len()} ${kids[0] == a} ${kids.contains(a)} ${kids[0].name}`);
    a.kill(); a.join();
    print(active_children().len());
}
"#,
        m,
    );
    let s = out.ok();
    assert_eq!(s, "[]\n1 true true Process-1\n0\n");
}

fn output_lines_are_never_torn(m: &str) {
    let out = run_script(
        r#"
fn chatter(id) {
    let xs = "";
    xs.pad(200, 'x');
    let line = `${id}:${xs}`;
    for i in 0..300 { print(line); }
}
if __name__ == "__main__" {
    let ps = [];
    for id in 0..4 { let p = Process(chatter, [id]); p.start(); ps.push(p); }
    for p in ps { p.join(); }
    print("end");
}
"#,
        m,
    );
    let s = out.ok();
    let mut counts = [0usize; 4];
    for line in s.lines().filter(|l| *l != "end") {
        let (id, rest) = line.split_once(':').unwrap_or_else(|| panic!("torn line {line:?}"));
        assert_eq!(rest.len(), 200, "torn line {line:?}");
        counts[id.parse::<usize>().unwrap()] += 1;
    }
    assert_eq!(counts, [300; 4], "every line exactly once");
}
