//! CPython's framing on a stream socket (`multiprocessing.connection.Connection` on Unix):
//! each message is a 4-byte big-endian signed length and the payload; a payload over
//! `0x7fffffff` bytes has `-1` there, then an 8-byte big-endian unsigned length.
//!
//! [`FrameReader`] assembles frames from a socket without blocking, so a connection can be
//! driven by `wait()` and `poll()` and only called ready when a whole message (or the end
//! of the stream) is there: a peer that stalls mid-message never makes a `recv` block after
//! `wait()` said it would not. Small frames are read several at a time into one reused
//! buffer; a big frame's body is read straight into its own vector, which grows only as bytes
//! arrive (it doubles, from 256 KiB, never past the announced length), so a length field alone
//! never makes rhai-mp allocate: a peer that announces 4 GiB and sends nothing costs nothing,
//! and one that sends N bytes costs at most about 2N. With a bound (`recv_bytes(maxlength)`,
//! the handshake's 256 bytes) a longer frame is refused once its header is in, and no more of
//! it is read.

use std::io::{Error, ErrorKind};
use std::os::fd::{AsRawFd, BorrowedFd};

/// The largest payload a 4-byte header announces.
pub(crate) const SHORT_MAX: u64 = 0x7fff_ffff;

/// The header for a payload of `len` bytes, and how many of its bytes are used (4 or 12).
pub(crate) fn header(len: usize) -> ([u8; 12], usize) {
    let mut h = [0u8; 12];
    if len as u64 > SHORT_MAX {
        h[..4].copy_from_slice(&(-1i32).to_be_bytes());
        h[4..].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 12)
    } else {
        h[..4].copy_from_slice(&(len as i32).to_be_bytes());
        (h, 4)
    }
}

/// Why a stream can no longer be read as frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Broken {
    /// A header with a negative length other than -1.
    BadLength(i32),
    /// The peer closed the stream in the middle of a message (`got`, of `want` bytes).
    Torn { got: u64, want: u64 },
}

impl Broken {
    /// The message for the `OSError` it is.
    pub(crate) fn message(&self) -> String {
        match self {
            Broken::BadLength(n) => format!(
                "bad message length: a frame header announces {n} bytes (the stream is not multiprocessing's wire, \
                 or out of step)"
            ),
            Broken::Torn { got, want } => {
                format!("got end of file during message: the peer closed after {got} of its {want} bytes")
            }
        }
    }
}

/// What [`FrameReader::next`] has for the caller.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// A whole frame's payload.
    Frame(Vec<u8>),
    /// Nothing whole yet.
    Pending,
    /// The peer closed the stream between messages.
    Closed,
    /// The stream is broken (sticky: every later call says so again).
    Broken(Broken),
}

/// How much one read into the shared buffer takes at most; frames longer than this are read
/// straight into their own vector.
const CHUNK: usize = 64 * 1024;
/// The first capacity of a big frame's vector (it then doubles as bytes arrive).
const FIRST: usize = 256 * 1024;

/// Assembles frames from a stream socket, reading without blocking.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    /// Storage (zeroed once, reused): bytes read but not yet handed out are `start..end`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// A big frame being read into its own vector: its body so far, and its length.
    big: Option<(Vec<u8>, usize)>,
    /// The peer closed the stream (what is buffered is still handed out).
    eof: bool,
    broken: Option<Broken>,
}

impl FrameReader {
    /// A reader that has already read `bytes` (a connection's unread bytes, from
    /// [`FrameReader::unread`]).
    pub(crate) fn with_bytes(bytes: Vec<u8>) -> FrameReader {
        let end = bytes.len();
        FrameReader { buf: bytes, start: 0, end, ..FrameReader::default() }
    }

    /// The bytes read from the socket and not handed out yet (a partial frame included), as
    /// they came.
    pub(crate) fn unread(&self) -> Vec<u8> {
        match &self.big {
            Some((body, want)) => {
                let (h, n) = header(*want);
                let mut out = h[..n].to_vec();
                out.extend_from_slice(body);
                out
            }
            None => self.buf[self.start..self.end].to_vec(),
        }
    }

