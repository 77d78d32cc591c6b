//! How bytes and descriptors travel between processes (what they mean is
//! [`crate::wire`]'s business):
//!
//! - [`seqpacket`]: atomic messages over `SOCK_SEQPACKET` sockets (pipes, a queue's
//!   descriptor side channel, a manager's connections), large ones in a memfd;
//! - [`stream`]: framed messages over stream sockets (a spawned child's boot message, the
//!   forkserver's requests);
//! - [`listener`]: listening sockets in the abstract namespace that only this user may
//!   reach (the forkserver's, a manager's);
//! - [`tcp`]: addresses, listening and connecting over TCP, and length-prefixed frames (a
//!   manager that other machines reach);
//! - [`poll`]: waiting for descriptors to become readable.

pub mod listener;
pub mod poll;
pub mod seqpacket;
pub mod stream;
pub mod tcp;

/// The kernel's limit on descriptors in one message (SCM_MAX_FD).
pub const MAX_FDS: usize = 253;

pub(crate) fn io_err(e: nix::Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}
