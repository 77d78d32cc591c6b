//! Start methods, contexts, `__name__` and the bootstrapping guard.

use crate::common::*;

#[test]
fn start_method_functions() {
    let out = run(&[
        "-e",
        r#"
print(get_all_start_methods());
set_start_method("fork");
print(get_start_method());
try { set_start_method("spawn"); } catch (e) { print(`${e.type}: ${e.message}`); }
set_start_method("forkserver", true);
print(get_start_method());
try { set_start_method("thread", true); } catch (e) { print(`${e.type}: ${e.message}`); }
try { get_context("thread"); } catch (e) { print(`${e.type}`); }
let ctx = get_context("spawn");
print(`${ctx} ${ctx.get_start_method()} ${get_context().get_start_method()}`);
"#,
    ]);
    let s = out.ok();
    assert_eq!(
        s,
        "[\"fork\", \"spawn\", \"forkserver\"]\nfork\nRuntimeError: context has already been set (the start method is 'fork'; pass force = true to change it)\nforkserver\nValueError: cannot find context for 'thread' (start methods: fork, spawn, forkserver)\nValueError\n<Context spawn> spawn forkserver\n"
    );
}

#[test]
fn default_is_spawn_and_fixed_by_first_use() {
    let out = run(&[
        "-e",
        r#"
print(get_start_method());
try { set_start_method("fork"); } catch (e) { print(e.type); }
"#,
    ]);
    assert_eq!(out.ok(), "spawn\nRuntimeError\n");
    let out = run(&["--start-method", "fork", "-e", "print(get_start_method())"]);
    assert_eq!(out.ok(), "fork\n");
    // The flag sets the default without fixing it: the script may still choose.
    let out = run(&["--start-method", "fork", "-e", "set_start_method(\"forkserver\"); print(get_start_method())"]);
    assert_eq!(out.ok(), "forkserver\n");
}

