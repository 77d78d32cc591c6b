//! Framed messages with attached file descriptors over Unix stream sockets: the boot
//! message of a spawned child, and the requests a forkserver serves.
//!
//! A frame is a 16-byte header (payload length, descriptor count, magic) followed by the
//! payload. The descriptors ride as `SCM_RIGHTS` on the first `sendmsg` of the frame, so the
//! receiver gets them with the header. More than [`MAX_FDS`] (the kernel's limit for one
//! message) go in several: the header carries the first [`MAX_FDS`], and each further batch
//! rides on one marker byte sent after the header ([`markers`] of them), before the
//! payload. This is the transport only: what the bytes mean is [`crate::wire`]'s business.

use crate::base::sys::read_exact;
use crate::base::sys::{io_error as io_err, MAX_FDS};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

const MAGIC: u32 = 0x524d_5031; // "RMP1"
/// The size of a frame's header.
pub const HEADER: usize = 16;

/// A frame header's payload length and descriptor count (`None`: not a frame header).
/// `h` must be exactly [`HEADER`] bytes. Never panics, whatever the bytes.
pub fn parse_header(h: &[u8]) -> Option<(usize, usize)> {
    let h: &[u8; HEADER] = h.try_into().ok()?;
    if u32::from_le_bytes(h[12..16].try_into().ok()?) != MAGIC {
        return None;
    }
    let len = usize::try_from(u64::from_le_bytes(h[0..8].try_into().ok()?)).ok()?;
    Some((len, u32::from_le_bytes(h[8..12].try_into().ok()?) as usize))
}

fn header(len: usize, nfds: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..8].copy_from_slice(&(len as u64).to_le_bytes());
    h[8..12].copy_from_slice(&(nfds as u32).to_le_bytes());
    h[12..16].copy_from_slice(&MAGIC.to_le_bytes());
    h
}

/// How many marker bytes follow the header of a frame with `nfds` descriptors: one per
/// batch of [`MAX_FDS`] after the first.
pub fn markers(nfds: usize) -> usize {
    nfds.saturating_sub(1) / MAX_FDS
}

/// Sends `bytes` with `fds` (at most [`MAX_FDS`]) attached to their first byte, all of it.
fn send_with(sock: BorrowedFd, bytes: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    let sent = loop {
        match sendmsg::<()>(sock.as_raw_fd(), &[IoSlice::new(bytes)], cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::Error::EINTR) => continue,
            r => break r.map_err(io_err)?,
        }
    };
    crate::base::sys::write_all(sock, &bytes[sent..])
}

/// Sends one frame. Blocks until all of it is written.
pub fn send(sock: BorrowedFd, payload: &[u8], fds: &[OwnedFd]) -> std::io::Result<()> {
    let h = header(payload.len(), fds.len());
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    if raw.len() > MAX_FDS {
        // The header with the first batch, a marker byte with each further one, then the
        // payload.
        let mut batches = raw.chunks(MAX_FDS);
        send_with(sock, &h, batches.next().unwrap_or_default())?;
        for batch in batches {
            send_with(sock, &[0], batch)?;
        }
        return crate::base::sys::write_all(sock, payload);
    }
    let iov = [IoSlice::new(&h), IoSlice::new(payload)];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsg };
    let mut sent = loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::Error::EINTR) => continue,
            r => break r.map_err(io_err)?,
        }
    };
    let total = HEADER + payload.len();
    while sent < total {
        let rest: &[u8] = if sent < HEADER { &h[sent..] } else { &payload[sent - HEADER..] };
        match nix::sys::socket::send(sock.as_raw_fd(), rest, MsgFlags::MSG_NOSIGNAL) {
            Err(nix::Error::EINTR) => continue,
            r => sent += r.map_err(io_err)?,
        }
    }
    Ok(())
}

/// One `recvmsg` into `buf` (retried on EINTR): the bytes read; the descriptors that came
/// with them are appended to `fds`.
fn recv_some(sock: BorrowedFd, buf: &mut [u8], cmsg_buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> std::io::Result<usize> {
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(cmsg_buf), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(io_err(e)),
            Ok(msg) => {
                for c in msg.cmsgs().map_err(io_err)? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        fds.extend(raw.into_iter().map(crate::base::sys::own_fd));
                    }
                }
                return Ok(msg.bytes);
            }
        }
    }
}

