//! CPython conformance, round 3 (issue 24, items 1–7): behaviour confirmed against Python
//! 3.11/3.12, each test the script that showed a difference.

use crate::common::*;

/// A forkserver that is killed (SIGKILL) or ended (SIGTERM) is replaced once, and later
/// starts go on (bpo-31308); it used to give `OSError: cannot reach the forkserver`.
#[test]
fn a_dead_forkserver_is_replaced() {
    for signal in ["SIGKILL", "SIGTERM"] {
        let out = run_script_args(
            r#"
// This process's children (once its Process children are joined: the forkserver).
fn kids() {
    let me = os::getpid();
    let s = open_file(`/proc/${me}/task/${me}/children`, "r").read_string();
    s.trim();
    s
}
if __name__ == "__main__" {
    let p = Process(|| print("first"), []); p.start(); p.join();
    let server = kids().parse_int();
    os::kill(server, ARGV[0]);
    // Until it has ended (a zombie; bounded).
    for i in 0..2000 {
        let s = open_file(`/proc/${server}/stat`, "r").read_string().split(")")[1];
        s.trim();
        if s.sub_string(0, 1) == "Z" { break }
        time::sleep(0.01);
    }
    for i in 0..3 {
        let p = Process(|i| print(`again ${i}`), [i]); p.start(); p.join(20);
        print(p.exitcode);
    }
    print(kids() != `${server}`);
}
"#,
            "forkserver",
            &[signal],
        );
        assert_eq!(out.ok(), "first\nagain 0\n0\nagain 1\n0\nagain 2\n0\ntrue\n", "{signal}");
    }
}

per_method!(parent_process_join_waits_for_the_parent);

/// `parent_process().join(timeout)` in a grandchild waits for the parent to end (CPython's
/// `test_parent_process`); it used to throw `AssertionError: can only join a child process`.
fn parent_process_join_waits_for_the_parent(m: &str) {
    let out = run_script(
        r#"
fn grandchild(w) {
    let pp = parent_process();
    let say = || if pp.is_alive() { "alive" } else { "not alive" };
    w.send(say.call());
    pp.join(0.2);
    w.send(say.call());
    pp.join(30);
    w.send(say.call());
}
fn child(w) {
    let p = Process(grandchild, [w]);
    p.start();
    time::sleep(60);
}
if __name__ == "__main__" {
    let rw = Pipe(false);
    let p = Process(child, [rw[1]]);
    p.start();
    print(rw[0].recv());
    print(rw[0].recv());
    // SIGKILL: the child does not end its own children on the way out.
    p.kill();
    print(rw[0].recv());
    p.join();
    try { current_process().join(1) } catch (e) { print(e.type) }
}
"#,
        m,
    );
    assert_eq!(out.ok(), "alive\nalive\nnot alive\nAssertionError\n");
}