#[test]
fn contexts_start_with_their_own_method() {
    let out = run_script(
        r#"
fn show() { print(`${current_process().name} top-level runs: ${TOP}`); }
const TOP = "x";
print(`top level ${__name__}`);
if __name__ == "__main__" {
    for m in get_all_start_methods() {
        let ctx = get_context(m);
        let p = ctx.Process(|| print(`child via ${m}`));
        p.start(); p.join();
        let q = ctx.Process(#{target: |a| print(`map form ${a}`), args: [m]}); q.start(); q.join();
        let r = ctx.Process(|a| print(`args+opts ${a}`), [m], #{name: "n"}); r.start(); r.join();
        let s = ctx.Process(|| print(`opts form ${m}`), #{daemon: false}); s.start(); s.join();
        let t = ctx.Process(|a| print(`args form ${a}`), [m]); t.start(); t.join();
    }
}
"#,
        "spawn",
    );
    let s = out.ok();
    for m in METHODS {
        for form in ["child via", "map form", "args+opts", "opts form", "args form"] {
            assert!(s.contains(&format!("{form} {m}")), "missing {form} {m} in\n{s}");
        }
    }
    // The top level ran once in the main process, once per spawn child, and once in the
    // forkserver (which then forks its children without running it again).
    assert_eq!(s.matches("top level __main__").count(), 1, "{s}");
    assert_eq!(s.matches("top level __mp_main__").count(), 5 + 1, "{s}");
}

#[test]
fn the_top_level_runs_again_under_spawn_with_mp_main() {
    for m in METHODS {
        let out = run_script(
            r#"
print(`top ${__name__} ${os::getpid()}`);
fn f() { print("target ran"); }
if __name__ == "__main__" { let p = Process(f); p.start(); p.join(); }
"#,
            m,
        );
        let s = out.ok();
        assert_eq!(s.matches("top __main__").count(), 1, "{m}: {s}");
        let expected = if m == "fork" { 0 } else { 1 };
        assert_eq!(s.matches("top __mp_main__").count(), expected, "{m}: {s}");
        assert!(s.contains("target ran"), "{m}: {s}");
    }
}

#[test]
fn a_missing_guard_gives_the_explaining_runtime_error() {
    let unguarded = r#"
fn f() { print("target ran"); }
let p = Process(f);
p.start();
p.join();
print(`exitcode ${p.exitcode}`);
"#;
    // spawn and forkserver: the child's (or the server's) run of the top level tries to start
    // a process; the child reports the error and exits 1, the parent carries on.
    for m in ["spawn", "forkserver"] {
        let out = run_script(unguarded, m);
        let s = out.ok();
        assert!(s.contains("exitcode 1"), "{m}: {s}");
        assert!(!s.contains("target ran"), "{m}: {s}");
        assert!(out.stderr.contains("RuntimeError: An attempt has been made to start a new process before the current process has finished its bootstrapping phase"), "{m}: {}", out.stderr);
        assert!(out.stderr.contains("if __name__ == \"__main__\""), "{m}: {}", out.stderr);
    }
    // fork: no re-run, so no guard is needed (as in Python).
    let out = run_script(unguarded, "fork");
    assert!(out.ok().contains("target ran"));
}

#[test]
fn closures_have_the_same_name_in_every_process() {
    // Rhai names a closure `anon$<hash>`; the hash must not depend on the process.
    let src = r#"
let f = |x, y| x * y + 1;
print(`${__name__} ${f}`);
if __name__ == "__main__" {
    let p = Process(|g| print(`passed ${g}`), [f]);
    p.start(); p.join();
}
"#;
    for m in ["spawn", "forkserver"] {
        let out = run_script(src, m);
        let s = out.ok();
        let name_in = |prefix: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("{prefix} missing in {s}"))
                .to_string()
        };
        let main = name_in("__main__ ");
        assert!(main.starts_with("Fn(anon$"), "{main}");
        assert_eq!(main, name_in("__mp_main__ "));
        assert_eq!(main, name_in("passed "));
    }
    // And across separate runs of the binary.
    let a = run_script(src, "fork");
    let b = run_script(src, "fork");
    assert_eq!(a.ok().lines().next(), b.ok().lines().next());
}

#[test]
fn cpu_count_is_positive() {
    let out = run(&["-e", "print(cpu_count() >= 1)"]);
    assert_eq!(out.ok(), "true\n");
}

#[test]
fn globals_are_visible_in_targets_under_every_method() {
    // The child re-runs the top level and calls the target in the same evaluation, so a
    // top-level `const` is `global::NAME` there too; `__name__` and `ARGV` are visible in
    // functions, like Python's module globals.
    for m in METHODS {
        let out = run_script_args(
            r#"
const LIMIT = 42;
fn show() { print(`${global::LIMIT} ${__name__} ${ARGV}`); }
if __name__ == "__main__" { let p = Process(show); p.start(); p.join(); }
"#,
            m,
            &["x"],
        );
        let want = if m == "fork" { "42 __main__ [\"x\"]\n" } else { "42 __mp_main__ [\"x\"]\n" };
        assert_eq!(out.ok(), want, "{m}");
    }
}

#[test]
fn forked_children_draw_their_own_random_numbers() {
    // rand() in the parent (or the forkserver's top level) must not make every forked child
    // repeat the same sequence.
    for m in METHODS {
        let out = run_script(
            r#"
let warm = rand();
fn f(q) { q.put(rand()); }
if __name__ == "__main__" {
    let q = Queue();
    let ps = [];
    for i in 0..4 { let p = Process(f, [q]); p.start(); ps.push(p); }
    for p in ps { p.join(); }
    let xs = [];
    for i in 0..4 { xs.push(q.get()); }
    xs.sort(); xs.dedup();
    print(xs.len());
}
"#,
            m,
        );
        assert_eq!(out.ok(), "4\n", "{m}");
    }
}