    /// The length of the next frame's payload, once its header is in (`Err`: a bad header).
    pub(crate) fn announced(&self) -> Result<Option<u64>, Broken> {
        if let Some((_, want)) = &self.big {
            return Ok(Some(*want as u64));
        }
        parse(&self.buf[self.start..self.end]).map(|h| h.map(|(_, len)| len))
    }

    /// Whether a call to [`FrameReader::next`] would return something other than `Pending`.
    pub(crate) fn ready(&self) -> bool {
        if self.broken.is_some() || self.eof {
            return true;
        }
        match &self.big {
            Some((body, want)) => body.len() == *want,
            None => match parse(&self.buf[self.start..self.end]) {
                Err(_) => true,
                Ok(None) => false,
                Ok(Some((h, len))) => (self.end - self.start - h) as u64 >= len,
            },
        }
    }

    /// Takes the next whole frame, if it is there.
    pub(crate) fn next(&mut self) -> Next {
        if let Some(b) = &self.broken {
            return Next::Broken(b.clone());
        }
        if let Some((body, want)) = &mut self.big {
            if body.len() == *want {
                let (body, _) = self.big.take().unwrap_or_default();
                return Next::Frame(body);
            }
            if self.eof {
                let torn = Broken::Torn { got: body.len() as u64, want: *want as u64 };
                return self.broke(torn);
            }
            return Next::Pending;
        }
        let have = self.end - self.start;
        match parse(&self.buf[self.start..self.end]) {
            Err(b) => self.broke(b),
            Ok(Some((h, len))) if (have - h) as u64 >= len => {
                let at = self.start + h;
                let frame = self.buf[at..at + len as usize].to_vec();
                self.start = at + len as usize;
                if self.start == self.end {
                    (self.start, self.end) = (0, 0);
                }
                Next::Frame(frame)
            }
            Ok(Some((h, len))) if self.eof => self.broke(Broken::Torn { got: (have - h) as u64, want: len }),
            Ok(None) if self.eof && have > 0 => self.broke(Broken::Torn { got: 0, want: 4 }),
            Ok(_) if self.eof => Next::Closed,
            Ok(_) => Next::Pending,
        }
    }

    fn broke(&mut self, b: Broken) -> Next {
        self.broken = Some(b.clone());
        Next::Broken(b)
    }

    /// Reads what the socket has now, without blocking, at most `limit` bytes of frame body
    /// past the current header (`None`: no limit). Returns whether it read anything (or
    /// found the end of the stream); `false`: nothing is there now.
    pub(crate) fn fill(&mut self, fd: BorrowedFd, limit: Option<u64>) -> std::io::Result<bool> {
        if self.eof || self.broken.is_some() {
            return Ok(true);
        }
        if self.big.is_none() {
            if let Ok(Some((h, len))) = parse(&self.buf[self.start..self.end]) {
                if limit.is_some_and(|l| len > l) {
                    return Ok(false); // the caller refuses it
                }
                if (self.end - self.start - h) as u64 >= len {
                    // A whole frame is there: it is taken first. Reading on could bring a
                    // big frame's bytes, and what follows it, into the shared buffer, which
                    // holds no more than the start of the next frame.
                    return Ok(true);
                }
                if len as usize > CHUNK {
                    // Only this frame's bytes are in the buffer (a read never passes it).
                    let want = rhai_mp_core::base::limits::allocation(len as u128, "a message")
                        .map_err(|e| Error::new(ErrorKind::OutOfMemory, e.message))?;
                    let mut body = Vec::with_capacity(want.min(FIRST));
                    body.extend_from_slice(&self.buf[self.start + h..self.end]);
                    (self.start, self.end) = (0, 0);
                    self.big = Some((body, want));
                }
            }
        }
        if let Some((body, want)) = &mut self.big {
            let len = body.len();
            if len == *want {
                return Ok(true);
            }
            if len == body.capacity() {
                let more = len.max(FIRST).min(*want - len);
                body.try_reserve_exact(more).map_err(|_| Error::from(ErrorKind::OutOfMemory))?;
            }
            let room = (body.capacity() - len).min(*want - len);
            return match recv_spare(fd, body, room)? {
                None => Ok(false),
                Some(0) => {
                    self.eof = true;
                    Ok(true)
                }
                Some(_) => Ok(true),
            };
        }
        // Small frames: read into the shared buffer, several at once. The buffer holds the
        // current frame whole (a big one has gone to its own vector above) and grows to it.
        let have = self.end - self.start;
        let need = match parse(&self.buf[self.start..self.end]) {
            Ok(Some((h, len))) => h + len as usize,
            _ => 12,
        };
        if self.start > 0 && (self.buf.len() - self.end < 4096 || self.start + need > self.buf.len()) {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, have);
        }
        let size = need.max(have + 4096).next_power_of_two().max(8192);
        if self.buf.len() < size {
            self.buf.resize(size, 0);
        }
        let room = (self.buf.len() - self.end).min(CHUNK);
        match recv_some(fd, &mut self.buf[self.end..self.end + room])? {
            None => Ok(false),
            Some(0) => {
                self.eof = true;
                Ok(true)
            }
            Some(n) => {
                self.end += n;
                Ok(true)
            }
        }
    }
}

