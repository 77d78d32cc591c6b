//! The machinery of every queue (`Queue`, `JoinableQueue`, `SimpleQueue`, and a pool's
//! task and result queues): a shared-memory log.
//!
//! A queue is a shared-memory log, not a pipe with a feeder thread: a memfd whose first page
//! holds a robust process-shared mutex, condition variables and counters, and whose rest
//! holds the items (`[len][descriptor count][bytes]`, appended at the tail, taken at the
//! head; consumed pages are given back to the OS; an item of `SPILL_ITEM` bytes or more
//! travels in a memfd on the side channel instead, see there). So:
//!
//! - `put` never needs a reader to make progress (unless `maxsize` is reached), and a
//!   process that put items and then exits loses nothing and never deadlocks — Python's
//!   "put a large item, then join the producer" example just works;
//! - every item is taken whole by exactly one `get`, whatever the number of producers and
//!   consumers;
//! - a process killed while holding the queue's mutex does not hang the others (robust
//!   mutex; the counters are rebuilt from the log);
//! - a process *stopped* while holding it (SIGSTOP, a debugger) holds up only the calls
//!   that wait for ever: every timed call takes the mutex by its deadline or gives up
//!   (`Empty`, `Full`), and `get(false)` / `put(x, false)` wait for it a moment at most
//!   ([`LOCK_GRACE`]), as Python's `get(False)` gives up on its lock at once. (An
//!   unbounded `put` with a timeout can so throw `Full`, where Python's feeder thread
//!   would take the item.)
//!
//! Descriptors of handles inside items (a Connection, a Queue …) travel in order on a side
//! `SOCK_SEQPACKET` pair, under the same mutex. An eventfd mirrors "items available" for
//! `wait()`; it is kept in step only once `wait()` has been used on the queue.
//!
//! Caveat: like Python's, `qsize()` is a snapshot.

use rhai::Dynamic;
use rhai_mp_core::base::shm::{Cond, Mutex, Region, COND_SIZE, MUTEX_SIZE};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, MpResult};
use rhai_mp_core::transport::seqpacket;
use rhai_mp_core::transport::seqpacket::Payload;
use rhai_mp_core::wire::{Portable, Reader, Writer};
use std::cell::Cell;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::Relaxed;

const MUTEX: usize = 0;
const NOT_EMPTY: usize = MUTEX_SIZE;
const NOT_FULL: usize = NOT_EMPTY + COND_SIZE;
const ALL_DONE: usize = NOT_FULL + COND_SIZE;
const HEAD: usize = ALL_DONE + COND_SIZE;
const TAIL: usize = HEAD + 8;
const COUNT: usize = TAIL + 8;
const UNFINISHED: usize = COUNT + 8;
const FD_MODE: usize = UNFINISHED + 8;
const PUNCHED: usize = FD_MODE + 8;
/// How much of the log file exists past `DATA` (the file is grown before the window is
/// written there).
const CAPACITY: usize = PUNCHED + 8;
/// The number of the last message sent on the side channel (see [`QueueCore::get_with`]).
const SIDE_SEQ: usize = CAPACITY + 8;
/// The most of the log mapped into memory; records past it use pread/pwrite. Each process
/// maps only as much as the records it has touched need ([`QueueCore::mapped`]), and maps
/// it again larger when a record lies past its mapping: a queue reserves address space for
/// what it holds, not this (batch clusters set `ulimit -v`; reserving 1 GiB for each queue
/// left room for three queues under `ulimit -v 4000000`).
const WINDOW: usize = 1 << 30;
/// The least a process maps of a log (the first record it touches maps this much).
const MIN_MAPPED: usize = 64 * 1024;
/// The log starts after the header page.
const DATA: u64 = 4096;
const RECORD: usize = 8;
/// Give consumed pages back to the OS once this much has been consumed.
const PUNCH_EVERY: u64 = 1 << 20;
/// When the queue drains, shrink the file if it grew past this (keeping up to this much
/// saves allocating and faulting fresh pages for the next large items).
const SHRINK_OVER: u64 = 32 << 20;
/// Records this large are written and read with `pwrite`/`pread` (one kernel copy, no page
/// faults through the window; the reader's vector is not zeroed first).
const BIG_RECORD: usize = 256 * 1024;
/// Items this large do not go into the log: they are written into a memfd before the
/// queue's mutex is taken, and only the memfd travels, on the side channel, under the
/// mutex (so a producer's copy never holds up consumers, nor a consumer's read producers).
/// The log holds an empty record whose descriptor count has [`SPILLED`] set. A producer
/// reuses the memfds it sent once their consumer has read them, and a consumer reads an
/// item in place from the memfd, mapped once (the sender's [`rhai_mp_core::transport::seqpacket::SpillCache`],
/// the receiver's [`rhai_mp_core::transport::seqpacket::MapCache`]).
const SPILL_ITEM: usize = 1 << 20;
/// In a record's descriptor count: the item is in a memfd on the side channel.
const SPILLED: u32 = 1 << 31;
/// How many of a spilled item's first bytes its record keeps (for `on_take`, which reads a
/// pool task's head there).
const SPILL_PREFIX: usize = 64;

