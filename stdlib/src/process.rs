//! `Process`, and the process-tree functions `cpu_count()`, `active_children()`,
//! `current_process()`, `parent_process()` (see the reference, "Process").
//!
//! The machinery (start methods, waiting, Python's rules) is `rhai_mp_core::tree::process::Process`; this
//! file is its Rhai face.

use crate::opts::{self, Opts};
use rhai::plugin::*;
use rhai::{Array, Dynamic, Map, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpResult};
use rhai_mp_core::tree::state::StartMethod;

/// Builds a Process from positional arguments and an option map, for the global
/// `Process(..)` and a context's `ctx.Process(..)`.
pub(crate) fn build(
    method: Option<StartMethod>,
    target: Option<Dynamic>,
    args: Option<Dynamic>,
    opts: Option<Map>,
) -> MpResult<rhai_mp_core::tree::process::Process> {
    let target = target.map(|t| opts::arg_fn(t, "Process", "target")).transpose()?;
    let mut o = Opts::new(opts.unwrap_or_default(), "Process", &["target", "args", "name", "daemon"])?;
    let dup =
        |key: &str| mp_err!(TypeError, "Process() got the '{key}' argument twice (positionally and in the option map)");
    let target = match (target, o.fn_ptr("target")?) {
        (Some(_), Some(_)) => return Err(dup("target")),
        (t, u) => t.or(u),
    };
    let args = match (args, o.items("args")?) {
        (Some(_), Some(_)) => return Err(dup("args")),
        (Some(a), None) => opts::items_or(a, |e| {
            mp_err!(TypeError, "args of Process() must be an array or another iterable: {}", e.message)
        })?,
        (None, a) => a.unwrap_or_default(),
    };
    let name = o.string("name")?;
    let daemon = o.bool("daemon")?;
    Ok(rhai_mp_core::tree::process::Process::new(target, args, name, daemon, method))
}

fn int_or_unit(v: Option<i32>) -> Dynamic {
    v.map_or(Dynamic::UNIT, |x| Dynamic::from(x as INT))
}

/// The Rhai bindings: `Process`, its methods and properties, and the process-tree functions.
#[export_module]
pub mod process_functions {
    use super::*;

    /// A handle on a process: a child made with `Process(..)`, or this process
    /// (`current_process()`) or its parent (`parent_process()`). Copies share one state.
    pub type Process = rhai_mp_core::tree::process::Process;

    /// A process that will call `target()` once started.
    ///
    /// ```rhai
    /// fn work() { print("hi from a child") }
    /// if __name__ == "__main__" {
    ///     let p = Process(work);
    ///     p.start();
    ///     p.join();
    /// }
    /// ```
    ///
    /// Throws when: `target` is not a function pointer or closure (`TypeError`); other
    /// errors surface at `start()`.
    #[rhai_fn(name = "Process", return_raw)]
    pub fn new_target(target: Dynamic) -> Result<Process, Box<EvalAltResult>> {
        Ok(build(None, Some(target), None, None)?)
    }

    /// A process that will call `target(args..)`. `args` is an array (or another iterable).
    ///
    /// ```rhai
    /// let p = Process(|x, y| print(x + y), [1, 2]);
    /// ```
    ///
    /// Throws when: `args` is not iterable (`TypeError`).
    #[rhai_fn(name = "Process", return_raw)]
    pub fn new_target_args(target: Dynamic, args: Dynamic) -> Result<Process, Box<EvalAltResult>> {
        Ok(build(None, Some(target), Some(args), None)?)
    }

    /// A process with options: `#{name, daemon}` (and `args`).
    ///
    /// ```rhai
    /// let p = Process(worker, #{name: "w1", daemon: true});
    /// ```
    ///
    /// Throws when: an option is unknown (`ValueError`) or of the wrong type (`TypeError`).
    #[rhai_fn(name = "Process", return_raw)]
    pub fn new_target_opts(target: Dynamic, opts: Map) -> Result<Process, Box<EvalAltResult>> {
        Ok(build(None, Some(target), None, Some(opts))?)
    }

