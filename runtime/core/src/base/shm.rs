//! Shared memory: anonymous `memfd` regions mapped `MAP_SHARED`, and the process-shared
//! synchronization that lives in them (a robust pthread mutex, a condition variable on
//! `CLOCK_MONOTONIC`, and atomics).
//!
//! A region is passed to another process as its memfd (`SCM_RIGHTS`, or inherited over
//! `fork`); it lives until the last process holding the descriptor or a mapping exits, so
//! nothing is left behind in `/dev/shm`, whatever happens to the processes.
//!
//! With `sys.rs`, this is the only file with `unsafe`: the pointers into mappings.
//!
//! The mutex is robust: when its owner dies, the next `lock` succeeds and says so
//! ([`Locked::owner_died`]), instead of deadlocking.

use std::cell::UnsafeCell;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A shared mapping of a memfd.
pub struct Region {
    file: File,
    map: memmap2::MmapRaw,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::os::fd::AsRawFd;
        write!(f, "Region(fd={}, len={})", self.file.as_raw_fd(), self.map.len())
    }
}

impl Region {
    /// A new zero-filled region of `size` bytes, named `name` in `/proc/PID/fd` (for
    /// debugging; memfds have no path).
    pub fn create(name: &str, size: usize) -> std::io::Result<Region> {
        let fd = nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(std::io::Error::from)?;
        let file = File::from(fd);
        file.set_len(size as u64)?;
        Self::map(file, size)
    }

    /// Maps a region received from another process; its first `size` bytes.
    pub fn open(fd: OwnedFd, size: usize) -> std::io::Result<Region> {
        Self::map(File::from(fd), size)
    }

    /// A second mapping of this region's file: `len` bytes from `offset`, which may lie past
    /// the end of the file (for a log that grows). Touching a page past the end of the file
    /// is a SIGBUS: callers grow the file (`file().set_len`) before they touch a page.
    pub fn window(&self, offset: u64, len: usize) -> std::io::Result<Region> {
        let file = self.file.try_clone()?;
        let map = memmap2::MmapOptions::new().offset(offset).len(len).map_raw(&file)?;
        Ok(Region { file, map })
    }

    fn map(file: File, size: usize) -> std::io::Result<Region> {
        let map = memmap2::MmapOptions::new().len(size).map_raw(&file)?;
        Ok(Region { file, map })
    }

    /// The memfd, as a file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The memfd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// A duplicate of the memfd, to send to another process.
    pub fn dup_fd(&self) -> std::io::Result<OwnedFd> {
        self.file.as_fd().try_clone_to_owned()
    }

    /// The mapped size in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the mapping is empty.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// The address of byte `offset`, checked to leave room for a `T` there, aligned.
    fn at<T>(&self, offset: usize) -> *mut T {
        assert!(offset + std::mem::size_of::<T>() <= self.map.len(), "shared memory offset {offset} out of range");
        assert_eq!(offset % std::mem::align_of::<T>(), 0, "misaligned shared memory offset {offset}");
        // SAFETY: in bounds (checked above) of a live mapping.
        unsafe { self.map.as_mut_ptr().add(offset) as *mut T }
    }

    /// The 64-bit atomic at `offset`.
    pub fn atomic(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: `at` checks bounds and alignment; the mapping lives as long as `self`, and
        // every process touches this word only atomically.
        unsafe { &*self.at::<AtomicU64>(offset) }
    }

    /// The 32-bit atomic at `offset` (a futex word).
    pub fn atomic32(&self, offset: usize) -> &std::sync::atomic::AtomicU32 {
        // SAFETY: as for `atomic`.
        unsafe { &*self.at::<std::sync::atomic::AtomicU32>(offset) }
    }

    /// The 16-bit atomic at `offset`.
    pub fn atomic16(&self, offset: usize) -> &std::sync::atomic::AtomicU16 {
        // SAFETY: as for `atomic`.
        unsafe { &*self.at::<std::sync::atomic::AtomicU16>(offset) }
    }

    /// The 8-bit atomic at `offset`.
    pub fn atomic8(&self, offset: usize) -> &std::sync::atomic::AtomicU8 {
        // SAFETY: as for `atomic`.
        unsafe { &*self.at::<std::sync::atomic::AtomicU8>(offset) }
    }

    /// The whole region as a byte slice, for a region no other process writes any more (a
    /// received message's memfd, whose sender has let go of it).
    pub fn as_private_slice(&self) -> &[u8] {
        // SAFETY: the mapping is live for `self`'s lifetime and `len` bytes long; the caller
        // guarantees no one writes it meanwhile, so the bytes do not change under the slice.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.map.len()) }
    }

