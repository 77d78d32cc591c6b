//! The child side of every start method: how a process that was started as a child becomes
//! one, makes its call, and ends with the right exit code.
//!
//! - spawn: [`run_if_child`] (called first thing in `main`) reads the boot message from
//!   stdin, builds the host's engine, re-runs the script's top level with
//!   `__name__ == "__mp_main__"`, then makes the call.
//! - forkserver: the same entry point, in server mode: the top level runs once, then
//!   [`crate::tree::start::forkserver::serve`] forks a child per request.
//! - fork: [`run_forked`], called in the forked copy with the parent's engine.
//!
//! A call is a script target or a native entry point of the runtime ([`register_entry`]).
//! A child's uncaught error is reported on its stderr, naming it, and gives exit code 1.

use crate::base::error::{ExitRequest, RhaiResult};
use crate::base::sys;
use crate::mp_err;
use crate::run::{interp, report};
use crate::transport::stream;
use crate::tree::boot::{Boot, Call, Mode};
use crate::tree::start::fork::ForkHooks;
use crate::tree::start::popen::{EXIT_BOOT_FAILED, EXIT_GUARD};
use crate::tree::start::spawn::CHILD_ENV;
use crate::tree::{process, start, state};
use crate::wire::{self, Packet};
use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext, Scope, AST};
use std::cell::RefCell;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::sync::RwLock;

/// A native entry point: runtime code a child runs instead of a script target (a pool
/// worker's loop, a manager's server), given the script's context and its typed arguments.
pub type Entry = fn(&NativeCallContext, Packet) -> RhaiResult<()>;

static ENTRIES: RwLock<Vec<(&'static str, Entry)>> = RwLock::new(Vec::new());

/// Registers a native entry point under `name` (once per process, before children start;
/// registering a name again replaces it). A process whose target is
/// [`crate::tree::process::Process::native`]`(name, ..)` runs it.
pub fn register_entry(name: &'static str, entry: Entry) {
    let mut entries = ENTRIES.write().unwrap_or_else(|e| e.into_inner());
    entries.retain(|(n, _)| *n != name);
    entries.push((name, entry));
}

fn entry(name: &str) -> Option<Entry> {
    ENTRIES.read().unwrap_or_else(|e| e.into_inner()).iter().find(|(n, _)| *n == name).map(|(_, e)| *e)
}

/// Makes a decoded call through `ctx` (with the functions of the running script).
fn run(ctx: &NativeCallContext, call: Call) -> RhaiResult {
    match call {
        Call::Nothing => Ok(Dynamic::UNIT),
        Call::Script(f, args) => f.call_raw(ctx, None, args),
        Call::Native(name, payload) => {
            let entry = entry(&name).ok_or_else(|| mp_err!(RuntimeError, "no native entry point '{name}' here"))?;
            entry(ctx, payload).map(|_| Dynamic::UNIT)
        }
    }
}

/// Turns this process into a child if it was started as one (Python's `freeze_support`):
/// runs the target and exits. Returns at once in any other process. Call it first thing in
/// `main` (after `run::setup::init`), before anything else reads stdin or starts threads.
pub fn run_if_child(make_engine: &dyn Fn() -> Engine) {
    let Some(mode) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    std::env::remove_var(CHILD_ENV);
    let code = match mode.to_str() {
        Some("spawn") | Some("forkserver") => boot(make_engine),
        _ => {
            eprintln!("rhai-mp: unknown {CHILD_ENV} value {mode:?}");
            2
        }
    };
    std::process::exit(code)
}

fn boot(make_engine: &dyn Fn() -> Engine) -> i32 {
    let stdin = sys::own_fd(0);
    // The answer that says this program becomes a child when asked to (see
    // `start/spawn.rs`); a parent that no longer listens makes it fail harmlessly.
    let _ = sys::write_all(stdin.as_fd(), &[1]);
    let received = stream::recv(stdin.as_fd());
    drop(stdin);
    let _ = sys::stdin_from_devnull();
    let (bytes, fds) = match received {
        Ok(Some(msg)) => msg,
        Ok(None) | Err(_) => {
            eprintln!("rhai-mp: started as a child process, but no boot message arrived on stdin");
            return 1;
        }
    };
    let boot = match Boot::from_packet(Packet { bytes, fds }) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("rhai-mp: {e}");
            return 1;
        }
    };
    run_boot(make_engine, boot, false)
}

