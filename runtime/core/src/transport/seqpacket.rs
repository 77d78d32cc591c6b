//! Atomic messages over `SOCK_SEQPACKET` Unix sockets: the transport of `Pipe()`
//! connections.
//!
//! Each message is exactly one packet, so any number of processes may send to, or receive
//! from, the same end without ever seeing a torn or interleaved message. A message up to
//! [`INLINE_MAX`] bytes travels inside its packet; a larger one is written to a fresh memfd
//! whose descriptor the packet carries, so a 64 MiB message costs one copy in and one copy
//! out rather than thousands of socket writes, and still arrives atomically. Descriptors of
//! handles in the message ride along as `SCM_RIGHTS`.
//!
//! Packet: a 16-byte header (kind, spilled?, descriptor count, payload length), then the
//! payload if inline.

use super::io_err as io;
use nix::sys::socket::{recv, recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;

/// The largest payload sent inside its packet (below the default socket buffer size).
pub const INLINE_MAX: usize = 64 * 1024;
const HEADER: usize = 16;

/// What a message holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An encoded Rhai value (`send` / `recv`).
    Value = 0,
    /// Raw bytes (`send_bytes` / `recv_bytes`).
    Bytes = 1,
}

/// A received message.
#[derive(Debug)]
pub struct Message {
    /// What it holds.
    pub kind: Kind,
    /// Its bytes.
    pub data: Payload,
    /// The descriptors that came with it.
    pub fds: Vec<OwnedFd>,
}

/// A message's bytes: copied out of the packet, or (large ones) the sender's memfd mapped.
#[derive(Debug)]
pub enum Payload {
    /// Copied out of the packet.
    Inline(Vec<u8>),
    /// The sender's memfd, mapped.
    Mapped(crate::shm::Region),
}

impl std::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Payload::Inline(v) => v,
            Payload::Mapped(r) => r.as_private_slice(),
        }
    }
}

impl Payload {
    /// The bytes as a vector.
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Payload::Inline(v) => v,
            Payload::Mapped(r) => r.as_private_slice().to_vec(),
        }
    }
}

fn header(kind: Kind, spilled: bool, nfds: usize, len: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0] = kind as u8;
    h[1] = spilled as u8;
    h[4..8].copy_from_slice(&(nfds as u32).to_le_bytes());
    h[8..16].copy_from_slice(&(len as u64).to_le_bytes());
    h
}

/// Sends one message. Blocks while the socket buffer is full.
pub fn send(sock: BorrowedFd, kind: Kind, payload: &[u8], fds: &[OwnedFd]) -> std::io::Result<()> {
    send_fds(sock, kind, payload, fds)
}

/// [`send`] with descriptors of any kind (borrowed ones, say).
pub fn send_fds<F: AsRawFd>(sock: BorrowedFd, kind: Kind, payload: &[u8], fds: &[F]) -> std::io::Result<()> {
    let mut raw: Vec<RawFd> = Vec::with_capacity(fds.len() + 1);
    let spill;
    let h;
    let iov_inline;
    let iov_header;
    let iov: &[IoSlice] = if payload.len() <= INLINE_MAX {
        h = header(kind, false, fds.len(), payload.len());
        iov_inline = [IoSlice::new(&h), IoSlice::new(payload)];
        &iov_inline
    } else {
        let region =
            nix::sys::memfd::memfd_create("rhai-mp-message", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).map_err(io)?;
        let file = std::fs::File::from(region);
        file.write_all_at(payload, 0)?;
        spill = file;
        raw.push(spill.as_raw_fd());
        h = header(kind, true, fds.len(), payload.len());
        iov_header = [IoSlice::new(&h)];
        &iov_header
    };
    raw.extend(fds.iter().map(AsRawFd::as_raw_fd));
    if raw.len() > super::MAX_FDS {
        return Err(std::io::Error::other(format!("a message can carry at most {} descriptors", super::MAX_FDS)));
    }
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsg };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), iov, cmsgs, MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT, None) {
            Err(nix::Error::EINTR) => continue,
            // The buffer is full: wait for room (a signal can stop the wait).
            Err(nix::Error::EAGAIN) if !nonblocking(sock) => super::poll::wait_writable(sock)?,
            r => return r.map(|_| ()).map_err(io),
        }
    }
}

