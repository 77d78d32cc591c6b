//! Pool: every method and option, results order, chunks, callbacks, errors thrown by tasks,
//! workers that die, terminate and scope, Ctrl-C — under each start method.

use crate::common::*;
use std::time::Duration;

per_method!(
    every_method_gives_the_right_results,
    imap_streams_lazily_in_either_order,
    callbacks_run_in_the_parent,
    task_errors_reach_the_caller,
    uncaught_task_error_names_the_worker,
    argument_and_option_errors,
    closed_and_terminated_pools,
    maxtasksperchild_and_chunksize,
    initializer_runs_once_per_worker,
    a_failing_initializer_breaks_the_pool,
    a_killed_worker_fails_only_its_task,
    a_worker_that_exits_fails_its_task,
    killing_an_idle_worker_does_not_hang_the_queue,
    handles_work_in_tasks,
    terminate_and_scope_leave_no_processes,
    progress_is_silent_without_a_terminal,
);

const HEADER: &str = r#"
fn sq(x) { x * x }
fn add(a, b) { a + b }
fn pid(x) { os::getpid() }
fn slow(x) { time::sleep(30); x }
fn sorted(xs) { let ys = xs; ys.sort(); ys }
fn bad_name(x) { x + undefined_thing }
fn gone(pids) { let n = 0; for pid in pids { try { os::kill(pid, 0) } catch (e) { n += 1 } } n }
fn worker_pids(p) { let ps = []; for x in p.map(pid, 0..40, 1) { if !ps.contains(x) { ps.push(x) } } ps }
fn distinct(xs) { let d = []; for x in xs { if !d.contains(x) { d.push(x) } } d.len() }
"#;

fn script(body: &str) -> String {
    format!("{HEADER}\nif __name__ == \"__main__\" {{\n{body}\n}}\n")
}

fn every_method_gives_the_right_results(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(2);
    print(p.map(sq, 0..10));
    print(p.map(sq, [3, 1, 2], 1));
    print(p.map(|x| x + "!", "ab"));
    print(p.map(sq, 0..=3));
    print(p.map(sq, []));
    print(p.apply(add, [1, 2]));
    print(p.apply(|| 7));
    print(p.apply_async(add, [20, 22]).get());
    print(p.apply_async(|| 5).get(10));
    print(p.starmap(add, [[1, 2], [3, 4]]));
    print(p.starmap(add, [[1, 2], [3, 4], [5, 6]], 2));
    print(p.starmap_async(add, [[5, 5]]).get());
    print(p.starmap_async(add, [[1, 1], [2, 2]], 1).get());
    print(p.map_async(sq, [4, 5]).get());
    print(p.map_async(sq, [6, 7], 1).get());
    let r = p.map_async(sq, [8]);
    r.wait();
    print(`${r.ready()} ${r.successful()}`);
    r.wait(1);
    print(p.map(sq, 0..1000).len());
    let big = p.map(sq, 0..5000, 7);
    print(big[4999] == 4999 * 4999);
    let k = 10;
    print(p.map(|x| x + k, [1, 2]));
    print(p);
    p.close();
    p.join();
    print(p);
    let c = get_context("fork").Pool(1);
    print(c.apply(sq, [9]));
    c.terminate();
    let c = get_context(m()).Pool(#{processes: 1});
    print(c.apply(sq, [3]));
    c.terminate();
"#,
        )
        .replace("m()", &format!("\"{m}\"")),
        m,
    );
    assert_eq!(
        out.ok(),
        "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n[9, 1, 4]\n[\"a!\", \"b!\"]\n[0, 1, 4, 9]\n[]\n3\n7\n42\n5\n[3, 7]\n[3, 7, 11]\n[10]\n[2, 4]\n[16, 25]\n[36, 49]\ntrue true\n1000\ntrue\n[11, 12]\n<Pool state=RUN pool_size=2>\n<Pool state=CLOSE pool_size=2>\n81\n9\n"
    );
}

