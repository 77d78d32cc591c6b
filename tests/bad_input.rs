//! Bad input, table first: every function of the script reference given values of the
//! wrong type; negative, zero, huge (`1 << 62`, `i64::MAX`), NaN and infinite numbers; and
//! handles used after `close()`, `shutdown()` or `terminate()`. Each case must end with a
//! typed error — a map whose `type` is one of the contract's, with a message that names
//! what was wrong — or with the documented result; never a panic, an abort, a hang, or an
//! untyped Rhai error (a caught value without a `type` fails the case).
//!
//! The cases are generated from the tables below ([`Row`]: an argument position and what
//! each bad value must give; [`Fixed`]: one call and its outcome). Each family is one
//! script: every case in its own `try { .. } catch (e) { .. }`, printing
//! `<case number> <TAB> <outcome> <TAB> <message>`, and the test compares the lines with
//! the table. Every family runs under spawn; those that start processes (process, exit,
//! pool, manager) also under fork.

use crate::common::*;
use crate::interpreter::{skip_on_vm, VM_WRITE_BACK};

/// The error types of the contract.
const TYPES: &[&str] = &[
    "TimeoutError",
    "Empty",
    "Full",
    "EOFError",
    "BrokenPipeError",
    "BufferTooShort",
    "ValueError",
    "TypeError",
    "OSError",
    "KeyError",
    "IndexError",
    "StopIteration",
    "FileNotFoundError",
    "FileExistsError",
    "AssertionError",
    "RuntimeError",
    "ProcessError",
    "BrokenBarrierError",
    "AuthenticationError",
    "ConnectionRefusedError",
    "MemoryError",
    "KeyboardInterrupt",
    "SerializationError",
    "WorkerLostError",
];

