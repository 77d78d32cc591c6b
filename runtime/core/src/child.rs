//! The child side of every start method: how a process that was started as a child becomes
//! one, runs its target, and ends with the right exit code.
//!
//! - spawn: [`run_if_child`] (called first thing in `main`) reads the boot message from
//!   stdin, builds the host's engine, re-runs the script's top level with
//!   `__name__ == "__mp_main__"`, then calls the target.
//! - forkserver: the same entry point, in server mode: the top level runs once, then
//!   [`crate::start::forkserver::serve`] forks a child per request.
//! - fork: [`run_forked`], called in the forked copy with the parent's engine.
//!
//! A child's uncaught error is reported on its stderr, naming it, and gives exit code 1.

use crate::boot::{Boot, Mode};
use crate::interp::{self, Interp};
use crate::state::{self, Script};
use crate::wire::{self, FnResolver, FnTable, Packet};
use crate::{channel, process, sys};
use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, NativeCallContext};
use std::os::fd::{AsFd, OwnedFd};

/// The environment variable that marks a process started as a child (`spawn` or
/// `forkserver`); its boot message waits on stdin.
pub const CHILD_ENV: &str = "RHAI_MP_CHILD";

/// Turns this process into a child if it was started as one (Python's `freeze_support`):
/// runs the target and exits. Returns at once in any other process. Call it first thing in
/// `main`, before anything else reads stdin or starts threads.
pub fn run_if_child(make_engine: &dyn Fn() -> Engine) {
    let Some(mode) = std::env::var_os(CHILD_ENV) else { return };
    std::env::remove_var(CHILD_ENV);
    crate::init();
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
    let received = channel::recv(stdin.as_fd());
    drop(stdin);
    let _ = sys::stdin_from_devnull();
    let (bytes, fds) = match received {
        Ok(Some(msg)) => msg,
        Ok(None) | Err(_) => {
            eprintln!("rhai-mp: started as a child process, but no boot message arrived on stdin");
            return 1;
        }
    };
    let boot = match Boot::from_bytes(&bytes) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("rhai-mp: {e}");
            return 1;
        }
    };
    let parent_pid = boot.info.parent.pid;
    become_child(&boot);
    if boot.info.daemon && !die_with_parent(Some(parent_pid)) {
        return 1;
    }
    let interp = match Interp::compile(make_engine(), &boot.script) {
        Ok(i) => i,
        Err(e) => {
            let (name, pid) = who();
            return interp::outcome(Err(e), Some((&name, pid)));
        }
    };
    // The top level runs again, as in Python; starting a process here is the missing guard.
    state::with(|s| s.bootstrapping = true);
    let top = interp.run_top_level("__mp_main__");
    state::with(|s| s.bootstrapping = false);
    if let Err(e) = top {
        let (name, pid) = who();
        return interp::outcome(Err(e), Some((&name, pid)));
    }
    match boot.mode {
        Mode::Child => {
            let code = call_with_engine(&interp, &boot.call, fds, &interp.ast);
            finish(code)
        }
        Mode::Server => {
            let _ = sys::set_parent_death_signal(libc::SIGKILL);
            let mut fds = fds.into_iter();
            let Some(listener) = fds.next() else {
                eprintln!("rhai-mp forkserver: no listening socket in the boot message");
                return 1;
            };
            crate::start::forkserver::serve(listener, |request, fds| {
                become_child(&request);
                if request.info.daemon {
                    die_with_parent(None);
                }
                let code = match &request.script {
                    // A REPL may have defined functions since the server started.
                    Script::Repl { .. } => match interp::compile_ast(&interp.engine, &request.script) {
                        Ok(ast) => call_with_engine(&interp, &request.call, fds, &ast),
                        Err(e) => interp::outcome(Err(e), None),
                    },
                    Script::Source { .. } => call_with_engine(&interp, &request.call, fds, &interp.ast),
                };
                finish(code)
            })
        }
    }
}

/// Makes this process's state the child's described by `boot`.
fn become_child(boot: &Boot) {
    state::enter_child(boot.info.clone());
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

/// Splits a decoded call into its target and arguments.
fn split_call(call: Dynamic) -> Result<(Option<FnPtr>, Array), Box<EvalAltResult>> {
    let bad = || -> Box<EvalAltResult> { crate::mp_err!(SerializationError, "malformed call in boot message").into() };
    let mut parts = call.try_cast::<Array>().ok_or_else(bad)?;
    if parts.len() != 2 {
        return Err(bad());
    }
    let args = parts.pop().and_then(|a| a.try_cast::<Array>()).ok_or_else(bad)?;
    let target = parts.pop().ok_or_else(bad)?;
    let target = if target.is_unit() { None } else { Some(target.try_cast::<FnPtr>().ok_or_else(bad)?) };
    Ok((target, args))
}

/// Decodes the call and runs it with an engine and the AST that defines its functions.
fn call_with_engine(interp: &Interp, call: &[u8], fds: Vec<OwnedFd>, fns: &rhai::AST) -> i32 {
    let result = (|| {
        let call = wire::decode(call, fds, fns as &dyn FnResolver)?;
        let (target, args) = split_call(call)?;
        match target {
            None => Ok(Dynamic::UNIT),
            Some(f) => f.call::<Dynamic>(&interp.engine, fns, args),
        }
    })();
    let (name, pid) = who();
    interp::outcome(result, Some((&name, pid)))
}

/// The child side of `fork`: runs the call with the parent's engine (through `ctx`).
pub fn run_forked(info: state::ChildInfo, packet: Packet, closures: &FnTable, ctx: &NativeCallContext) -> i32 {
    let parent_pid = info.parent.pid;
    let daemon = info.daemon;
    state::enter_child(info);
    if daemon && !die_with_parent(Some(parent_pid)) {
        return 1;
    }
    let result = (|| {
        let call = wire::decode(&packet.bytes, packet.fds, closures)?;
        let (target, args) = split_call(call)?;
        match target {
            None => Ok(Dynamic::UNIT),
            Some(f) => f.call_raw(ctx, None, args),
        }
    })();
    let (name, pid) = who();
    let code = interp::outcome(result, Some((&name, pid)));
    finish(code)
}

/// A child's end: terminate its daemon children, join the others, keep the exit code.
fn finish(code: i32) -> i32 {
    process::at_exit();
    code
}