fn imap_streams_lazily_in_either_order(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(2);
    let a = []; for x in p.imap(sq, 0..20) { a.push(x) }
    let b = []; for x in p.imap_unordered(sq, 0..20) { b.push(x) }
    let c = []; for x in p.imap(sq, 0..20, 3) { c.push(x) }
    let d = []; for x in p.imap_unordered(sq, 0..20, 6) { d.push(x) }
    print(a == p.map(sq, 0..20));
    print(`${sorted(b) == a} ${c == a} ${sorted(d) == a}`);
    // A huge input is not materialized: take a few and stop.
    let it = p.imap(sq, 0..1000000000000);
    print([it.next(), it.next(), it.next()]);
    let it = p.imap(sq, [2, 3]);
    print(it.next());
    print(it.next(10));
    try { it.next() } catch (e) { print(e.type) }
    try { it.next(0.5) } catch (e) { print(e.type) }
    // An abandoned imap stops sending its input.
    let count = Value("i", 0);
    for x in p.imap(|x| { hold(count.get_lock(), || count.value += 1); x }, 0..1000000) { if x == 10 { break } }
    for i in 0..20 { p.apply(sq, [i]); }
    print(count.value < 200);
    let it = p.imap(slow, [1]);
    try { it.next(0.2) } catch (e) { print(e.type) }
    print(it);
    p.terminate();
"#,
        ),
        m,
    );
    assert_eq!(
        out.ok(),
        "true\ntrue true true\n[0, 1, 4]\n4\n9\nStopIteration\nStopIteration\ntrue\nTimeoutError\n<imap iterator>\n"
    );
}

