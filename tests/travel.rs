//! Code travels with the call (the REPL drives it through piped standard input, under each
//! start method), Ctrl-C at the REPL and in scripts, the `__main__` guard for Pool and
//! Manager, and the REPL's comforts. Every wait is bounded; nothing looks at the clock.

use crate::common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

per_method!(
    functions_typed_after_a_pool_started_run_in_its_workers,
    redefined_functions_run_their_new_body,
    closures_over_closures_and_closures_sent_back,
    initializers_targets_and_barrier_actions_from_the_repl,
    a_function_that_exists_nowhere_is_a_clear_error,
);

fn repl(input: &str, method: &str) -> Out {
    run_program(&bin(), &["--start-method", method], Some(input))
}

fn functions_typed_after_a_pool_started_run_in_its_workers(m: &str) {
    let out = repl(
        "fn sq(x) { x * x }\nlet p = Pool(2);\nprint(p.map(sq, 0..4));\nfn cube(x) { x * x * x }\nprint(p.map(cube, 0..4));\nlet k = 3;\nprint(p.map(|x| x + k, [1, 2]));\nfn helper(x) { cube(x) + 1 }\nprint(p.map(|x| helper(x) + k, [2]));\nprint(p.apply(Fn(\"cube\"), [3]));\np.terminate();\n",
        m,
    );
    assert_eq!(out.ok(), "[0, 1, 4, 9]\n[0, 1, 8, 27]\n[4, 5]\n[12]\n27\n", "{m}: {}", out.stderr);
}

fn redefined_functions_run_their_new_body(m: &str) {
    let out = repl(
        "fn sq(x) { x * x }\nlet p = Pool(1);\nprint(p.map(sq, [3]));\nfn sq(x) { x + 1000 }\nprint(p.map(sq, [3]));\nfn twice(x) { sq(x) * 2 }\nprint(p.apply(twice, [1]));\nfn sq(x) { -x }\nprint(p.apply(twice, [1]));\nlet r = Process(|| print(`child ${sq(5)}`)); r.start(); r.join();\np.terminate();\n",
        m,
    );
    assert_eq!(out.ok(), "[9]\n[1003]\n2002\n-2\nchild -5\n", "{m}: {}", out.stderr);
}

fn closures_over_closures_and_closures_sent_back(m: &str) {
    let out = repl(
        "let p = Pool(2);\nlet f = |x| x * 2;\nlet g = |x| f.call(x) + 1;\nprint(p.map(g, [5, 6]));\nfn cube(x) { x * x * x }\nlet q = Queue();\nlet c = Process(|q| q.put(|x| cube(x) + 1), [q]); c.start(); c.join();\nlet h = q.get();\nprint(h.call(2));\nprint(p.map(h, [3]));\nlet back = p.apply(|| |y| cube(y) - 1);\nprint(back.call(2));\np.terminate();\n",
        m,
    );
    assert_eq!(out.ok(), "[11, 13]\n9\n[28]\n7\n", "{m}: {}", out.stderr);
}

fn initializers_targets_and_barrier_actions_from_the_repl(m: &str) {
    let out = repl(
        "let v = Value(\"i\", 0);\nfn bump(v, n) { hold(v.get_lock(), || v.value += n) }\nlet p = Pool(#{processes: 2, initializer: bump, initargs: [v, 10]});\nfn id(x) { x }\nlet r = p.map(id, 0..4, 1);\np.close(); p.join();\nprint(v.value);\nlet b = Barrier(2, #{action: || bump(v, 1)});\nlet w = Process(|b| b.wait(), [b]); w.start(); b.wait(); w.join();\nprint(v.value);\nlet c = Condition();\nlet t = Process(|c, v| hold(c, || c.wait_for(|| v.value > 100, 10)), [c, v]); t.start();\nhold(c, || { v.value = 101; c.notify_all(); });\nt.join();\nprint(t.exitcode);\n",
        m,
    );
    assert_eq!(out.ok(), "20\n21\n0\n", "{m}: {}", out.stderr);
}

fn a_function_that_exists_nowhere_is_a_clear_error(m: &str) {
    let out = repl(
        "let p = Pool(1);\ntry { p.apply(Fn(\"nowhere\"), [1]) } catch (e) { print(`${e.type} ${e.process}`) }\nlet c = Process(Fn(\"nowhere\")); c.start(); c.join();\nprint(c.exitcode);\np.terminate();\n",
        m,
    );
    let s = out.ok();
    assert!(s.contains("NameError ") && s.contains("PoolWorker-1"), "{m}: {s}\n{}", out.stderr);
    assert!(s.ends_with("1\n"), "{m}: {s}");
    assert!(out.stderr.contains("NameError: Function not found: nowhere"), "{m}: {}", out.stderr);
    assert!(out.stderr.contains("Process Process-"), "{m}: {}", out.stderr);
}

/// A REPL whose standard input stays open: lines are written as the test goes, and its
/// output read line by line.
struct Session {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Session {
    fn start(method: &str) -> Session {
        let mut cmd = Command::new(bin());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.args(["--start-method", method]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.env("RHAI_MP_HISTORY", std::env::temp_dir().join("rhai-mp-test-history"));
        let mut child = cmd.spawn().expect("cannot run rhai-mp");
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            // Drained so that the REPL never blocks on a full stderr pipe.
            for _ in BufReader::new(stderr).lines().map_while(Result::ok) {}
        });
        Session { child, stdin, lines }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    #[track_caller]
    fn expect(&mut self, want: &str) {
        match self.lines.recv_timeout(LIMIT) {
            Ok(l) => assert_eq!(l, want),
            Err(_) => {
                self.kill();
                panic!("the REPL printed nothing within {LIMIT:?} (expected {want:?})");
            }
        }
    }

