//! Atomic messages over `SOCK_SEQPACKET` Unix sockets: the transport of `Pipe()`
//! connections.
//!
//! Each message is exactly one packet, so any number of processes may send to, or receive
//! from, the same end without ever seeing a torn or interleaved message. A message up to
//! [`INLINE_MAX`] bytes travels inside its packet; a larger one is written to a memfd whose
//! descriptor the packet carries, so a 64 MiB message costs one copy in and one copy out
//! (a copy into the memfd, from the message's pieces, as the wire format's `Segmented`
//! keeps them; then a decode in place, or a copy into the receiver's new vector) rather than
//! thousands of socket writes, and still arrives atomically. Descriptors of handles in the
//! message ride along as `SCM_RIGHTS`.
//!
//! A spilled message's memfd holds a flag page, then the payload. The receiver sets the flag
//! once it is done with the payload. A receiving end that keeps a [`MapCache`] maps the
//! memfds it receives once and reads payloads in place (without one, it `pread`s them).
//! A connection end (a `Pipe()`'s) keeps the last few memfds it sent ([`SpillCache`],
//! [`SPILL_CACHE`] of them) and writes a later message into one whose flag is set, so its
//! pages are reused instead of allocated, faulted in and freed again for every message
//! (that was most of a large message's cost); it writes a reused memfd through a mapping it
//! keeps, a plain copy into pages already there. A memfd only ever carries messages of one
//! connection end, so it shows nothing to a process that could not receive them anyway; the
//! memfds close with the end; a forked child starts afresh.
//!
//! Files:
//!
//! Each file imports only the ones above it in this list:
//!
//! - `packet.rs` — the packet header, and sending and receiving one packet;
//! - `spill.rs` — the sending side of a large message: its memfd, the [`SpillCache`];
//! - `mapped.rs` — the receiving side: a message's [`Payload`], the [`MapCache`];
//! - `mod.rs` — the API: [`send`], [`recv_message`] and the peeks.

use crate::base::sys::io_error as io;
use nix::sys::socket::{recv, MsgFlags};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;

mod mapped;
mod packet;
mod spill;

pub use mapped::{MapCache, MappedPayload, Payload};
use packet::{header, nonblocking, ready, recv_packet, send_packet, HEADER};
pub use packet::{parse_header, Header, Kind};
use spill::{spill_once, SPILL_DATA};
pub use spill::{SpillCache, Spilled, SPILL_CACHE};

/// The largest payload sent inside its packet (below the default socket buffer size).
pub const INLINE_MAX: usize = 64 * 1024;

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

/// Sends one message of `kind`: its payload is `pieces` in order (one piece, or a wire
/// `Segmented` message's), each copied once, straight into the packet or, for a large one,
/// the memfd it travels in — a memfd `cache` keeps for reuse, when the sender keeps one
/// (see the module doc). Blocks while the socket buffer is full.
pub fn send<F: AsRawFd>(
    sock: BorrowedFd,
    kind: Kind,
    pieces: &[&[u8]],
    fds: &[F],
    cache: Option<&SpillCache>,
) -> std::io::Result<()> {
    let len = pieces.iter().map(|p| p.len()).sum::<usize>();
    if len > INLINE_MAX {
        return match cache {
            Some(c) => c.spill(pieces, len)?.send(sock, kind, fds),
            None => Spilled::new(spill_once(pieces)?, len).send(sock, kind, fds),
        };
    }
    let h = header(kind, false, fds.len(), len);
    // (A message in pieces is large: one this small is rare, and joined.)
    let joined;
    let payload = match pieces {
        [one] => *one,
        _ => {
            joined = pieces.concat();
            &joined
        }
    };
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    send_packet(sock, &[IoSlice::new(&h), IoSlice::new(payload)], &raw)
}

