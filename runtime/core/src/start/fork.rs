//! The `fork` start method: the child is a copy of this process and calls the target
//! directly, with the parent's engine, functions and closures.
//!
//! Caveats: the arguments still go through the wire format (so a value that could not cross
//! under spawn fails here too, and handles are rebuilt the same way); nothing is printed
//! twice because rhai-mp buffers no output across the fork.

use super::Popen;
use crate::child;
use crate::error::MpResult;
use crate::state::ChildInfo;
use crate::sys::{self, Forked};
use crate::wire::{FnTable, Packet};
use rhai::NativeCallContext;

/// Forks; the child runs the call in `packet` and exits, the parent gets the [`Popen`].
pub fn launch(info: ChildInfo, packet: Packet, closures: FnTable, ctx: &NativeCallContext) -> MpResult<Popen> {
    match sys::fork().map_err(|e| crate::MpError::os("fork", e))? {
        Forked::Parent(pid) => Popen::direct(pid),
        Forked::Child => {
            let code = child::run_forked(info, packet, &closures, ctx);
            sys::exit_now(code)
        }
    }
}
