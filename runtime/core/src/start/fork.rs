//! The `fork` start method: the child is a copy of this process and calls the target
//! directly, with the parent's engine, functions and closures.
//!
//! The child gets the parent's very values (after a fork they are its own copies), as in
//! Python: an inherited Connection closed in the child is closed there. The parent still
//! encodes them first, so a value that could not cross under spawn fails here too. Nothing
//! is printed twice, because rhai-mp buffers no output across the fork.

use super::Popen;
use crate::boot::Call;
use crate::child;
use crate::error::MpResult;
use crate::state::ChildInfo;
use crate::sys::{self, Forked};
use rhai::NativeCallContext;

/// Forks; the child makes the call and exits, the parent gets the [`Popen`].
pub(crate) fn launch(info: ChildInfo, call: Call, ctx: &NativeCallContext) -> MpResult<Popen> {
    match sys::fork().map_err(|e| crate::MpError::os("fork", e))? {
        Forked::Parent(pid) => Popen::direct(pid),
        Forked::Child => {
            let code = child::run_forked(info, call, ctx);
            sys::exit_now(code)
        }
    }
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
    pub addr: super::forkserver::ServerAddr,
    popen: Popen,
}

impl Server {
    /// Forks the server from this process as it is now (`ctx`: the running script).
    pub fn start(ctx: &NativeCallContext) -> MpResult<Server> {
        let (addr, listener) = super::forkserver::ServerAddr::listen("rhai-mp-fork-pool")?;
        match sys::fork().map_err(|e| crate::MpError::os("fork", e))? {
            Forked::Parent(pid) => {
                drop(listener);
                Ok(Server { addr, popen: Popen::direct(pid)? })
            }
            Forked::Child => child::serve_forked(listener, &addr.key, ctx),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.popen.signal(nix::sys::signal::Signal::SIGKILL);
        let _ = self.popen.wait(crate::Deadline::NEVER);
    }
}
