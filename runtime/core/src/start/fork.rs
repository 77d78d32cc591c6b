//! The `fork` start method: the child is a copy of this process and calls the target
//! directly, with the parent's engine, functions and closures.
//!
//! The child gets the parent's very values (after a fork they are its own copies), as in
//! Python: an inherited Connection closed in the child is closed there. The parent still
//! encodes them first, so a value that could not cross under spawn fails here too. Nothing
//! is printed twice, because rhai-mp buffers no output across the fork.

use super::Popen;
use crate::child;
use crate::error::MpResult;
use crate::state::ChildInfo;
use crate::sys::{self, Forked};
use rhai::{Array, Dynamic, NativeCallContext};

/// Forks; the child calls `target(args..)` and exits, the parent gets the [`Popen`].
pub fn launch(info: ChildInfo, target: &Dynamic, args: Array, ctx: &NativeCallContext) -> MpResult<Popen> {
    match sys::fork().map_err(|e| crate::MpError::os("fork", e))? {
        Forked::Parent(pid) => Popen::direct(pid),
        Forked::Child => {
            let code = child::run_forked(info, target, args, ctx);
            sys::exit_now(code)
        }
    }
}
