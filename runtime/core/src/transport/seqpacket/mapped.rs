//! The receiving side of a message: its bytes ([`Payload`]), copied out or, for a large
//! value, read in place from the sender's memfd, which the receiving end keeps mapped
//! ([`MapCache`]).

use super::spill::{SPILL_DATA, SPILL_KEEP_MAX};
use std::os::unix::fs::FileExt;

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
    pub(super) map: std::sync::Arc<memmap2::Mmap>,
    pub(super) memfd: std::fs::File,
    pub(super) len: usize,
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
    pub(super) fn map(
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
