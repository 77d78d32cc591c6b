//! Atomic messages over `SOCK_SEQPACKET` Unix sockets: the transport of `Pipe()`
//! connections.
//!
//! Each message is exactly one packet, so any number of processes may send to, or receive
//! from, the same end without ever seeing a torn or interleaved message. A message up to
//! [`INLINE_MAX`] bytes travels inside its packet; a larger one is written to a memfd whose
//! descriptor the packet carries, so a 64 MiB message costs one copy in and one copy out
//! (a copy into the memfd, from the message's pieces: see [`crate::Segmented`]; then a
//! decode in place, or a copy into the receiver's new vector) rather than thousands of
//! socket writes, and still arrives atomically. Descriptors of handles in the message ride
//! along as `SCM_RIGHTS`.
//!
//! A spilled message's memfd holds a flag page, then the payload. The receiver sets the flag
//! once it is done with the payload. A receiving end that keeps a [`MapCache`] maps the
//! memfds it receives once and reads payloads in place (without one, it `pread`s them).
//! A connection end (a `Pipe()`'s) keeps the last few memfds
//! it sent ([`SpillCache`], [`SPILL_CACHE`] of them) and writes a later message into one
//! whose flag is set, so its pages are reused instead of allocated, faulted in and freed
//! again for every message (that was most of a large message's cost); it writes a reused
//! memfd through a mapping it keeps, a plain copy into pages already there. A memfd only
//! ever carries messages of one connection end, so it shows nothing to a process that could
//! not receive them anyway; the memfds close with the end; a forked child starts afresh.
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
/// Where a spilled payload starts in its memfd; the receiver's "read" flag is its first
/// 4 bytes.
const SPILL_DATA: u64 = 4096;
/// How many sent memfds a [`SpillCache`] keeps for reuse.
pub const SPILL_CACHE: usize = 4;
/// The largest memfd kept for reuse.
const SPILL_KEEP_MAX: usize = 256 << 20;

/// A memfd sent with a message, kept for reuse once the receiver has read it.
#[derive(Debug)]
struct Spill {
    file: std::fs::File,
    /// Bytes of payload room.
    room: usize,
    /// The memfd mapped here, from its second use on: a copy into mapped pages costs less
    /// than a `pwrite`, which looks up and marks every page.
    map: Option<memmap2::MmapMut>,
}

/// The memfds one connection end sent its large messages in (see the module doc), kept
/// for reuse; they close with it (or with [`SpillCache::clear`]). A forked child that
/// inherits a copy starts afresh: it must not write into memfds its parent reuses.
#[derive(Debug, Default)]
pub struct SpillCache(std::sync::Mutex<(u32, Vec<Spill>)>);

impl SpillCache {
    /// An empty cache.
    pub const fn new() -> SpillCache {
        SpillCache(std::sync::Mutex::new((0, Vec::new())))
    }

    /// Closes the memfds it keeps.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).1.clear();
    }

    /// A memfd holding `payload` (after the flag page): a kept one that its receiver has
    /// read and that is large enough, else a new one, kept for next time. The caller sends
    /// its descriptor.
    fn spill(&self, pieces: &[&[u8]], len: usize) -> std::io::Result<std::fs::File> {
        let reused = {
            let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if cache.0 != crate::sys::pid() {
                *cache = (crate::sys::pid(), Vec::new());
            }
            let found = cache.1.iter().position(|s| s.room >= len && was_read(&s.file));
            found.map(|i| cache.1.remove(i))
        };
        let (file, room, map) = match reused {
            Some(mut s) => {
                if s.map.is_none() {
                    s.map = map_spill(&s.file).ok();
                }
                match &mut s.map {
                    Some(m) if m.len() >= SPILL_DATA as usize + len => {
                        m[..4].copy_from_slice(&[0, 0, 0, 0]);
                        let mut at = SPILL_DATA as usize;
                        for p in pieces {
                            m[at..][..p.len()].copy_from_slice(p);
                            at += p.len();
                        }
                    }
                    _ => {
                        s.file.write_all_at(&[0, 0, 0, 0], 0)?;
                        write_pieces(&s.file, pieces)?;
                    }
                }
                (s.file, s.room, s.map)
            }
            None => (spill_once(pieces)?, len, None),
        };
        if room <= SPILL_KEEP_MAX {
            if let Ok(keep) = file.try_clone() {
                let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
                cache.1.push(Spill { file: keep, room, map });
                if cache.1.len() > SPILL_CACHE {
                    cache.1.remove(0);
                }
            }
        }
        Ok(file)
    }
}

