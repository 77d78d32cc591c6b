//! TCP, for servers that other machines reach (a manager made with an address): addresses
//! as scripts write them (`"host:port"`), listening, connecting in a bounded time, and
//! length-prefixed frames that a non-blocking reader assembles piece by piece.
//!
//! A frame is a 4-byte little-endian payload length, then the payload. The reader checks
//! the length against its bound before it keeps anything, and grows its buffer only as
//! bytes arrive, so a peer that announces 4 GiB and sends nothing costs nothing.
//!
//! Every socket has `TCP_NODELAY` (a request is one small frame: do not wait to batch it)
//! and keepalive probes, so a peer that vanished without closing (a host that lost power)
//! is noticed within a minute or so instead of never.

use crate::base::error::{MpError, MpResult};
use crate::base::sys::io_error as io_err;
use crate::mp_err;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// The size of a frame's header.
pub const HEADER: usize = 4;

/// Splits `"host:port"` (`"[::1]:0"` for an IPv6 literal) and resolves it.
pub fn resolve(address: &str) -> MpResult<Vec<SocketAddr>> {
    let bad = || {
        mp_err!(
            ValueError,
            "a manager address is \"host:port\" (\"127.0.0.1:5000\", \"[::1]:0\", \"localhost:0\"), not {address:?}"
        )
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return Err(bad());
    }
    let found: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| MpError::os(&format!("cannot resolve the host of {address:?}"), e))?
        .collect();
    if found.is_empty() {
        return Err(mp_err!(OSError, "the host of {address:?} has no address"));
    }
    Ok(found)
}

/// The text form of an address: `"127.0.0.1:5000"`, `"[::1]:5000"`.
pub fn text(addr: &SocketAddr) -> String {
    addr.to_string()
}

/// Listens at `address` (port 0: any free port); returns the address it actually has.
pub fn listen(address: &str) -> MpResult<(String, OwnedFd)> {
    let mut last = None;
    for addr in resolve(address)? {
        match TcpListener::bind(addr) {
            Ok(l) => {
                let actual = l.local_addr().map_err(|e| MpError::os("the listening address", e))?;
                return Ok((text(&actual), OwnedFd::from(l)));
            }
            Err(e) => last = Some(e),
        }
    }
    let e = last.unwrap_or_else(|| std::io::ErrorKind::AddrNotAvailable.into());
    Err(MpError::os(&format!("cannot listen at {address:?}"), e))
}

/// Connects to `address`, trying each of its addresses for at most `timeout`. Nothing
/// listening there is `ConnectionRefusedError`; no answer in time is `OSError`.
pub fn connect(address: &str, timeout: Duration) -> MpResult<OwnedFd> {
    let mut last = None;
    for addr in resolve(address)? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                let fd = OwnedFd::from(s);
                tune(fd.as_fd());
                return Ok(fd);
            }
            Err(e) => last = Some(e),
        }
    }
    let e = last.unwrap_or_else(|| std::io::ErrorKind::AddrNotAvailable.into());
    Err(match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            mp_err!(ConnectionRefusedError, "nothing listens at {address} (is the manager's server running?)")
        }
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            mp_err!(OSError, "no answer from {address} within {} s", timeout.as_secs_f64())
        }
        _ => MpError::os(&format!("cannot connect to {address}"), e),
    })
}

/// Accepts the next connection, if one is waiting (the listener is non-blocking).
pub fn accept(listener: BorrowedFd) -> Option<OwnedFd> {
    use nix::sys::socket::{accept4, SockFlag};
    let raw = accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK).ok()?;
    let fd = crate::base::sys::own_fd(raw);
    tune(fd.as_fd());
    Some(fd)
}

/// `TCP_NODELAY` and keepalive probes (idle 10 s, then every 5 s, 6 tries).
fn tune(fd: BorrowedFd) {
    use nix::sys::socket::{setsockopt, sockopt};
    let _ = setsockopt(&fd, sockopt::TcpNoDelay, &true);
    let _ = setsockopt(&fd, sockopt::KeepAlive, &true);
    let _ = setsockopt(&fd, sockopt::TcpKeepIdle, &10);
    let _ = setsockopt(&fd, sockopt::TcpKeepInterval, &5);
    let _ = setsockopt(&fd, sockopt::TcpKeepCount, &6);
}

/// Bounds how long a connection may go on without a sign of life from its peer's host:
/// keepalive probes once it has been idle for a third of `liveness` (then every sixth),
/// and `TCP_USER_TIMEOUT` of `liveness`, so that data or probes left unacknowledged that
/// long (a network partition, a host that lost power) end the connection (`ETIMEDOUT` on
/// its next read or write, and `poll` wakes up). Without it, a request sent into a
/// partition is retransmitted for some 15 minutes before the kernel gives up, and the
/// plain keepalive of [`connect`] / [`accept`] does not run while data is unacknowledged.
/// (A peer that does not read for `liveness` while its receive window is full ends the
/// connection too: use it where peers always read, as a manager's server and clients do.)
pub fn set_liveness(fd: BorrowedFd, liveness: Duration) -> std::io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    let secs = liveness.as_secs_f64();
    let idle = ((secs / 3.0) as u32).max(1);
    let interval = ((secs / 6.0) as u32).max(1);
    setsockopt(&fd, sockopt::KeepAlive, &true).map_err(io_err)?;
    setsockopt(&fd, sockopt::TcpKeepIdle, &idle).map_err(io_err)?;
    setsockopt(&fd, sockopt::TcpKeepInterval, &interval).map_err(io_err)?;
    setsockopt(&fd, sockopt::TcpKeepCount, &(secs as u32 / interval + 2)).map_err(io_err)?;
    let ms = u32::try_from(liveness.as_millis()).unwrap_or(u32::MAX).max(1);
    setsockopt(&fd, sockopt::TcpUserTimeout, &ms).map_err(io_err)?;
    Ok(())
}

