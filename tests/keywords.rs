//! Python's keyword arguments on every method (issue 23.2), table first: each function of
//! the reference whose Python counterpart names a parameter takes an object map in its
//! place (`q.get(#{timeout: 0.1})`). For each row, three calls in one script: the map with
//! the right value (its outcome is the row's), the map with an unknown key (`ValueError`
//! naming the key), and the map with a value of the wrong type (`TypeError` naming the
//! parameter). The script prints `<row> <TAB> <call> <TAB> <outcome>`; the test compares
//! every line with the table and fails listing every row that differs.

use crate::common::*;

/// One method and one of its named parameters.
struct Row {
    /// What the row is, as the failure list names it.
    label: &'static str,
    /// The call, with `{M}` where the keyword map goes.
    call: &'static str,
    /// The parameter's name (the map's key).
    key: &'static str,
    /// A right value, as Rhai source.
    good: &'static str,
    /// What the call with the right value gives: `ok:<printed value>` or `err:<type>`.
    outcome: &'static str,
    /// A value of the wrong type, as Rhai source.
    bad: &'static str,
}

const fn row(
    label: &'static str,
    call: &'static str,
    key: &'static str,
    good: &'static str,
    outcome: &'static str,
    bad: &'static str,
) -> Row {
    Row { label, call, key, good, outcome, bad }
}