/// Python's error for a pipe used after it was closed.
fn closed_handle() -> MpError {
    mp_err!(OSError, "handle is closed")
}

/// The three flavours share one machinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Queue,
    Joinable,
    Simple,
}

impl Flavour {
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Queue => "Queue",
            Flavour::Joinable => "JoinableQueue",
            Flavour::Simple => "SimpleQueue",
        }
    }
}

/// The shared machinery behind a queue handle.
pub struct QueueCore {
    region: Region,
    /// The log, as far as this process has mapped it (see [`WINDOW`]): none until a record
    /// is read or written through it.
    window: std::cell::RefCell<Option<Region>>,
    /// Side channel for the descriptors of handles inside items, and for the memfds of large
    /// items: sent on `fd_tx`, received on `fd_rx`.
    fd_tx: OwnedFd,
    fd_rx: OwnedFd,
    /// Readable while items are available (once `wait()` turned it on).
    ready: OwnedFd,
    pub maxsize: u64,
    pub flavour: Flavour,
    /// `close()` was called in this process.
    closed: Cell<bool>,
    /// This process put an item through this handle (Python's feeder thread started, and
    /// closing the queue closes its pipe, so `empty()` then throws).
    used: Cell<bool>,
    /// How long a `get` here polls for an item before it sleeps (adaptive).
    get_spin: rhai_mp_core::base::spin::Spin,
    /// How long a `put` here polls for room before it sleeps (adaptive).
    put_spin: rhai_mp_core::base::spin::Spin,
    /// The memfds of the large items this process put, for reuse.
    spills: rhai_mp_core::transport::seqpacket::SpillCache,
    /// The memfds of the large items this process got, kept mapped.
    maps: rhai_mp_core::transport::seqpacket::MapCache,
}

impl std::fmt::Debug for QueueCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} maxsize={}>", self.flavour.name(), self.maxsize)
    }
}

/// Holds the queue's mutex (while `held`: a wait that could not take it back in time
/// leaves it unheld); unlocks when dropped.
struct Guard<'a> {
    mutex: Mutex<'a>,
    held: bool,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if self.held {
            let _ = self.mutex.unlock();
        }
    }
}

/// How long a call that does not block (`get(false)`, `put(x, false)`, and a timed call
/// whose timeout is shorter) waits for the queue's mutex: long enough for a holder that is
/// running to finish (a critical section copies an item of less than [`SPILL_ITEM`] at
/// most), and short enough that the call never waits on a peer that stopped (SIGSTOP, a
/// debugger) while holding it. Past it, the call gives up as if it had found the queue
/// empty (or full).
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(10);

fn eventfd() -> MpResult<OwnedFd> {
    use nix::sys::eventfd::{EfdFlags, EventFd};
    let efd =
        EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_SEMAPHORE)?;
    Ok(efd.into())
}

fn read_u64(fd: &OwnedFd) -> bool {
    let mut b = [0u8; 8];
    nix::unistd::read(fd.as_fd(), &mut b).is_ok()
}

fn write_u64(fd: &OwnedFd, n: u64) {
    let _ = nix::unistd::write(fd.as_fd(), &n.to_le_bytes());
}

/// Writes a record's header and bytes at file `offset` with one system call (when it can).
fn write_record_at(file: &std::fs::File, offset: u64, header: &[u8], pieces: &[&[u8]]) -> std::io::Result<()> {
    let total = header.len() + pieces.iter().map(|p| p.len()).sum::<usize>();
    let mut iov = Vec::with_capacity(pieces.len() + 1);
    iov.push(std::io::IoSlice::new(header));
    iov.extend(pieces.iter().map(|p| std::io::IoSlice::new(p)));
    let written = loop {
        match nix::sys::uio::pwritev(file, &iov, offset as i64) {
            Err(nix::Error::EINTR) => continue,
            r => break r.map_err(std::io::Error::from)?,
        }
    };
    if written < total {
        // A short write (rare on tmpfs): finish it plainly.
        let mut all = header.to_vec();
        for p in pieces {
            all.extend_from_slice(p);
        }
        file.write_all_at(&all[written..], offset + written as u64)?;
    }
    Ok(())
}

