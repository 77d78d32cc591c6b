//! The embedding seam: a host binary (runtime/examples/host.rs) registers its own native
//! function and type; they work inside spawn, fork and forkserver children.

use crate::common::*;
use std::path::PathBuf;

/// The example binary, built next to this test binary by `cargo test`.
fn host() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let host = dir.join("examples").join("host");
    assert!(host.exists(), "{} not built (cargo test builds examples)", host.display());
    host
}

#[test]
fn host_functions_and_types_work_in_children() {
    let script = write_script(
        r#"
fn work(p) { print(`${current_process().name}: ${host_double(21)} ${p.x + p.y} (${host_args()})`); }
if __name__ == "__main__" {
    let p = Process(work, [point(1, 2)]);
    p.start();
    p.join();
    print(`exit ${p.exitcode}`);
    try { Process(work, [secret()]).start(); } catch (e) { print(`${e.type}: ${e.message}`); }
}
"#,
    );
    for m in METHODS {
        let out = run_program(&host(), &["--start-method", m, script.0.to_str().unwrap()], None);
        let s = out.ok();
        let args = format!("--start-method {m} {}", script.0.to_str().unwrap());
        assert!(s.contains(&format!("Process-1: 42 3 ({args})")), "{m}: {s}\n{}", out.stderr);
        assert!(s.contains("exit 0"), "{m}: {s}");
        assert!(
            s.contains("SerializationError: a value of type 'Secret' cannot be sent to another process (at args[0])"),
            "{m}: {s}"
        );
    }
}

/// An example program of the runtime crate, built next to this test binary.
fn example(name: &str) -> PathBuf {
    host().with_file_name(name)
}

/// The embedding API as a host uses it (runtime/examples/embed_check.rs), under each start
/// method: values back, the session, a closure over a session variable, a pool driven from
/// Rust with script and native functions, typed errors from workers and bad input.
#[test]
fn the_embedding_api_under_every_method() {
    for m in METHODS {
        let out = run_program(&example("embed_check"), &[m], None);
        assert_eq!(
            out.ok(),
            "eval 13\nclosure [104, 107]\npool [1, 4, 7, 10]\nnative [0, 3, 6, 9]\n\
             worker error ValueError too big: 5 true\nmissing NameError\nthrown ValueError nope\n\
             wrong type TypeError eval() gave a value of type i64, not the string asked for\nname NameError true\n\
             session 100\n",
            "{m}: {}",
            out.stderr
        );
    }
}

/// A host that maps its own data through a pool and collects typed results.
#[test]
fn a_host_maps_its_data_through_a_pool() {
    for m in METHODS {
        let out = run_program(&example("host_pool"), &[m], None);
        assert!(out.ok().ends_with("total 688\n"), "{m}: {}\n{}", out.stdout, out.stderr);
    }
}

/// A host that forgot `run_if_child()`: the first start throws `ProcessError` naming it,
/// and no child ran the host's `main` again (it would print "started" or start more).
#[test]
fn a_host_that_forgot_run_if_child_is_told_so() {
    let out = run_program(&example("forgetful"), &[], None);
    let s = out.ok();
    assert!(s.starts_with("ProcessError: ") && s.contains("run_if_child()"), "{s}\n{}", out.stderr);
    assert!(s.ends_with("pool ProcessError\n"), "{s}");
    assert!(!s.contains("child ran") && s.matches("ProcessError").count() == 2, "{s}");
    // Its main exits with its own code before the call (a usage error): the same advice,
    // and the exit code in words.
    let out = run_program(&example("forgetful"), &["exits-early"], None);
    let s = out.ok();
    assert!(
        s.starts_with("ProcessError: the new process ended with exit code 3 before it read what to do")
            && s.contains("run_if_child()"),
        "{s}\n{}",
        out.stderr
    );
}
