//! Listening sockets for the servers of one user: the forkserver's and a manager's.
//!
//! A server listens on a Unix socket in the abstract namespace (no file to clean up; it
//! vanishes with its last descriptor) under a fresh name, `<prefix>-<pid>-<nanos>`, and
//! serves only peers of its own user (`SO_PEERCRED`).

use crate::base::error::{MpError, MpResult};
use nix::sys::socket::{self as sock, AddressFamily, SockFlag, SockType, UnixAddr};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// The kind of socket a server speaks.
pub use nix::sys::socket::SockType as Kind;

/// A fresh listening socket and its name.
pub fn listen(prefix: &str, kind: SockType) -> MpResult<(String, OwnedFd)> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let name = format!("{prefix}-{}-{nanos:x}", std::process::id());
    let listener = sock::socket(AddressFamily::Unix, kind, SockFlag::SOCK_CLOEXEC, None)?;
    sock::bind(listener.as_raw_fd(), &UnixAddr::new_abstract(name.as_bytes())?)?;
    sock::listen(&listener, sock::Backlog::new(128)?)?;
    Ok((name, listener))
}

/// Connects to the server listening at `name`.
pub fn connect(name: &str, kind: SockType) -> std::io::Result<OwnedFd> {
    let fd = sock::socket(AddressFamily::Unix, kind, SockFlag::SOCK_CLOEXEC, None)?;
    let addr = UnixAddr::new_abstract(name.as_bytes())?;
    sock::connect(fd.as_raw_fd(), &addr)?;
    Ok(fd)
}

/// Accepts the next connection if it comes from this user (`None`: nothing to accept, or a
/// peer of another user, whose connection is closed at once).
pub fn accept_same_user(listener: BorrowedFd) -> Option<OwnedFd> {
    accept_same_user_checked(listener).ok().flatten()
}

/// [`accept_same_user`], saying why `accept` failed (out of descriptors: `EMFILE`), so
/// that a server can tell the peer that waits.
pub fn accept_same_user_checked(listener: BorrowedFd) -> std::io::Result<Option<OwnedFd>> {
    let raw = match sock::accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
        Ok(raw) => raw,
        Err(nix::Error::EAGAIN | nix::Error::EINTR | nix::Error::ECONNABORTED) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let conn = crate::base::sys::own_fd(raw);
    let me = nix::unistd::getuid().as_raw();
    Ok(sock::getsockopt(&conn, sock::sockopt::PeerCredentials).is_ok_and(|c| c.uid() == me).then_some(conn))
}

/// The error for a server that cannot be reached.
pub fn unreachable(what: &str, e: std::io::Error) -> MpError {
    MpError::os(&format!("cannot reach the {what}"), e)
}