/// Puts a socket in non-blocking mode.
pub fn set_nonblocking(fd: BorrowedFd) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(io_err)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(io_err)?;
    Ok(())
}

/// A frame: the header, then `payload`.
pub fn frame(payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let len = u32::try_from(payload.len())
        .map_err(|_| std::io::Error::other(format!("a message of {} bytes is too large to send", payload.len())))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Writes what it can of `buf[*done..]` without blocking; returns whether all of it is
/// written.
pub fn write_some(fd: BorrowedFd, buf: &[u8], done: &mut usize) -> std::io::Result<bool> {
    use nix::sys::socket::{send, MsgFlags};
    while *done < buf.len() {
        match send(fd.as_raw_fd(), &buf[*done..], MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT) {
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EAGAIN) => return Ok(false),
            Err(e) => return Err(io_err(e)),
            Ok(n) => *done += n,
        }
    }
    Ok(true)
}

/// Writes all of `buf`, waiting for room when the socket's buffer is full (a signal can
/// stop the wait: `Interrupted`).
pub fn write_all(fd: BorrowedFd, buf: &[u8]) -> std::io::Result<()> {
    let mut done = 0;
    while !write_some(fd, buf, &mut done)? {
        crate::transport::poll::wait_writable(fd)?;
    }
    Ok(())
}

/// What [`FrameReader::read_from`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// A whole frame's payload.
    Frame(Vec<u8>),
    /// Nothing more to read now (part of a frame may be buffered).
    Pending,
    /// The peer closed the connection between frames.
    Closed,
}

/// Assembles frames from a socket (it reads without blocking). Small frames are read
/// several at a time into one buffer (one `recv` for many messages); a big frame's body
/// is read straight into its own vector. It never holds more than the bound plus a header.
#[derive(Debug)]
pub struct FrameReader {
    /// Storage (zeroed once, reused): bytes read but not yet handed out are `start..end`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// A big frame being read straight into its vector: its body so far, and its length.
    big: Option<(Vec<u8>, usize)>,
    max: usize,
}

/// How much one read takes at most (also a big frame's growth step: never ahead of the
/// bytes that arrive by more).
const GROW: usize = 256 * 1024;
/// A frame longer than this is read straight into its own vector; also the most one read
/// into the shared buffer takes.
const BIG: usize = 64 * 1024;

impl FrameReader {
    /// A reader that refuses frames longer than `max` bytes.
    pub fn new(max: usize) -> FrameReader {
        FrameReader { buf: Vec::new(), start: 0, end: 0, big: None, max }
    }

    /// Changes the bound (a connection that authenticated may send larger frames).
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Whether part of a frame is buffered.
    pub fn mid_frame(&self) -> bool {
        self.buffered() > 0
    }

    /// How many bytes of the current frame are buffered.
    pub fn buffered(&self) -> usize {
        self.end - self.start + self.big.as_ref().map_or(0, |(b, _)| HEADER + b.len())
    }

    /// The length the buffered header announces, if a whole header is there.
    fn announced(&self) -> std::io::Result<Option<usize>> {
        let have = &self.buf[self.start..self.end];
        if have.len() < HEADER {
            return Ok(None);
        }
        let want = u32::from_le_bytes(have[..HEADER].try_into().unwrap()) as usize;
        if want > self.max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a frame of {want} bytes (at most {} allowed)", self.max),
            ));
        }
        Ok(Some(want))
    }

    /// Reads what is there. A frame longer than the bound, or a peer that closes mid-frame,
    /// is an `InvalidData` / `UnexpectedEof` error.
    pub fn read_from(&mut self, fd: BorrowedFd) -> std::io::Result<Read> {
        loop {
            if let Some((body, want)) = &mut self.big {
                while body.len() < *want {
                    let len = body.len();
                    let room = (*want - len).min(GROW.max(body.capacity() - len));
                    body.resize(len + room, 0);
                    match read_some(fd, &mut body[len..]) {
                        Ok(Some(n)) if n > 0 => body.truncate(len + n),
                        Ok(Some(_)) => {
                            body.truncate(len);
                            return Err(std::io::ErrorKind::UnexpectedEof.into());
                        }
                        Ok(None) => {
                            body.truncate(len);
                            return Ok(Read::Pending);
                        }
                        Err(e) => {
                            body.truncate(len);
                            return Err(e);
                        }
                    }
                }
                let (body, _) = self.big.take().unwrap();
                return Ok(Read::Frame(body));
            }
            if let Some(want) = self.announced()? {
                let have = self.end - self.start - HEADER;
                if have >= want {
                    let at = self.start + HEADER;
                    let frame = self.buf[at..at + want].to_vec();
                    self.start = at + want;
                    if self.start == self.end {
                        (self.start, self.end) = (0, 0);
                    }
                    return Ok(Read::Frame(frame));
                }
                if want > BIG {
                    // Only this frame is buffered (a read never goes past the bound).
                    let mut body = Vec::with_capacity(want.min(GROW));
                    body.extend_from_slice(&self.buf[self.start + HEADER..self.end]);
                    (self.start, self.end) = (0, 0);
                    self.big = Some((body, want));
                    continue;
                }
            }
            // Read more: never more than the bound plus a header in all.
            let len = self.end - self.start;
            let room = self.max.saturating_add(HEADER).saturating_sub(len).clamp(1, BIG);
            if self.buf.len() - self.end < room {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, len);
                if self.buf.len() < len + room {
                    self.buf.resize(len + room, 0);
                }
            }
            match read_some(fd, &mut self.buf[self.end..self.end + room])? {
                Some(0) if len == 0 => return Ok(Read::Closed),
                Some(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Some(n) => self.end += n,
                None => return Ok(Read::Pending),
            }
        }
    }
}