fn callbacks_run_in_the_parent(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(2);
    let me = os::getpid();
    let r = p.apply_async(sq, [3], #{callback: |v| print(`callback ${v} in parent: ${os::getpid() == me}`)});
    print(`get ${r.get()}`);
    let r = p.apply_async(|| throw "bad", [], #{error_callback: |e| print(`error_callback ${e}`)});
    r.wait();
    print(`successful ${r.successful()}`);
    p.map_async(sq, [1, 2], #{callback: |v| print(`map callback ${v}`)}).wait();
    p.starmap_async(add, [[1, 2]], #{chunksize: 1, callback: |v| print(`starmap callback ${v}`)}).get();
    p.map_async(|x| if x == 1 { throw #{type: "ValueError", message: "one"} } else { x }, [0, 1, 2],
        #{chunksize: 1, error_callback: |e| print(`map error_callback ${e.type}`)}).wait();
    // Callbacks are due by the next call on the pool (join here).
    let r = p.apply_async(sq, [4], #{callback: |v| print(`late callback ${v}`)});
    p.close();
    p.join();
    print(r.get());
"#,
        ),
        m,
    );
    assert_eq!(
        out.ok(),
        "callback 9 in parent: true\nget 9\nerror_callback bad\nsuccessful false\nmap callback [1, 4]\nstarmap callback [3]\nmap error_callback ValueError\nlate callback 16\n16\n"
    );
}

fn task_errors_reach_the_caller(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(2);
    try { p.apply(|| throw "plain") } catch (e) { print(`thrown: ${e}`) }
    try { p.apply(|| throw #{type: "KeyError", message: "k", extra: 1}) } catch (e) { print(`map: ${e.type} ${e.message} ${e.extra}`) }
    try { p.map(|x| if x == 5 { throw `item ${x}` } else { x }, 0..10, 2) } catch (e) { print(`map: ${e}`) }
    try { p.apply(|| [1][5]) } catch (e) { print(`runtime: ${e.type} ${e.process.starts_with("")} ${type_of(e.pid)} ${e.line}`) }
    try { p.apply(bad_name, [1]) } catch (e) { print(`runtime: ${e.type} ${e.message}`) }
    let r = p.apply_async(|| throw 42);
    try { r.get() } catch (e) { print(`get: ${e}`) }
    try { r.get() } catch (e) { print(`again: ${e}`) }
    let out = [];
    let it = p.imap(|x| if x == 2 { throw "two" } else { x }, 0..4);
    loop { try { out.push(it.next()) } catch (e) { if type_of(e) == "map" && e.type == "StopIteration" { break } out.push(`err ${e}`) } }
    print(out);
    // In chunks, every item still gets its own value or error, at its place.
    let out = [];
    let it = p.imap(|x| if x % 4 == 2 { throw `bad ${x}` } else { x }, 0..8, 3);
    loop { try { out.push(it.next()) } catch (e) { if type_of(e) == "map" && e.type == "StopIteration" { break } out.push(`err ${e}`) } }
    print(out);
    try { p.apply(|| current_process()) } catch (e) { print(`result: ${e.type}`) }
    try { p.starmap(add, [1, 2]) } catch (e) { print(`starmap: ${e.type}`) }
    print(p.map(sq, [2]));
    p.terminate();
"#,
        ),
        m,
    );
    assert_eq!(
        out.ok(),
        "thrown: plain\nmap: KeyError k 1\nmap: item 5\nruntime: IndexError true i64 18\nruntime: NameError Variable not found: undefined_thing\nget: 42\nagain: 42\n[0, 1, \"err two\", 3]\n[0, 1, \"err bad 2\", 3, 4, 5, \"err bad 6\", 7]\nresult: SerializationError\nstarmap: TypeError\n[4]\n"
    );
}

fn uncaught_task_error_names_the_worker(m: &str) {
    let out = run_script(
        r#"
fn bad(x) {
    let y = x + undefined_thing;
    y
}
if __name__ == "__main__" {
    let p = Pool(1);
    p.map(bad, [1]);
}
"#,
        m,
    );
    assert_eq!(out.code, Some(1));
    let prefix = match m {
        "spawn" => "SpawnPoolWorker",
        "fork" => "ForkPoolWorker",
        _ => "ForkServerPoolWorker",
    };
    assert!(out.stderr.contains(&format!("Process {prefix}-")), "{}", out.stderr);
    assert!(out.stderr.contains("NameError: Variable not found: undefined_thing"), "{}", out.stderr);
    assert!(out.stderr.contains(":3:17"), "{}", out.stderr);
    assert!(out.stderr.contains("let y = x + undefined_thing;"), "{}", out.stderr);
}

fn argument_and_option_errors(m: &str) {
    let out = run_script(
        &script(
            r#"
    for bad in [0, -1, "x", #{bogus: 1}, #{processes: "2"}, #{maxtasksperchild: 0}, #{initializer: 3}] {
        try { Pool(bad); print("no error") } catch (e) { print(`${e.type}: ${e.message}`) }
    }
    let p = Pool(1);
    try { p.map(sq, 0..3, 0) } catch (e) { print(e.type) }
    try { p.map(sq, 0..3, "2") } catch (e) { print(e.type) }
    try { p.map(sq, 5) } catch (e) { print(e.type) }
    try { p.map(5, [1]) } catch (e) { print(e.type) }
    try { p.apply(sq, 5) } catch (e) { print(e.type) }
    try { p.imap(sq, [1], 0) } catch (e) { print(e.type) }
    try { p.map_async(sq, [1], #{nope: 1}) } catch (e) { print(e.type) }
    try { p.apply_async(sq, [1], #{callback: 1}) } catch (e) { print(e.type) }
    try { p.apply_async(sq, [1], #{chunksize: 1}) } catch (e) { print(e.type) }
    try { p.map(sq, [1, 2, Pool(1)]) } catch (e) { print(`${e.type}: ${e.message}`) }
    try { p.apply(sq, [p]) } catch (e) { print(`${e.type}: ${e.message}`) }
    let r = p.apply_async(slow, [1]);
    try { r.get(0.1) } catch (e) { print(e.type) }
    try { r.get(-1) } catch (e) { print(e.type) }
    try { r.successful() } catch (e) { print(e.type) }
    print(r.ready());
    print(r);
    try { Process(|| 1, [p]).start() } catch (e) { print(e.type) }
    p.terminate();
"#,
        ),
        m,
    );
    assert_eq!(
        out.ok(),
        "ValueError: Number of processes must be at least 1, not 0
ValueError: Number of processes must be at least 1, not -1
TypeError: processes of Pool() must be an integer, not string
ValueError: Pool() got an unknown option 'bogus' (it takes: processes, initializer, initargs, maxtasksperchild, task_timeout, max_memory)
TypeError: option 'processes' of Pool() must be an integer, not string
ValueError: maxtasksperchild must be a positive integer or (), not 0
TypeError: option 'initializer' of Pool() must be a function pointer, not i64
ValueError
TypeError
TypeError
TypeError
TypeError
ValueError
ValueError
TypeError
ValueError
SerializationError: a value of type 'Pool' cannot be sent to another process (at iterable[2])
SerializationError: a value of type 'Pool' cannot be sent to another process (at args[0])
TimeoutError
ValueError
ValueError
false
<AsyncResult pending>
SerializationError
"
    );
}

fn closed_and_terminated_pools(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(2);
    try { p.join() } catch (e) { print(`join running: ${e.type}`) }
    let r = p.map_async(sq, 0..10, 1);
    p.close();
    p.close();
    for attempt in [|| p.map(sq, [1]), || p.apply(sq, [1]), || p.apply_async(sq, [1]), || p.imap(sq, [1]), || p.starmap(add, [[1, 2]])] {
        try { attempt.call(); print("no error") } catch (e) { print(`closed: ${e.type}`) }
    }
    p.join();
    print(r.get());
    p.join();
    let q = Pool(2);
    let r = q.apply_async(slow, [1]);
    q.terminate();
    try { r.get(10) } catch (e) { print(`terminated: ${e.type}`) }
    try { q.map(sq, [1]) } catch (e) { print(`after terminate: ${e.type}`) }
    q.join();
    q.terminate();
    print(q);
"#,
        ),
        m,
    );
    assert_eq!(
        out.ok(),
        "join running: ValueError\nclosed: ValueError\nclosed: ValueError\nclosed: ValueError\nclosed: ValueError\nclosed: ValueError\n[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\nterminated: RuntimeError\nafter terminate: ValueError\n<Pool state=TERMINATE pool_size=2>\n"
    );
}

fn maxtasksperchild_and_chunksize(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(#{processes: 1, maxtasksperchild: 3});
    // 12 items in chunks of 2 are 6 tasks: two workers of 3 tasks each.
    print(distinct(p.map(pid, 0..12, 2)));
    // 9 items one by one: three workers.
    print(distinct(p.map(pid, 0..9, 1)));
    // A for loop replaces workers too (under fork, through the pool's fork server).
    let seen = []; for x in p.imap(pid, 0..7) { seen.push(x) }
    print(distinct(seen));
    // One chunk is one task, whatever its size.
    let q = Pool(#{processes: 1, maxtasksperchild: 1});
    print(distinct(q.map(pid, 0..50, 50)));
    q.close(); q.join();
    p.close(); p.join();
"#,
        ),
        m,
    );
    assert_eq!(out.ok(), "2\n3\n3\n1\n");
}

fn initializer_runs_once_per_worker(m: &str) {
    let out = run_script(
        &script(
            r#"
    let v = Value("i", 0);
    let p = Pool(#{processes: 2, initializer: |v, k| hold(v.get_lock(), || v.value += k), initargs: [v, 10]});
    p.map(sq, 0..20, 1);
    p.close(); p.join();
    print(v.value);
    // Five tasks, two per worker: exactly three workers (a fourth could start after a sixth
    // task, while the pool is still open, as in Python).
    let p = Pool(#{processes: 1, initializer: |v| { v.value += 1; }, initargs: [v], maxtasksperchild: 2});
    p.map(sq, 0..5, 1);
    p.close(); p.join();
    print(v.value);
"#,
        ),
        m,
    );
    assert_eq!(out.ok(), "20\n23\n");
}

fn a_failing_initializer_breaks_the_pool(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(#{processes: 2, initializer: || { throw "cannot init" }});
    try { p.map(sq, 0..4) } catch (e) { print(`map: ${e}`) }
    try { p.apply(sq, [1]) } catch (e) { print(`apply: ${e}`) }
    p.terminate();
    print("ended");
"#,
        ),
        m,
    );
    assert_eq!(out.ok(), "map: cannot init\napply: cannot init\nended\n");
    assert!(out.stderr.contains("cannot init"), "{}", out.stderr);
}

fn a_killed_worker_fails_only_its_task(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(2);
    let q = Queue();
    let f = |x| { if x == 3 { q.put(os::getpid()); time::sleep(30); } x * 10 };
    let r = p.map_async(f, 0..8, 1);
    let victim = q.get(true, 20);
    os::kill(victim, "SIGKILL");
    try { r.get(30) } catch (e) {
        print(`${e.type} pid=${e.pid == victim} exitcode=${e.exitcode} task=${e.task}`);
        print(e.message.contains("SIGKILL"));
    }
    print(p.map(sq, 0..5));
    // The other tasks of an imap go on.
    let it = p.imap(f, 0..6);
    os::kill(q.get(true, 20), "SIGKILL");
    let out = [];
    loop { try { out.push(it.next(30)) } catch (e) { if e.type == "StopIteration" { break } out.push(e.type) } }
    print(out);
    // apply: the index is 0.
    let r = p.apply_async(|| { q.put(os::getpid()); time::sleep(30) });
    os::kill(q.get(true, 20), 9);
    try { r.get(30) } catch (e) { print(`${e.type} ${e.task} ${e.exitcode}`) }
    p.close(); p.join();
    print(active_children().len());
"#,
        ),
        m,
    );
    assert_eq!(
        out.ok(),
        "WorkerLostError pid=true exitcode=-9 task=3\ntrue\n[0, 1, 4, 9, 16]\n[0, 10, 20, \"WorkerLostError\", 40, 50]\nWorkerLostError 0 -9\n0\n"
    );
}

fn a_worker_that_exits_fails_its_task(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(1);
    let r = p.map_async(|x| if x == 1 { exit(3) } else { x }, [0, 1, 2], 1);
    try { r.get(30) } catch (e) { print(`${e.type} exitcode=${e.exitcode} task=${e.task}`) }
    print(p.map(sq, [1, 2, 3]));
    p.terminate();
"#,
        ),
        m,
    );
    assert_eq!(out.ok(), "WorkerLostError exitcode=3 task=1\n[1, 4, 9]\n");
}

/// Idle workers sleep on the task queue's condition variable; one killed there must not
/// leave the queue's bookkeeping broken (glibc's shared condvars did: the next notify hung).
fn killing_an_idle_worker_does_not_hang_the_queue(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(2);
    let pids = worker_pids(p);
    time::sleep(0.2);
    os::kill(pids[0], "SIGKILL");
    time::sleep(0.1);
    for i in 0..3 { print(p.map(|x| x * 2, 0..6, 1)); }
    // The same with plain getters of a queue.
    let q = Queue();
    let a = Process(|q| q.get(), [q]);
    let b = Process(|q| { for i in 0..3 { print(`b got ${q.get()}`); } }, [q]);
    a.start(); b.start();
    time::sleep(0.2);
    a.kill(); a.join();
    for i in 0..3 { q.put(i); }
    b.join(30);
    print(b.exitcode);
    p.terminate();
"#,
        ),
        m,
    );
    assert_eq!(
        out.ok(),
        "[0, 2, 4, 6, 8, 10]\n[0, 2, 4, 6, 8, 10]\n[0, 2, 4, 6, 8, 10]\nb got 0\nb got 1\nb got 2\n0\n"
    );
}

fn handles_work_in_tasks(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(2);
    let q = Queue();
    let l = Lock();
    let v = Value("i", 0);
    let a = Array("i", 4);
    let e = Event();
    let pipe = Pipe();
    let jq = JoinableQueue();
    p.map(|x| { hold(l, || v.value += x); a[x] = x * x; q.put(x); }, 0..4, 1);
    let got = []; for i in 0..4 { got.push(q.get(true, 10)) }
    print(`${v.value} ${a.to_array()} ${sorted(got)}`);
    p.apply(|e, c| { e.set(); c.send("via pipe") }, [e, pipe[1]]);
    print(`${e.is_set()} ${pipe[0].recv()}`);
    p.apply(|q| { q.put(1); }, [jq]);
    jq.get(); jq.task_done(); jq.join();
    print("joinable ok");
    // Hundreds of tasks carrying handles: submitting never blocks (the workers block on
    // the small queue until this process reads it).
    let small = Queue(5);
    for i in 0..400 { p.apply_async(|q, i| q.put(i), [small, i]); }
    let total = 0;
    for i in 0..400 { total += small.get(true, 30); }
    print(total);
    // And as many results carrying handles.
    print(p.map(|x| q, 0..600, 1).len());
    p.terminate();
"#,
        ),
        m,
    );
    assert_eq!(out.ok(), "6 [0, 1, 4, 9] [0, 1, 2, 3]\ntrue via pipe\njoinable ok\n79800\n600\n");
}

fn terminate_and_scope_leave_no_processes(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(2);
    let pids = worker_pids(p);
    p.apply_async(slow, [1]);
    p.terminate();
    print(`terminate: ${gone(pids) == pids.len()}`);
    let pids = [];
    {
        let scoped = Pool(2);
        pids = worker_pids(scoped);
        scoped.apply_async(slow, [1]);
        print("in scope");
    }
    print(`scope: ${gone(pids) == pids.len()}`);
    let p = Pool(2);
    let pids = worker_pids(p);
    p.close(); p.join();
    print(`join: ${gone(pids) == pids.len()}`);
    print(active_children().len());
"#,
        ),
        m,
    );
    assert_eq!(out.ok(), "terminate: true\nin scope\nscope: true\njoin: true\n0\n");
}

