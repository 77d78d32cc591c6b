//! The interpreter switch (`--interpreter ast|vm`, issue 27): the same scripts give the same
//! output, errors and exit codes on Rhai's AST interpreter and on its bytecode VM, in the
//! main process and in pool workers and processes under every start method. The
//! `known_difference_*` tests (ignored) show what still differs on the VM (see
//! `runtime/core/VM_NOTES.md`); each passes once its difference is gone.

use crate::common::*;
use std::io::Write;

/// Known difference 1 of `runtime/core/VM_NOTES.md`, in rhai's grain VM: after a method call
/// on a host getter's value (`shm.name.len()`), the VM writes the value back (through the
/// indexer when there is no setter, which throws on a SharedMemory).
pub(crate) const VM_WRITE_BACK: &str =
    "known difference 1 (runtime/core/VM_NOTES.md): write-back after a method call on a getter's value";

/// Whether the binary runs scripts on the VM in this test run (`RHAI_MP_INTERPRETER=vm`, as
/// CI's second run sets it; the binary reads the same variable).
pub(crate) fn on_vm() -> bool {
    std::env::var("RHAI_MP_INTERPRETER").as_deref() == Ok("vm")
}

/// Whether to skip `what` in this run because rhai's VM has the known difference `why`:
/// true on the VM, and then it says so on stderr (written past the test harness's capture,
/// so that the skip shows in every run's output, not only in a failure's).
pub(crate) fn skip_on_vm(what: &str, why: &str) -> bool {
    if on_vm() {
        let _ = writeln!(std::io::stderr(), "SKIPPED on the VM: {what}: {why}");
    }
    on_vm()
}

/// Runs the script at `path` under `method` on interpreter `interp`: (exit code, stdout,
/// stderr with pids masked).
fn on(interp: &str, path: &str, method: &str) -> (Option<i32>, String, String) {
    let out = run(&["--interpreter", interp, "--start-method", method, path]);
    (out.code, out.stdout, mask(&out.stderr))
}

/// `text` with what changes from run to run masked: numbers of three digits or more
/// (pids) and the number after `Worker-` (which worker reports an error).
fn mask(text: &str) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    for c in text.chars().chain(['\n']) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.len() >= 3 || (!digits.is_empty() && out.ends_with("Worker-")) {
            out.push('N');
        } else {
            out.push_str(&digits);
        }
        digits.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// Asserts that `src` ends the same way on both interpreters; returns the VM's stdout.
#[track_caller]
fn same(src: &str, method: &str) -> String {
    let script = write_script(src);
    let path = script.0.to_str().unwrap();
    let ast = on("ast", path, method);
    let vm = on("vm", path, method);
    assert_eq!(ast, vm, "the AST interpreter (left) and the VM (right) differ");
    vm.1
}

const TASKS: &str = r#"
fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }
const K = 10;
fn with_k(x) { x + global::K }
fn boom(x) { if x == 2 { throw "bad " + x } x / (x - 3) }
if __name__ == "__main__" {
    let p = Pool(2);
    print(p.map(fib, [10, 15, 20]));
    let k = 7;
    print(p.map(|x| x + k, [1, 2, 3]));
    print(p.map(with_k, [1, 2]));
    print(p.map(Fn("fib"), [5]));
    print(p.map(|x| [x].map(|y| y + k), [1]));
    let f = |a, b| a * 100 + b;
    print(p.map(f.curry(3), [1, 2]));
    try { p.map(boom, [1, 2]); } catch (e) { print(e); }
    let pr = Process(|x| print(`in a process: ${fib(x) + k}`), [12]);
    pr.start();
    pr.join();
    print(pr.exitcode);
    p.map(boom, [3]);
}
"#;

fn pool_tasks_and_processes(method: &str) {
    let out = same(TASKS, method);
    assert!(out.contains("[55, 610, 6765]\n[8, 9, 10]\n[11, 12]\n[5]\n[[8]]\n[301, 302]\nbad 2\n"), "{out}");
    assert!(out.contains("in a process: 151\n0\n"), "{out}");
}

per_method!(pool_tasks_and_processes);

#[test]
fn errors_and_their_positions() {
    for src in [
        "let x = 1; x.foo()",
        "fn f(x) { g(x) } fn g(y) { y / 0 } f(1)",
        "let m = #{a: 1}; m.b.c",
        "throw #{type: \"ValueError\", message: \"nope\"}",
        "fn f(n) { f(n + 1) } f(0)",
        "let x = 1 + \"a\";",
        "const C = 1; C = 2;",
        "fn f() { exit(4) } f()",
        "let v = [1, 2]; v.map(|x| x.nosuch())",
    ] {
        same(src, "fork");
    }
}

#[test]
fn the_option_is_checked() {
    let out = run(&["--interpreter", "jit", "-e", "1"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = run(&["--interpreter", "vm", "-e", "print(40 + 2)"]);
    assert_eq!(out.ok(), "42\n");
}

/// A method call on a property that has a getter and no setter: the AST writes nothing back
/// after a pure method (`len`); the VM writes back through the indexer, which here throws
/// (and on a manager's Namespace silently writes a stale value).
#[test]
#[ignore = "differs on the VM: write-back after a method call on a getter's value"]
fn known_difference_write_back_after_a_method_call() {
    same("let s = SharedMemory(16); print(s.name.len() > 0)", "fork");
}

/// A script function's name used as a function pointer at the root of a chain.
#[test]
#[ignore = "differs on the VM: a function name as a chain's root is not a function pointer"]
fn known_difference_function_name_as_a_chain_root() {
    same("fn add(x) { x + 1 } print(add.call(1))", "fork");
}

/// Where some errors point.
#[test]
#[ignore = "differs on the VM: the position of a few errors"]
fn known_difference_positions() {
    same("let a = [1, 2]; a[1] /= 0", "fork");
    same("let x = 5; x.call(1)", "fork");
    same("import \"nosuchmodule\" as m;", "fork");
}