/// Whether the socket itself is in non-blocking mode (its owner wants `EAGAIN`).
fn nonblocking(sock: BorrowedFd) -> bool {
    nix::fcntl::fcntl(sock, nix::fcntl::FcntlArg::F_GETFL)
        .is_ok_and(|f| nix::fcntl::OFlag::from_bits_truncate(f).contains(nix::fcntl::OFlag::O_NONBLOCK))
}

/// Receives one message into `buf` (a reusable buffer). `Ok(None)`: the peer closed its end
/// and nothing is left. Waits for one (a signal can stop the wait: `Interrupted`), unless
/// the socket is non-blocking (`WouldBlock`).
pub fn recv_message(sock: BorrowedFd, buf: &mut Vec<u8>) -> std::io::Result<Option<Message>> {
    buf.resize(HEADER + INLINE_MAX, 0);
    let mut cmsg_buf = nix::cmsg_space!([RawFd; super::MAX_FDS]);
    // A reply often comes within microseconds (ping-pong): poll without blocking for a
    // moment first, which saves the sleep and wake-up (most of a round trip's cost).
    let spin_until = std::time::Instant::now() + crate::sys::spin_time();
    let flags = MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT;
    let mut blocking = None;
    let (n, mut fds) = loop {
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg_buf), flags) {
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EAGAIN) => {
                if *blocking.get_or_insert_with(|| !nonblocking(sock)) {
                    if std::time::Instant::now() >= spin_until {
                        super::poll::wait_readable(sock, crate::Deadline::NEVER)?;
                    }
                    continue;
                }
                return Err(io(nix::Error::EAGAIN));
            }
            Err(e) => return Err(io(e)),
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs().map_err(io)? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        fds.extend(raw.into_iter().map(crate::sys::own_fd));
                    }
                }
                break (msg.bytes, fds);
            }
        }
    };
    if n == 0 {
        return Ok(None);
    }
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed message");
    if n < HEADER {
        return Err(bad());
    }
    let kind = match buf[0] {
        0 => Kind::Value,
        1 => Kind::Bytes,
        _ => return Err(bad()),
    };
    let len = u64::from_le_bytes(buf[8..16].try_into().unwrap()) as usize;
    let data = if buf[1] == 1 {
        if fds.is_empty() {
            return Err(bad());
        }
        let memfd = fds.remove(0);
        if nix::sys::stat::fstat(&memfd).map_err(io)?.st_size as usize != len {
            return Err(bad());
        }
        Payload::Mapped(crate::shm::Region::open(memfd, len)?)
    } else {
        if n != HEADER + len {
            return Err(bad());
        }
        Payload::Inline(buf[HEADER..n].to_vec())
    };
    Ok(Some(Message { kind, data, fds }))
}

/// The kind and length of the next message without taking it; `Ok(None)` at end of stream.
/// Blocks until a message (or the end) is there.
pub fn peek(sock: BorrowedFd) -> std::io::Result<Option<(Kind, usize)>> {
    let mut h = [0u8; HEADER];
    let n = loop {
        match recv(sock.as_raw_fd(), &mut h, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT) {
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EAGAIN) => super::poll::wait_readable(sock, crate::Deadline::NEVER).map(|_| ())?,
            r => break r.map_err(io)?,
        }
    };
    if n == 0 {
        return Ok(None);
    }
    let kind = if h[0] == 1 { Kind::Bytes } else { Kind::Value };
    Ok(Some((kind, u64::from_le_bytes(h[8..16].try_into().unwrap()) as usize)))
}
