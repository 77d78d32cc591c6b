//! Framed messages with attached file descriptors over Unix stream sockets: the boot
//! message of a spawned child, and the requests a forkserver serves.
//!
//! A frame is a 16-byte header (payload length, descriptor count, magic) followed by the
//! payload. The descriptors ride as `SCM_RIGHTS` on the first `sendmsg` of the frame, so the
//! receiver gets them with the header. This is the transport only: what the bytes mean is
//! [`crate::wire`]'s business.

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

/// Sends one frame. Blocks until all of it is written.
pub fn send(sock: BorrowedFd, payload: &[u8], fds: &[OwnedFd]) -> std::io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(std::io::Error::other(format!("cannot pass more than {MAX_FDS} descriptors in one message")));
    }
    let h = header(payload.len(), fds.len());
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
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

/// Receives one frame. `Ok(None)` means the peer closed the socket before a frame began.
pub fn recv(sock: BorrowedFd) -> std::io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut h = [0u8; HEADER];
    let mut fds = Vec::new();
    let mut cmsg_buf = nix::cmsg_space!([RawFd; MAX_FDS]);
    let got = loop {
        let mut iov = [IoSliceMut::new(&mut h)];
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg_buf), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(io_err(e)),
            Ok(msg) => {
                for c in msg.cmsgs().map_err(io_err)? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        fds.extend(raw.into_iter().map(crate::base::sys::own_fd));
                    }
                }
                break msg.bytes;
            }
        }
    };
    if got == 0 {
        return Ok(None);
    }
    read_exact(sock, &mut h[got..])?;
    let (len, _) = parse_header(&h)
        .filter(|&(_, nfds)| nfds == fds.len())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed frame header"))?;
    let mut payload = Vec::new();
    payload
        .try_reserve_exact(len)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::OutOfMemory, "message too large"))?;
    payload.resize(len, 0);
    read_exact(sock, &mut payload)?;
    Ok(Some((payload, fds)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