    /// A copy of the bytes `offset..offset + len`.
    ///
    /// Other processes may write them meanwhile: like any shared memory, a read racing a
    /// write may see part of it (the script's locks are there for that).
    pub fn read(&self, offset: usize, len: usize) -> Vec<u8> {
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.map.len()), "shared memory range out of bounds");
        let mut out = vec![0u8; len];
        // SAFETY: the source range is in bounds (checked above) of a live mapping; the
        // destination is a fresh buffer of `len` bytes.
        unsafe { std::ptr::copy_nonoverlapping(self.map.as_ptr().add(offset), out.as_mut_ptr(), len) };
        out
    }

    /// Writes `data` at `offset` (see [`Region::read`] on races).
    pub fn write(&self, offset: usize, data: &[u8]) {
        assert!(
            offset.checked_add(data.len()).is_some_and(|end| end <= self.map.len()),
            "shared memory range out of bounds"
        );
        // SAFETY: the destination range is in bounds (checked above) of a live, writable
        // mapping; the source is a separate buffer.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.map.as_mut_ptr().add(offset), data.len()) };
    }
}

/// Space a [`Mutex`] takes in a region (rounded up to a cache line).
pub const MUTEX_SIZE: usize = 64;
/// Space a [`Cond`] takes in a region.
pub const COND_SIZE: usize = 64;

const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= MUTEX_SIZE);

extern "C" {
    // glibc ≥ 2.30; the libc crate does not declare it yet.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// An absolute CLOCK_MONOTONIC time `timeout` from now.
fn deadline(timeout: Duration) -> libc::timespec {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
        .unwrap_or_default();
    let at = now + timeout.min(Duration::from_secs(1 << 40));
    libc::timespec { tv_sec: at.as_secs() as libc::time_t, tv_nsec: at.subsec_nanos() as libc::c_long }
}

fn check(what: &str, rc: libc::c_int) -> std::io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::Error::from_raw_os_error(rc).kind(),
            format!("{what}: {}", std::io::Error::from_raw_os_error(rc)),
        ))
    }
}

/// The outcome of a successful lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    /// The previous owner died holding the lock; the data it guards may be half-updated.
    pub owner_died: bool,
}

/// A robust, process-shared pthread mutex at an offset in a region.
pub struct Mutex<'r> {
    ptr: *mut libc::pthread_mutex_t,
    _region: std::marker::PhantomData<&'r Region>,
}

impl<'r> Mutex<'r> {
    /// Initializes a new mutex at `offset` (once, by the process that made the region).
    pub fn init(region: &'r Region, offset: usize) -> std::io::Result<Mutex<'r>> {
        let m = Self::at(region, offset);
        let mut attr = UnsafeCell::new(std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit());
        // SAFETY: standard attribute set-up on a local, then pthread_mutex_init on memory
        // that `at` checked and that nothing else uses yet.
        unsafe {
            let a = (*attr.get_mut()).as_mut_ptr();
            check("pthread_mutexattr_init", libc::pthread_mutexattr_init(a))?;
            check("pthread_mutexattr_setpshared", libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED))?;
            check("pthread_mutexattr_setrobust", libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST))?;
            let rc = libc::pthread_mutex_init(m.ptr, a);
            libc::pthread_mutexattr_destroy(a);
            check("pthread_mutex_init", rc)?;
        }
        Ok(m)
    }

    /// The mutex another process initialized at `offset`.
    pub fn at(region: &'r Region, offset: usize) -> Mutex<'r> {
        Mutex { ptr: region.at(offset), _region: std::marker::PhantomData }
    }

    /// Locks, waiting at most `timeout` (`None`: forever). `Ok(None)` on timeout.
    pub fn lock(&self, timeout: Option<Duration>) -> std::io::Result<Option<Locked>> {
        // SAFETY: `ptr` points to an initialized process-shared mutex in a live mapping.
        let rc = unsafe {
            match timeout {
                None => libc::pthread_mutex_lock(self.ptr),
                Some(t) if t.is_zero() => libc::pthread_mutex_trylock(self.ptr),
                Some(t) => pthread_mutex_clocklock(self.ptr, libc::CLOCK_MONOTONIC, &deadline(t)),
            }
        };
        match rc {
            0 => Ok(Some(Locked { owner_died: false })),
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex (EOWNERDEAD means we got it).
                check("pthread_mutex_consistent", unsafe { libc::pthread_mutex_consistent(self.ptr) })?;
                Ok(Some(Locked { owner_died: true }))
            }
            libc::ETIMEDOUT | libc::EBUSY => Ok(None),
            rc => check("pthread_mutex_lock", rc).map(|_| None),
        }
    }

    /// Locks, waiting until `deadline` at most (a peer may hold the mutex for ever: it is
    /// stopped, say), in slices of [`crate::base::interrupt::SLICE`], looking at the signals
    /// between them. `Ok(None)` once the deadline passed (a passed deadline still tries once).
    pub fn lock_until(
        &self,
        deadline: crate::base::deadline::Deadline,
    ) -> crate::base::error::MpResult<Option<Locked>> {
        loop {
            if let Some(locked) = self.lock(Some(deadline.slice(crate::base::interrupt::SLICE)))? {
                return Ok(Some(locked));
            }
            if deadline.passed() {
                return Ok(None);
            }
            crate::base::interrupt::check()?;
        }
    }

    /// Unlocks (the caller holds the mutex).
    pub fn unlock(&self) -> std::io::Result<()> {
        // SAFETY: `ptr` points to an initialized process-shared mutex we hold.
        check("pthread_mutex_unlock", unsafe { libc::pthread_mutex_unlock(self.ptr) })
    }
}