    /// A process with arguments and options `#{name, daemon}`.
    ///
    /// ```rhai
    /// let p = Process(worker, [1], #{name: "w1"});
    /// ```
    ///
    /// Throws when: `opts` is not an object map, or an option is of the wrong type
    /// (`TypeError`); an option is unknown (`ValueError`).
    #[rhai_fn(name = "Process", return_raw)]
    pub fn new_target_args_opts(target: Dynamic, args: Dynamic, opts: Dynamic) -> Result<Process, Box<EvalAltResult>> {
        let opts = opts::arg_map(opts, "Process", "opts")?;
        Ok(build(None, Some(target), Some(args), Some(opts))?)
    }

    /// A process described by an option map `#{target, args, name, daemon}`.
    ///
    /// ```rhai
    /// let p = Process(#{target: worker, args: [1], name: "w", daemon: true});
    /// ```
    ///
    /// Throws when: an option is unknown (`ValueError`) or of the wrong type (`TypeError`).
    #[rhai_fn(name = "Process", return_raw)]
    pub fn new_opts(opts: Map) -> Result<Process, Box<EvalAltResult>> {
        Ok(build(None, None, None, Some(opts))?)
    }

    /// Starts the process with its context's start method (the default one for `Process`).
    ///
    /// ```rhai
    /// p.start();
    /// ```
    ///
    /// Throws when: it was started before or is not this process's child (`AssertionError`);
    /// it is closed (`ValueError`); this process is a daemon (`AssertionError`); this is a
    /// child still running the script's top level, i.e. the `if __name__ == "__main__"`
    /// guard is missing (`RuntimeError`); the target or an argument cannot be sent
    /// (`SerializationError`); the OS refuses (`OSError`).
    #[rhai_fn(global, return_raw)]
    pub fn start(ctx: NativeCallContext, p: &mut Process) -> Result<(), Box<EvalAltResult>> {
        Ok(p.start(&ctx)?)
    }

    /// Calls the target in this process (what the child does after `start()`).
    ///
    /// ```rhai
    /// Process(|x| print(x), [1]).run();   // prints 1 here
    /// ```
    ///
    /// Throws when: the target throws (the same error).
    #[rhai_fn(global, return_raw)]
    pub fn run(ctx: NativeCallContext, p: &mut Process) -> Result<(), Box<EvalAltResult>> {
        if let Some((f, args)) = p.script_target() {
            let _ = f.call_raw(&ctx, None, args)?;
        }
        Ok(())
    }