/// Maps a kept memfd (flag page and payload room) for writing.
fn map_spill(file: &std::fs::File) -> std::io::Result<memmap2::MmapMut> {
    // SAFETY: the memfd is this connection end's own; while it is kept, the only other
    // writer is the receiver of a message in it, which sets the flag (bytes 0..4) once and
    // only after reading, before this end writes it again. The file never shrinks.
    // Populated: one call maps every page, instead of a fault per page on the first copy.
    unsafe { memmap2::MmapOptions::new().populate().map_mut(file) }
}

fn new_memfd() -> std::io::Result<std::fs::File> {
    let fd = nix::sys::memfd::memfd_create("rhai-mp-message", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).map_err(io)?;
    Ok(std::fs::File::from(fd))
}

/// Whether the receiver of the message in `file` has read it.
fn was_read(file: &std::fs::File) -> bool {
    let mut flag = [0u8; 4];
    file.read_exact_at(&mut flag, 0).is_ok() && flag == [1, 0, 0, 0]
}

/// A fresh memfd holding the payload (`pieces` in order) after the flag page (no cache).
fn spill_once(pieces: &[&[u8]]) -> std::io::Result<std::fs::File> {
    let file = new_memfd()?;
    write_pieces(&file, pieces)?;
    Ok(file)
}

/// Writes the payload (`pieces` in order) after the flag page.
fn write_pieces(file: &std::fs::File, pieces: &[&[u8]]) -> std::io::Result<()> {
    let mut at = SPILL_DATA;
    for p in pieces {
        file.write_all_at(p, at)?;
        at += p.len() as u64;
    }
    Ok(())
}

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

/// A message's bytes: copied out of the packet or the sender's memfd, or (a large value, to
/// be decoded) read in place from the memfd mapped.
#[derive(Debug)]
pub enum Payload {
    /// Copied.
    Inline(Vec<u8>),
    /// In the sender's memfd, mapped.
    Mapped(MappedPayload),
}

/// A large message read in place from its memfd, which the sender may reuse once this is
/// dropped (the drop sets the memfd's "read" flag).
#[derive(Debug)]
pub struct MappedPayload {
    map: std::sync::Arc<memmap2::Mmap>,
    memfd: std::fs::File,
    len: usize,
}

impl Drop for MappedPayload {
    fn drop(&mut self) {
        let _ = self.memfd.write_all_at(&[1, 0, 0, 0], 0);
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Payload::Inline(v) => v,
            Payload::Mapped(m) => &m.map[SPILL_DATA as usize..][..m.len],
        }
    }
}

impl Payload {
    /// Takes a tag its sender appended off the end: the last 8 bytes, as a little-endian
    /// number (`None`, and nothing taken, if there are fewer).
    pub fn split_tag(&mut self) -> Option<u64> {
        let tag = self.len().checked_sub(8).map(|at| u64::from_le_bytes(self[at..].try_into().unwrap_or_default()))?;
        match self {
            Payload::Inline(v) => v.truncate(v.len() - 8),
            Payload::Mapped(m) => m.len -= 8,
        }
        Some(tag)
    }

    /// The bytes as a vector.
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Payload::Inline(v) => v,
            Payload::Mapped(m) => m.map[SPILL_DATA as usize..][..m.len].to_vec(),
        }
    }
}

/// How many received memfds a [`MapCache`] keeps mapped.
const MAP_CACHE: usize = 4;

/// The memfds of the large values one connection end received, kept mapped: their sender
/// reuses the same few memfds (see [`SpillCache`]), so a value is decoded straight from
/// pages mapped once, with no copy into a buffer first. The mappings go with the end.
#[derive(Debug, Default)]
pub struct MapCache(std::sync::Mutex<Vec<(u64, u64, std::sync::Arc<memmap2::Mmap>)>>);

impl MapCache {
    /// An empty cache.
    pub const fn new() -> MapCache {
        MapCache(std::sync::Mutex::new(Vec::new()))
    }