/// A process-shared condition variable at an offset in a region: a futex sequence number
/// and a count of sleepers.
///
/// Not glibc's `pthread_cond_t`: a process killed while waiting on one of those leaves its
/// group bookkeeping behind, and a later `pthread_cond_signal` can then block forever. Here
/// a waiter that dies is simply gone from the kernel's futex queue; the count it leaves
/// raised only costs the notifiers a needless wake-up call.
pub struct Cond<'r> {
    seq: &'r std::sync::atomic::AtomicU32,
    sleepers: &'r std::sync::atomic::AtomicU32,
}

impl<'r> Cond<'r> {
    /// Initializes a new condition variable at `offset` (once).
    pub fn init(region: &'r Region, offset: usize) -> std::io::Result<Cond<'r>> {
        let c = Self::at(region, offset);
        c.seq.store(0, Ordering::SeqCst);
        c.sleepers.store(0, Ordering::SeqCst);
        Ok(c)
    }

    /// The condition variable another process initialized at `offset`.
    pub fn at(region: &'r Region, offset: usize) -> Cond<'r> {
        Cond { seq: region.atomic32(offset), sleepers: region.atomic32(offset + 4) }
    }

    /// Waits for a notification, until `until` (`None`: forever); the mutex must be held, and
    /// is held again on return. Returns false on timeout. Spurious wake-ups happen: re-check
    /// the condition.
    pub fn wait(&self, mutex: &Mutex, until: Option<Instant>) -> std::io::Result<bool> {
        let seq = self.sleep(mutex, until)?;
        mutex.lock(None)?;
        Ok(self.seq.load(Ordering::SeqCst) != seq || until.is_none_or(|t| Instant::now() < t))
    }

    /// The first half of [`Cond::wait`]: unlocks the mutex (held) and sleeps until a
    /// notification or `until`, and leaves the mutex unlocked, for the caller to take back
    /// with a deadline of its own ([`Mutex::lock_until`]: a peer may hold it for ever).
    /// Returns the sequence number it slept on (the condition's state when it let go).
    pub fn sleep(&self, mutex: &Mutex, until: Option<Instant>) -> std::io::Result<u32> {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let seq = self.seq.load(Ordering::SeqCst);
        if let Err(e) = mutex.unlock() {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            return Err(e);
        }
        let timeout = until.map(|t| t.saturating_duration_since(Instant::now()));
        if timeout != Some(Duration::ZERO) {
            crate::base::sys::futex_wait(self.seq, seq, timeout);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        Ok(seq)
    }

    /// Waits for a notification for a slice of the time left until `deadline` at most (see
    /// `interrupt.rs`); the mutex must be held, and is held again on return. The caller
    /// re-checks its condition and the deadline. Throws if a signal asks this process to
    /// stop.
    pub fn wait_slice(
        &self,
        mutex: &Mutex,
        deadline: crate::base::deadline::Deadline,
    ) -> crate::base::error::MpResult<()> {
        crate::base::interrupt::check()?;
        let until = deadline.min(crate::base::deadline::Deadline::after(crate::base::interrupt::SLICE));
        self.wait(mutex, until.instant())?;
        Ok(())
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            crate::base::sys::futex_wake(self.seq, 1);
        }
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            crate::base::sys::futex_wake(self.seq, i32::MAX);
        }
    }
}
