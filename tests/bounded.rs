//! Bounded work: per-task timeouts (cooperative stops and kills), cancel, `max_memory`,
//! and the values built at once that throw `MemoryError` — under each start method, from
//! the REPL and from a host. Every wait is bounded; no assertion looks at the clock.

use crate::common::*;

per_method!(
    stuck_tasks_time_out_and_the_pool_goes_on,
    chunk_siblings_complete_after_a_timeout,
    timeouts_race_completion_without_doubles_or_losses,
    cancel_before_while_and_after,
    max_memory_fails_the_task_and_the_pool_goes_on,
    one_timer_serves_items_with_other_deadlines,
);

const HEADER: &str = r#"
fn spin(x) { if x == 2 { loop {} } x }
fn nap(x) { if x == 2 { time::sleep(1e9) } x }
fn qget(q) { q.get() }
"#;

fn script(body: &str) -> String {
    format!("{HEADER}\nif __name__ == \"__main__\" {{\n{body}\n}}\n")
}

fn stuck_tasks_time_out_and_the_pool_goes_on(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(#{processes: 2});
    let q = Queue();
    for f in [|| loop {}, || time::sleep(1e9), || qget(q)] {
        try { p.apply(f, [], #{timeout: 0.2}); print("no") } catch (e) { print(`${e.type} ${e.task} ${e.timeout} ${e.pid > 0}`) }
    }
    try { p.apply_async(|| loop {}, [], #{timeout: 0.2}).get() } catch (e) { print(e.type) }
    let pp = Pool(#{processes: 1, task_timeout: 0.2});
    try { pp.map(spin, [2]) } catch (e) { print(`pool ${e.type}`) }
    print(pp.map(spin, [0, 1]));
    print(p.map(|x| x + 1, [1, 2, 3]));
    "#,
        ),
        m,
    );
    assert_eq!(
        out.ok(),
        "TimeoutError 0 0.2 true\nTimeoutError 0 0.2 true\nTimeoutError 0 0.2 true\nTimeoutError\npool TimeoutError\n[0, 1]\n[2, 3, 4]\n",
        "{}",
        out.stderr
    );
}

fn chunk_siblings_complete_after_a_timeout(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(2);
    for f in [spin, nap] {
        let it = p.imap(f, 0..6, #{chunksize: 3, timeout: 0.2});
        let out = [];
        loop { try { out.push(it.next()) } catch (e) { if e.type == "StopIteration" { break } out.push(e.type) } }
        print(out);
        let r = p.map_async(f, 0..6, #{chunksize: 6, timeout: 0.2});
        try { r.get() } catch (e) { print(`${e.type} ${e.task}`) }
    }
    "#,
        ),
        m,
    );
    let want = "[0, 1, \"TimeoutError\", 3, 4, 5]\nTimeoutError 2\n";
    assert_eq!(out.ok(), format!("{want}{want}"), "{}", out.stderr);
}

fn timeouts_race_completion_without_doubles_or_losses(m: &str) {
    // Tasks that finish right around their deadline: each gets exactly one outcome.
    let out = run_script(
        &script(
            r#"
    let p = Pool(2);
    let ok = 0; let late = 0;
    for round in 0..4 {
        let got = [];
        let it = p.imap(|x| { let t = time::perf_counter(); while time::perf_counter() - t < 0.002 * (x % 5) {} x }, 0..40, #{timeout: 0.004});
        loop {
            try { got.push(it.next()); ok += 1 } catch (e) { if e.type == "StopIteration" { break } if e.type != "TimeoutError" { throw e } late += 1; got.push(-1) }
        }
        if got.len() != 40 { throw `round ${round}: ${got.len()} results` }
        for i in 0..40 { if got[i] != -1 && got[i] != i { throw `round ${round}: item ${i} is ${got[i]}` } }
    }
    print(ok + late);
    print(p.map(|x| x, 0..10));
    "#,
        ),
        m,
    );
    assert_eq!(out.ok(), "160\n[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n", "{}", out.stderr);
}

fn cancel_before_while_and_after(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(1);
    let q = Queue();
    let busy = p.apply_async(|| time::sleep(1e9));
    let never = p.apply_async(|q| q.put("ran"), [q]);
    print(never.cancel());                  // before it starts
    time::sleep(0.1);
    print(busy.cancel());                   // while it runs (a sleep: stops at once)
    try { busy.get() } catch (e) { print(e.type) }
    print(`${busy.cancelled()} ${never.cancelled()}`);
    let done = p.apply_async(|| 5);
    print(done.get());
    print(done.cancel());                   // after it finished
    try { print(q.get(true, 0.3)) } catch (e) { print(e.type) }   // the cancelled task never ran
    let it = p.imap(|x| if x == 1 { loop {} } else { x }, 0..5);
    print(it.next());
    print(it.cancel());
    try { it.next() } catch (e) { print(e.type) }
    try { it.next() } catch (e) { print(e.type) }
    print(p.apply(|| 9));
    "#,
        ),
        m,
    );
    assert_eq!(
        out.ok(),
        "true\ntrue\nCancelledError\ntrue true\n5\nfalse\nEmpty\n0\ntrue\nCancelledError\nStopIteration\n9\n",
        "{}",
        out.stderr
    );
}

/// A worker sets its timer lazily (no system call per timed item): an expiry left from an
/// earlier item stops no later item before its own deadline, an item whose deadline is
/// earlier than the pending expiry still stops at it, and an item without a timeout is
/// never stopped by one.
fn one_timer_serves_items_with_other_deadlines(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(1);
    print(p.apply(|| 1, [], #{timeout: 0.1}));
    print(p.apply(|| { time::sleep(0.3); 2 }));
    print(p.apply(|| 3, [], #{timeout: 0.05}));
    try { p.apply(|| loop {}, [], #{timeout: 0.3}) } catch (e) { print(`${e.type} ${e.timeout}`) }
    print(p.apply(|| 4, [], #{timeout: 60}));
    try { p.apply(|| time::sleep(1e9), [], #{timeout: 0.1}) } catch (e) { print(`${e.type} ${e.timeout}`) }
    print(p.map(|x| { time::sleep(0.1); x }, 0..8, #{chunksize: 1, timeout: 0.35}));
    try { p.apply(|| loop {}, [], #{timeout: 0.2}) } catch (e) { print(`${e.type} ${e.timeout}`) }
    "#,
        ),
        m,
    );
    assert_eq!(
        out.ok(),
        "1\n2\n3\nTimeoutError 0.3\n4\nTimeoutError 0.1\n[0, 1, 2, 3, 4, 5, 6, 7]\nTimeoutError 0.2\n",
        "{}",
        out.stderr
    );
}

fn max_memory_fails_the_task_and_the_pool_goes_on(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(#{processes: 1, max_memory: 300 * 1024 * 1024});
    try { p.apply(|| { let a = []; loop { a.push("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx") } }) } catch (e) { print(`${e.type} ${e.task} ${e.pid > 0}`) }
    try { p.apply(|| blob(400 * 1024 * 1024).len()) } catch (e) { print(e.type) }
    print(p.map(|x| blob(x).len(), [10, 20]));
    "#,
        ),
        m,
    );
    assert_eq!(out.ok(), "MemoryError 0 true\nMemoryError\n[10, 20]\n", "{}", out.stderr);
}

#[test]
fn values_built_at_once_throw_memory_error() {
    let out = run(&[
        "-e",
        r#"let s = ""; try { s.pad(1 << 40, "x") } catch (e) { print(e.type) }
           try { s.pad(1 << 40, 'x') } catch (e) { print(e.type) }
           try { blob(1 << 45) } catch (e) { print(e.type) }
           try { blob(1 << 45, 1) } catch (e) { print(e.type) }
           try { [].pad(1 << 40, 0) } catch (e) { print(e.type) }
           let t = "ab"; t.pad(5, "xy"); print(t); print(blob(3, 65).len());"#,
    ]);
    assert_eq!(
        out.ok(),
        "MemoryError\nMemoryError\nMemoryError\nMemoryError\nMemoryError\nabxyx\n3\n",
        "{}",
        out.stderr
    );
}

#[test]
fn the_repl_times_out_and_cancels() {
    let out = run_program(
        &bin(),
        &["--start-method", "spawn"],
        Some("let p = Pool(1);\nfn f(x) { loop {} }\ntry { p.apply(f, [1], #{timeout: 0.2}) } catch (e) { print(e.type) }\nlet ex = ProcessPoolExecutor(1);\nlet fu = ex.submit(|| time::sleep(1e9));\nfu.cancel()\nex.submit(|x| x + 1, [41]).result()\n"),
    );
    assert!(out.stdout.contains("TimeoutError") && out.stdout.contains("true") && out.stdout.contains("42"), "{out:?}");
}

#[test]
fn the_host_example_bounds_tasks_and_stops_evals() {
    for m in METHODS {
        let host = bin().parent().unwrap().join("examples").join("time_limits");
        let out = run_program(&host, &[m], None);
        assert_eq!(
            out.ok(),
            "results: [0, 10, 20, \"TimeoutError\", 40, \"TimeoutError\", 60, 70]\ntask 0: 0\ntask 1: 10\ntask 2: 20\ntask 3: TimeoutError\ntask 4: 40\ntask 5: TimeoutError\ntask 6: 60\ntask 7: 70\nloop {}: CancelledError\nafter the stop: 42\n",
            "{m}: {}",
            out.stderr
        );
    }
}

/// Seeded chaos: workers are killed at random moments while timed tasks run; every item
/// ends with exactly one outcome (its value, TimeoutError or WorkerLostError), and the
/// pool goes on.
#[test]
fn chaos_kills_workers_while_timed_tasks_run() {
    let seed: u64 = std::env::var("RHAI_MP_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(22);
    for m in METHODS {
        let out = run_script_args(
            r#"
fn work(x) { if x % 7 == 3 { loop {} } let t = time::perf_counter(); while time::perf_counter() - t < 0.003 {} x }
fn killer(pids, seed, n) {
    let s = seed;
    for i in 0..n {
        s = (s * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff;
        time::sleep(0.01 + (s % 20) / 1000.0);
        let pid = pids.get((s / 7) % pids.len());
        try { os::kill(pid, "SIGKILL") } catch (e) {}
    }
}
if __name__ == "__main__" {
    let seed = parse_int(ARGV[0]);
    let p = Pool(#{processes: 2, task_timeout: 0.1});
    let bad = 0;
    for round in 0..3 {
        let pids = p.map(|x| os::getpid(), 0..8, 1);
        let k = Process(killer, [pids, seed + round, 5]); k.start();
        let got = [];
        let it = p.imap(work, 0..30, 3);
        loop {
            try { got.push(it.next()) } catch (e) {
                if e.type == "StopIteration" { break }
                if e.type != "TimeoutError" && e.type != "WorkerLostError" { throw e }
                got.push(e.type);
            }
        }
        k.join();
        if got.len() != 30 { throw `round ${round}: ${got.len()} outcomes` }
        for i in 0..30 { if type_of(got[i]) == "i64" && got[i] != i { bad += 1 } }
    }
    print(`bad ${bad}`);
    print(p.map(|x| x * 2, [1, 2]));
}
"#,
            m,
            &[&seed.to_string()],
        );
        assert_eq!(out.ok(), "bad 0\n[2, 4]\n", "{m} seed {seed}: {}", out.stderr);
    }
}