    /// Unmaps what it keeps.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// `memfd` (whose status is `st`) mapped, at least `need` bytes of it.
    fn map(
        &self,
        memfd: &std::fs::File,
        st: &libc::stat,
        need: usize,
    ) -> std::io::Result<std::sync::Arc<memmap2::Mmap>> {
        let (dev, ino) = (st.st_dev, st.st_ino);
        let mut maps = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = maps.iter().position(|(d, n, _)| (*d, *n) == (dev, ino)) {
            let (_, _, map) = maps.remove(i);
            if map.len() >= need {
                maps.push((dev, ino, map.clone()));
                return Ok(map);
            }
        }
        // SAFETY: the memfd holds a message sent to this end; its sender writes it again only
        // after the "read" flag, which this end sets once it is done with the bytes (when the
        // payload is dropped). Read-only; a memfd never shrinks (the sender only grows new
        // ones), and the size was checked. Populated: one call maps every page.
        let map = std::sync::Arc::new(unsafe { memmap2::MmapOptions::new().populate().map(memfd)? });
        // A memfd too large for its sender to keep is never reused: keeping its mapping
        // would only keep its pages.
        if map.len() <= SPILL_DATA as usize + SPILL_KEEP_MAX {
            maps.push((dev, ino, map.clone()));
            if maps.len() > MAP_CACHE {
                maps.remove(0);
            }
        }
        Ok(map)
    }
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
    send_with(sock, kind, &[payload], fds, None)
}

/// [`send`] by a connection end that keeps the memfds of its large messages for reuse
/// (`cache`; see the module doc).
pub fn send_cached(
    sock: BorrowedFd,
    kind: Kind,
    payload: &[u8],
    fds: &[OwnedFd],
    cache: &SpillCache,
) -> std::io::Result<()> {
    send_with(sock, kind, &[payload], fds, Some(cache))
}

/// [`send_cached`] of a message in pieces (a [`crate::Segmented`]'s): the pieces in order
/// are the payload. Each is copied once, straight into the packet or the memfd.
pub fn send_pieces_cached(
    sock: BorrowedFd,
    kind: Kind,
    pieces: &[&[u8]],
    fds: &[OwnedFd],
    cache: &SpillCache,
) -> std::io::Result<()> {
    send_with(sock, kind, pieces, fds, Some(cache))
}

/// Writes a large payload (`pieces` in order, `len` bytes) into a memfd for
/// [`send_spilled`]: a kept one that its receiver is done with, if `cache` has one. The
/// copy happens here, so a caller can make it outside a lock and send under it.
pub fn spill_pieces(pieces: &[&[u8]], len: usize, cache: &SpillCache) -> std::io::Result<std::fs::File> {
    cache.spill(pieces, len)
}

/// Overwrites bytes of a payload that [`spill_pieces`] wrote into `memfd` and that was not
/// sent yet, from `offset` in the payload on (a tag decided later, say).
pub fn patch_spilled(memfd: &std::fs::File, offset: usize, bytes: &[u8]) -> std::io::Result<()> {
    memfd.write_all_at(bytes, SPILL_DATA + offset as u64)
}

/// Sends a message of `len` bytes that [`spill_pieces`] wrote into `memfd`, with `fds`.
pub fn send_spilled<F: AsRawFd>(
    sock: BorrowedFd,
    kind: Kind,
    len: usize,
    memfd: &std::fs::File,
    fds: &[F],
) -> std::io::Result<()> {
    let mut raw: Vec<RawFd> = Vec::with_capacity(fds.len() + 1);
    raw.push(memfd.as_raw_fd());
    raw.extend(fds.iter().map(AsRawFd::as_raw_fd));
    let h = header(kind, true, fds.len(), len);
    send_packet(sock, &[IoSlice::new(&h)], &raw)
}

