//! Every example in `scripts/` runs to completion under every start method (the soak
//! test, `scripts/soak.rhai`, aside).

use crate::common::*;

#[test]
fn examples_run_under_every_start_method() {
    let dir = root().join("scripts");
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        // The soak test runs for minutes: it is for local runs, not CI.
        .filter(|p| !p.ends_with("soak.rhai"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty());
    for script in &scripts {
        for m in METHODS {
            let out = run(&["--start-method", m, script.to_str().unwrap()]);
            assert_eq!(
                out.code,
                Some(0),
                "{} under {m}\n--- stdout\n{}\n--- stderr\n{}",
                script.display(),
                out.stdout,
                out.stderr
            );
        }
    }
}