/// A header at the start of `bytes`: its size and the payload's length (`None`: not all
/// of it is there).
fn parse(bytes: &[u8]) -> Result<Option<(usize, u64)>, Broken> {
    if bytes.len() < 4 {
        return Ok(None);
    }
    let n = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    match n {
        0.. => Ok(Some((4, n as u64))),
        -1 if bytes.len() < 12 => Ok(None),
        -1 => {
            let mut l = [0u8; 8];
            l.copy_from_slice(&bytes[4..12]);
            Ok(Some((12, u64::from_be_bytes(l))))
        }
        n => Err(Broken::BadLength(n)),
    }
}

/// One non-blocking read: `None` when nothing is there.
fn recv_some(fd: BorrowedFd, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    use nix::sys::socket::{recv, MsgFlags};
    loop {
        match recv(fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EAGAIN) => return Ok(None),
            Err(e) => return Err(Error::from_raw_os_error(e as i32)),
            Ok(n) => return Ok(Some(n)),
        }
    }
}

/// One non-blocking read of at most `room` bytes into `v`'s spare capacity (no zeroing of
/// a big frame's vector first); `None` when nothing is there.
fn recv_spare(fd: BorrowedFd, v: &mut Vec<u8>, room: usize) -> std::io::Result<Option<usize>> {
    let room = room.min(v.capacity() - v.len());
    let spare = v.spare_capacity_mut();
    loop {
        // SAFETY: `spare` is `v`'s unused capacity, valid for writes of `room` bytes
        // (`room <= spare.len()`); recv writes at most that many and reports how many.
        let n = unsafe { libc::recv(fd.as_raw_fd(), spare.as_mut_ptr().cast(), room, libc::MSG_DONTWAIT) };
        if n >= 0 {
            // SAFETY: recv initialized the first `n <= room` bytes of the spare capacity.
            unsafe { v.set_len(v.len() + n as usize) };
            return Ok(Some(n as usize));
        }
        let e = Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(None),
            _ => return Err(e),
        }
    }
}

/// Writes `pieces` in order (one frame: its header, then its payload), waiting for room
/// when the socket's buffer is full; a signal can stop the wait.
pub(crate) fn send_all(fd: BorrowedFd, pieces: &[&[u8]]) -> std::io::Result<()> {
    use nix::sys::socket::{sendmsg, MsgFlags};
    use std::io::IoSlice;
    let mut piece = 0;
    let mut off = 0;
    while piece < pieces.len() {
        let slices: Vec<IoSlice> = std::iter::once(&pieces[piece][off..])
            .chain(pieces[piece + 1..].iter().copied())
            .take(64)
            .map(IoSlice::new)
            .collect();
        match sendmsg::<()>(fd.as_raw_fd(), &slices, &[], MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT, None) {
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EAGAIN) => rhai_mp_core::transport::poll::wait_writable(fd)?,
            Err(e) => return Err(Error::from_raw_os_error(e as i32)),
            Ok(mut n) => {
                while piece < pieces.len() && n >= pieces[piece].len() - off {
                    n -= pieces[piece].len() - off;
                    piece += 1;
                    off = 0;
                }
                off += n;
            }
        }
    }
    Ok(())
}

/// Sends one frame with `payload`.
pub(crate) fn send_frame(fd: BorrowedFd, payload: &[u8]) -> std::io::Result<()> {
    let (h, n) = header(payload.len());
    send_all(fd, &[&h[..n], payload])
}

