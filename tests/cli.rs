//! The binary's command line: scripts, `-e`, ARGV, `--help`, `--version`, usage errors, the
//! uncaught-error report and exit codes.

use crate::common::*;

#[test]
fn runs_a_script_with_argv_and_shebang() {
    let script = write_script("#!/usr/bin/env rhai-mp\nprint(ARGV);\nprint(__name__);\n");
    let out = run(&[script.0.to_str().unwrap(), "a", "--b", "-c"]);
    assert_eq!(out.ok(), "[\"a\", \"--b\", \"-c\"]\n__main__\n");
}

#[test]
fn eval_code_with_argv() {
    let out = run(&["-e", "print(ARGV.len()); print(40 + 2)", "x", "y"]);
    assert_eq!(out.ok(), "2\n42\n");
}

#[test]
fn help_and_version() {
    let out = run(&["--help"]);
    assert!(out.ok().contains("Usage: rhai-mp"), "{}", out.stdout);
    assert!(out.stdout.contains("--start-method"));
    let out = run(&["--version"]);
    assert!(out.ok().starts_with("rhai-mp "), "{}", out.stdout);
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&["--start-method", "thread", "-e", "1"]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("thread"), "{}", out.stderr);
    let out = run(&["--no-such-flag"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = run(&["/no/such/script.rhai"]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("can't open file '/no/such/script.rhai'"), "{}", out.stderr);
}

#[test]
fn uncaught_error_report_and_exit_code() {
    let script = write_script("let x = 1;\nfn f(m) {\n    let a = [1, 2];\n    a[m]\n}\nf(5);\n");
    let out = run(&[script.0.to_str().unwrap()]);
    assert_eq!(out.code, Some(1));
    let path = script.0.to_str().unwrap();
    let err = &out.stderr;
    assert!(err.starts_with("IndexError: Array index 5 out of bounds: only 2 elements in array\n"), "{err}");
    assert!(err.contains(&format!("--> {path}:4:7")), "{err}");
    assert!(err.contains("4 |     a[m]\n  |       ^"), "{err}");
    assert!(err.contains("in 'f'"), "{err}");
}

#[test]
fn typed_errors_report_their_type() {
    let out = run(&["-e", "Process(#{bad: 1})"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.starts_with("ValueError: Process() got an unknown option 'bad'"), "{}", out.stderr);
    assert!(out.stderr.contains("--> <-e>:1:1"), "{}", out.stderr);
    let out = run(&["-e", "let x = ;"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.starts_with("SyntaxError: "), "{}", out.stderr);
    let out = run(&["-e", "throw \"plain\""]);
    assert!(out.stderr.starts_with("RuntimeError: plain"), "{}", out.stderr);
}

#[test]
fn exit_sets_the_exit_code() {
    assert_eq!(run(&["-e", "exit(3); print(1)"]).code, Some(3));
    assert_eq!(run(&["-e", "exit()"]).code, Some(0));
    assert_eq!(run(&["-e", "exit(256 + 4)"]).code, Some(4));
}

#[test]
fn helpers_exist() {
    let out = run(&[
        "-e",
        r#"
print(os::getpid() > 0 && os::getppid() > 0);
let t = time::time(); let p = time::perf_counter();
time::sleep(0); time::sleep(0.01);
print(time::time() >= t && time::perf_counter() > p);
print(type_of(rand()));
print(parse_json("{\"a\": [1]}").a[0]);
let dir = path(ARGV[0]);
print(dir.is_dir);
"#,
        std::env::temp_dir().to_str().unwrap(),
    ]);
    assert_eq!(out.ok(), "true\ntrue\ni64\n1\ntrue\n");
}