/// Runs this process as a worker rank of an MPI job: the script's top level with
/// `__name__ == "__mp_main__"`, then `boot`'s call (the native entry that serves rank 0),
/// noticing signals as a main process does. Returns the exit code ([`EXIT_GUARD`] or
/// [`EXIT_BOOT_FAILED`] when the top level failed before the entry ran).
///
pub fn run_as_rank(make_engine: &dyn Fn() -> Engine, boot: Boot) -> i32 {
    run_boot(make_engine, boot, true)
}

/// Makes a call encoded with [`Call::encode_script_remote`] through `ctx`.
pub fn run_remote_call(ctx: &NativeCallContext, bytes: &[u8]) -> RhaiResult {
    run(ctx, Call::decode(Packet { bytes: bytes.to_vec(), fds: Vec::new() })?)
}

fn run_boot(make_engine: &dyn Fn() -> Engine, mut boot: Boot, rank: bool) -> i32 {
    become_child(&boot);
    if boot.mode == Mode::Server {
        let _ = sys::set_parent_death_signal(libc::SIGKILL);
        // As Python's: Ctrl-C is for the children, not the server.
        sys::ignore_signal(libc::SIGINT);
    } else if boot.info.daemon && !die_with_parent(Some(boot.info.parent.pid)) {
        return 1;
    }
    let mut engine = make_engine();
    if rank {
        interp::watch_signals(&mut engine);
    } else if boot.mode == Mode::Child && !Call::is_native(&boot.call) {
        // Script code: Ctrl-C throws KeyboardInterrupt here, as in Python (a runtime child —
        // a pool worker, a server — ignores it instead: its parent handles it).
        interp::watch_sigint(&mut engine);
    } else {
        // (A forkserver's children running script code note Ctrl-C with this engine.)
        interp::notice_signals(&mut engine);
    }
    interp::set_names(&mut engine, "__mp_main__");
    let ast = match interp::compile_ast(&engine, &boot.script) {
        Ok(ast) => ast,
        Err(e) => return report(Err(e)),
    };
    wire::set_program(&ast);
    // The script's top level runs again, as in Python (starting a process there is the
    // missing guard), and then, in the same evaluation so that the top level's `const`s are
    // visible as `global::NAME`, a native function takes over: it makes the call (child)
    // or serves fork requests (forkserver).
    state::with(|s| s.bootstrapping = true);
    let call = std::mem::take(&mut boot.call);
    match boot.mode {
        Mode::Child => {
            let call = RefCell::new(Some(call));
            let native = call.borrow().as_ref().is_some_and(Call::is_native);
            engine.register_fn(TAKE_OVER, move |ctx: NativeCallContext| -> RhaiResult {
                state::with(|s| s.bootstrapping = false);
                let call = call.take().ok_or_else(|| mp_err!(RuntimeError, "{TAKE_OVER} called twice"))?;
                run(&ctx, Call::decode(call)?)
            });
            let result = run_then_take_over(&engine, &ast);
            if native && state::with(|s| s.bootstrapping) {
                if let Err(e) = &result {
                    if ExitRequest::of(e).is_none() {
                        return boot_failed(e);
                    }
                }
            }
            finish(report(result))
        }
        Mode::Server => {
            let key = boot.forkserver.as_ref().map(|a| a.key.clone()).unwrap_or_default();
            serve_as_forkserver(engine, &ast, call, key)
        }
    }
}

/// A forkserver: runs the top level, then forks a child per request.
fn serve_as_forkserver(mut engine: Engine, ast: &AST, call: Packet, key: Vec<u8>) -> i32 {
    let listener = Rc::new(RefCell::new(call.fds.into_iter().next()));
    let taken = listener.clone();
    let key2 = key.clone();
    engine.register_fn(TAKE_OVER, move |ctx: NativeCallContext| -> RhaiResult {
        state::with(|s| s.bootstrapping = false);
        let listener = taken.take().ok_or_else(|| mp_err!(RuntimeError, "no listening socket for the forkserver"))?;
        start::forkserver::serve(listener, &key2, |request| {
            enter_served_child(&request);
            finish(report(Call::decode(request.call).map_err(Into::into).and_then(|c| run(&ctx, c))))
        })
    });
    let failure = match run_then_take_over(&engine, ast) {
        Err(e) if ExitRequest::code_of(&e).is_none() => e,
        other => return report(other),
    };
    // The top level failed (the missing guard, say). As with spawn, each child reports that
    // error and exits 1, and the parent carries on.
    let Some(listener) = listener.take() else {
        return report(Err(failure));
    };
    start::forkserver::serve(listener, &key, |request| {
        become_child(&request);
        if Call::is_native(&request.call) {
            return boot_failed(&failure);
        }
        let (name, pid) = who();
        interp::report_error(&failure, Some((&name, pid)));
        1
    })
}