/// The bad values a `$` in a [`Row`] stands for, by name, as Rhai source.
const VALUES: &[(&str, &str)] = &[
    ("str", r#""x""#),
    ("unit", "()"),
    ("bool", "true"),
    ("char", "'c'"),
    ("float", "1.5"),
    ("negf", "-0.5"),
    ("neg", "-1"),
    ("zero", "0"),
    ("huge", "(1 << 62)"),
    ("max", "9223372036854775807"),
    ("min", "(-9223372036854775807 - 1)"),
    ("nan", "(0.0 / 0.0)"),
    ("inf", "(1.0 / 0.0)"),
    ("ninf", "(-1.0 / 0.0)"),
    ("array", "[1]"),
    ("map", "#{}"),
    ("range", "(0..3)"),
    ("blob", "blob(2)"),
    // `any` is defined for 0 to 4 arguments (see PRELUDE), so it can be called with anything.
    ("fn", r#"Fn("any")"#),
];

/// What an argument accepts: the outcome of every value not listed, then `value=outcome`
/// pairs. An outcome is `ok`, an error type, `=text` (the case prints its result, which
/// must be `text`), or `skip` (the value is not tried, for a reason given in the row).
#[derive(Clone, Copy)]
struct Kind(&'static str, &'static str);

/// A number of seconds or `()` (no limit): negative or NaN is a `ValueError`, another type
/// a `TypeError`; infinite and huge ones are no limit.
const TIMEOUT: Kind = Kind(
    "TypeError",
    "unit=ok float=ok zero=ok huge=ok max=ok inf=ok negf=ValueError neg=ValueError min=ValueError nan=ValueError ninf=ValueError",
);
/// A bool.
const BOOL: Kind = Kind("TypeError", "bool=ok");
/// A function pointer or closure.
const FUNC: Kind = Kind("TypeError", "fn=ok");
/// An iterable: an array, a range, a string (its chars) or a blob (its bytes).
const ITERABLE: Kind = Kind("TypeError", "str=ok array=ok range=ok blob=ok");
/// An integer of any size that must not be negative.
const COUNT: Kind = Kind("TypeError", "zero=ok huge=ok max=ok neg=ValueError min=ValueError");
/// An index into a container of a few items (negative counts from the end).
const INDEX: Kind = Kind("TypeError", "zero=ok neg=ok huge=IndexError max=IndexError min=IndexError");
/// A string.
const STR: Kind = Kind("TypeError", "str=ok");
/// A blob.
const BLOB: Kind = Kind("TypeError", "blob=ok");
/// Anything that can cross a process boundary: all the values but a range.
const ANY: Kind = Kind("ok", "range=SerializationError");
/// Nothing is accepted (a handle of a type none of the values is).
const NONE: Kind = Kind("TypeError", "");
/// An item of typecode `"i"`: an integer of 32 bits.
const INT32: Kind = Kind("TypeError", "zero=ok neg=ok huge=ValueError max=ValueError min=ValueError");

/// An argument position: `call` with `$` where the value goes; `names` (`|`-separated):
/// the message of a `TypeError`, `ValueError` or `IndexError` about it contains one of them.
struct Row {
    call: &'static str,
    names: &'static str,
    kind: Kind,
    except: &'static str,
}

const fn row(call: &'static str, names: &'static str, kind: Kind, except: &'static str) -> Row {
    Row { call, names, kind, except }
}

/// One call and its outcome (as in [`Kind`]); `names` as in [`Row`], checked for any error
/// (empty: not checked).
struct Fixed {
    call: &'static str,
    expect: &'static str,
    names: &'static str,
}

const fn fixed(call: &'static str, expect: &'static str, names: &'static str) -> Fixed {
    Fixed { call, expect, names }
}

/// A script: its variables, then its cases.
struct Family {
    name: &'static str,
    setup: &'static str,
    rows: &'static [Row],
    fixed: &'static [Fixed],
}

/// Defined in every script: `any` (callable with 0 to 4 arguments), `one(x)`, and `report`,
/// which turns a caught value into the case's line.
const PRELUDE: &str = r#"
fn any() {}
fn any(a) {}
fn any(a, b) {}
fn any(a, b, c) {}
fn any(a, b, c, d) {}
fn one(x) { x }
fn drain(c) { while c.poll() { c.recv_bytes(); } }
fn report(n, e) {
    let tab = "\t";
    if type_of(e) != "map" || !("type" in e) {
        let s = `${e}`;
        s.replace("\n", " ");
        return `${n}${tab}UNTYPED${tab}${s}`;
    }
    let m = `${e.message}`;
    m.replace("\n", " ");
    `${n}${tab}${e.type}${tab}${m}`
}
"#;

/// One generated case.
struct Case {
    label: String,
    code: String,
    expect: String,
    names: &'static str,
    /// Whether any error's message must name `names` (a [`Fixed`] case), or only an
    /// argument error's (a [`Row`]'s: `TypeError`, `ValueError`, `IndexError`, `MemoryError`).
    always_named: bool,
}

fn outcome_of(kind: Kind, except: &str, value: &str) -> String {
    let find = |pairs: &str| {
        pairs
            .split_whitespace()
            .find_map(|p| p.split_once('=').filter(|(k, _)| *k == value).map(|(_, v)| v.to_string()))
    };
    find(except).or_else(|| find(kind.1)).unwrap_or_else(|| kind.0.to_string())
}

fn cases(f: &Family) -> Vec<Case> {
    let mut out = Vec::new();
    for r in f.rows {
        for (name, src) in VALUES {
            let expect = outcome_of(r.kind, r.except, name);
            if expect == "skip" {
                continue;
            }
            out.push(Case {
                label: format!("{} with {name} `{src}`", r.call),
                code: r.call.replace('$', src),
                expect,
                names: r.names,
                always_named: false,
            });
        }
    }
    for x in f.fixed {
        out.push(Case {
            label: x.call.to_string(),
            code: x.call.to_string(),
            expect: x.expect.to_string(),
            names: x.names,
            always_named: true,
        });
    }
    out
}

fn script(f: &Family, cases: &[Case]) -> String {
    let mut s = format!("{PRELUDE}\nif __name__ == \"__main__\" {{\n{}\n", f.setup);
    for (n, c) in cases.iter().enumerate() {
        let body = match c.expect.strip_prefix('=') {
            Some(_) => format!("let r = {{ {} }}; print(\"{n}\\t=\" + `${{r}}`);", c.code),
            None => format!("{}; print(\"{n}\\tok\");", c.code),
        };
        s.push_str(&format!("try {{ {body} }} catch (e) {{ print(report({n}, e)); }}\n"));
    }
    s.push_str("print(\"done\");\n}\n");
    s
}

/// The cases (family, code) whose outcome differs on rhai's VM, for a known reason: on the
/// VM their outcome is not checked (and the run says so).
const VM_KNOWN: &[(&str, &str, &str)] = &[("shared", "closed.name.len() > 0", VM_WRITE_BACK)];

/// Runs a family's script and checks every case; fails listing all the cases that differ.
fn check(f: &Family, method: &str) {
    let cases = cases(f);
    let src = script(f, &cases);
    let out = run_script(&src, method);
    let stdout = out.ok();
    let mut seen = vec![None; cases.len()];
    for line in stdout.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(n), Some(outcome)) = (parts.next(), parts.next()) else { continue };
        if let Ok(n) = n.parse::<usize>() {
            seen[n] = Some((outcome.to_string(), parts.next().unwrap_or("").to_string()));
        }
    }
    assert!(stdout.ends_with("done\n"), "the {} script did not finish:\n{stdout}\n{}", f.name, out.stderr);
    let mut bad = Vec::new();
    for (c, got) in cases.iter().zip(&seen) {
        if let Some((_, _, why)) = VM_KNOWN.iter().find(|k| k.0 == f.name && k.1 == c.code) {
            if skip_on_vm(&format!("bad_input {} case {:?}", f.name, c.code), why) {
                continue;
            }
        }
        let Some((outcome, message)) = got else {
            bad.push(format!("{}: no outcome printed", c.label));
            continue;
        };
        if *outcome != c.expect {
            bad.push(format!("{}: expected {}, got {outcome} {message:?}", c.label, c.expect));
            continue;
        }
        if outcome.starts_with('=') || outcome == "ok" {
            continue;
        }
        assert!(TYPES.contains(&outcome.as_str()), "{}: {outcome} is not a contract type", c.label);
        let named =
            c.always_named || ["TypeError", "ValueError", "IndexError", "MemoryError"].contains(&outcome.as_str());
        let lower = message.to_lowercase();
        if message.trim().is_empty()
            || (named && !c.names.is_empty() && !c.names.split('|').any(|n| lower.contains(&n.to_lowercase())))
        {
            bad.push(format!("{}: the {outcome} message {message:?} does not name {:?}", c.label, c.names));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} cases of {} ({method}) differ:\n{}",
        bad.len(),
        cases.len(),
        f.name,
        bad.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// The tables, one family per section of the reference.

const PROCESS: Family = Family {
    name: "process",
    setup: r#"
    let done = Process(any);
    done.start();
    done.join();
    let fresh = Process(any);
    let closed = Process(any);
    closed.start();
    closed.join();
    closed.close();
"#,
    rows: &[
        row("Process($)", "target", FUNC, "map=ok"),
        row("Process(any, $)", "args", ITERABLE, "map=ok"),
        row("Process(any, [], $)", "opts", Kind("TypeError", "map=ok"), ""),
        row("Process(#{target: $})", "target", FUNC, "unit=ok"),
        row("Process(#{target: any, args: $})", "args", ITERABLE, "unit=ok"),
        row("Process(any, #{name: $})", "name", STR, "unit=ok"),
        row("Process(any, #{daemon: $})", "daemon", BOOL, "unit=ok"),
        row("done.join($)", "timeout", TIMEOUT, "map=ok"),
        row("fresh.name = $", "name", STR, ""),
        row("fresh.daemon = $", "daemon", BOOL, ""),
    ],
    fixed: &[
        fixed("Process(any, #{nmae: 1})", "ValueError", "nmae"),
        fixed("Process(any).join()", "AssertionError", "join"),
        fixed("Process(any).terminate()", "AssertionError", "terminate"),
        fixed("Process(any).kill()", "AssertionError", "kill"),
        fixed("Process(any).sentinel", "ValueError", "started"),
        fixed("done.start()", "AssertionError", "twice"),
        fixed("done.daemon = true", "AssertionError", "started"),
        fixed("current_process().start()", "AssertionError", "current process"),
        fixed("current_process().join()", "AssertionError", "child"),
        fixed("current_process().terminate()", "AssertionError", ""),
        fixed("done.exitcode", "=0", ""),
        // Closed: everything but the name, the daemon flag, close() and printing throws.
        fixed("closed.start()", "ValueError", "closed"),
        fixed("closed.join()", "ValueError", "closed"),
        fixed("closed.join(0)", "ValueError", "closed"),
        fixed("closed.is_alive()", "ValueError", "closed"),
        fixed("closed.terminate()", "ValueError", "closed"),
        fixed("closed.kill()", "ValueError", "closed"),
        fixed("closed.pid", "ValueError", "closed"),
        fixed("closed.ident", "ValueError", "closed"),
        fixed("closed.exitcode", "ValueError", "closed"),
        fixed("closed.sentinel", "ValueError", "closed"),
        fixed("wait([closed], 0)", "ValueError", "closed"),
        fixed("closed.name.len() > 0", "=true", ""),
        fixed("closed.close()", "ok", ""),
        fixed("closed.to_string().len() > 0", "=true", ""),
        // As Python's: close() forgets the child, so the daemon flag may be set again.
        fixed("closed.daemon = true", "ok", ""),
        fixed("closed == done", "=false", ""),
        fixed("closed == 5", "=false", ""),
        fixed("Pipe()[0].send(closed)", "SerializationError", "Process"),
        // A running process cannot be closed.
        fixed("{ let p = Process(|| time::sleep(30)); p.start(); try { p.close() } catch (e) { p.kill(); p.join(); throw e; } }", "ValueError", "running"),
    ],
};

/// `exit(value)` in a child: its exit code.
const EXIT: Family = Family {
    name: "exit",
    setup: "",
    rows: &[row(
        "{ let p = Process(|x| exit(x), [$]); p.start(); p.join(); p.exitcode }",
        "",
        Kind("=1", "unit==0 zero==0 neg==255 huge==0 max==255 min==0 range=SerializationError"),
        "",
    )],
    fixed: &[fixed("{ let p = Process(|| exit()); p.start(); p.join(); p.exitcode }", "=0", "")],
};

const CONTEXT: Family = Family {
    name: "context",
    setup: r#"
    let ctx = get_context();
    let method = get_start_method();
"#,
    rows: &[
        row("get_context($)", "method", STR, "str=ValueError unit=ok"),
        row("set_start_method($)", "method", STR, "str=ValueError"),
        row("set_start_method(method, $)", "force", BOOL, "map=RuntimeError"),
        row("ctx.Process($)", "target", FUNC, "map=ok"),
        row("ctx.Process(any, $)", "args", ITERABLE, "map=ok"),
        row("ctx.Process(any, [], $)", "opts", Kind("TypeError", "map=ok"), ""),
        row("ctx.Queue($)", "maxsize", COUNT, "neg=ok min=ok"),
        row("ctx.Semaphore($)", "value", COUNT, "huge=ValueError max=ValueError"),
        row(
            "ctx.Barrier($)",
            "part",
            Kind("TypeError", "zero=ValueError neg=ValueError huge=ValueError max=ValueError min=ValueError"),
            "",
        ),
        row("ctx.Value(\"i\", $)", "Value", INT32, ""),
        row("ctx.wait([], $)", "timeout", TIMEOUT, "map=ok"),
        row("ctx.Pipe($)", "duplex", BOOL, ""),
        row("ctx.JoinableQueue($)", "maxsize", COUNT, "neg=ok min=ok"),
        row("ctx.BoundedSemaphore($)", "value", COUNT, "huge=ValueError max=ValueError"),
        row("ctx.Condition($)", "Lock", NONE, ""),
        row("ctx.RawValue(\"i\", $)", "RawValue", INT32, ""),
        row("ctx.Value(\"i\", 0, $)", "lock", BOOL, "map=ok"),
        row("ctx.Array(\"i\", 3, $)", "lock", BOOL, "map=ok"),
        row(
            "ctx.RawArray(\"i\", $)",
            "RawArray|size|iterable",
            ITERABLE,
            "str=TypeError zero=ok neg=ValueError min=ValueError huge=MemoryError max=MemoryError",
        ),
        row(
            "ctx.SharedMemory($)",
            "size|bytes",
            Kind(
                "TypeError",
                "zero=ValueError neg=ValueError min=ValueError huge=MemoryError max=MemoryError map=ValueError",
            ),
            "",
        ),
        row("ctx.wait($, 0)", "objects", Kind("TypeError", "array=ok"), ""),
        row(
            "{ let p = ctx.Pool($); p.terminate(); }",
            "processes",
            Kind(
                "TypeError",
                "unit=ok map=ok zero=ValueError neg=ValueError min=ValueError huge=ValueError max=ValueError",
            ),
            "",
        ),
    ],
    fixed: &[
        fixed("set_start_method(\"spawn\")", "RuntimeError", "already"),
        fixed("get_context(\"fork\").get_start_method()", "=fork", ""),
    ],
};

const CONNECTION: Family = Family {
    name: "connection",
    setup: r#"
    let ends = Pipe();
    let a = ends[0];
    let b = ends[1];
    let oneway = Pipe(false);
    let reader = oneway[0];
    let writer = oneway[1];
    let gone = Pipe();
    gone[1].close();
    let c = gone[0];
    let shut = Pipe();
    let closed = shut[0];
    let peer = shut[1];
    closed.close();
"#,
    rows: &[
        row("Pipe($)", "duplex", BOOL, ""),
        // A message is waiting, so that an accepted timeout returns at once.
        row("{ if !a.poll() { b.send(1) } a.poll($) }", "timeout", TIMEOUT, "map=ok"),
        row("{ drain(b); a.send($) }", "", ANY, ""),
        row("{ drain(b); a.send_bytes($) }", "data", BLOB, ""),
        row(
            "{ drain(b); a.send_bytes(blob(4), $) }",
            "offset",
            Kind("TypeError", "zero=ok neg=ValueError huge=ValueError max=ValueError min=ValueError"),
            "map=ok",
        ),
        row(
            "{ drain(b); a.send_bytes(blob(4), 1, $) }",
            "size",
            Kind("TypeError", "zero=ok neg=ValueError huge=ValueError max=ValueError min=ValueError"),
            "map=ok",
        ),
        row(
            "{ drain(b); a.send_bytes(blob(4), $, 1) }",
            "offset",
            Kind("TypeError", "zero=ok neg=ValueError huge=ValueError max=ValueError min=ValueError"),
            "",
        ),
        row(
            "{ drain(b); a.send_bytes(blob(1)); b.recv_bytes($) }",
            "maxlength|message",
            Kind("TypeError", "zero=OSError neg=ValueError huge=ok max=ok min=ValueError"),
            "map=ok",
        ),
        row("blob(4).recv_bytes_into($)", "Connection", NONE, ""),
        row(
            "{ drain(b); a.send_bytes(blob(1)); blob(4).recv_bytes_into(b, $) }",
            "offset",
            Kind("TypeError", "zero=ok neg=ValueError huge=ValueError max=ValueError min=ValueError"),
            "map=ok",
        ),
    ],
    fixed: &[
        fixed("{ drain(b); a.send_bytes(blob(8)); blob(4).recv_bytes_into(b) }", "BufferTooShort", "8 bytes"),
        fixed("{ drain(b); a.send_bytes(blob(1)); blob(4).recv_bytes_into(b, 4) }", "BufferTooShort", "1 bytes"),
        fixed("{ drain(b); a.send_bytes(blob(8)); b.recv_bytes(4) }", "OSError", "4"),
        fixed("drain(b)", "ok", ""),
        fixed("writer.recv()", "OSError", ""),
        fixed("writer.poll()", "OSError", ""),
        fixed("reader.send(1)", "OSError", ""),
        fixed("reader.send_bytes(blob(1))", "OSError", ""),
        fixed("c.recv()", "EOFError", ""),
        fixed("c.recv_bytes()", "EOFError", ""),
        fixed("c.send(1)", "BrokenPipeError", ""),
        fixed("c.poll(0)", "=true", ""),
        // Closed: every use throws OSError (as Python's "handle is closed").
        fixed("closed.send(1)", "OSError", "closed"),
        fixed("closed.recv()", "OSError", "closed"),
        fixed("closed.poll()", "OSError", "closed"),
        fixed("closed.poll(0)", "OSError", "closed"),
        fixed("closed.fileno()", "OSError", "closed"),
        fixed("closed.send_bytes(blob(1))", "OSError", "closed"),
        fixed("closed.send_bytes(blob(1), 0)", "OSError", "closed"),
        fixed("closed.send_bytes(blob(1), 0, 1)", "OSError", "closed"),
        fixed("closed.recv_bytes()", "OSError", "closed"),
        fixed("closed.recv_bytes(5)", "OSError", "closed"),
        fixed("blob(2).recv_bytes_into(closed)", "OSError", "closed"),
        fixed("blob(2).recv_bytes_into(closed, 0)", "OSError", "closed"),
        fixed("wait([closed], 0)", "OSError", "closed"),
        fixed("peer.send(closed)", "SerializationError", "closed"),
        fixed("closed.close()", "ok", ""),
        fixed("closed.closed", "=true", ""),
        fixed("closed.to_string()", "=<Connection closed>", ""),
        fixed("peer.recv()", "EOFError", ""),
        fixed("peer.send(1)", "BrokenPipeError", ""),
    ],
};

const QUEUE: Family = Family {
    name: "queue",
    setup: r#"
    let q = Queue();
    let jq = JoinableQueue();
    let full = Queue(1);
    full.put(0);
    let closed = Queue();
    closed.put(1);
    closed.close();
    let closed_jq = JoinableQueue();
    closed_jq.close();
    let sq = SimpleQueue();
    let closed_sq = SimpleQueue();
    closed_sq.close();
"#,
    rows: &[
        // 0 or less is no limit, as in Python.
        row("Queue($)", "maxsize", COUNT, "neg=ok min=ok"),
        row("JoinableQueue($)", "maxsize", COUNT, "neg=ok min=ok"),
        row("q.put($)", "", ANY, ""),
        row("q.put(1, $)", "block", BOOL, "map=ok"),
        row("q.put(1, true, $)", "timeout", TIMEOUT, "map=ok"),
        row("q.put(1, false, $)", "timeout", TIMEOUT, "map=ok"),
        row("{ q.put(1); q.get($) }", "block", BOOL, "map=ok"),
        row("{ q.put(1); q.get(true, $) }", "timeout", TIMEOUT, "map=ok"),
        row("jq.put($)", "", ANY, ""),
        row("sq.put($)", "", ANY, ""),
    ],
    fixed: &[
        fixed("full.put(1, false)", "Full", "full"),
        fixed("full.put(1, true, 0)", "Full", "full"),
        fixed("full.put(1, true, 0.01)", "Full", "full"),
        fixed("full.put_nowait(1)", "Full", "full"),
        fixed("Queue().get(false)", "Empty", ""),
        fixed("Queue().get(true, 0)", "Empty", ""),
        fixed("Queue().get(true, 0.01)", "Empty", ""),
        fixed("Queue().get_nowait()", "Empty", ""),
        fixed("q.task_done()", "ValueError", "JoinableQueue"),
        fixed("q.join()", "ValueError", "JoinableQueue"),
        fixed("JoinableQueue().task_done()", "ValueError", "task_done"),
        fixed("q.join_thread()", "AssertionError", "closed"),
        // Closed in this process: put and get throw ValueError (as Python's), and so does
        // empty() once this process put items (Python's feeder closed its pipe); a
        // SimpleQueue's pipe is closed (OSError).
        fixed("closed.put(1)", "ValueError", "closed"),
        fixed("closed.put(1, false)", "ValueError", "closed"),
        fixed("closed.put(1, true, 0)", "ValueError", "closed"),
        fixed("closed.put_nowait(1)", "ValueError", "closed"),
        fixed("closed.get()", "ValueError", "closed"),
        fixed("closed.get(false)", "ValueError", "closed"),
        fixed("closed.get(true, 0)", "ValueError", "closed"),
        fixed("closed.get_nowait()", "ValueError", "closed"),
        fixed("closed_jq.put(1)", "ValueError", "closed"),
        fixed("closed.qsize()", "=1", ""),
        fixed("closed.empty()", "OSError", "handle is closed"),
        fixed("closed.full()", "=false", ""),
        fixed("closed.close()", "ok", ""),
        fixed("closed.join_thread()", "ok", ""),
        fixed("closed.cancel_join_thread()", "ok", ""),
        fixed("closed.to_string().len() > 0", "=true", ""),
        fixed("closed_sq.put(1)", "OSError", "handle is closed"),
        fixed("closed_sq.get()", "OSError", "handle is closed"),
        fixed("closed_sq.empty()", "OSError", "handle is closed"),
        fixed("closed_sq.close()", "ok", ""),
    ],
};

const WAIT: Family = Family {
    name: "wait",
    setup: "let unstarted = Process(any);",
    rows: &[
        row("wait($, 0)", "objects", Kind("TypeError", "array=ok"), ""),
        row("wait([], $)", "timeout", TIMEOUT, "map=ok"),
        // Descriptor 0 is /dev/null here; a negative or too large number is no descriptor.
        row(
            "wait([$], 0)",
            "objects[0]",
            Kind("TypeError", "zero=ok neg=ValueError huge=ValueError max=ValueError min=ValueError"),
            "",
        ),
    ],
    fixed: &[
        fixed("wait([unstarted], 0)", "ValueError", "not started"),
        fixed("wait([Lock()], 0)", "TypeError", "objects[0]"),
    ],
};

const LOCKS: Family = Family {
    name: "locks",
    setup: r#"
    let l = Lock();
    let rl = RLock();
    let s = Semaphore(1);
    let held = Semaphore(0);
    let e = Event();
    e.set();
"#,
    rows: &[
        row("{ if l.acquire($) { l.release() } }", "block", BOOL, "map=ok"),
        row("{ if l.acquire(true, $) { l.release() } }", "timeout", TIMEOUT, "map=ok"),
        row("{ if l.acquire(false, $) { l.release() } }", "timeout", TIMEOUT, "map=ok"),
        row("{ if rl.acquire($) { rl.release() } }", "block", BOOL, "map=ok"),
        row("{ if rl.acquire(true, $) { rl.release() } }", "timeout", TIMEOUT, "map=ok"),
        row("Semaphore($)", "value", COUNT, "huge=ValueError max=ValueError"),
        row("BoundedSemaphore($)", "value", COUNT, "huge=ValueError max=ValueError"),
        row("{ if s.acquire($) { s.release() } }", "block", BOOL, "map=ok"),
        row("{ if s.acquire(true, $) { s.release() } }", "timeout", TIMEOUT, "map=ok"),
        row("e.wait($)", "timeout", TIMEOUT, "map=ok"),
        row("hold($, || 1)", "hold", NONE, ""),
        row("hold(l, $)", "hold", FUNC, ""),
    ],
    fixed: &[
        fixed("l.release()", "ValueError", "release"),
        fixed("rl.release()", "AssertionError", "release"),
        fixed("BoundedSemaphore(1).release()", "ValueError", "released too many"),
        fixed("held.acquire(false)", "=false", ""),
        fixed("held.acquire(true, 0)", "=false", ""),
        fixed("held.acquire(true, 0.01)", "=false", ""),
        fixed("Event().wait(0)", "=false", ""),
        fixed("Event().wait(0.01)", "=false", ""),
        fixed("l.acquire(false, -1)", "ValueError", "timeout"),
    ],
};

const CONDITION: Family = Family {
    name: "condition",
    setup: "let c = Condition();",
    rows: &[
        row("Condition($)", "Lock", NONE, ""),
        row("{ if c.acquire($) { c.release() } }", "block", BOOL, "map=ok"),
        row("{ if c.acquire(true, $) { c.release() } }", "timeout", TIMEOUT, "map=ok"),
        row(
            "{ c.acquire(); try { c.notify($) } catch (e) { c.release(); throw e; } c.release(); }",
            "n",
            COUNT,
            "map=ok",
        ),
        // Not held: an accepted timeout reaches the check of the lock.
        row(
            "c.wait($)",
            "timeout",
            Kind("TypeError", "unit=AssertionError float=AssertionError zero=AssertionError huge=AssertionError max=AssertionError inf=AssertionError negf=ValueError neg=ValueError min=ValueError nan=ValueError ninf=ValueError"),
            "map=AssertionError",
        ),
        // The predicate runs first (as in Python): `any` returns (), not a bool.
        row("c.wait_for($, 0)", "predicate", FUNC, "fn=TypeError"),
        row("c.wait_for($)", "predicate", FUNC, "fn=TypeError"),
        row("c.wait_for(|| true, $)", "timeout", TIMEOUT, "map=ok"),
    ],
    fixed: &[
        fixed("c.notify()", "AssertionError", "lock"),
        fixed("c.notify(1)", "AssertionError", "lock"),
        fixed("c.notify_all()", "AssertionError", "lock"),
        fixed("c.wait()", "AssertionError", "acquire"),
        fixed("c.wait_for(|| false, 0)", "=false", ""),
        fixed("c.wait_for(|| false, 0.01)", "AssertionError", "acquire"),
        fixed("c.release()", "AssertionError", ""),
    ],
};

const BARRIER: Family = Family {
    name: "barrier",
    setup: "let one = Barrier(1);",
    rows: &[
        row(
            "Barrier($)",
            "part",
            Kind("TypeError", "zero=ValueError neg=ValueError huge=ValueError max=ValueError min=ValueError"),
            "",
        ),
        row("Barrier(2, $)", "options", Kind("TypeError", "map=ok"), ""),
        row("Barrier(2, #{timeout: $})", "timeout", TIMEOUT, ""),
        row("Barrier(2, #{action: $})", "action", FUNC, "unit=ok"),
        row("one.wait($)", "timeout", TIMEOUT, "map=ok"),
    ],
    fixed: &[
        fixed("{ let b = Barrier(2); b.abort(); b.wait() }", "BrokenBarrierError", ""),
        fixed("Barrier(2).wait(0)", "BrokenBarrierError", ""),
        fixed("Barrier(2).wait(0.01)", "BrokenBarrierError", ""),
        fixed("Barrier(2, #{timeout: 0}).wait()", "BrokenBarrierError", ""),
        fixed("Barrier(2, #{parties: 1})", "ValueError", "parties"),
    ],
};

const SHARED: Family = Family {
    name: "shared",
    setup: r#"
    let v = Value("i", 0);
    let a = Array("i", 3);
    let shm = SharedMemory(16);
    let name = `rhai-mp-badinput-${os::getpid()}`;
    let closed = SharedMemory(8);
    closed.close();
    let pipe = Pipe();
"#,
    rows: &[
        row("Value($, 0)", "typecode", NONE, ""),
        row("Value(\"i\", $)", "Value", INT32, ""),
        row("Value(\"q\", $)", "Value", INT32, "huge=ok max=ok min=ok"),
        row("Value(\"Q\", $)", "Value", INT32, "neg=ValueError min=ValueError huge=ok max=ok"),
        row("Value(\"B\", $)", "Value", INT32, "neg=ValueError"),
        row(
            "Value(\"d\", $)",
            "Value",
            Kind("TypeError", "float=ok negf=ok neg=ok zero=ok huge=ok max=ok min=ok nan=ok inf=ok ninf=ok"),
            "",
        ),
        row("Value(\"i\", 0, $)", "lock", BOOL, "map=ok"),
        row("RawValue(\"i\", $)", "RawValue", INT32, ""),
        row("v.value = $", "value", INT32, ""),
        row("Array($, 3)", "typecode", NONE, ""),
        // A size, or the items of an iterable (here "x"'s char is not an integer).
        row(
            "Array(\"i\", $)",
            "Array|size|iterable",
            ITERABLE,
            "str=TypeError zero=ok neg=ValueError min=ValueError huge=MemoryError max=MemoryError",
        ),
        row("Array(\"i\", 3, $)", "lock", BOOL, "map=ok"),
        row(
            "RawArray(\"d\", $)",
            "RawArray|size|iterable",
            ITERABLE,
            "str=TypeError zero=ok neg=ValueError min=ValueError huge=MemoryError max=MemoryError",
        ),
        row("a[$]", "ind", INDEX, ""),
        row("a[$] = 1", "ind", INDEX, ""),
        row("a[0] = $", "Array", INT32, ""),
        row(
            "SharedMemory($)",
            "size|bytes",
            Kind(
                "TypeError",
                "zero=ValueError neg=ValueError min=ValueError huge=MemoryError max=MemoryError map=ValueError",
            ),
            "",
        ),
        row(
            "SharedMemory(#{size: $})",
            "size|bytes",
            Kind(
                "TypeError",
                "unit=ValueError zero=ValueError neg=ValueError min=ValueError huge=MemoryError max=MemoryError",
            ),
            "",
        ),
        row("SharedMemory(#{name: $})", "name", STR, "unit=ValueError str=FileNotFoundError"),
        row("SharedMemory(#{name: name, create: $})", "create|size", BOOL, "unit=FileNotFoundError bool=ValueError"),
        row(
            "{ let s = SharedMemory(#{name: name, create: true, size: $}); s.unlink(); }",
            "size|bytes",
            Kind(
                "TypeError",
                "unit=ValueError zero=ValueError neg=ValueError min=ValueError huge=MemoryError max=MemoryError",
            ),
            "",
        ),
        row(
            "shm.read($, 1)",
            "offset|range",
            Kind("TypeError", "zero=ok neg=IndexError huge=IndexError max=IndexError min=IndexError"),
            "",
        ),
        row(
            "shm.read(0, $)",
            "len|range",
            Kind("TypeError", "zero=ok neg=IndexError huge=IndexError max=IndexError min=IndexError"),
            "",
        ),
        row(
            "shm.write($, blob(1))",
            "offset|range",
            Kind("TypeError", "zero=ok neg=IndexError huge=IndexError max=IndexError min=IndexError"),
            "",
        ),
        row("shm.write(0, $)", "data", BLOB, ""),
        row("shm[$]", "ind", INDEX, ""),
        row("shm[$] = 1", "ind", INDEX, ""),
        row("shm[0] = $", "value|byte", INT32, "neg=ValueError"),
    ],
    fixed: &[
        fixed("Value(\"x\", 0)", "TypeError", "typecode"),
        fixed("SharedMemory(#{size: 8, nmae: 1})", "ValueError", "nmae"),
        fixed("RawValue(\"i\", 0).get_lock()", "ValueError", "raw"),
        fixed("RawArray(\"i\", 1).get_lock()", "ValueError", "raw"),
        fixed("Array(\"c\", [300])", "ValueError", "300"),
        fixed("shm.read(16, 0).len()", "=0", ""),
        fixed("shm.read(8, 9)", "IndexError", "range"),
        fixed("shm.write(15, blob(2))", "IndexError", "range"),
        // Closed in this process: reads and writes throw ValueError.
        fixed("closed.read(0, 1)", "ValueError", "closed"),
        fixed("closed.write(0, blob(1))", "ValueError", "closed"),
        fixed("closed[0]", "ValueError", "closed"),
        fixed("closed[0] = 1", "ValueError", "closed"),
        fixed("closed.close()", "ok", ""),
        fixed("closed.size", "=8", ""),
        fixed("closed.name.len() > 0", "=true", ""),
        fixed("closed.unlink()", "ok", ""),
        fixed("closed.to_string().len() > 0", "=true", ""),
        fixed("pipe[0].send(closed)", "SerializationError", "closed"),
        fixed("Process(any, [closed]).start()", "SerializationError", "closed"),
        fixed("SharedMemory(#{name: closed.name})", "FileNotFoundError", ""),
        fixed(
            "{ let s = SharedMemory(#{name: name, create: true, size: 8}); s.unlink(); s.unlink() }",
            "FileNotFoundError",
            "",
        ),
    ],
};

const POOL: Family = Family {
    name: "pool",
    setup: r#"
    let pool = Pool(1);
    let r = pool.apply_async(one, [1]);
    r.wait();
    let it = pool.imap(one, 0..100);
    let terminated = Pool(1);
    let pending = terminated.apply_async(|| time::sleep(30));
    let pending_it = terminated.imap(|x| time::sleep(30), 0..3);
    terminated.terminate();
    let closed = Pool(1);
    closed.close();
    closed.join();
"#,
    rows: &[
        // An accepted argument starts (and stops) a pool: `()` and `#{}` are the default
        // size, which is what `huge`/`max` would be refused for.
        row(
            "{ let p = Pool($); p.terminate(); }",
            "processes",
            Kind(
                "TypeError",
                "unit=ok map=ok zero=ValueError neg=ValueError min=ValueError huge=ValueError max=ValueError",
            ),
            "",
        ),
        row(
            "{ let p = Pool(#{processes: $}); p.terminate(); }",
            "processes",
            Kind("TypeError", "unit=ok zero=ValueError neg=ValueError min=ValueError huge=ValueError max=ValueError"),
            "",
        ),
        row(
            "{ let p = Pool(#{processes: 1, maxtasksperchild: $}); p.terminate(); }",
            "maxtasksperchild",
            Kind("TypeError", "unit=ok zero=ValueError neg=ValueError min=ValueError huge=ok max=ok"),
            "",
        ),
        row("{ let p = Pool(#{processes: 1, initializer: $}); p.terminate(); }", "initializer", FUNC, "unit=ok"),
        row("{ let p = Pool(#{processes: 1, initargs: $}); p.terminate(); }", "initargs", ITERABLE, "unit=ok"),
        row("pool.apply($)", "func", FUNC, ""),
        row("pool.apply(any, $)", "args", ITERABLE, "unit=ok"),
        row("pool.apply_async($)", "func", FUNC, ""),
        row("pool.apply_async(any, $)", "args", ITERABLE, "unit=ok"),
        row("pool.apply_async(any, [1], $)", "option", Kind("TypeError", "unit=ok map=ok"), ""),
        row("pool.apply_async(any, [1], #{callback: $})", "callback", FUNC, "unit=ok"),
        row("pool.apply_async(any, [1], #{error_callback: $})", "error_callback", FUNC, "unit=ok"),
        row("pool.map($, [1])", "func", FUNC, ""),
        row("pool.map(any, $)", "iterable", ITERABLE, ""),
        row(
            "pool.map(any, [1], $)",
            "chunksize",
            Kind("TypeError", "unit=ok map=ok zero=ValueError neg=ValueError min=ValueError huge=ok max=ok"),
            "",
        ),
        row("pool.map_async(any, $)", "iterable", ITERABLE, ""),
        row(
            "pool.map_async(any, [1], $)",
            "chunksize",
            Kind("TypeError", "unit=ok map=ok zero=ValueError neg=ValueError min=ValueError huge=ok max=ok"),
            "",
        ),
        row(
            "pool.map_async(any, [1], #{chunksize: $})",
            "chunksize",
            Kind("TypeError", "unit=ok zero=ValueError neg=ValueError min=ValueError huge=ok max=ok"),
            "",
        ),
        // Each item is the arguments of one call: an array (from the worker: TypeError).
        row("pool.starmap(any, [$])", "iterable", ITERABLE, "range=SerializationError"),
        row("pool.starmap(any, $)", "iterable|array", NONE, ""),
        row(
            "pool.starmap(any, [[1]], $)",
            "chunksize",
            Kind("TypeError", "unit=ok map=ok zero=ValueError neg=ValueError min=ValueError huge=ok max=ok"),
            "",
        ),
        row("pool.starmap($, [[1]])", "func", FUNC, ""),
        row("pool.starmap_async($, [[1]])", "func", FUNC, ""),
        row("pool.starmap_async(any, [$]).get()", "iterable", ITERABLE, "range=SerializationError"),
        row("pool.map_async($, [1])", "func", FUNC, ""),
        row("pool.imap_unordered($, [1])", "func", FUNC, ""),
        row(
            "pool.starmap_async(any, [[1]], $)",
            "chunksize",
            Kind("TypeError", "unit=ok map=ok zero=ValueError neg=ValueError min=ValueError huge=ok max=ok"),
            "",
        ),
        row("pool.imap($, [1])", "func", FUNC, ""),
        row("pool.imap(any, $)", "iterable", ITERABLE, ""),
        row(
            "pool.imap(any, [1], $)",
            "chunksize",
            Kind("TypeError", "map=ok zero=ValueError neg=ValueError min=ValueError huge=ok max=ok"),
            "",
        ),
        row("pool.imap_unordered(any, $)", "iterable", ITERABLE, ""),
        row(
            "pool.imap_unordered(any, [1], $)",
            "chunksize",
            Kind("TypeError", "map=ok zero=ValueError neg=ValueError min=ValueError huge=ok max=ok"),
            "",
        ),
        row("r.get($)", "timeout", TIMEOUT, "map=ok"),
        row("r.wait($)", "timeout", TIMEOUT, "map=ok"),
        row("it.next($)", "timeout", TIMEOUT, "map=ok"),
    ],
    fixed: &[
        fixed("Pool(#{processes: 1, nmae: 1})", "ValueError", "nmae"),
        fixed("pool.apply(|| throw #{type: \"KeyError\", message: \"k\"})", "KeyError", ""),
        fixed("pool.join()", "ValueError", "running"),
        fixed("{ let x = pool.apply_async(|| time::sleep(30)); x.get(0) }", "TimeoutError", ""),
        fixed("{ let x = pool.imap(one, []); x.next() }", "StopIteration", ""),
        fixed("{ let x = pool.apply_async(|| time::sleep(30)); x.successful() }", "ValueError", "not ready"),
        // Terminated: no new calls (ValueError, as Python's "Pool not running"); calls that
        // were running failed with RuntimeError.
        fixed("terminated.apply(any)", "ValueError", "not running|terminated|closed"),
        fixed("terminated.apply_async(any)", "ValueError", "not running|terminated|closed"),
        fixed("terminated.map(any, [1])", "ValueError", "not running|terminated|closed"),
        fixed("terminated.map_async(any, [1])", "ValueError", "not running|terminated|closed"),
        fixed("terminated.starmap(any, [[1]])", "ValueError", "not running|terminated|closed"),
        fixed("terminated.starmap_async(any, [[1]])", "ValueError", "not running|terminated|closed"),
        fixed("terminated.imap(any, [1])", "ValueError", "not running|terminated|closed"),
        fixed("terminated.imap_unordered(any, [1])", "ValueError", "not running|terminated|closed"),
        fixed("pending.get()", "RuntimeError", "terminated"),
        fixed("pending.get(0)", "RuntimeError", "terminated"),
        fixed("pending.ready()", "=true", ""),
        fixed("pending.successful()", "=false", ""),
        fixed("pending.wait()", "ok", ""),
        fixed("pending_it.next()", "RuntimeError", "terminated"),
        fixed("terminated.close()", "ok", ""),
        fixed("terminated.join()", "ok", ""),
        fixed("terminated.terminate()", "ok", ""),
        fixed("terminated.to_string()", "=<Pool state=TERMINATE pool_size=1>", ""),
        // Closed: no new calls; join() and terminate() are fine.
        fixed("closed.apply(any)", "ValueError", "not running|closed"),
        fixed("closed.map(any, [1])", "ValueError", "not running|closed"),
        fixed("closed.imap(any, [1])", "ValueError", "not running|closed"),
        fixed("closed.join()", "ok", ""),
        fixed("closed.terminate()", "ok", ""),
    ],
};

const MANAGER: Family = Family {
    name: "manager",
    setup: r#"
    let m = Manager();
    let d = m.dict();
    let l = m.list([1, 2, 3]);
    let ns = m.Namespace();
    let mv = m.Value("i", 0);
    let ma = m.Array("i", 3);
    let gone = Manager();
    let gd = gone.dict(#{a: 1});
    let gl = gone.list([1]);
    let gns = gone.Namespace();
    let gv = gone.Value("i", 1);
    let glock = gone.Lock();
    let gq = gone.Queue();
    gone.shutdown();
"#,
    rows: &[
        row("m.dict($)", "dict", Kind("TypeError", "unit=ok map=ok"), "range=SerializationError"),
        row("m.list($)", "list|iterable", ITERABLE, "unit=ok"),
        row("m.Value($, 0)", "typecode", NONE, "range=SerializationError"),
        row("m.Value(\"i\", $)", "Value", INT32, "range=SerializationError"),
        row(
            "m.Array(\"i\", $)",
            "Array|size|iterable",
            ITERABLE,
            "str=TypeError zero=ok neg=ValueError min=ValueError huge=MemoryError max=MemoryError",
        ),
        row("m.Semaphore($)", "value", COUNT, "huge=ValueError max=ValueError range=SerializationError"),
        row("m.Queue($)", "maxsize", COUNT, "neg=ok min=ok range=SerializationError"),
        row("m.JoinableQueue($)", "maxsize", COUNT, "neg=ok min=ok range=SerializationError"),
        row("m.BoundedSemaphore($)", "value", COUNT, "huge=ValueError max=ValueError range=SerializationError"),
        // The lock of a managed Value or Array is accepted and ignored, as in Python.
        row("m.Value(\"i\", 0, $)", "", Kind("ok", ""), ""),
        row("m.Array(\"i\", 1, $)", "", Kind("ok", ""), ""),
        row(
            "m.Barrier($)",
            "part",
            Kind("TypeError", "zero=ValueError neg=ValueError huge=ValueError max=ValueError min=ValueError"),
            "range=SerializationError",
        ),
        row("m.Barrier(2, $)", "options", Kind("TypeError", "map=ok"), "range=SerializationError"),
        row("m.Condition($)", "Lock", NONE, "range=SerializationError"),
        // Dict keys: strings, numbers, bools and chars (here all missing: KeyError).
        row(
            "d[$]",
            "keys",
            Kind("TypeError", "str=KeyError bool=KeyError char=KeyError float=KeyError negf=KeyError neg=KeyError zero=KeyError huge=KeyError max=KeyError min=KeyError nan=KeyError inf=KeyError ninf=KeyError"),
            "range=SerializationError",
        ),
        row(
            "d[$] = 1",
            "keys",
            Kind("TypeError", "str=ok bool=ok char=ok float=ok negf=ok neg=ok zero=ok huge=ok max=ok min=ok nan=ok inf=ok ninf=ok"),
            "range=SerializationError",
        ),
        row(
            "d.get($)",
            "keys",
            Kind("TypeError", "str=ok bool=ok char=ok float=ok negf=ok neg=ok zero=ok huge=ok max=ok min=ok nan=ok inf=ok ninf=ok"),
            "range=SerializationError",
        ),
        row(
            "d.remove($)",
            "keys",
            Kind("TypeError", "str=ok bool=ok char=ok float=ok negf=ok neg=ok zero=ok huge=ok max=ok min=ok nan=ok inf=ok ninf=ok"),
            "range=SerializationError",
        ),
        row("$ in d", "", ANY, ""),
        row(
            "d.get($, 0)",
            "keys",
            Kind("TypeError", "str=ok bool=ok char=ok float=ok negf=ok neg=ok zero=ok huge=ok max=ok min=ok nan=ok inf=ok ninf=ok"),
            "range=SerializationError",
        ),
        row("d.get(\"k\", $)", "", ANY, ""),
        // A namespace's names are the keys' text.
        row("ns[$]", "attribute", Kind("KeyError", "range=SerializationError"), ""),
        row("ns[$] = 1", "", ANY, ""),
        row("d[\"k\"] = $", "", ANY, "range=SerializationError"),
        row("l.push($)", "", ANY, "range=SerializationError"),
        row("l[$]", "ind", INDEX, "range=SerializationError"),
        row("l[$] = 1", "ind", INDEX, "range=SerializationError"),
        row("l.insert($, 0)", "ind", Kind("TypeError", "zero=ok neg=ok huge=ok max=ok min=ok"), "range=SerializationError"),
        row("l.remove($)", "ind", INDEX, "range=SerializationError"),
        row("mv.value = $", "Value", INT32, "range=SerializationError"),
        row("ma[$]", "ind", INDEX, "range=SerializationError"),
        row("ma[$] = 1", "ind", INDEX, "range=SerializationError"),
        row("ma[0] = $", "Array", INT32, "range=SerializationError"),
    ],
    fixed: &[
        fixed("d.pop()", "TypeError", "pop"),
        fixed("l.clear()", "TypeError", "clear"),
        fixed("mv.len()", "TypeError", "len"),
        fixed("ns.len()", "TypeError", "len"),
        fixed("ns.missing", "KeyError", "missing"),
        fixed("m.list([]).pop()", "IndexError", "empty"),
        fixed("m.list([1, \"a\"]).sort()", "TypeError", "compare"),
        // Shut down: every proxy and constructor throws BrokenPipeError; the primitives it
        // made keep working.
        fixed("gd[\"a\"]", "BrokenPipeError", ""),
        fixed("gd[\"a\"] = 2", "BrokenPipeError", ""),
        fixed("gd.keys()", "BrokenPipeError", ""),
        fixed("gd.len()", "BrokenPipeError", ""),
        fixed("gd.get(\"a\")", "BrokenPipeError", ""),
        fixed("\"a\" in gd", "BrokenPipeError", ""),
        fixed("gd.to_string()", "BrokenPipeError", ""),
        fixed("gl[0]", "BrokenPipeError", ""),
        fixed("gl.push(1)", "BrokenPipeError", ""),
        fixed("gl.pop()", "BrokenPipeError", ""),
        fixed("gns.x", "BrokenPipeError", ""),
        fixed("gns.x = 1", "BrokenPipeError", ""),
        fixed("gv.value", "BrokenPipeError", ""),
        fixed("gv.value = 2", "BrokenPipeError", ""),
        fixed("gone.dict()", "BrokenPipeError", ""),
        fixed("gone.list([1])", "BrokenPipeError", ""),
        fixed("gone.Value(\"i\", 0)", "BrokenPipeError", ""),
        fixed("gone.Lock()", "BrokenPipeError", ""),
        fixed("gone.Queue()", "BrokenPipeError", ""),
        fixed("gone.shutdown()", "ok", ""),
        fixed("{ glock.acquire(); glock.release(); }", "ok", ""),
        fixed("{ gq.put(1); gq.get() }", "=1", ""),
    ],
};

const OS_TIME: Family = Family {
    name: "os and time",
    setup: "let me = os::getpid();",
    rows: &[
        // 0 and negative pids signal process groups (all of them, for -1): not tried.
        row("os::kill($)", "pid", Kind("TypeError", "zero=skip neg=skip min=skip huge=ValueError max=ValueError"), ""),
        // Signal 0 only checks that the process exists.
        row(
            "os::kill(me, $)",
            "signal",
            Kind("TypeError", "str=ValueError zero=ok neg=ValueError huge=ValueError max=ValueError min=ValueError"),
            "",
        ),
        // A huge or infinite sleep is a sleep (not tried).
        row("time::sleep($)", "sleep", TIMEOUT, "unit=TypeError float=skip huge=skip max=skip inf=skip"),
    ],
    fixed: &[
        fixed("os::kill(me, \"SIGNOPE\")", "ValueError", "SIGNOPE"),
        fixed("os::kill(2147483647)", "OSError", "kill"),
        fixed("time::sleep(0.001)", "ok", ""),
    ],
};

#[test]
fn process() {
    check(&PROCESS, "spawn");
}

#[test]
fn process_fork() {
    check(&PROCESS, "fork");
}

#[test]
fn exit_codes() {
    check(&EXIT, "spawn");
}

#[test]
fn exit_codes_fork() {
    check(&EXIT, "fork");
}

#[test]
fn context() {
    check(&CONTEXT, "spawn");
}

#[test]
fn connection() {
    check(&CONNECTION, "spawn");
}

#[test]
fn queue() {
    check(&QUEUE, "spawn");
}

#[test]
fn wait() {
    check(&WAIT, "spawn");
}

#[test]
fn locks() {
    check(&LOCKS, "spawn");
}

#[test]
fn condition() {
    check(&CONDITION, "spawn");
}

#[test]
fn barrier() {
    check(&BARRIER, "spawn");
}

#[test]
fn shared_memory() {
    check(&SHARED, "spawn");
}

#[test]
fn pool() {
    check(&POOL, "spawn");
}

#[test]
fn pool_fork() {
    check(&POOL, "fork");
}

#[test]
fn manager() {
    check(&MANAGER, "spawn");
}

#[test]
fn manager_fork() {
    check(&MANAGER, "fork");
}

#[test]
fn os_and_time() {
    check(&OS_TIME, "spawn");
}

/// The table covers what it claims: every value is tried somewhere, and every case id is
/// unique per script.
#[test]
fn tables_are_complete() {
    let families = [
        &PROCESS,
        &EXIT,
        &CONTEXT,
        &CONNECTION,
        &QUEUE,
        &WAIT,
        &LOCKS,
        &CONDITION,
        &BARRIER,
        &SHARED,
        &POOL,
        &MANAGER,
        &OS_TIME,
    ];
    let total: usize = families.iter().map(|f| cases(f).len()).sum();
    assert!(total > 1000, "{total} cases");
    for f in families {
        for r in f.rows {
            for pair in r.kind.1.split_whitespace().chain(r.except.split_whitespace()) {
                let (value, outcome) = pair.split_once('=').expect(pair);
                assert!(VALUES.iter().any(|(n, _)| *n == value), "{}: unknown value {value}", r.call);
                assert!(
                    ["ok", "skip"].contains(&outcome) || outcome.starts_with('=') || TYPES.contains(&outcome),
                    "{}: unknown outcome {outcome}",
                    r.call
                );
            }
        }
    }
}
