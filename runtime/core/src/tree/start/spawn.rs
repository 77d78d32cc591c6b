//! The `spawn` start method: exec a fresh copy of this binary (`/proc/self/exe`, so a host
//! application's own binary, with its own native functions) and hand it a boot message.
//!
//! The child's stdin is one end of a Unix socket pair: the boot message and the descriptors
//! of any handles in the arguments arrive there (`SCM_RIGHTS`), then the child puts
//! `/dev/null` on fd 0, as Python does. Using stdin lets `std::process::Command` take its
//! `posix_spawn` fast path (no `pre_exec` hook).
//!
//! Caveat: the host binary must call `run_if_child` (`run/child.rs`) first thing in
//! `main`, or the child would run the host's own `main`.

use super::popen::{Popen, EXIT_NOT_A_CHILD};
use crate::base::deadline::Deadline;
use crate::base::error::{MpError, MpResult};
use crate::mp_err;
use crate::transport::{poll, stream};
use crate::tree::boot::Boot;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that marks a process started as a child (`spawn` or
/// `forkserver`); its boot message waits on stdin.
pub const CHILD_ENV: &str = "RHAI_MP_CHILD";

/// Whether a child of this binary answered once: then the binary is known to call
/// `run_if_child` (the others are not waited for).
static ANSWERED: AtomicBool = AtomicBool::new(false);
/// How long the first child may take to answer.
const FIRST_ANSWER: f64 = 10.0;

/// The error for a binary whose children never become children.
fn never_a_child(why: &str) -> MpError {
    mp_err!(
        ProcessError,
        "the new process {why}: this program does not call run_if_child() when it is started as a child. A program that embeds rhai-mp must call Runtime::run_if_child() first thing in main (right after Runtime::new() and its registrations), because spawn and forkserver children are the same program started again"
    )
}

/// Waits for the first child's answer (`run/child.rs` sends it first thing).
fn first_answer(sock: &OwnedFd, pid: i32, pidfd: &OwnedFd) -> MpResult<()> {
    if ANSWERED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let ready = poll::wait_any(&[sock.as_fd(), pidfd.as_fd()], Deadline::after_secs(FIRST_ANSWER))?;
    let mut b = [0u8; 1];
    if ready[0] && nix::unistd::read(sock.as_fd(), &mut b).is_ok_and(|n| n == 1) {
        ANSWERED.store(true, Ordering::Relaxed);
        return Ok(());
    }
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    Err(match status {
        Ok(nix::sys::wait::WaitStatus::Exited(_, EXIT_NOT_A_CHILD)) => {
            never_a_child("ran the program's main instead of the call")
        }
        _ if !ready[0] && !ready[1] => never_a_child(&format!("did not answer within {FIRST_ANSWER} s")),
        Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => never_a_child(&format!(
            "ended with exit code {code} before it read what to do (its main returned or exited first)"
        )),
        Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => {
            never_a_child(&format!("was killed by {} before it read what to do", sig.as_str()))
        }
        _ => never_a_child(&format!("ended before it read what to do ({status:?})")),
    })
}

/// Starts a fresh interpreter in `mode` (`"spawn"` or `"forkserver"`) and sends it `boot`;
/// returns the child's pid and pidfd. A failure before the boot message is sent whole
/// (out of descriptors for the pidfd, a boot message that cannot be sent) kills and reaps
/// the child, which ran nothing.
pub(crate) fn exec_self(mode: &str, boot: Boot) -> MpResult<(i32, OwnedFd)> {
    let packet = boot.into_packet()?;
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| MpError::os("cannot start a new rhai-mp process (socketpair)", std::io::Error::from(e)))?;
    // The child gets this program's arguments, as Python's spawn gives a child the parent's
    // sys.argv: a host whose setup reads them (its registrations, its settings) sees the
    // same in its children. run_if_child takes over before anything parses them.
    let child = Command::new("/proc/self/exe")
        .arg0("rhai-mp")
        .args(std::env::args_os().skip(1))
        .env(CHILD_ENV, mode)
        .stdin(Stdio::from(theirs))
        .spawn()
        .map_err(|e| MpError::no_process("cannot start a new rhai-mp process", e))?;
    let pid = child.id() as i32;
    let kill = || {
        let pid = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    };
    let pidfd = crate::base::sys::pidfd_open(pid).map_err(|e| {
        kill();
        MpError::os("cannot start a new rhai-mp process (pidfd_open)", e)
    })?;
    first_answer(&ours, pid, &pidfd)?;
    match stream::send(ours.as_fd(), &packet.bytes, &packet.fds) {
        // The child died before reading: its exit code will tell.
        Err(e) if e.raw_os_error() == Some(libc::EPIPE) || e.raw_os_error() == Some(libc::ECONNRESET) => {}
        Err(e) => {
            kill();
            return Err(MpError::os("cannot send the boot message", e));
        }
        Ok(()) => {}
    }
    Ok((pid, pidfd))
}

/// Spawns a child that will run the call in `boot`.
pub(crate) fn launch(boot: Boot) -> MpResult<Popen> {
    let (pid, pidfd) = exec_self("spawn", boot)?;
    Ok(Popen::Direct { pid, pidfd, status: None })
}