fn send_with<F: AsRawFd>(
    sock: BorrowedFd,
    kind: Kind,
    pieces: &[&[u8]],
    fds: &[F],
    cache: Option<&SpillCache>,
) -> std::io::Result<()> {
    let len = pieces.iter().map(|p| p.len()).sum::<usize>();
    let mut raw: Vec<RawFd> = Vec::with_capacity(fds.len() + 1);
    let spill;
    let h;
    let joined;
    let iov_inline;
    let iov_header;
    let iov: &[IoSlice] = if len <= INLINE_MAX {
        h = header(kind, false, fds.len(), len);
        // (A message in pieces is large: one this small is rare, and joined.)
        let payload = match pieces {
            [one] => *one,
            _ => {
                joined = pieces.concat();
                &joined
            }
        };
        iov_inline = [IoSlice::new(&h), IoSlice::new(payload)];
        &iov_inline
    } else {
        spill = match cache {
            Some(c) => c.spill(pieces, len)?,
            None => spill_once(pieces)?,
        };
        raw.push(spill.as_raw_fd());
        h = header(kind, true, fds.len(), len);
        iov_header = [IoSlice::new(&h)];
        &iov_header
    };
    raw.extend(fds.iter().map(AsRawFd::as_raw_fd));
    send_packet(sock, iov, &raw)
}

/// Sends one packet with the descriptors `raw`. Blocks while the socket buffer is full
/// (unless the socket is non-blocking: `WouldBlock`).
fn send_packet(sock: BorrowedFd, iov: &[IoSlice], raw: &[RawFd]) -> std::io::Result<()> {
    if raw.len() > super::MAX_FDS {
        return Err(std::io::Error::other(format!("a message can carry at most {} descriptors", super::MAX_FDS)));
    }
    let cmsg = [ControlMessage::ScmRights(raw)];
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
/// the socket is non-blocking (`WouldBlock`). Polls first with the process-wide budget (see
/// [`recv_message_spin`]).
pub fn recv_message(sock: BorrowedFd, buf: &mut Vec<u8>) -> std::io::Result<Option<Message>> {
    recv_message_spin(sock, buf, &crate::spin::SHARED)
}

/// Whether a packet (or the end of the stream) is waiting on `sock`, without waiting.
fn ready(sock: BorrowedFd) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut p = [PollFd::new(sock, PollFlags::POLLIN)];
    !matches!(poll(&mut p, PollTimeout::ZERO), Ok(0))
}

/// [`recv_message`], polling for a moment before it sleeps as far as `spin` (the
/// connection's own budget) says polling pays: a reply often comes within microseconds
/// (ping-pong), and polling then saves the sleep and the wake-up (most of a round trip's
/// cost), but not on a crowded machine (see [`crate::spin`]).
pub fn recv_message_spin(sock: BorrowedFd, buf: &mut Vec<u8>, spin: &crate::Spin) -> std::io::Result<Option<Message>> {
    recv_message_with(sock, buf, spin, None)
}

/// [`recv_message_spin`] by a connection end that keeps the memfds of the large values it
/// received mapped (`maps`): such a value's payload is read in place (see [`MapCache`]);
/// large raw bytes are still copied out, into the vector they are delivered in.
pub fn recv_message_mapped(
    sock: BorrowedFd,
    buf: &mut Vec<u8>,
    spin: &crate::Spin,
    maps: &MapCache,
) -> std::io::Result<Option<Message>> {
    recv_message_with(sock, buf, spin, Some(maps))
}

/// One `recvmsg` into `buf` (retried on `EINTR`): the packet's length and the descriptors
/// that came with it (`EAGAIN` and other errors as they are).
fn recv_packet(sock: BorrowedFd, buf: &mut [u8], flags: MsgFlags) -> nix::Result<(usize, Vec<OwnedFd>)> {
    let mut cmsg_buf = nix::cmsg_space!([RawFd; super::MAX_FDS]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg_buf), flags) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        fds.extend(raw.into_iter().map(crate::sys::own_fd));
                    }
                }
                return Ok((msg.bytes, fds));
            }
        }
    }
}

fn recv_message_with(
    sock: BorrowedFd,
    buf: &mut Vec<u8>,
    spin: &crate::Spin,
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
                        super::poll::wait_readable(sock, crate::Deadline::NEVER)?;
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
        let data = crate::sys::pread_vec(&memfd, SPILL_DATA, len)?;
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
        recv_message(b.as_fd(), &mut Vec::new())
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
        crate::wire::write_fuzz_seeds("transport_headers", "seqpacket", &seeds);
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
            nfds in 0usize..=crate::transport::MAX_FDS,
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