fn progress_is_silent_without_a_terminal(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(2);
    let n = 0;
    for x in p.imap(sq, 0..50).progress() { n += 1 }
    let it = p.imap_unordered(sq, 0..5, 2).progress();
    print(`${n} ${it.next() >= 0}`);
    p.terminate();
"#,
        ),
        m,
    );
    assert_eq!(out.ok(), "50 true\n");
    assert_eq!(out.stderr, "");
}

/// Functions must be at the top level: the scripts above define them in the guard only
/// where Rhai allows it. This one checks Ctrl-C (SIGINT to the process group) while `map`
/// runs: the script stops with `KeyboardInterrupt`, and every worker is gone.
#[test]
fn ctrl_c_stops_a_running_map() {
    for m in METHODS {
        let src = script(
            r#"
    let p = Pool(2);
    for x in p.map(pid, 0..40, 1) { print(`worker ${x}`) }
    print("started");
    p.map(slow, 0..8, 1);
    print("not reached");
"#,
        );
        let mut run = start_script(&src, m);
        let mut workers = Vec::new();
        loop {
            match run.line().as_str() {
                "started" => break,
                l if l.starts_with("worker ") => workers.push(l[7..].parse::<i32>().unwrap()),
                l => panic!("unexpected line {l:?}"),
            }
        }
        // Let the slow map get going, then press Ctrl-C (the whole group gets SIGINT).
        std::thread::sleep(Duration::from_millis(300));
        run.signal_group(libc::SIGINT);
        let (code, err) = run.wait();
        let rest = run.rest();
        assert_eq!(code, Some(130), "{m}: {err}");
        assert!(err.contains("KeyboardInterrupt"), "{m}: {err}");
        assert!(!rest.iter().any(|l| l == "not reached"), "{m}");
        for pid in workers {
            assert!(wait_gone(pid), "{m}: worker {pid} outlived Ctrl-C");
        }
    }
}
