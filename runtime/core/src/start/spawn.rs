//! The `spawn` start method: exec a fresh copy of this binary (`/proc/self/exe`, so a host
//! application's own binary, with its own native functions) and hand it a boot message.
//!
//! The child's stdin is one end of a Unix socket pair: the boot message and the descriptors
//! of any handles in the arguments arrive there (`SCM_RIGHTS`), then the child puts
//! `/dev/null` on fd 0, as Python does. Using stdin lets `std::process::Command` take its
//! `posix_spawn` fast path (no `pre_exec` hook).
//!
//! Caveat: the host binary must call [`crate::child::run_if_child`] first thing in `main`,
//! or the child would run the host's own `main`.

use super::Popen;
use crate::boot::Boot;
use crate::child::CHILD_ENV;
use crate::error::{MpError, MpResult};
use crate::transport::stream;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Starts a fresh interpreter in `mode` (`"spawn"` or `"forkserver"`) and sends it `boot`.
pub(crate) fn exec_self(mode: &str, boot: Boot) -> MpResult<i32> {
    let packet = boot.into_packet()?;
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)?;
    let child = Command::new("/proc/self/exe")
        .arg0("rhai-mp")
        .env(CHILD_ENV, mode)
        .stdin(Stdio::from(theirs))
        .spawn()
        .map_err(|e| MpError::os("cannot start a new rhai-mp process", e))?;
    let pid = child.id() as i32;
    match stream::send(ours.as_fd(), &packet.bytes, &packet.fds) {
        // The child died before reading: its exit code will tell.
        Err(e) if e.raw_os_error() == Some(libc::EPIPE) || e.raw_os_error() == Some(libc::ECONNRESET) => {}
        Err(e) => return Err(MpError::os("cannot send the boot message", e)),
        Ok(()) => {}
    }
    Ok(pid)
}

/// Spawns a child that will run the call in `boot`.
pub(crate) fn launch(boot: Boot) -> MpResult<Popen> {
    let pid = exec_self("spawn", boot)?;
    Popen::direct(pid)
}
