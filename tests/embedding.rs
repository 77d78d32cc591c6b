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
fn work(p) { print(`${current_process().name}: ${host_double(21)} ${p.x + p.y}`); }
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
        assert!(s.contains("Process-1: 42 3"), "{m}: {s}\n{}", out.stderr);
        assert!(s.contains("exit 0"), "{m}: {s}");
        assert!(
            s.contains("SerializationError: a value of type 'Secret' cannot be sent to another process (at args[0])"),
            "{m}: {s}"
        );
    }
}