    fn interrupt(&self) {
        // As a terminal's Ctrl-C: SIGINT to the whole foreground group.
        // SAFETY: kill(2) with a negative pid signals the REPL's own process group.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGINT) };
    }

    fn kill(&mut self) {
        // SAFETY: as above, SIGKILL to the REPL's group.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }

    #[track_caller]
    fn quit(mut self) -> Option<i32> {
        self.send(":quit");
        match crate::common::wait_bounded(&mut self.child, LIMIT) {
            Some(s) => s.code(),
            None => panic!("the REPL did not quit"),
        }
    }
}

/// Ctrl-C during any blocking call or a long loop ends that statement with
/// `KeyboardInterrupt`; the session keeps its variables, functions and objects.
#[test]
fn ctrl_c_at_the_repl_interrupts_anything_and_keeps_the_session() {
    for m in METHODS {
        let mut s = Session::start(m);
        s.send("let kept = 41; fn f(x) { x + 1 }; let q = Queue(); let ends = Pipe(); let lock = Lock(); lock.acquire(); let ev = Event(); let mgr = Manager(); let d = mgr.dict();");
        let blocking = [
            "q.get()",
            "ends[0].recv()",
            "lock.acquire()",
            "ev.wait()",
            "time::sleep(30)",
            "{ let p = Process(|| time::sleep(30)); p.start(); p.join() }",
            "Pool(1).apply(|| time::sleep(30))",
        ];
        for (i, statement) in blocking.iter().enumerate() {
            s.send(&format!("print(\"waiting {i}\"); try {{ {statement} }} catch (e) {{ print(e.type) }}"));
            s.expect(&format!("waiting {i}"));
            // Let the statement reach its wait (a signal before it is noted as well).
            std::thread::sleep(Duration::from_millis(300));
            s.interrupt();
            s.expect("KeyboardInterrupt");
        }
        // A long loop is stopped by the interpreter: the statement ends (no `catch` sees it).
        s.send("print(\"looping\"); let n = 0; while true { n += 1 }");
        s.expect("looping");
        std::thread::sleep(Duration::from_millis(300));
        s.interrupt();
        s.send("print(\"after the loop\")");
        s.expect("after the loop");
        s.send("print(f(kept)); q.put(1); print(q.get()); d[\"a\"] = 2; print(d[\"a\"]);");
        s.expect("42");
        s.expect("1");
        s.expect("2");
        assert_eq!(s.quit(), Some(0), "{m}");
    }
}

/// Ctrl-C in a script ends it with exit code 130 and a `KeyboardInterrupt` report.
#[test]
fn ctrl_c_ends_a_script_with_130() {
    for m in METHODS {
        let mut run = start_script("print(\"ready\"); let n = 0; while true { n += 1 }", m);
        assert_eq!(run.line(), "ready");
        std::thread::sleep(Duration::from_millis(200));
        run.signal_group(libc::SIGINT);
        let (code, err) = run.wait();
        assert_eq!(code, Some(130), "{m}: {err}");
        assert!(err.contains("KeyboardInterrupt"), "{m}: {err}");
    }
}

/// Without the `__main__` guard, a Pool or a Manager made under spawn or forkserver stops
/// the script at once, with one RuntimeError that explains the guard.
#[test]
fn pool_and_manager_without_the_guard_stop_with_one_error() {
    for m in ["spawn", "forkserver"] {
        for src in [
            "fn sq(x) { x * x }\nlet p = Pool(2);\nprint(p.map(sq, 0..4));\n",
            "let m = Manager();\nprint(m.dict());\n",
        ] {
            let out = run_script(src, m);
            assert_eq!(out.code, Some(1), "{m}: {src}\n{}", out.stderr);
            assert_eq!(out.stderr.matches("RuntimeError").count(), 1, "{m}: {src}\n{}", out.stderr);
            assert!(out.stderr.contains("if __name__ == \"__main__\""), "{m}: {}", out.stderr);
        }
    }
}

/// An incomplete statement continues on the next line; handles print as `to_debug` shows
/// them; a worker's error quotes its line; `rhai-mp -` reads a script from stdin.
#[test]
fn repl_comforts() {
    let out = repl(
        "let x =\n  5 + 1;\nx\nlet p = Pool(1);\np\nlet q = Queue();\nq\nfn bad(v) {\n  let y = v;\n  y + missing_thing\n}\ntry { p.apply(bad, [1]) } catch (e) { print(e.type) }\np.apply(bad, [1])\np.terminate();\n",
        "spawn",
    );
    let s = out.ok();
    assert!(s.starts_with("6\n<Pool state=RUN pool_size=1>\n<Queue qsize=0 maxsize=0>\nNameError\n"), "{s}");
    assert!(out.stderr.contains("y + missing_thing"), "{}", out.stderr);
    assert!(out.stderr.contains("SpawnPoolWorker-1"), "{}", out.stderr);
    let out = run_program(&bin(), &["-", "a"], Some("print(`stdin ${ARGV}`)\n"));
    assert_eq!(out.ok(), "stdin [\"a\"]\n");
}
