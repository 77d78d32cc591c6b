//! Every error type this foundation can raise, with its message.

use crate::common::*;

/// Runs `body` (inside the guard, with helper functions defined) and returns stdout.
fn catch_all(body: &str, method: &str) -> String {
    let src = format!(
        r#"
fn sleeps() {{ time::sleep(30) }}
fn noop() {{}}
fn show(e) {{ print(`${{e.type}}: ${{e.message}}`); }}
if __name__ == "__main__" {{
{body}
}}
"#
    );
    run_script(&src, method).ok().to_string()
}

#[test]
fn assertion_errors() {
    let s = catch_all(
        r#"
    let p = Process(noop);
    try { p.join(); } catch (e) { show(e) }
    try { p.terminate(); } catch (e) { show(e) }
    p.start();
    try { p.start(); } catch (e) { show(e) }
    try { p.daemon = true; } catch (e) { show(e) }
    p.join();
    try { current_process().start(); } catch (e) { show(e) }
    try { current_process().join(); } catch (e) { show(e) }
"#,
        "fork",
    );
    assert_eq!(
        s,
        "AssertionError: can only join a started process\n\
         AssertionError: can only terminate a started process\n\
         AssertionError: cannot start a process twice\n\
         AssertionError: process has already started\n\
         AssertionError: can only start a process object created by current process\n\
         AssertionError: can only join a child process\n"
    );
}

#[test]
fn value_and_type_errors_name_the_option() {
    let s = catch_all(
        r#"
    try { Process(#{target: noop, nmae: "x"}); } catch (e) { show(e) }
    try { Process(noop, #{name: 1}); } catch (e) { show(e) }
    try { Process(noop, #{daemon: "yes"}); } catch (e) { show(e) }
    try { Process(#{target: 3}); } catch (e) { show(e) }
    try { Process(noop, 42); } catch (e) { show(e) }
    try { Process(noop, [], #{args: []}); } catch (e) { show(e) }
    let p = Process(sleeps); p.start();
    try { p.join(-1); } catch (e) { show(e) }
    try { p.join("soon"); } catch (e) { show(e) }
    try { time::sleep(-1); } catch (e) { show(e) }
    try { os::kill(p.pid, "SIGNOPE"); } catch (e) { show(e) }
    p.kill(); p.join();
"#,
        "fork",
    );
    assert_eq!(
        s,
        "ValueError: Process() got an unknown option 'nmae' (it takes: target, args, name, daemon)\n\
         TypeError: option 'name' of Process() must be a string, not i64\n\
         TypeError: option 'daemon' of Process() must be a bool, not string\n\
         TypeError: option 'target' of Process() must be a function pointer, not i64\n\
         TypeError: args of Process() must be an array or another iterable: expected an iterable (array, range, string or blob), not i64\n\
         TypeError: Process() got the 'args' argument twice (positionally and in the option map)\n\
         ValueError: timeout of join() must be non-negative, not -1\n\
         TypeError: timeout of join() must be a number of seconds or (), not string\n\
         ValueError: timeout of time::sleep() must be non-negative, not -1\n\
         ValueError: unknown signal SIGNOPE\n"
    );
}

#[test]
fn iterables_are_accepted_as_args() {
    let s = catch_all(
        r#"
    Process(|a, b, c| print(`${a}${b}${c}`), 1..=3).run();
    Process(|a, b| print(`${a}-${b}`), "xy").run();
    Process(|a, b| print(`${a}+${b}`), blob(2, 7)).run();
"#,
        "fork",
    );
    assert_eq!(s, "123\nx-y\n7+7\n");
}

#[test]
fn serialization_errors_name_what_and_where_before_starting() {
    for m in METHODS {
        let s = catch_all(
            r#"
    let before = active_children().len();
    try { Process(noop, [1, #{items: [0, 1, 2, timestamp()]}]).start(); } catch (e) { show(e) }
    try { Process(noop, [current_process()]).start(); } catch (e) { show(e) }
    let t = timestamp();
    try { Process(|| print(t)).start(); } catch (e) { show(e) }
    let m = #{};
    let f = || m;
    m.f = f;
    try { Process(noop, [f]).start(); } catch (e) { show(e) }
    print(`started: ${active_children().len() - before}`);
"#,
            m,
        );
        assert_eq!(
            s,
            "SerializationError: a value of type 'timestamp' cannot be sent to another process (at args[1].items[3])\n\
             SerializationError: a value of type 'Process' cannot be sent to another process (at args[0])\n\
             SerializationError: a value of type 'timestamp' cannot be sent to another process (at target.captured[0])\n\
             SerializationError: a shared-reference cycle cannot be sent (at args[0].captured[0].f.captured[0])\n\
             started: 0\n",
            "{m}"
        );
    }
}

#[test]
fn os_errors_from_the_system() {
    let s = catch_all(
        r#"
    try { os::kill(2147483000, 0); } catch (e) { print(`${e.type} ${e.errno}`); }
"#,
        "fork",
    );
    assert!(s.starts_with("OSError 3"), "{s}");
}