/// One non-blocking read: `None` when nothing is there.
fn read_some(fd: BorrowedFd, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    use nix::sys::socket::{recv, MsgFlags};
    loop {
        match recv(fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EAGAIN) => return Ok(None),
            Err(e) => return Err(io_err(e)),
            Ok(n) => return Ok(Some(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn frames_arrive_in_pieces() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut a = a;
        let mut r = FrameReader::new(100);
        assert_eq!(r.read_from(b.as_fd()).unwrap(), Read::Pending);
        let f = frame(b"hello").unwrap();
        a.write_all(&f[..2]).unwrap();
        assert_eq!(r.read_from(b.as_fd()).unwrap(), Read::Pending);
        assert!(r.mid_frame());
        a.write_all(&f[2..6]).unwrap();
        assert_eq!(r.read_from(b.as_fd()).unwrap(), Read::Pending);
        a.write_all(&f[6..]).unwrap();
        assert_eq!(r.read_from(b.as_fd()).unwrap(), Read::Frame(b"hello".to_vec()));
        a.write_all(&frame(b"").unwrap()).unwrap();
        assert_eq!(r.read_from(b.as_fd()).unwrap(), Read::Frame(vec![]));
        drop(a);
        assert_eq!(r.read_from(b.as_fd()).unwrap(), Read::Closed);
    }

    #[test]
    fn oversized_and_torn_frames_are_errors() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut r = FrameReader::new(10);
        a.write_all(&u32::MAX.to_le_bytes()).unwrap();
        assert_eq!(r.read_from(b.as_fd()).unwrap_err().kind(), std::io::ErrorKind::InvalidData);
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut r = FrameReader::new(10);
        a.write_all(&[5, 0, 0, 0, 1]).unwrap();
        drop(a);
        assert_eq!(r.read_from(b.as_fd()).unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Any bytes, in any pieces: frames come out whole, never over the bound, and
        /// whatever follows an error is never read as a frame.
        #[test]
        fn any_bytes_in_any_pieces(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            piece in 1usize..40,
            max in 0usize..64,
        ) {
            let (mut a, b) = UnixStream::pair().unwrap();
            let mut r = FrameReader::new(max);
            let mut failed = false;
            for chunk in bytes.chunks(piece) {
                if failed {
                    break; // nothing reads any more: a writer would fill the buffer
                }
                a.write_all(chunk).unwrap();
                while !failed {
                    match r.read_from(b.as_fd()) {
                        Ok(Read::Frame(f)) => proptest::prop_assert!(f.len() <= max),
                        Ok(_) => break,
                        Err(_) => failed = true,
                    }
                }
            }
        }

        /// Frames written back to back come out as written, whatever the pieces.
        #[test]
        fn frames_round_trip(
            payloads in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..50), 0..8),
            piece in 1usize..30,
        ) {
            let stream: Vec<u8> = payloads.iter().flat_map(|p| frame(p).unwrap()).collect();
            let (mut a, b) = UnixStream::pair().unwrap();
            let mut r = FrameReader::new(64);
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                a.write_all(chunk).unwrap();
                while let Ok(Read::Frame(f)) = r.read_from(b.as_fd()) {
                    got.push(f);
                }
            }
            proptest::prop_assert_eq!(got, payloads);
        }
    }

    #[test]
    fn addresses() {
        assert!(resolve("127.0.0.1:0").is_ok());
        assert!(resolve("[::1]:80").is_ok());
        assert!(resolve("localhost:0").is_ok());
        for bad in ["", "127.0.0.1", ":80", "host:port", "1.2.3.4:99999", "[::1]"] {
            assert_eq!(resolve(bad).unwrap_err().kind, crate::base::error::ErrorKind::ValueError, "{bad}");
        }
    }
}
