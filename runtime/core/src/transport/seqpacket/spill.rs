//! The sending side of a large message: the memfd it travels in, and the memfds a
//! connection end keeps for reuse ([`SpillCache`]).
//!
//! A spilled message's memfd holds a flag page, then the payload. The receiver sets the flag
//! once it is done with the payload (see `mapped.rs`); a kept memfd whose flag is set is
//! written again for a later message, so its pages are reused instead of allocated,
//! faulted in and freed again for every message.

use super::packet::{header, send_packet, Kind};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::FileExt;

/// Where a spilled payload starts in its memfd; the receiver's "read" flag is its first
/// 4 bytes.
pub(super) const SPILL_DATA: u64 = 4096;
/// How many sent memfds a [`SpillCache`] keeps for reuse.
pub const SPILL_CACHE: usize = 4;
/// The largest memfd kept for reuse.
pub(super) const SPILL_KEEP_MAX: usize = 256 << 20;

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

    /// Writes a large payload (`pieces` in order, `len` bytes) into a memfd, to be sent
    /// with [`Spilled::send`]: a kept one that its receiver has read and that is large
    /// enough, else a new one, kept for next time. The copy happens here, so a caller can
    /// make it outside a lock and send under it.
    pub fn spill(&self, pieces: &[&[u8]], len: usize) -> std::io::Result<Spilled> {
        self.spill_file(pieces, len).map(|file| Spilled::new(file, len))
    }

    fn spill_file(&self, pieces: &[&[u8]], len: usize) -> std::io::Result<std::fs::File> {
        let reused = {
            let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if cache.0 != crate::base::sys::pid() {
                *cache = (crate::base::sys::pid(), Vec::new());
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
    let fd = nix::sys::memfd::memfd_create("rhai-mp-message", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(crate::base::sys::io_error)?;
    Ok(std::fs::File::from(fd))
}

/// Whether the receiver of the message in `file` has read it.
fn was_read(file: &std::fs::File) -> bool {
    let mut flag = [0u8; 4];
    file.read_exact_at(&mut flag, 0).is_ok() && flag == [1, 0, 0, 0]
}

/// A fresh memfd holding the payload (`pieces` in order) after the flag page (no cache).
pub(super) fn spill_once(pieces: &[&[u8]]) -> std::io::Result<std::fs::File> {
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

/// A large payload written into a memfd ([`SpillCache::spill`]) and not sent yet.
#[derive(Debug)]
pub struct Spilled {
    file: std::fs::File,
    len: usize,
}

impl Spilled {
    pub(super) fn new(file: std::fs::File, len: usize) -> Spilled {
        Spilled { file, len }
    }

    /// Overwrites bytes of the payload from `offset` on (a tag decided later, say).
    pub fn patch(&self, offset: usize, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(bytes, SPILL_DATA + offset as u64)
    }

    /// Sends the payload as one message of `kind`, with `fds`.
    pub fn send<F: AsRawFd>(&self, sock: BorrowedFd, kind: Kind, fds: &[F]) -> std::io::Result<()> {
        let mut raw: Vec<RawFd> = Vec::with_capacity(fds.len() + 1);
        raw.push(self.file.as_raw_fd());
        raw.extend(fds.iter().map(AsRawFd::as_raw_fd));
        let h = header(kind, true, fds.len(), self.len);
        send_packet(sock, &[IoSlice::new(&h)], &raw)
    }
}