/// Receives one message into `buf` (a reusable buffer). `Ok(None)`: the peer closed its end
/// and nothing is left. Waits for one (a signal can stop the wait: `Interrupted`), unless
/// the socket is non-blocking (`WouldBlock`).
///
/// Before it sleeps it polls for a moment, as far as `spin` (the connection's own budget,
/// or the process-wide `base::spin::SHARED`) says polling pays: a reply often comes within
/// microseconds (ping-pong), and polling then saves the sleep and the wake-up (most of a
/// round trip's cost), but not on a crowded machine. A receiving end that keeps the memfds
/// of the large values it received mapped (`maps`) reads such a value's payload in place
/// (see [`MapCache`]); large raw bytes are still copied out, into the vector they are
/// delivered in.
pub fn recv_message(
    sock: BorrowedFd,
    buf: &mut Vec<u8>,
    spin: &crate::base::spin::Spin,
    maps: Option<&MapCache>,
) -> std::io::Result<Option<Message>> {
    buf.resize(HEADER + INLINE_MAX, 0);
    let flags = MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT;
    let mut blocking = None;
    let mut polled = false;
    let (n, mut fds) = loop {
        match recv_packet(sock, buf, flags) {
            Err(nix::Error::EAGAIN) => {
                if *blocking.get_or_insert_with(|| !nonblocking(sock)) {
                    let arrived = !polled && spin.spin_while(|| !ready(sock));
                    polled = true;
                    if !arrived {
                        crate::transport::poll::wait_readable(sock, crate::base::deadline::Deadline::NEVER)?;
                    }
                    continue;
                }
                return Err(io(nix::Error::EAGAIN));
            }
            Err(e) => return Err(io(e)),
            Ok(got) => break got,
        }
    };
    if n == 0 {
        return Ok(None);
    }
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed message");
    let Header { kind, spilled, len, .. } = parse_header(&buf[..n]).ok_or_else(bad)?;
    let data = if spilled {
        if fds.is_empty() {
            return Err(bad());
        }
        let memfd = std::fs::File::from(fds.remove(0));
        let st = nix::sys::stat::fstat(&memfd).map_err(io)?;
        let need = (SPILL_DATA as usize).checked_add(len).ok_or_else(bad)?;
        if (st.st_size as u64) < need as u64 {
            return Err(bad());
        }
        if let Some(maps) = maps {
            let map = maps.map(&memfd, &st, need)?;
            return Ok(Some(Message { kind, data: Payload::Mapped(MappedPayload { map, memfd, len }), fds }));
        }
        let data = crate::base::sys::pread_vec(&memfd, SPILL_DATA, len)?;
        // Read: the sender may reuse the memfd's pages for a later message.
        let _ = memfd.write_all_at(&[1, 0, 0, 0], 0);
        Payload::Inline(data)
    } else {
        Payload::Inline(buf[HEADER..n].to_vec())
    };
    Ok(Some(Message { kind, data, fds }))
}

/// The tag of the next message on a non-blocking socket (the last 8 bytes of its payload,
/// as [`Payload::split_tag`] reads them), without taking the message: `Ok(None)` when no
/// message is waiting; `Ok(Some(0))` for a message without a well-formed tag.
pub fn peek_tag(sock: BorrowedFd) -> std::io::Result<Option<u64>> {
    let mut buf = [0u8; HEADER + 64];
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
    // (Peeking installs copies of the descriptors here; they close on return.)
    let (n, fds) = match recv_packet(sock, &mut buf, flags) {
        Err(nix::Error::EAGAIN) => return Ok(None),
        Err(e) => return Err(io(e)),
        Ok(got) => got,
    };
    if n == 0 {
        return Ok(None);
    }
    let tag = match parse_header(&buf[..n]) {
        Some(Header { spilled: true, len, .. }) if len >= 8 => fds.first().and_then(|fd| {
            let mut t = [0u8; 8];
            let memfd = fd.try_clone().ok().map(std::fs::File::from)?;
            memfd.read_exact_at(&mut t, SPILL_DATA + len as u64 - 8).ok()?;
            Some(u64::from_le_bytes(t))
        }),
        Some(Header { spilled: false, len, .. }) if len >= 8 => {
            buf[HEADER + len - 8..HEADER + len].try_into().ok().map(u64::from_le_bytes)
        }
        _ => None,
    };
    Ok(Some(tag.unwrap_or(0)))
}