impl QueueCore {
    pub fn new(flavour: Flavour, maxsize: u64) -> MpResult<QueueCore> {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let region = Region::create("rhai-mp-queue", DATA as usize)?;
        Mutex::init(&region, MUTEX)?;
        Cond::init(&region, NOT_EMPTY)?;
        Cond::init(&region, NOT_FULL)?;
        Cond::init(&region, ALL_DONE)?;
        let (fd_tx, fd_rx) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )?;
        Ok(QueueCore {
            region,
            window: std::cell::RefCell::new(None),
            fd_tx,
            fd_rx,
            ready: eventfd()?,
            maxsize,
            flavour,
            closed: Cell::new(false),
            used: Cell::new(false),
            get_spin: rhai_mp_core::base::spin::Spin::new(),
            put_spin: rhai_mp_core::base::spin::Spin::new(),
            spills: rhai_mp_core::transport::seqpacket::SpillCache::new(),
            maps: rhai_mp_core::transport::seqpacket::MapCache::new(),
        })
    }

    /// Copies of the queue's descriptors (memfd, side channel, eventfd): with its `maxsize`
    /// and flavour, all another handle on the same queue needs ([`QueueCore::from_fds`]).
    pub fn dup_fds(&self) -> MpResult<Vec<OwnedFd>> {
        let dup = || -> std::io::Result<Vec<OwnedFd>> {
            Ok(vec![self.region.dup_fd()?, self.fd_tx.try_clone()?, self.fd_rx.try_clone()?, self.ready.try_clone()?])
        };
        dup().map_err(|e| MpError::os(&format!("cannot copy a {}'s descriptors to send it", self.flavour.name()), e))
    }

    /// Another handle on a queue, from [`QueueCore::dup_fds`].
    pub fn from_fds(fds: Vec<OwnedFd>, maxsize: u64, flavour: Flavour) -> MpResult<QueueCore> {
        let [region, fd_tx, fd_rx, ready]: [OwnedFd; 4] =
            fds.try_into().map_err(|_| mp_err!(SerializationError, "malformed queue"))?;
        let region = Region::open(region, DATA as usize)?;
        Ok(QueueCore {
            region,
            window: std::cell::RefCell::new(None),
            fd_tx,
            fd_rx,
            ready,
            maxsize,
            flavour,
            closed: Cell::new(false),
            used: Cell::new(false),
            get_spin: rhai_mp_core::base::spin::Spin::new(),
            put_spin: rhai_mp_core::base::spin::Spin::new(),
            spills: rhai_mp_core::transport::seqpacket::SpillCache::new(),
            maps: rhai_mp_core::transport::seqpacket::MapCache::new(),
        })
    }

    /// The log mapped up to offset `end` at least (`end` ≤ [`WINDOW`]): this process's
    /// mapping, or a larger one made now (at least twice the old, so that a growing log is
    /// mapped again only a few times). The mapping may lie past the end of the file: writers
    /// grow the file before they touch a page there.
    fn mapped(&self, end: usize) -> std::io::Result<std::cell::Ref<'_, Region>> {
        debug_assert!(end <= WINDOW);
        let len = self.window.borrow().as_ref().map_or(0, Region::len);
        if len < end {
            let want = end.max(len * 2).max(MIN_MAPPED).next_multiple_of(4096).min(WINDOW);
            // The old mapping goes first (its bytes are all in the file), so that the two
            // never need address space together.
            *self.window.borrow_mut() = None;
            *self.window.borrow_mut() = Some(self.region.window(DATA, want)?);
        }
        Ok(std::cell::Ref::map(self.window.borrow(), |w| w.as_ref().expect("mapped above")))
    }

    fn field(&self, offset: usize) -> &std::sync::atomic::AtomicU64 {
        self.region.atomic(offset)
    }

    /// Takes the queue's mutex, waiting for ever for it (but looking at the signals).
    fn lock(&self) -> MpResult<Guard<'_>> {
        self.lock_until(Deadline::NEVER)?.ok_or_else(|| mp_err!(OSError, "queue lock failed"))
    }

    /// Takes the queue's mutex, waiting until `deadline` at most (`None` then: a peer holds
    /// it, maybe stopped). A process that died holding it leaves the log to repair.
    fn lock_until(&self, deadline: Deadline) -> MpResult<Option<Guard<'_>>> {
        let mutex = Mutex::at(&self.region, MUTEX);
        let Some(locked) = mutex.lock_until(deadline)? else { return Ok(None) };
        let guard = Guard { mutex, held: true };
        if locked.owner_died {
            self.repair();
        }
        Ok(Some(guard))
    }

    /// The deadline for taking the mutex in a call that waits until `deadline` (or does
    /// not block): that, but never less than [`LOCK_GRACE`].
    fn lock_deadline(block: bool, deadline: Deadline) -> Deadline {
        let grace = Deadline::after(LOCK_GRACE);
        if block {
            deadline.max(grace)
        } else {
            grace
        }
    }

    /// Waits on the condition variable at `cond` for a slice of the time left until
    /// `deadline` (the mutex held), then takes the mutex back by the deadline (or within
    /// [`LOCK_GRACE`] of it). `Ok(false)`: it could not (a peer holds it past the
    /// deadline), and `g` no longer holds it; the caller gives up. Throws if a signal asks
    /// this process to stop.
    fn wait(&self, g: &mut Guard<'_>, cond: usize, deadline: Deadline) -> MpResult<bool> {
        rhai_mp_core::base::interrupt::check()?;
        let until = deadline.min(Deadline::after(rhai_mp_core::base::interrupt::SLICE));
        g.held = false;
        Cond::at(&self.region, cond).sleep(&g.mutex, until.instant())?;
        match g.mutex.lock_until(Self::lock_deadline(true, deadline))? {
            Some(locked) => {
                g.held = true;
                if locked.owner_died {
                    self.repair();
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// After a process died holding the mutex: rebuild the item count from the log, and the
    /// eventfd from the count.
    fn repair(&self) {
        let (mut at, tail) = (self.field(HEAD).load(Relaxed), self.field(TAIL).load(Relaxed));
        let mut count = 0;
        let mut rec = [0u8; RECORD];
        while at < tail && self.region.file().read_exact_at(&mut rec, DATA + at).is_ok() {
            at += (RECORD + u32::from_le_bytes(rec[0..4].try_into().unwrap()) as usize) as u64;
            count += 1;
        }
        self.field(COUNT).store(count, Relaxed);
        if count == 0 {
            self.field(TAIL).store(0, Relaxed);
            self.field(HEAD).store(0, Relaxed);
        }
        if self.field(FD_MODE).load(Relaxed) == 1 {
            while read_u64(&self.ready) {}
            write_u64(&self.ready, count);
        }
    }

    /// Python's errors for a closed handle: a `Queue`'s `put`/`get` check it first
    /// (`ValueError`); a `SimpleQueue`'s use its closed pipe (`OSError: handle is closed`).
    fn check_open(&self) -> MpResult<()> {
        if self.closed.get() {
            if self.flavour == Flavour::Simple {
                return Err(closed_handle());
            }
            return Err(mp_err!(ValueError, "{} is closed", self.flavour.name()));
        }
        Ok(())
    }

    /// Appends an encoded item. `Full` if `maxsize` items are there and none leaves by
    /// `deadline`.
    pub fn put(&self, bytes: &[u8], fds: &[OwnedFd], block: bool, deadline: Deadline) -> MpResult<()> {
        self.put_pieces(&[bytes], fds, block, deadline)
    }

    /// [`QueueCore::put`] of an item in pieces (a [`rhai_mp_core::wire::Segmented`]'s): each is
    /// copied once, straight into the log.
    pub fn put_pieces(&self, pieces: &[&[u8]], fds: &[OwnedFd], block: bool, deadline: Deadline) -> MpResult<()> {
        let fds: Vec<std::os::fd::BorrowedFd> = fds.iter().map(AsFd::as_fd).collect();
        self.put_fds(pieces, &fds, block, deadline)
    }

    /// [`QueueCore::put_pieces`] with borrowed descriptors (the item's handles stay open
    /// here).
    pub fn put_fds(
        &self,
        pieces: &[&[u8]],
        fds: &[std::os::fd::BorrowedFd],
        block: bool,
        deadline: Deadline,
    ) -> MpResult<()> {
        self.check_open()?;
        self.used.set(true);
        let len = pieces.iter().map(|p| p.len()).sum::<usize>();
        if len > u32::MAX as usize {
            return Err(mp_err!(ValueError, "an item of {len} bytes is too large for a queue (4 GiB at most)"));
        }
        // A large item goes into a memfd now, before the mutex, with room for its number
        // (see `get_with`) at the end; the record keeps its first bytes.
        let mut prefix = Vec::new();
        let mut spill = if len >= SPILL_ITEM {
            let mut with_tag = pieces.to_vec();
            with_tag.push(&[0; 8]);
            let memfd = self.spills.spill(&with_tag, len + 8).map_err(|e| MpError::os("queue put", e))?;
            for p in pieces {
                prefix.extend_from_slice(&p[..p.len().min(SPILL_PREFIX - prefix.len())]);
            }
            Some((memfd, len))
        } else {
            None
        };
        let prefix_piece = [&prefix[..]];
        let mut body: &[&[u8]] = if spill.is_some() { &prefix_piece } else { pieces };
        if block && self.maxsize > 0 {
            // An item or a free slot often comes within microseconds: poll before sleeping.
            self.put_spin.spin_while(|| self.field(COUNT).load(Relaxed) >= self.maxsize);
        }
        let busy = || mp_err!(Full, "the queue is busy: another process holds its lock (stopped while using it?)");
        loop {
            let Some(mut g) = self.lock_until(Self::lock_deadline(block, deadline))? else { return Err(busy()) };
            while self.maxsize > 0 && self.field(COUNT).load(Relaxed) >= self.maxsize {
                if !block || deadline.passed() {
                    return Err(mp_err!(Full, "the queue is full ({} items)", self.maxsize));
                }
                if !self.wait(&mut g, NOT_FULL, deadline)? {
                    return Err(busy());
                }
            }
            let tail = self.field(TAIL).load(Relaxed);
            let nfds = fds.len() as u32 | if spill.is_some() { SPILLED } else { 0 };
            // A record with a side-channel message starts with the message's number.
            let seq = if nfds != 0 { self.field(SIDE_SEQ).load(Relaxed) + 1 } else { 0 };
            let seq_bytes = seq.to_le_bytes();
            let numbered;
            let record = if nfds != 0 {
                self.field(SIDE_SEQ).store(seq, Relaxed);
                numbered = [&[&seq_bytes[..]], body].concat();
                &numbered[..]
            } else {
                body
            };
            let rec_len = record.iter().map(|p| p.len()).sum::<usize>();
            let mut rec = [0u8; RECORD];
            rec[0..4].copy_from_slice(&(rec_len as u32).to_le_bytes());
            rec[4..8].copy_from_slice(&nfds.to_le_bytes());
            self.write_record(tail, &rec, record, rec_len).map_err(|e| MpError::os("queue put", e))?;
            if nfds != 0 {
                let kind = rhai_mp_core::transport::seqpacket::Kind::Value;
                let sent = match &spill {
                    Some((memfd, size)) => {
                        memfd.patch(*size, &seq_bytes).and_then(|()| memfd.send(self.fd_tx.as_fd(), kind, fds))
                    }
                    None => seqpacket::send(self.fd_tx.as_fd(), kind, &[&seq_bytes], fds, None),
                };
                match sent {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && spill.is_some() && fds.is_empty() => {
                        // The side channel is full (hundreds of large items queued): this
                        // one goes into the log after all, so that a put still never waits
                        // for a reader.
                        spill = None;
                        body = pieces;
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        // The side channel is full: let consumers drain it, then try again.
                        drop(g);
                        if deadline.passed() || !block {
                            return Err(mp_err!(Full, "too many items carrying handles are waiting in the queue"));
                        }
                        // Rare (hundreds of handle-carrying items queued): poll for room.
                        rhai_mp_core::base::interrupt::check()?;
                        std::thread::sleep(deadline.slice(std::time::Duration::from_millis(1)));
                        continue;
                    }
                    Err(e) => return Err(MpError::os("queue put", e)),
                }
            }
            self.field(TAIL).store(tail + (RECORD + rec_len) as u64, Relaxed);
            self.field(COUNT).fetch_add(1, Relaxed);
            if self.flavour == Flavour::Joinable {
                self.field(UNFINISHED).fetch_add(1, Relaxed);
            }
            if self.field(FD_MODE).load(Relaxed) == 1 {
                write_u64(&self.ready, 1);
            }
            Cond::at(&self.region, NOT_EMPTY).notify_one();
            return Ok(());
        }
    }

    /// Takes the oldest item. `Empty` if there is none and none arrives by `deadline`.
    pub fn get(&self, block: bool, deadline: Deadline) -> MpResult<(Payload, Vec<OwnedFd>)> {
        self.get_with(block, deadline, &mut |_| {})
    }

    /// As [`QueueCore::get`], calling `on_take` with the item's bytes while the queue's mutex
    /// is held, before the item leaves the queue: a process killed at any point leaves the
    /// item either still queued or recorded by `on_take` (a pool worker notes its task so).
    pub fn get_with(
        &self,
        block: bool,
        deadline: Deadline,
        on_take: &mut dyn FnMut(&[u8]),
    ) -> MpResult<(Payload, Vec<OwnedFd>)> {
        self.check_open()?;
        if block {
            self.get_spin.spin_while(|| self.field(COUNT).load(Relaxed) == 0);
        }
        let busy = || mp_err!(Empty, "the queue is empty (another process holds its lock: stopped while using it?)");
        let Some(mut g) = self.lock_until(Self::lock_deadline(block, deadline))? else { return Err(busy()) };
        // A record whose item has handles, or lives in a memfd, has a message on the side
        // channel, and both carry the message's number (increasing, from the queue's
        // header). A producer killed after sending its message but before writing its
        // record leaves a message older than any record: it is dropped. A consumer killed
        // after taking a record's message but before moving past the record leaves a record
        // whose message is gone (the next message is newer, or there is none): that item
        // went with the dead consumer (its `on_take` ran first), and the record is skipped;
        // the newer message stays for its own record.
        loop {
            loop {
                while self.field(COUNT).load(Relaxed) == 0 {
                    if !block {
                        return Err(mp_err!(Empty, "the queue is empty"));
                    }
                    if deadline.passed() {
                        return Err(mp_err!(Empty, "the queue is empty (no item arrived within the timeout)"));
                    }
                    if !self.wait(&mut g, NOT_EMPTY, deadline)? {
                        return Err(busy());
                    }
                }
                if self.field(HEAD).load(Relaxed) < self.field(TAIL).load(Relaxed) {
                    break;
                }
                // The count says items but the log has none (a process died half-way):
                // rebuild.
                self.repair();
            }
            let head = self.field(HEAD).load(Relaxed);
            let (len, nfds, data) = self.read_record(head).map_err(|e| MpError::os("queue get", e))?;
            if nfds == 0 {
                on_take(&data);
                self.advance(head, len);
                drop(g);
                return Ok((Payload::Inline(data), Vec::new()));
            }
            let spilled = nfds as u32 & SPILLED != 0;
            let Some(seq) = data.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default())) else {
                self.advance(head, len);
                return Err(mp_err!(OSError, "a malformed record in the queue (skipped)"));
            };
            on_take(&data[8..]);
            let found = loop {
                let side = self.fd_rx.as_fd();
                match seqpacket::peek_tag(side) {
                    Ok(Some(n)) if n <= seq => {
                        let mut scratch = Vec::new();
                        let m = seqpacket::recv_message(side, &mut scratch, &self.get_spin, Some(&self.maps));
                        match m {
                            Ok(Some(mut m)) if n == seq => {
                                m.data.split_tag();
                                break Some(m);
                            }
                            Ok(Some(_)) => continue, // older: its record was never written
                            _ => break None,
                        }
                    }
                    _ => break None,
                }
            };
            self.advance(head, len);
            if let Some(m) = found {
                if spilled == m.data.is_empty() {
                    return Err(mp_err!(OSError, "a malformed message on the queue's side channel (skipped)"));
                }
                let item = if spilled {
                    m.data
                } else {
                    let mut data = data;
                    data.drain(..8);
                    Payload::Inline(data)
                };
                drop(g);
                return Ok((item, m.fds));
            }
            // This record's item went with a consumer that was killed while taking it.
        }
    }

    /// Writes a record at log offset `at` (mutex held): through the mapped window when it
    /// fits (growing the file first), else with one `pwritev`.
    fn write_record(&self, at: u64, header: &[u8], pieces: &[&[u8]], len: usize) -> std::io::Result<()> {
        let end = at as usize + header.len() + len;
        if end > WINDOW {
            return write_record_at(self.region.file(), DATA + at, header, pieces);
        }
        let capacity = self.field(CAPACITY).load(Relaxed) as usize;
        if len >= BIG_RECORD {
            // One kernel copy into the file's pages (no page faults through the window).
            write_record_at(self.region.file(), DATA + at, header, pieces)?;
            if end > capacity {
                let grown = end.next_multiple_of(4096).min(WINDOW);
                self.region.file().set_len(DATA + grown as u64)?;
                self.field(CAPACITY).store(grown as u64, Relaxed);
            }
            return Ok(());
        }
        if end > capacity {
            let grown = end.max(capacity * 2).max(64 * 1024).next_multiple_of(4096).min(WINDOW);
            self.region.file().set_len(DATA + grown as u64)?;
            self.field(CAPACITY).store(grown as u64, Relaxed);
        }
        let window = self.mapped(end)?;
        window.write(at as usize, header);
        let mut pos = at as usize + header.len();
        for p in pieces {
            window.write(pos, p);
            pos += p.len();
        }
        Ok(())
    }

    /// Reads the record at log offset `at` (mutex held): its length, descriptor count and
    /// bytes.
    fn read_record(&self, at: u64) -> std::io::Result<(usize, usize, Vec<u8>)> {
        let at = at as usize;
        let header = if at + RECORD <= WINDOW {
            self.mapped(at + RECORD)?.read(at, RECORD)
        } else {
            let mut h = vec![0u8; RECORD];
            self.region.file().read_exact_at(&mut h, DATA + at as u64)?;
            h
        };
        let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
        let nfds = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
        let data = if at + RECORD + len <= WINDOW && len < BIG_RECORD {
            self.mapped(at + RECORD + len)?.read(at + RECORD, len)
        } else if len >= BIG_RECORD {
            rhai_mp_core::base::sys::pread_vec(self.region.file(), (DATA as usize + at + RECORD) as u64, len)?
        } else {
            let mut data = vec![0u8; len];
            self.region.file().read_exact_at(&mut data, (DATA as usize + at + RECORD) as u64)?;
            data
        };
        Ok((len, nfds, data))
    }

    /// Moves the head past the record at `head` (mutex held).
    fn advance(&self, head: u64, len: usize) {
        // The order of these stores matters if this process dies half-way (see `repair`):
        // head and tail are the truth, the count is derived from them.
        let new_head = head + (RECORD + len) as u64;
        self.field(HEAD).store(new_head, Relaxed);
        let count = self.field(COUNT).fetch_sub(1, Relaxed) - 1;
        let tail = self.field(TAIL).load(Relaxed);
        if count == 0 {
            // Drained: start again at the beginning, shrinking a file that grew large.
            self.field(TAIL).store(0, Relaxed);
            self.field(HEAD).store(0, Relaxed);
            self.field(PUNCHED).store(0, Relaxed);
            if tail > SHRINK_OVER {
                self.field(CAPACITY).store(0, Relaxed);
                let _ = self.region.file().set_len(DATA);
            }
        } else {
            let punched = self.field(PUNCHED).load(Relaxed);
            let upto = new_head & !4095;
            if upto > punched + PUNCH_EVERY {
                use nix::fcntl::{fallocate, FallocateFlags};
                let _ = fallocate(
                    self.region.fd(),
                    FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
                    (DATA + punched) as i64,
                    (upto - punched) as i64,
                );
                self.field(PUNCHED).store(upto, Relaxed);
            }
        }
        if self.field(FD_MODE).load(Relaxed) == 1 {
            read_u64(&self.ready);
        }
        if self.maxsize > 0 {
            Cond::at(&self.region, NOT_FULL).notify_one();
        }
    }

    pub fn qsize(&self) -> u64 {
        self.field(COUNT).load(Relaxed)
    }

    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// `empty()` as a script calls it: on a closed `SimpleQueue`, or a closed `Queue` this
    /// process put items on, Python's pipe is closed and it throws `OSError`.
    pub fn empty_checked(&self) -> MpResult<bool> {
        if self.closed.get() && (self.flavour == Flavour::Simple || self.used.get()) {
            return Err(closed_handle());
        }
        Ok(self.empty())
    }

    pub fn full(&self) -> bool {
        self.maxsize > 0 && self.qsize() >= self.maxsize
    }

    pub fn close(&self) {
        self.closed.set(true);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// The descriptor `wait()` polls: readable while items are available.
    pub fn ready_fd(&self) -> MpResult<i32> {
        let _g = self.lock()?;
        if self.field(FD_MODE).swap(1, Relaxed) == 0 {
            write_u64(&self.ready, self.qsize());
        }
        Ok(self.ready.as_raw_fd())
    }

    pub fn task_done(&self) -> MpResult<()> {
        let _g = self.lock()?;
        let left = self.field(UNFINISHED).load(Relaxed);
        if left == 0 {
            return Err(mp_err!(ValueError, "task_done() called too many times"));
        }
        self.field(UNFINISHED).store(left - 1, Relaxed);
        if left == 1 {
            Cond::at(&self.region, ALL_DONE).notify_all();
        }
        Ok(())
    }

    /// Waits until every item put was marked done (JoinableQueue).
    pub fn join(&self) -> MpResult<()> {
        let mut g = self.lock()?;
        while self.field(UNFINISHED).load(Relaxed) > 0 {
            self.wait(&mut g, ALL_DONE, Deadline::NEVER)?;
        }
        Ok(())
    }

    /// Encodes a value and puts it.
    /// Its large blobs and int arrays are copied once, straight into the log.
    pub fn put_value(&self, value: Dynamic, block: bool, deadline: Deadline) -> MpResult<()> {
        self.check_open()?;
        let item = rhai_mp_core::wire::encode_owned(value, "obj")?;
        self.put_pieces(&item.pieces(), item.fds(), block, deadline)
    }

    /// Gets an item and decodes it.
    pub fn get_value(&self, block: bool, deadline: Deadline) -> MpResult<Dynamic> {
        let (bytes, fds) = self.get(block, deadline)?;
        rhai_mp_core::wire::decode(&bytes, fds)
    }
}

/// A queue crosses as its descriptors (memfd, side channel, eventfd), its `maxsize` and its
/// flavour.
impl Portable for QueueCore {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        for fd in self.dup_fds()? {
            w.fd(fd);
        }
        w.u64(self.maxsize);
        w.u8(self.flavour as u8);
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        let fds = vec![r.fd()?, r.fd()?, r.fd()?, r.fd()?];
        let maxsize = r.u64()?;
        let flavour = match r.u8()? {
            0 => Flavour::Queue,
            1 => Flavour::Joinable,
            2 => Flavour::Simple,
            f => return Err(rhai_mp_core::wire::malformed(&format!("queue flavour {f}"))),
        };
        QueueCore::from_fds(fds, maxsize, flavour)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: usize, fill: u8) -> Vec<u8> {
        let mut v = vec![fill; n];
        v[n - 1] = fill.wrapping_add(1);
        v
    }

    /// A message that a producer sent but whose record it never wrote (it was killed in
    /// between) is older than every record: dropped, and the items behind it arrive.
    #[test]
    fn a_message_without_its_record_is_skipped() {
        let q = QueueCore::new(Flavour::Queue, 0).unwrap();
        let stale = item(SPILL_ITEM, 1);
        let cache = rhai_mp_core::transport::seqpacket::SpillCache::new();
        let memfd = cache.spill(&[&stale, &[0; 8]], stale.len() + 8).unwrap();
        memfd.patch(stale.len(), &0u64.to_le_bytes()).unwrap();
        let kind = rhai_mp_core::transport::seqpacket::Kind::Value;
        memfd.send::<OwnedFd>(q.fd_tx.as_fd(), kind, &[]).unwrap();
        for (n, fill) in [(SPILL_ITEM, 2), (10, 3), (SPILL_ITEM + 5, 4)] {
            q.put(&item(n, fill), &[], true, Deadline::NEVER).unwrap();
        }
        for (n, fill) in [(SPILL_ITEM, 2), (10, 3), (SPILL_ITEM + 5, 4)] {
            let (got, fds) = q.get(false, Deadline::NEVER).unwrap();
            assert_eq!(&got[..], &item(n, fill)[..]);
            assert!(fds.is_empty());
        }
        assert_eq!(q.get(false, Deadline::NEVER).unwrap_err().kind, rhai_mp_core::prelude::ErrorKind::Empty);
    }

    /// With the side channel full (many items with handles waiting), a large item without
    /// handles goes into the log instead: a put still never waits for a reader.
    #[test]
    fn a_large_item_goes_into_the_log_when_the_side_channel_is_full() {
        let q = QueueCore::new(Flavour::Queue, 0).unwrap();
        let (r, _w) = nix::unistd::pipe().unwrap();
        let mut with_handles = 0;
        loop {
            let fd = r.try_clone().unwrap();
            match q.put(&item(10, 1), &[fd], false, Deadline::NEVER) {
                Ok(()) => with_handles += 1,
                Err(e) => {
                    assert_eq!(e.kind, rhai_mp_core::prelude::ErrorKind::Full, "{}", e.message);
                    break;
                }
            }
            assert!(with_handles < 100_000);
        }
        q.put(&item(SPILL_ITEM, 2), &[], false, Deadline::NEVER).unwrap();
        for _ in 0..with_handles {
            let (got, fds) = q.get(false, Deadline::NEVER).unwrap();
            assert_eq!((&got[..], fds.len()), (&item(10, 1)[..], 1));
        }
        let (got, fds) = q.get(false, Deadline::NEVER).unwrap();
        assert_eq!((got.len(), got[SPILL_ITEM - 1], fds.len()), (SPILL_ITEM, 3, 0));
    }

    /// A consumer killed after taking a record's message, before moving past the record:
    /// that item went with it, and the next consumer gets the next item (not an error, and
    /// not the wrong item), with its handles.
    #[test]
    fn a_record_whose_message_was_taken_is_skipped() {
        let q = QueueCore::new(Flavour::Queue, 0).unwrap();
        let (a, b) = nix::unistd::pipe().unwrap();
        q.put(&item(SPILL_ITEM, 5), &[], true, Deadline::NEVER).unwrap();
        q.put(&item(30, 8), &[], true, Deadline::NEVER).unwrap();
        q.put(&item(20, 6), &[a, b], true, Deadline::NEVER).unwrap();
        q.put(&item(SPILL_ITEM * 2, 7), &[], true, Deadline::NEVER).unwrap();
        // The dead consumer's take: the first message, and nothing else.
        let mut scratch = Vec::new();
        assert!(seqpacket::recv_message(q.fd_rx.as_fd(), &mut scratch, &rhai_mp_core::base::spin::SHARED, None)
            .unwrap()
            .is_some());
        // A plain item between leaves the next record's message where it is.
        let (got, fds) = q.get(false, Deadline::NEVER).unwrap();
        assert_eq!((&got[..], fds.len()), (&item(30, 8)[..], 0));
        let (got, fds) = q.get(false, Deadline::NEVER).unwrap();
        assert_eq!(&got[..], &item(20, 6)[..]);
        assert_eq!(fds.len(), 2);
        let (got, _) = q.get(false, Deadline::NEVER).unwrap();
        assert_eq!(&got[..], &item(SPILL_ITEM * 2, 7)[..]);
        assert_eq!(q.get(false, Deadline::NEVER).unwrap_err().kind, rhai_mp_core::prelude::ErrorKind::Empty);
    }
}