/// Reads and takes what `fd` has now: the frames, and the end or breakage if met.
fn drain(r: &mut FrameReader, fd: BorrowedFd) -> Vec<Next> {
    let mut out = Vec::new();
    loop {
        // An error (a length the machine cannot hold) ends the connection: nothing more is
        // read (the connection is as good as broken).
        let Ok(got) = r.fill(fd, None) else {
            out.push(Next::Closed);
            return out;
        };
        loop {
            match r.next() {
                Next::Pending => break,
                n @ (Next::Closed | Next::Broken(_)) => {
                    out.push(n);
                    return out;
                }
                n => out.push(n),
            }
        }
        if !got {
            return out;
        }
    }
}

/// Feeds `bytes` to a reader through a socket pair, in pieces of the given sizes; returns
/// the frames it assembled (for the fuzz target and the property test).
pub(crate) fn feed(bytes: &[u8], pieces: &[usize]) -> usize {
    let Ok((mut a, b)) = std::os::unix::net::UnixStream::pair() else { return 0 };
    let mut r = FrameReader::default();
    let mut frames = 0;
    let mut rest = bytes;
    let mut sizes = pieces.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        if std::io::Write::write_all(&mut a, &rest[..n]).is_err() {
            break;
        }
        rest = &rest[n..];
        for n in drain(&mut r, std::os::fd::AsFd::as_fd(&b)) {
            match n {
                Next::Frame(_) => frames += 1,
                _ => return frames,
            }
        }
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let (h, n) = header(payload.len());
        let mut v = h[..n].to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn frames_arrive_in_pieces_and_big_ones_apart() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut r = FrameReader::default();
        let big = vec![7u8; 200_000];
        let mut stream = frame(b"hello");
        stream.extend(frame(b""));
        stream.extend(frame(&big));
        stream.extend(frame(b"after"));
        let writer = std::thread::spawn(move || {
            for chunk in stream.chunks(3001) {
                a.write_all(chunk).unwrap();
            }
        });
        let mut got = Vec::new();
        while got.len() < 4 {
            nix::poll::poll(
                &mut [nix::poll::PollFd::new(b.as_fd(), nix::poll::PollFlags::POLLIN)],
                nix::poll::PollTimeout::from(1000u16),
            )
            .unwrap();
            got.extend(drain(&mut r, b.as_fd()));
        }
        writer.join().unwrap();
        let lens: Vec<usize> = got.iter().map(|n| if let Next::Frame(f) = n { f.len() } else { usize::MAX }).collect();
        // (the writer's end may be closed by now)
        assert_eq!(lens[..4], [5, 0, big.len(), 5]);
        assert!(got[2] == Next::Frame(big), "the big frame's bytes differ");
        assert!(got[3] == Next::Frame(b"after".to_vec()));
    }

    #[test]
    fn bad_and_torn_frames_are_broken() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut r = FrameReader::default();
        a.write_all(&(-5i32).to_be_bytes()).unwrap();
        assert_eq!(drain(&mut r, b.as_fd()), vec![Next::Broken(Broken::BadLength(-5))]);
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut r = FrameReader::default();
        a.write_all(&[0, 0, 0, 9, 1, 2]).unwrap();
        drop(a);
        assert_eq!(drain(&mut r, b.as_fd()), vec![Next::Broken(Broken::Torn { got: 2, want: 9 })]);
        // A big announced length and nothing more: nothing allocated past what came.
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut r = FrameReader::default();
        a.write_all(&(-1i32).to_be_bytes()).unwrap();
        a.write_all(&(1u64 << 27).to_be_bytes()).unwrap();
        a.write_all(&[1, 2, 3]).unwrap();
        assert!(drain(&mut r, b.as_fd()).is_empty());
        assert!(r.big.as_ref().unwrap().0.capacity() <= FIRST);
        assert_eq!(r.announced(), Ok(Some(1 << 27)));
        drop(a);
        assert!(matches!(drain(&mut r, b.as_fd())[..], [Next::Broken(Broken::Torn { got: 3, .. })]));
        // One the machine cannot hold at all: a MemoryError before anything is allocated.
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut r = FrameReader::default();
        a.write_all(&(-1i32).to_be_bytes()).unwrap();
        a.write_all(&(1u64 << 60).to_be_bytes()).unwrap();
        r.fill(b.as_fd(), None).unwrap();
        assert_eq!(r.fill(b.as_fd(), None).unwrap_err().kind(), ErrorKind::OutOfMemory);
    }

    #[test]
    fn a_bound_stops_before_the_body() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut r = FrameReader::default();
        a.write_all(&frame(&[1; 1000])).unwrap();
        // The first read takes the header (and what follows: it may not know the length yet).
        r.fill(b.as_fd(), Some(10)).unwrap();
        assert_eq!(r.announced(), Ok(Some(1000)));
        assert!(!r.fill(b.as_fd(), Some(10)).unwrap());
    }

    #[test]
    fn a_whole_frame_is_taken_before_more_is_read() {
        // A small frame, then a big one: fill() called again and again before next() reads
        // nothing past the small frame, so the big one still goes to its own vector.
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut r = FrameReader::default();
        let big = vec![3u8; 100_000];
        let mut s = frame(b"small");
        s.extend(frame(&big));
        let writer = std::thread::spawn(move || a.write_all(&s).unwrap());
        while !r.ready() {
            r.fill(b.as_fd(), None).unwrap();
        }
        for _ in 0..10 {
            assert!(r.fill(b.as_fd(), None).unwrap());
        }
        assert_eq!(r.next(), Next::Frame(b"small".to_vec()));
        let mut got = Vec::new();
        while got.is_empty() {
            nix::poll::poll(
                &mut [nix::poll::PollFd::new(b.as_fd(), nix::poll::PollFlags::POLLIN)],
                nix::poll::PollTimeout::from(1000u16),
            )
            .unwrap();
            got.extend(drain(&mut r, b.as_fd()));
        }
        writer.join().unwrap();
        assert!(got[0] == Next::Frame(big), "the big frame's bytes differ");
    }

    #[test]
    fn unread_bytes_travel() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut r = FrameReader::default();
        let mut s = frame(b"one");
        s.extend(frame(&[2; 100_000]));
        a.write_all(&s[..50_000]).unwrap();
        let _ = drain(&mut r, b.as_fd());
        let mut again = FrameReader::with_bytes(r.unread());
        a.write_all(&s[50_000..]).unwrap();
        drop(a);
        let got = drain(&mut again, b.as_fd());
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], Next::Frame(vec![2; 100_000]));
        assert_eq!(got[1], Next::Closed);
    }

    #[test]
    fn headers() {
        assert_eq!(header(5).0[..4], [0, 0, 0, 5]);
        let (h, n) = header(0x8000_0000);
        assert_eq!(n, 12);
        assert_eq!(parse(&h), Ok(Some((12, 0x8000_0000))));
    }

    /// Writes seeds for the fuzz target when `RHAI_MP_FUZZ_SEEDS` names a directory (how
    /// `runtime/fuzz/corpus/listener_frames/` was made): two piece-size bytes, then frames.
    #[test]
    fn fuzz_seeds() {
        let Some(dir) = std::env::var_os("RHAI_MP_FUZZ_SEEDS") else { return };
        let dir = std::path::Path::new(&dir).join("listener_frames");
        std::fs::create_dir_all(&dir).unwrap();
        let mut two = vec![5, 2];
        two.extend(frame(b"\x80\x03N."));
        two.extend(frame(b"hello"));
        let mut long = vec![16, 4, 0xff, 0xff, 0xff, 0xff];
        long.extend_from_slice(&70u64.to_be_bytes());
        long.extend_from_slice(&[1; 70]);
        let mut torn = vec![3, 1];
        torn.extend(&frame(&[9; 40])[..20]);
        for (i, seed) in [two, long, torn].iter().enumerate() {
            std::fs::write(dir.join(format!("frames-{i}")), seed).unwrap();
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        #[test]
        fn any_bytes_in_any_pieces(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            piece in 1usize..40,
        ) {
            feed(&bytes, &[piece]);
        }

        #[test]
        fn frames_round_trip(
            payloads in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..50), 0..8),
            piece in 1usize..30,
        ) {
            let stream: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
            proptest::prop_assert_eq!(feed(&stream, &[piece]), payloads.len());
        }
    }
}
