//! The packet: a 16-byte header (kind, spilled?, descriptor count, payload length), then
//! the payload if inline; and the system calls that send and receive one.

use crate::base::sys::io_error as io;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// The length of a packet's header.
pub(super) const HEADER: usize = 16;

/// What a message holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An encoded Rhai value (`send` / `recv`).
    Value = 0,
    /// Raw bytes (`send_bytes` / `recv_bytes`).
    Bytes = 1,
}

/// A packet's header, as [`parse_header`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the message holds.
    pub kind: Kind,
    /// Whether the payload travels in a memfd (the packet's first descriptor) rather than
    /// inside the packet.
    pub spilled: bool,
    /// The number of handle descriptors the sender attached (after the memfd, if spilled).
    pub nfds: usize,
    /// The payload's length in bytes.
    pub len: usize,
}

/// Reads the header of a received packet (`packet` is all of it, as received): `None`
/// unless it is well formed — a known kind, a spilled flag of 0 or 1, and for an inline
/// payload exactly `len` bytes after the header. Never panics, whatever the bytes.
pub fn parse_header(packet: &[u8]) -> Option<Header> {
    let h: &[u8; HEADER] = packet.get(..HEADER)?.try_into().ok()?;
    let kind = match h[0] {
        0 => Kind::Value,
        1 => Kind::Bytes,
        _ => return None,
    };
    let spilled = match h[1] {
        0 => false,
        1 => true,
        _ => return None,
    };
    let nfds = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
    let len = usize::try_from(u64::from_le_bytes(h[8..16].try_into().ok()?)).ok()?;
    if !spilled && HEADER.checked_add(len) != Some(packet.len()) {
        return None;
    }
    Some(Header { kind, spilled, nfds, len })
}

pub(super) fn header(kind: Kind, spilled: bool, nfds: usize, len: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0] = kind as u8;
    h[1] = spilled as u8;
    h[4..8].copy_from_slice(&(nfds as u32).to_le_bytes());
    h[8..16].copy_from_slice(&(len as u64).to_le_bytes());
    h
}

/// Sends one packet with the descriptors `raw`. Blocks while the socket buffer is full
/// (unless the socket is non-blocking: `WouldBlock`).
pub(super) fn send_packet(sock: BorrowedFd, iov: &[IoSlice], raw: &[RawFd]) -> std::io::Result<()> {
    if raw.len() > crate::base::sys::MAX_FDS {
        return Err(std::io::Error::other(format!(
            "a message can carry at most {} descriptors",
            crate::base::sys::MAX_FDS
        )));
    }
    let cmsg = [ControlMessage::ScmRights(raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsg };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), iov, cmsgs, MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT, None) {
            Err(nix::Error::EINTR) => continue,
            // The buffer is full: wait for room (a signal can stop the wait).
            Err(nix::Error::EAGAIN) if !nonblocking(sock) => crate::transport::poll::wait_writable(sock)?,
            r => return r.map(|_| ()).map_err(io),
        }
    }
}

/// Whether the socket itself is in non-blocking mode (its owner wants `EAGAIN`).
pub(super) fn nonblocking(sock: BorrowedFd) -> bool {
    nix::fcntl::fcntl(sock, nix::fcntl::FcntlArg::F_GETFL)
        .is_ok_and(|f| nix::fcntl::OFlag::from_bits_truncate(f).contains(nix::fcntl::OFlag::O_NONBLOCK))
}

/// Whether a packet (or the end of the stream) is waiting on `sock`, without waiting.
pub(super) fn ready(sock: BorrowedFd) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut p = [PollFd::new(sock, PollFlags::POLLIN)];
    !matches!(poll(&mut p, PollTimeout::ZERO), Ok(0))
}

/// One `recvmsg` into `buf` (retried on `EINTR`): the packet's length and the descriptors
/// that came with it (`EAGAIN` and other errors as they are).
pub(super) fn recv_packet(sock: BorrowedFd, buf: &mut [u8], flags: MsgFlags) -> nix::Result<(usize, Vec<OwnedFd>)> {
    let mut cmsg_buf = nix::cmsg_space!([RawFd; crate::base::sys::MAX_FDS]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg_buf), flags) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        fds.extend(raw.into_iter().map(crate::base::sys::own_fd));
                    }
                }
                return Ok((msg.bytes, fds));
            }
        }
    }
}
