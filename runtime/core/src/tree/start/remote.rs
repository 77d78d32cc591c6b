//! The `mpi` start method: a `Process` that runs on a free rank of the MPI job this process
//! is rank 0 of. The ranks' connections live in `rhai-mp-stdlib`'s `cluster` module, which
//! registers the [`Launcher`] at start-up (the hook through which this floor reaches it).

use crate::base::deadline::Deadline;
use crate::base::error::MpResult;
use crate::mp_err;
use crate::tree::place::{mpi_available, unavailable};
use crate::tree::state::ChildInfo;
use std::sync::OnceLock;

/// A process running on another rank, as its parent sees it.
pub trait RemoteChild: std::fmt::Debug {
    /// Its pid (the pid of the rank's process).
    fn pid(&self) -> i32;
    /// Its exit code if it has ended, without blocking.
    fn poll(&mut self) -> MpResult<Option<i32>>;
    /// Waits until `deadline` at most for it to end; its exit code if it did.
    fn wait(&mut self, deadline: Deadline) -> MpResult<Option<i32>>;
    /// Stops it as `sig` would (`terminate()`, `kill()`); the rank itself lives on.
    fn signal(&mut self, sig: i32) -> MpResult<()>;
}

/// Starts a call on a free rank: the child's identity and its call (encoded for another
/// machine, see [`crate::tree::boot::Call::encode_script_remote`]).
pub type Launcher = fn(&ChildInfo, Vec<u8>) -> MpResult<Box<dyn RemoteChild>>;

static LAUNCHER: OnceLock<Launcher> = OnceLock::new();

/// Registers the function that starts processes on other ranks (once).
pub fn set_launcher(launcher: Launcher) {
    let _ = LAUNCHER.set(launcher);
}

/// Starts a call on a free rank (see [`Launcher`]).
pub(crate) fn launch(info: &ChildInfo, call: Vec<u8>) -> MpResult<Box<dyn RemoteChild>> {
    if !mpi_available() {
        return Err(unavailable());
    }
    let launcher = LAUNCHER.get().ok_or_else(|| mp_err!(RuntimeError, "no launcher for the 'mpi' start method"))?;
    launcher(info, call)
}
