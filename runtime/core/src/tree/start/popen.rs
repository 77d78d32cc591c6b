//! The parent's view of a running child ([`Popen`]), whatever started it, and what a
//! runtime child's exit code says.

use crate::base::deadline::Deadline;
use crate::base::error::MpResult;
use crate::transport::poll;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// The parent's handle on a started child.
#[derive(Debug)]
pub enum Popen {
    /// Our own child (spawn, fork): reaped with `waitpid`; the sentinel is a pidfd.
    Direct {
        /// Its pid.
        pid: i32,
        /// A descriptor readable once it ended.
        pidfd: OwnedFd,
        /// Its exit code, once known.
        status: Option<i32>,
    },
    /// A forkserver's child: the server sends its exit status down `conn`, the sentinel.
    Served {
        /// Its pid.
        pid: i32,
        /// The connection its exit code arrives on.
        conn: OwnedFd,
        /// Its exit code, once known.
        status: Option<i32>,
    },
    /// A call running on another rank of an MPI job (see `remote.rs`).
    Remote(Box<dyn crate::tree::start::remote::RemoteChild>),
}

/// The exit code of a runtime child (a pool worker, a manager's server) whose re-run of the
/// script's top level hit the missing `__main__` guard: it says nothing, and the process
/// that started it throws the guard's error once.
pub const EXIT_GUARD: i32 = 121;
/// The exit code of a spawned process that did not become a child because its program
/// never called `run_if_child` (an embedding host that forgot to): it leaves at once.
pub const EXIT_NOT_A_CHILD: i32 = 120;
/// The exit code of a runtime child whose re-run of the top level failed otherwise (its
/// error is on stderr): it cannot serve, and is not restarted.
pub const EXIT_BOOT_FAILED: i32 = 122;

/// Python's exit code convention: the exit status, or `-N` after signal N.
fn exitcode(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(-(sig as i32)),
        _ => None,
    }
}

impl Popen {
    /// The handle on our own child `pid`.
    pub fn direct(pid: i32) -> MpResult<Popen> {
        let pidfd = crate::base::sys::pidfd_open(pid)
            .map_err(|e| crate::base::error::MpError::os("cannot start a process (pidfd_open)", e))?;
        Ok(Popen::Direct { pid, pidfd, status: None })
    }

    /// The child's pid.
    pub fn pid(&self) -> i32 {
        match self {
            Popen::Direct { pid, .. } | Popen::Served { pid, .. } => *pid,
            Popen::Remote(r) => r.pid(),
        }
    }

    /// A descriptor that is readable once the child has ended (`None` for a process on
    /// another rank: nothing here becomes readable when it ends).
    pub fn sentinel(&self) -> Option<RawFd> {
        match self {
            Popen::Direct { pidfd, .. } => Some(pidfd.as_raw_fd()),
            Popen::Served { conn, .. } => Some(conn.as_raw_fd()),
            Popen::Remote(_) => None,
        }
    }

    /// The exit code if the child has ended, without blocking.
    pub fn poll(&mut self) -> MpResult<Option<i32>> {
        match self {
            Popen::Direct { status: Some(s), .. } | Popen::Served { status: Some(s), .. } => Ok(Some(*s)),
            Popen::Remote(r) => r.poll(),
            Popen::Direct { pid, status, .. } => {
                match waitpid(Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG)) {
                    Ok(ws) => *status = exitcode(ws),
                    // Reaped elsewhere (should not happen): report it as gone.
                    Err(nix::Error::ECHILD) => *status = Some(255),
                    Err(nix::Error::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(*status)
            }
            Popen::Served { conn, status, .. } => {
                if poll::readable_now(conn.as_fd())? {
                    let mut buf = [0u8; 4];
                    *status = Some(match crate::base::sys::read_exact(conn.as_fd(), &mut buf) {
                        Ok(()) => i32::from_le_bytes(buf),
                        // The server died before reporting: Python says 255 too.
                        Err(_) => 255,
                    });
                }
                Ok(*status)
            }
        }
    }

    /// Waits until `deadline` at most for the child to end; its exit code if it did.
    pub fn wait(&mut self, deadline: Deadline) -> MpResult<Option<i32>> {
        if let Popen::Remote(r) = self {
            return r.wait(deadline);
        }
        loop {
            if let Some(code) = self.poll()? {
                return Ok(Some(code));
            }
            if deadline.passed() {
                return Ok(None);
            }
            // The sentinel is readable once the child ended (a signal can stop the wait).
            if let Some(fd) = self.sentinel() {
                poll::wait_readable(crate::base::sys::borrow_fd(fd), deadline)?;
            }
        }
    }

    /// Sends a signal to the child unless it has already ended.
    pub fn signal(&mut self, sig: Signal) -> MpResult<()> {
        if let Popen::Remote(r) = self {
            return r.signal(sig as i32);
        }
        if self.poll()?.is_none() {
            match nix::sys::signal::kill(Pid::from_raw(self.pid()), sig) {
                Ok(()) | Err(nix::Error::ESRCH) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
