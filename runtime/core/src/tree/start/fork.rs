//! The `fork` start method: the child is a copy of this process and calls the target
//! directly, with the parent's engine, functions and closures.
//!
//! The child gets the parent's very values (after a fork they are its own copies), as in
//! Python: an inherited Connection closed in the child is closed there. The parent still
//! encodes them first, so a value that could not cross under spawn fails here too. Nothing
//! is printed twice, because rhai-mp buffers no output across the fork.
//!
//! What a forked child then does (report its outcome, run native entries) belongs to the
//! floor that runs scripts: it reaches this one through [`ForkHooks`], set once at start-up.

use super::popen::Popen;
use crate::base::error::{MpError, MpResult};
use crate::base::sys::{self, Forked};
use crate::mp_err;
use crate::tree::boot::Call;
use crate::tree::state::ChildInfo;
use rhai::NativeCallContext;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;

/// What a forked child does, given by the floor that runs scripts (`run/child.rs`) through
/// [`set_hooks`] at start-up.
#[derive(Debug, Clone, Copy)]
pub struct ForkHooks {
    /// A child forked to make `call` (with the parent's context): its exit code.
    pub run_child: fn(ChildInfo, Call, &NativeCallContext) -> i32,
    /// A fork server's body: serves requests on the listener with its key; never returns.
    pub serve: fn(OwnedFd, &[u8], &NativeCallContext) -> !,
}

static HOOKS: OnceLock<ForkHooks> = OnceLock::new();

/// Sets what forked children do (once, at start-up).
pub fn set_hooks(hooks: ForkHooks) {
    let _ = HOOKS.set(hooks);
}

fn hooks() -> MpResult<ForkHooks> {
    HOOKS.get().copied().ok_or_else(|| {
        mp_err!(RuntimeError, "rhai-mp was not initialized (rhai_mp_core::run::setup::init) before a fork")
    })
}

/// Forks; the child makes the call and exits, the parent gets the [`Popen`].
///
/// A `start()` that throws runs nothing: every descriptor the parent needs is had before
/// the child may run. The child waits for a go-ahead on a pipe made before the fork; the
/// parent closes the pipe's read end right after the fork, which leaves room for the
/// child's pidfd, and says go only once it has it. If it cannot (out of descriptors all the
/// same), the child is killed and reaped before it ran anything.
pub(crate) fn launch(info: ChildInfo, call: Call, ctx: &NativeCallContext) -> MpResult<Popen> {
    let hooks = hooks()?;
    let (go_rx, go_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| MpError::os("cannot start a process (pipe)", std::io::Error::from(e)))?;
    match sys::fork().map_err(|e| MpError::no_process("cannot start a process (fork)", e))? {
        Forked::Parent(pid) => {
            drop(go_rx);
            match Popen::direct(pid) {
                Ok(popen) if sys::write_all(go_tx.as_fd(), &[1]).is_ok() => Ok(popen),
                r => {
                    kill_and_reap(pid);
                    Err(r.err().unwrap_or_else(|| mp_err!(OSError, "cannot start a process: the child is gone")))
                }
            }
        }
        Forked::Child => {
            drop(go_tx);
            let mut go = [0u8; 1];
            if sys::read_exact(go_rx.as_fd(), &mut go).is_err() {
                sys::exit_now(1);
            }
            drop(go_rx);
            let code = (hooks.run_child)(info, call, ctx);
            sys::exit_now(code)
        }
    }
}

/// `e` with `what` before its message.
fn prefix(mut e: MpError, what: &str) -> MpError {
    e.message = format!("{what}: {}", e.message);
    e
}

/// Kills a child that must not go on, and reaps it.
fn kill_and_reap(pid: i32) {
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
}

/// A fork server made from this process as it is now: a forked copy that serves requests
/// (as the forkserver does) by forking children that run their call with the context the
/// server was made in. A fork pool uses one so that it can start workers later from
/// anywhere, even from a `for` loop, which has no context to fork with.
///
/// The server ignores Ctrl-C (its children do not), dies with this process, and is killed
/// when the `Server` is dropped.
#[derive(Debug)]
pub struct Server {
    /// Where it listens (see [`super::forkserver::launch_at`]).
    pub addr: crate::tree::state::ServerAddr,
    popen: Popen,
}

impl Server {
    /// Forks the server from this process as it is now (`ctx`: the running script).
    pub fn start(ctx: &NativeCallContext) -> MpResult<Server> {
        let hooks = hooks()?;
        let (addr, listener) = super::forkserver::listen(super::forkserver::FORK_POOL_PREFIX)
            .map_err(|e| prefix(e, "cannot start the fork pool's server"))?;
        // The server is a copy of this process, descriptors included: these spare ones,
        // closed in it first thing, are its room to serve (a signalfd, a spare, a request).
        let room: Vec<std::fs::File> = (0..3)
            .map(|_| std::fs::File::open("/dev/null"))
            .collect::<std::io::Result<_>>()
            .map_err(|e| MpError::os("cannot start the fork pool's server", e))?;
        match sys::fork().map_err(|e| MpError::no_process("cannot start the fork pool's server (fork)", e))? {
            Forked::Parent(pid) => {
                drop(listener);
                match Popen::direct(pid) {
                    Ok(popen) => Ok(Server { addr, popen }),
                    Err(e) => {
                        kill_and_reap(pid);
                        Err(e)
                    }
                }
            }
            Forked::Child => {
                drop(room);
                (hooks.serve)(listener, &addr.key, ctx)
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.popen.signal(nix::sys::signal::Signal::SIGKILL);
        let _ = self.popen.wait(crate::base::deadline::Deadline::NEVER);
    }
}