    /// Waits until the process ends. On `parent_process()` it waits for the parent to end,
    /// as Python's does.
    ///
    /// ```rhai
    /// p.join();
    /// print(p.exitcode);
    /// ```
    ///
    /// Throws when: it was not started, or is neither this process's child nor its parent
    /// (`AssertionError`); it is closed (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn join(p: &mut Process) -> Result<(), Box<EvalAltResult>> {
        Ok(p.join(Deadline::NEVER)?)
    }

    /// Waits at most `timeout` seconds (`()`: no limit) for the process to end; check
    /// `exitcode` or `is_alive()` to see whether it did.
    ///
    /// ```rhai
    /// p.join(0.5);
    /// if p.is_alive() { p.terminate(); }
    /// ```
    ///
    /// Throws when: as `join()`; `timeout` is negative (`ValueError`) or not a number
    /// (`TypeError`).
    #[rhai_fn(global, name = "join", return_raw)]
    pub fn join_timeout(p: &mut Process, timeout: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let timeout = opts::keyword("join", "timeout", timeout)?.unwrap_or(Dynamic::UNIT);
        Ok(p.join(opts::timeout_deadline(&timeout, "join")?)?)
    }

    /// Whether the process is running (`true` between `start()` and its end).
    ///
    /// ```rhai
    /// while p.is_alive() { time::sleep(0.1); }
    /// ```
    ///
    /// Throws when: it is closed (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn is_alive(p: &mut Process) -> Result<bool, Box<EvalAltResult>> {
        Ok(p.is_alive()?)
    }

    /// Sends SIGTERM (the exit code becomes `-15`). Does nothing if it already ended.
    ///
    /// ```rhai
    /// p.terminate();
    /// p.join();
    /// ```
    ///
    /// Throws when: it was not started (`AssertionError`); it is closed (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn terminate(p: &mut Process) -> Result<(), Box<EvalAltResult>> {
        Ok(p.terminate()?)
    }

    /// Sends SIGINT (Python 3.14): the child gets `KeyboardInterrupt` where it is — one that
    /// catches it goes on, one that does not ends with exit code 1 and a report. Does nothing
    /// if it already ended.
    ///
    /// ```rhai
    /// p.interrupt();
    /// p.join();
    /// ```
    ///
    /// Throws when: it was not started (`AssertionError`); it is closed (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn interrupt(p: &mut Process) -> Result<(), Box<EvalAltResult>> {
        Ok(p.interrupt()?)
    }

    /// Sends SIGKILL (the exit code becomes `-9`). Does nothing if it already ended.
    ///
    /// ```rhai
    /// p.kill();
    /// p.join();
    /// ```
    ///
    /// Throws when: it was not started (`AssertionError`); it is closed (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn kill(p: &mut Process) -> Result<(), Box<EvalAltResult>> {
        Ok(p.kill()?)
    }

    /// Releases the process object's resources; most uses afterwards throw `ValueError`.
    ///
    /// ```rhai
    /// p.join();
    /// p.close();
    /// ```
    ///
    /// Throws when: the process is still running (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn close(p: &mut Process) -> Result<(), Box<EvalAltResult>> {
        Ok(p.close()?)
    }

    /// The process's name (`"Process-1"`, `"Process-1:2"`, `"MainProcess"` …).
    ///
    /// ```rhai
    /// print(current_process().name);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, get = "name", pure)]
    pub fn get_name(p: &mut Process) -> String {
        p.name()
    }

    /// Renames the process (at any time; a started child keeps the name it started with).
    ///
    /// ```rhai
    /// p.name = "worker";
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, set = "name", return_raw)]
    pub fn set_name(p: &mut Process, name: Dynamic) -> Result<(), Box<EvalAltResult>> {
        p.set_name(opts::arg_str(&name, "Process.name", "name")?);
        Ok(())
    }

    /// The process id, or `()` before `start()`.
    ///
    /// ```rhai
    /// p.start();
    /// print(p.pid);
    /// ```
    ///
    /// Throws when: it is closed (`ValueError`).
    #[rhai_fn(global, get = "pid", pure, return_raw)]
    pub fn get_pid(p: &mut Process) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(int_or_unit(p.pid()?))
    }

    /// Same as `pid` (Python's `ident`).
    ///
    /// ```rhai
    /// print(p.ident);
    /// ```
    ///
    /// Throws when: it is closed (`ValueError`).
    #[rhai_fn(global, get = "ident", pure, return_raw)]
    pub fn get_ident(p: &mut Process) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(int_or_unit(p.pid()?))
    }

    /// Whether the process is a daemon: terminated when its parent's script ends, killed
    /// if its parent dies, and not allowed to have children.
    ///
    /// ```rhai
    /// print(p.daemon);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, get = "daemon", pure)]
    pub fn get_daemon(p: &mut Process) -> bool {
        p.daemon()
    }

    /// Makes the process a daemon (or not); only before `start()`.
    ///
    /// ```rhai
    /// p.daemon = true;
    /// p.start();
    /// ```
    ///
    /// Throws when: it has started (`AssertionError`).
    #[rhai_fn(global, set = "daemon", return_raw)]
    pub fn set_daemon(p: &mut Process, daemon: Dynamic) -> Result<(), Box<EvalAltResult>> {
        Ok(p.set_daemon(opts::arg_bool(&daemon, "Process.daemon", "daemon")?)?)
    }

    /// `()` before the start and while running; then `0`, the `exit(n)` code, `1` after
    /// an uncaught error, or `-N` after signal N.
    ///
    /// ```rhai
    /// p.join();
    /// if p.exitcode != 0 { print("failed"); }
    /// ```
    ///
    /// Throws when: it is closed (`ValueError`).
    #[rhai_fn(global, get = "exitcode", pure, return_raw)]
    pub fn get_exitcode(p: &mut Process) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(int_or_unit(p.exitcode()?))
    }

    /// A file descriptor that becomes readable when the process ends (for `wait()`).
    ///
    /// ```rhai
    /// let fd = p.sentinel;
    /// ```
    ///
    /// Throws when: it was not started or is closed (`ValueError`).
    #[rhai_fn(global, get = "sentinel", pure, return_raw)]
    pub fn get_sentinel(p: &mut Process) -> Result<INT, Box<EvalAltResult>> {
        Ok(p.sentinel()? as INT)
    }

    /// Python's repr: `<Process name='Process-1' pid=12 parent=11 started>`.
    ///
    /// ```rhai
    /// print(p);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(p: &mut Process) -> String {
        p.describe()
    }

    /// Whether two handles refer to the same process.
    ///
    /// ```rhai
    /// print(active_children().contains(p));
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "==", pure)]
    pub fn eq(a: &mut Process, b: Process) -> bool {
        a.same(&b)
    }

    /// Whether two handles refer to different processes.
    ///
    /// ```rhai
    /// if p != current_process() { p.join(); }
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "!=", pure)]
    pub fn ne(a: &mut Process, b: Process) -> bool {
        !a.same(&b)
    }

    /// Ends this process with exit code 0 (in a child too: its `exitcode` becomes 0). Cannot
    /// be caught.
    ///
    /// ```rhai
    /// if ARGV.len() == 0 { exit(); }
    /// ```
    ///
    /// Throws when: always (that is how it ends the script), with an error `catch` cannot see.
    #[rhai_fn(name = "exit", return_raw)]
    pub fn exit_zero() -> Result<(), Box<EvalAltResult>> {
        Err(rhai_mp_core::base::error::ExitRequest::exit(&Dynamic::UNIT))
    }

    /// Ends this process with exit code `value` (an int, taken modulo 256; `()` is 0; any
    /// other value is printed on stderr and gives 1, as Python's `sys.exit`).
    ///
    /// ```rhai
    /// fn worker() { exit(3) }   // the child's exitcode becomes 3
    /// ```
    ///
    /// Throws when: always (that is how it ends the script), with an error `catch` cannot see.
    #[rhai_fn(name = "exit", return_raw)]
    pub fn exit_with(value: Dynamic) -> Result<(), Box<EvalAltResult>> {
        Err(rhai_mp_core::base::error::ExitRequest::exit(&value))
    }

    /// The number of CPUs this process may run on.
    ///
    /// ```rhai
    /// print(`${cpu_count()} cores`);
    /// ```
    ///
    /// Throws when: never.
    pub fn cpu_count() -> INT {
        std::thread::available_parallelism().map_or(1, |n| n.get() as INT)
    }

    /// The live children of this process (finished ones are reaped first).
    ///
    /// ```rhai
    /// for p in active_children() { print(`${p.name} is ${p.pid}`); }
    /// ```
    ///
    /// Throws when: never.
    pub fn active_children() -> Array {
        rhai_mp_core::tree::process::active_children().into_iter().map(Dynamic::from).collect()
    }

    /// This process, as a Process (`name`, `pid`, `daemon`).
    ///
    /// ```rhai
    /// print(current_process().name);   // MainProcess, or Process-1 in a child
    /// ```
    ///
    /// Throws when: never.
    pub fn current_process() -> Process {
        Process::current()
    }

    /// The parent process (`name`, `pid`, `is_alive()`), or `()` in the main process.
    /// Under forkserver it is the process that asked for the child, not the server.
    ///
    /// ```rhai
    /// let parent = parent_process();
    /// if parent != () { print(parent.pid); }
    /// ```
    ///
    /// Throws when: never.
    pub fn parent_process() -> Dynamic {
        Process::parent().map_or(Dynamic::UNIT, Dynamic::from)
    }
}

/// process's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::{mirror, section};
    crate::registry::Primitive {
        name: "process",
        group: "Processes and the process tree",
        sections: &[
            section("Process", &[("Process", "p")], &["Process"], &["Process(", "current_process(", "parent_process("]),
            section(
                "The process tree",
                &[],
                &["cpu_count", "active_children", "current_process", "parent_process", "exit"],
                &[],
            ),
        ],
        functions,
        module: None,
        handles: &[],
        machinery: None,
        mirrors: &[
            mirror("cpu_count", &[0]),
            mirror("active_children", &[0]),
            mirror("current_process", &[0]),
            mirror("parent_process", &[0]),
        ],
        managed: &[],
    }
};

/// Registers process's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "process", process_functions);
}