/// A runtime child (pool worker, manager server) whose re-run of the top level failed: the
/// missing guard exits quietly (the parent reports it once), another error is reported
/// here; either way the parent learns from the exit code not to start it again.
fn boot_failed(e: &EvalAltResult) -> i32 {
    if report::type_and_message(report::innermost(e).0).1 == process::guard_error().message {
        return EXIT_GUARD;
    }
    let (name, pid) = who();
    interp::report_error(e, Some((&name, pid)));
    EXIT_BOOT_FAILED
}

/// The native function appended to a child's program: it runs after the top level.
const TAKE_OVER: &str = "__rhai_mp_take_over";

/// Runs the top level, then the take-over function, in one evaluation.
fn run_then_take_over(engine: &Engine, ast: &AST) -> RhaiResult {
    let tail = engine.compile(format!("{TAKE_OVER}()"))?;
    crate::base::vm::run(engine, &mut Scope::new(), &ast.merge(&tail)).map(|_| Dynamic::UNIT)
}

/// A child's outcome as its exit code, reporting an error in its name.
fn report(result: Result<Dynamic, Box<EvalAltResult>>) -> i32 {
    let (name, pid) = who();
    interp::outcome(result, Some((&name, pid)))
}

static AT_FORK: std::sync::Mutex<Vec<fn()>> = std::sync::Mutex::new(Vec::new());

/// Registers a function every forked child (fork and forkserver start methods) runs first:
/// to reseed random number generators, say, which would otherwise repeat the parent's.
/// Registering the same function again has no effect.
pub fn at_fork_child(hook: fn()) {
    let mut hooks = AT_FORK.lock().unwrap_or_else(|e| e.into_inner());
    if !hooks.iter().any(|h| std::ptr::fn_addr_eq(*h, hook)) {
        hooks.push(hook);
    }
}

fn run_fork_hooks() {
    crate::base::interrupt::forget();
    let hooks = AT_FORK.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for hook in hooks {
        hook();
    }
}

/// Makes this process's state the child's described by `boot`.
fn become_child(boot: &Boot) {
    process::enter_child(boot.info.clone());
    state::with(|s| {
        s.script = boot.script.clone();
        s.argv = boot.argv.clone();
        s.forkserver = boot.forkserver.clone();
    });
}

/// A daemon child dies with its parent, even if the parent is SIGKILLed. Returns false if
/// the parent (`expected`) is already gone.
fn die_with_parent(expected: Option<i32>) -> bool {
    let _ = sys::set_parent_death_signal(libc::SIGKILL);
    expected.is_none_or(|p| nix::unistd::getppid().as_raw() == p)
}

fn who() -> (String, i32) {
    (state::with(|s| s.name.clone()), std::process::id() as i32)
}

/// What forked children do: set at start-up (`setup.rs`) as the fork start method's hooks.
pub(crate) const FORK_HOOKS: ForkHooks = ForkHooks { run_child: run_forked, serve: serve_forked };

/// The child side of `fork`: makes the call with the parent's engine (through `ctx`).
fn run_forked(info: state::ChildInfo, call: Call, ctx: &NativeCallContext) -> i32 {
    let parent_pid = info.parent.pid;
    let daemon = info.daemon;
    run_fork_hooks();
    if matches!(call, Call::Script(..)) {
        crate::base::interrupt::install_sigint();
    }
    process::enter_child(info);
    if daemon && !die_with_parent(Some(parent_pid)) {
        return 1;
    }
    finish(report(run(ctx, call)))
}

/// The body of a [`crate::tree::start::fork::Server`]: serves fork requests, each child making its
/// call through `ctx` (the context the server was forked in). Never returns.
fn serve_forked(listener: std::os::fd::OwnedFd, key: &[u8], ctx: &NativeCallContext) -> ! {
    sys::ignore_signal(libc::SIGINT);
    let _ = sys::set_parent_death_signal(libc::SIGKILL);
    start::forkserver::serve(listener, key, |request| {
        enter_served_child(&request);
        finish(report(Call::decode(request.call).map_err(Into::into).and_then(|c| run(ctx, c))))
    })
}

/// The first steps of a child a server forked: fork hooks, Ctrl-C noted for script code,
/// its place in the tree, and death with its parent for a daemon.
fn enter_served_child(request: &Boot) {
    run_fork_hooks();
    if !Call::is_native(&request.call) {
        crate::base::interrupt::install_sigint();
    }
    become_child(request);
    if request.info.daemon {
        die_with_parent(None);
    }
}

/// A child's end: terminate its daemon children, join the others, keep the exit code.
fn finish(code: i32) -> i32 {
    process::at_exit();
    code
}