/// Receives one frame. `Ok(None)` means the peer closed the socket before a frame began.
pub fn recv(sock: BorrowedFd) -> std::io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut h = [0u8; HEADER];
    let mut fds = Vec::new();
    let mut cmsg_buf = nix::cmsg_space!([RawFd; MAX_FDS]);
    let got = recv_some(sock, &mut h, &mut cmsg_buf, &mut fds)?;
    if got == 0 {
        return Ok(None);
    }
    read_exact(sock, &mut h[got..])?;
    let malformed = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed frame header");
    let (len, nfds) = parse_header(&h).ok_or_else(malformed)?;
    // Further batches of descriptors, one on each marker byte.
    for _ in 0..markers(nfds) {
        if fds.len() >= nfds {
            return Err(malformed());
        }
        let mut marker = [0u8; 1];
        let got = recv_some(sock, &mut marker, &mut cmsg_buf, &mut fds)?;
        if got != 1 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
    }
    if nfds != fds.len() {
        return Err(malformed());
    }
    Ok(Some((read_payload(sock, len)?, fds)))
}

/// The first read of a payload (bytes); later ones may be as large as what came so far.
const FIRST_READ: usize = 64 * 1024;

/// Reads a payload of `len` bytes into a buffer that grows with what arrives (at most
/// doubling), never by what the header announced: a peer that announces a gigabyte and
/// sends three bytes costs three bytes and a little.
fn read_payload(sock: BorrowedFd, len: usize) -> std::io::Result<Vec<u8>> {
    let mut payload = Vec::new();
    while payload.len() < len {
        let at = payload.len();
        let room = (len - at).min(at.max(FIRST_READ));
        payload
            .try_reserve(room)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::OutOfMemory, "message too large"))?;
        payload.resize(at + room, 0);
        let n = loop {
            match nix::unistd::read(sock, &mut payload[at..]) {
                Err(nix::Error::EINTR) => continue,
                r => break r.map_err(io_err)?,
            }
        };
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        payload.truncate(at + n);
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pair() -> (OwnedFd, OwnedFd) {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC).unwrap()
    }

    #[test]
    fn more_descriptors_than_one_message_carries() {
        use std::os::fd::AsFd;
        for n in [0, 1, MAX_FDS, MAX_FDS + 1, 2 * MAX_FDS, 3 * MAX_FDS + 7] {
            let (a, b) = pair();
            let fds: Vec<OwnedFd> = (0..n).map(|_| std::fs::File::open("/dev/null").unwrap().into()).collect();
            let payload: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
            let sender = std::thread::spawn(move || send(a.as_fd(), &payload, &fds).map(|()| payload));
            let (got, got_fds) = recv(b.as_fd()).unwrap().unwrap();
            assert_eq!(got, sender.join().unwrap().unwrap(), "{n}");
            assert_eq!(got_fds.len(), n);
        }
    }

    #[test]
    fn a_header_that_announces_a_huge_payload_allocates_what_arrives() {
        use std::os::fd::AsFd;
        let (a, b) = pair();
        crate::base::sys::write_all(a.as_fd(), &header(1 << 40, 0)).unwrap();
        crate::base::sys::write_all(a.as_fd(), b"abc").unwrap();
        drop(a);
        // Had it allocated what the header said, this would fail with OutOfMemory (or
        // abort); it reads the three bytes and then the end.
        let e = recv(b.as_fd()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn fuzz_seeds() {
        let seeds = [header(5, 0).to_vec(), header(1 << 20, 3).to_vec()];
        crate::base::seeds::write_fuzz_seeds("transport_headers", "stream", &seeds);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn header_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Some((len, nfds)) = parse_header(&bytes) {
                prop_assert_eq!(bytes.len(), HEADER);
                prop_assert_eq!(header(len, nfds), &bytes[..]);
            }
        }

        #[test]
        fn headers_roundtrip(len in any::<u64>(), nfds in any::<u32>(), flip in 0usize..HEADER * 8) {
            let h = header(len as usize, nfds as usize);
            prop_assert_eq!(parse_header(&h), Some((len as usize, nfds as usize)));
            // Any bit flipped in the magic makes it not a frame header.
            let mut bad = h;
            bad[flip / 8] ^= 1 << (flip % 8);
            if flip / 8 >= 12 {
                prop_assert_eq!(parse_header(&bad), None);
            }
            prop_assert_eq!(parse_header(&h[..HEADER - 1]), None);
        }
    }
}
