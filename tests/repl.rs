//! The REPL, driven through a pipe.

use crate::common::*;

fn repl(input: &str, method: &str) -> Out {
    run_program(&bin(), &["--start-method", method], Some(input))
}

#[test]
fn processes_started_from_the_repl_call_repl_functions() {
    for m in METHODS {
        let out = repl(
            "fn square(x) {\n  print(`square ${x * x}`)\n}\nlet k = 3;\nlet add = |x| print(`add ${x + k}`);\nlet p = Process(square, [7]); p.start(); p.join();\nlet q = Process(add, [4]); q.start(); q.join();\nfn later() { print(\"defined later\") }\nlet r = Process(later); r.start(); r.join();\n",
            m,
        );
        let s = out.ok();
        assert!(s.contains("square 49"), "{m}: {s}\n{}", out.stderr);
        assert!(s.contains("add 7"), "{m}: {s}\n{}", out.stderr);
        assert!(s.contains("defined later"), "{m}: {s}\n{}", out.stderr);
    }
}

#[test]
fn results_help_errors_and_quit() {
    let out = repl(":help\n1 + 2\nlet s = \"x\";\ns\nlet a = [1,\n 2];\na.len()\nthrow \"oops\"\nprint(\"still here\")\n:quit\nprint(\"not reached\")\n", "spawn");
    let s = out.ok();
    assert!(s.contains(":quit"), "{s}");
    assert!(s.contains("3\n"), "{s}");
    assert!(s.contains("\"x\"\n"), "{s}");
    assert!(s.contains("2\n"), "{s}");
    assert!(s.contains("still here"), "{s}");
    assert!(!s.contains("not reached"), "{s}");
    assert!(out.stderr.contains("RuntimeError: oops"), "{}", out.stderr);
}

#[test]
fn exit_in_the_repl_sets_the_code() {
    let out = repl("exit(5)\n", "spawn");
    assert_eq!(out.code, Some(5));
}

#[test]
fn help_points_at_the_reference_and_lists_topics() {
    let out = repl(":help\n:help Pool\n:help Queue\n:help get\n:help nosuchthing\n", "spawn");
    let s = out.ok();
    assert!(s.contains("stdlib/REFERENCE.md"), "{s}");
    assert!(s.contains("pool.map(f, iterable)"), ":help Pool lists map: {s}");
    assert!(s.contains("q.put(item, block, timeout)"), ":help Queue lists put: {s}");
    assert!(s.contains("r.get(timeout)") && s.contains("proxy.get(key)"), ":help get: {s}");
    assert!(s.contains("no entry for 'nosuchthing'"), "{s}");
}