/// The kind and length of the next message without taking it; `Ok(None)` at end of stream.
/// Blocks until a message (or the end) is there.
pub fn peek(sock: BorrowedFd) -> std::io::Result<Option<(Kind, usize)>> {
    let mut h = [0u8; HEADER];
    let n = loop {
        match recv(sock.as_raw_fd(), &mut h, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT) {
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EAGAIN) => {
                crate::transport::poll::wait_readable(sock, crate::base::deadline::Deadline::NEVER).map(|_| ())?
            }
            r => break r.map_err(io)?,
        }
    };
    if n == 0 {
        return Ok(None);
    }
    let kind = if h[0] == 1 { Kind::Bytes } else { Kind::Value };
    Ok(Some((kind, u64::from_le_bytes(h[8..16].try_into().unwrap()) as usize)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::fd::AsFd;

    fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![Just(Kind::Value), Just(Kind::Bytes)]
    }

    /// A raw packet on a fresh socket pair, received with [`recv_message`].
    fn receive_raw(packet: &[u8]) -> std::io::Result<Option<Message>> {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).unwrap();
        nix::sys::socket::send(a.as_raw_fd(), packet, MsgFlags::empty()).unwrap();
        drop(a);
        recv_message(b.as_fd(), &mut Vec::new(), &crate::base::spin::SHARED, None)
    }

    #[test]
    fn hostile_headers_are_refused_not_trusted() {
        let mut huge = header(Kind::Value, false, 0, 0);
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut bad_kind = header(Kind::Bytes, false, 0, 0);
        bad_kind[0] = 7;
        let mut bad_flag = header(Kind::Bytes, false, 0, 0);
        bad_flag[1] = 2;
        // Spilled, but no memfd came with it.
        let no_memfd = header(Kind::Bytes, true, 0, 10);
        for packet in [&huge[..], &bad_kind, &bad_flag, &no_memfd, &[0u8; 5], &header(Kind::Value, false, 0, 3)] {
            let err = receive_raw(packet).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{packet:?}");
        }
        let mut ok = header(Kind::Bytes, false, 0, 2).to_vec();
        ok.extend_from_slice(b"hi");
        let m = receive_raw(&ok).unwrap().unwrap();
        assert_eq!((m.kind, &*m.data), (Kind::Bytes, &b"hi"[..]));
    }

    #[test]
    fn fuzz_seeds() {
        let mut inline = header(Kind::Value, false, 0, 3).to_vec();
        inline.extend_from_slice(b"abc");
        let seeds = [inline, header(Kind::Bytes, true, 2, 100_000).to_vec(), header(Kind::Bytes, false, 0, 0).to_vec()];
        for s in &seeds {
            assert!(parse_header(s).is_some());
        }
        crate::base::seeds::write_fuzz_seeds("transport_headers", "seqpacket", &seeds);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn header_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            if let Some(h) = parse_header(&bytes) {
                prop_assert!(h.spilled || bytes.len() == HEADER + h.len);
            }
        }

        #[test]
        fn headers_roundtrip(
            kind in kind(),
            spilled in any::<bool>(),
            nfds in 0usize..=crate::base::sys::MAX_FDS,
            payload in proptest::collection::vec(any::<u8>(), 0..48),
            spilled_len in any::<u64>(),
        ) {
            let len = if spilled { spilled_len as usize } else { payload.len() };
            let mut packet = header(kind, spilled, nfds, len).to_vec();
            if !spilled {
                packet.extend_from_slice(&payload);
            }
            prop_assert_eq!(parse_header(&packet), Some(Header { kind, spilled, nfds, len }));
            if !spilled {
                // One byte too many, or one too few: the length does not match.
                packet.push(0);
                prop_assert_eq!(parse_header(&packet), None);
                packet.truncate(packet.len() - 2);
                prop_assert_eq!(parse_header(&packet), None);
            }
        }
    }
}