/// What the script sets up before the rows: one of each object (a pool and an executor with
/// one worker each, a manager and its proxies).
const SETUP: &str = r#"
fn sq(x) { x * x }
fn slow(x) { time::sleep(0.3); x }
fn add(a, b) { a + b }
if __name__ == "__main__" {
    let q = Queue(); let jq = JoinableQueue(); let sq_ = SimpleQueue();
    let lock = Lock(); let rlock = RLock(); let sem = Semaphore(1); let bsem = BoundedSemaphore(1);
    let cond = Condition(); let ev = Event(); let bar = Barrier(1);
    let pipe = Pipe(); let a = pipe[0]; let b = pipe[1];
    let proc_ = Process(Fn("sq"), [2]); proc_.start();
    let pool = Pool(1); let r = pool.apply_async(Fn("sq"), [3]); let it = pool.imap(Fn("sq"), [1, 2]);
    let ex = ProcessPoolExecutor(1); let fut = ex.submit(Fn("sq"), [4]);
    let m = Manager(); let mq = m.Queue(); let mlock = m.Lock(); let mev = m.Event(); let mcond = m.Condition();
    let buf = blob(8);
"#;

/// Every function of the reference with a named Python parameter, by parameter.
const ROWS: &[Row] = &[
    row("Queue.get timeout", "q.get({M})", "timeout", "0.01", "err:Empty", r#""x""#),
    row("Queue.get block", "q.get({M})", "block", "false", "err:Empty", r#""x""#),
    row("Queue.get(block, map)", "q.get(true, {M})", "timeout", "0.01", "err:Empty", r#""x""#),
    row("Queue.put block", "q.put(1, {M})", "block", "false", "ok:", "3"),
    row("Queue.put timeout", "q.put(2, {M})", "timeout", "1", "ok:", r#""x""#),
    row("JoinableQueue.get timeout", "jq.get({M})", "timeout", "0.01", "err:Empty", r#""x""#),
    row("JoinableQueue.put block", "jq.put(1, {M})", "block", "false", "ok:", "3"),
    row("Lock.acquire timeout", "lock.acquire({M})", "timeout", "1", "ok:true", r#""x""#),
    row("Lock.acquire block", "lock.acquire({M})", "block", "false", "ok:false", r#""x""#),
    row("RLock.acquire timeout", "rlock.acquire({M})", "timeout", "1", "ok:true", r#""x""#),
    row("Semaphore.acquire block", "sem.acquire({M})", "block", "false", "ok:true", r#""x""#),
    row("Semaphore.acquire timeout", "sem.acquire({M})", "timeout", "0.01", "ok:false", r#""x""#),
    row("BoundedSemaphore.acquire timeout", "bsem.acquire({M})", "timeout", "1", "ok:true", r#""x""#),
    row("Condition.acquire timeout", "cond.acquire({M})", "timeout", "1", "ok:true", r#""x""#),
    row("Condition.wait timeout", "cond.wait({M})", "timeout", "0.01", "ok:false", r#""x""#),
    row("Condition.wait_for timeout", "cond.wait_for(|| false, {M})", "timeout", "0.01", "ok:false", r#""x""#),
    row("Condition.notify n", "cond.notify({M})", "n", "2", "ok:", r#""x""#),
    row("Event.wait timeout", "ev.wait({M})", "timeout", "0.01", "ok:false", r#""x""#),
    row("Barrier.wait timeout", "bar.wait({M})", "timeout", "1", "ok:0", r#""x""#),
    row("Process.join timeout", "proc_.join({M})", "timeout", "10", "ok:", r#""x""#),
    row("Connection.poll timeout", "a.poll({M})", "timeout", "0", "ok:false", r#""x""#),
    row("Connection.send_bytes offset", "b.send_bytes(blob(4, 7), {M})", "offset", "3", "ok:", r#""x""#),
    row("Connection.send_bytes size", "b.send_bytes(blob(4, 7), 0, {M})", "size", "2", "ok:", r#""x""#),
    row("Connection.recv_bytes maxlength", "a.recv_bytes({M})", "maxlength", "100", "ok:[07]", r#""x""#),
    row("Connection.recv_bytes_into offset", "buf.recv_bytes_into(a, {M})", "offset", "1", "ok:2", r#""x""#),
    row("wait timeout", "wait([a], {M}).len()", "timeout", "0", "ok:0", r#""x""#),
    row("Value lock", r#"Value("i", 1, {M}).value"#, "lock", "false", "ok:1", "3"),
    row("Array lock", r#"Array("i", 2, {M}).len()"#, "lock", "true", "ok:2", "3"),
    row("set_start_method force", r#"set_start_method("spawn", {M})"#, "force", "true", "ok:", "3"),
    row("AsyncResult.get timeout", "r.get({M})", "timeout", "30", "ok:9", r#""x""#),
    row("AsyncResult.wait timeout", "r.wait({M})", "timeout", "30", "ok:", r#""x""#),
    row("ImapIterator.next timeout", "it.next({M})", "timeout", "30", "ok:1", r#""x""#),
    row("Pool.map chunksize", "pool.map(Fn(\"sq\"), [1, 2, 3], {M})", "chunksize", "2", "ok:[1, 4, 9]", r#""x""#),
    row(
        "Pool.starmap chunksize",
        "pool.starmap(Fn(\"add\"), [[1, 2], [3, 4]], {M})",
        "chunksize",
        "1",
        "ok:[3, 7]",
        r#""x""#,
    ),
    row("Pool.imap chunksize", "pool.imap(Fn(\"sq\"), [5], {M}).next()", "chunksize", "1", "ok:25", r#""x""#),
    row(
        "Pool.imap_unordered chunksize",
        "pool.imap_unordered(Fn(\"sq\"), [6], {M}).next()",
        "chunksize",
        "1",
        "ok:36",
        r#""x""#,
    ),
    row(
        "Pool.map_async chunksize",
        "pool.map_async(Fn(\"sq\"), [2], {M}).get(30)",
        "chunksize",
        "1",
        "ok:[4]",
        r#""x""#,
    ),
    row("Future.result timeout", "fut.result({M})", "timeout", "30", "ok:16", r#""x""#),
    row("Future.exception timeout", "fut.exception({M})", "timeout", "30", "ok:", r#""x""#),
    row("Executor.map chunksize", "ex.map(Fn(\"sq\"), [3], {M}).next()", "chunksize", "1", "ok:9", r#""x""#),
    row("futures::wait timeout", "futures::wait([fut], {M}).done.len()", "timeout", "30", "ok:1", r#""x""#),
    row("proxied Queue.get timeout", "mq.get({M})", "timeout", "0.01", "err:Empty", r#""x""#),
    row("proxied Queue.get block", "mq.get({M})", "block", "false", "err:Empty", r#""x""#),
    row("proxied Queue.put block", "mq.put(1, {M})", "block", "false", "ok:", "3"),
    row("proxied Lock.acquire timeout", "mlock.acquire({M})", "timeout", "1", "ok:true", r#""x""#),
    row("proxied Lock.acquire block", "mlock.acquire({M})", "block", "false", "ok:false", r#""x""#),
    row("proxied Event.wait timeout", "mev.wait({M})", "timeout", "0.01", "ok:false", r#""x""#),
];

/// The script: the setup, then each row's three calls, each in its own `try`.
fn script() -> String {
    let mut s = SETUP.to_string();
    for (i, r) in ROWS.iter().enumerate() {
        let calls = [
            ("good", format!("#{{{}: {}}}", r.key, r.good)),
            ("unknown", "#{bogus_key: 1}".to_string()),
            ("type", format!("#{{{}: {}}}", r.key, r.bad)),
        ];
        for (what, map) in calls {
            let call = r.call.replace("{M}", &map);
            s.push_str(&format!(
                "    try {{ let v = {call}; print(`{i}\t{what}\tok:${{v}}`); }} \
                 catch (e) {{ print(`{i}\t{what}\terr:${{e.type}}\t${{e.message}}`); }}\n"
            ));
        }
    }
    s.push_str("    pool.close(); pool.join(); ex.shutdown(); m.shutdown(); print(\"done\");\n}\n");
    s
}

#[test]
fn every_method_takes_a_keyword_map() {
    let out = run_script(&script(), "spawn");
    let stdout = out.ok();
    assert!(stdout.ends_with("done\n"), "the script did not finish:\n{stdout}\n{}", out.stderr);
    let mut bad = Vec::new();
    for (i, r) in ROWS.iter().enumerate() {
        let got = |what: &str| -> (String, String) {
            let prefix = format!("{i}\t{what}\t");
            let line = stdout.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or("(no outcome)");
            let mut parts = line.splitn(2, '\t');
            (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string())
        };
        let (outcome, message) = got("good");
        if outcome != r.outcome {
            bad.push(format!("{}: with #{{{}: {}}}: {outcome} {message} (want {})", r.label, r.key, r.good, r.outcome));
        }
        let (outcome, message) = got("unknown");
        if outcome != "err:ValueError" || !message.contains("bogus_key") {
            bad.push(format!("{}: an unknown key gave {outcome} {message}", r.label));
        }
        let (outcome, message) = got("type");
        if outcome != "err:TypeError" || !message.contains(r.key) {
            bad.push(format!("{}: #{{{}: {}}} gave {outcome} {message}", r.label, r.key, r.bad));
        }
    }
    assert!(bad.is_empty(), "{} of {} rows differ:\n{}", bad.len(), ROWS.len(), bad.join("\n"));
}

#[test]
fn positional_arguments_and_maps_mix_as_in_python() {
    let out = run_script(
        r#"
let q = Queue();
q.put(1, true, 1);
print(q.get(true, #{timeout: 1}));
try { q.get(true, #{block: false}) } catch (e) { print(e.type + ": " + e.message) }
try { q.get(#{timeout: 0.01, block: true}) } catch (e) { print(e.type) }
try { q.get(#{block: false, timeout: -1}) } catch (e) { print(e.type) }
try { q.get(#{block: true, timeout: -1}) } catch (e) { print(e.type) }
"#,
        "spawn",
    );
    assert_eq!(
        out.ok(),
        "1\nTypeError: get() got multiple values for 'block'\nEmpty\nValueError\nValueError\n",
        "{}",
        out.stderr
    );
}
