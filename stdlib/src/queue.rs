//! `Queue`, `JoinableQueue` (API.md, "Queues"), and the machinery `SimpleQueue` shares.
//!
//! A queue is a shared-memory log, not a pipe with a feeder thread: a memfd whose first page
//! holds a robust process-shared mutex, condition variables and counters, and whose rest
//! holds the items (`[len][descriptor count][bytes]`, appended at the tail, taken at the
//! head; consumed pages are given back to the OS). So:
//!
//! - `put` never needs a reader to make progress (unless `maxsize` is reached), and a
//!   process that put items and then exits loses nothing and never deadlocks — Python's
//!   "put a large item, then join the producer" example just works;
//! - every item is taken whole by exactly one `get`, whatever the number of producers and
//!   consumers;
//! - a process killed while holding the queue's mutex does not hang the others (robust
//!   mutex; the counters are rebuilt from the log).
//!
//! Descriptors of handles inside items (a Connection, a Queue …) travel in order on a side
//! `SOCK_SEQPACKET` pair, under the same mutex. An eventfd mirrors "items available" for
//! `wait()`; it is kept in step only once `wait()` has been used on the queue.
//!
//! Caveat: like Python's, `qsize()` is a snapshot.

use crate::opts;
use rhai::plugin::*;
use rhai::{Dynamic, INT};
use rhai_mp_core::{mp_err, Cond, ContextFns, HandleCodec, MpError, MpResult, Mutex, Region, COND_SIZE, MUTEX_SIZE};
use std::cell::Cell;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

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
/// The part of the log mapped into memory; records past it use pread/pwrite.
const WINDOW: usize = 1 << 30;
/// The log starts after the header page.
const DATA: u64 = 4096;
const RECORD: usize = 8;
/// Give consumed pages back to the OS once this much has been consumed.
const PUNCH_EVERY: u64 = 1 << 20;
/// When the queue drains, shrink the file if it grew past this.
const SHRINK_OVER: u64 = 1 << 20;

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
    /// The log, mapped (see [`WINDOW`]).
    window: Region,
    /// Side channel for the descriptors of handles inside items: sent on `fd_tx`, received
    /// on `fd_rx`.
    fd_tx: OwnedFd,
    fd_rx: OwnedFd,
    /// Readable while items are available (once `wait()` turned it on).
    ready: OwnedFd,
    pub maxsize: u64,
    pub flavour: Flavour,
    /// `close()` was called in this process.
    closed: Cell<bool>,
}

impl std::fmt::Debug for QueueCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} maxsize={}>", self.flavour.name(), self.maxsize)
    }
}

/// Holds the queue's mutex; unlocks when dropped.
struct Guard<'a> {
    core: &'a QueueCore,
    mutex: Mutex<'a>,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = self.mutex.unlock();
        let _ = self.core;
    }
}

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
fn write_record_at(file: &std::fs::File, offset: u64, header: &[u8], bytes: &[u8]) -> std::io::Result<()> {
    let total = header.len() + bytes.len();
    let written = loop {
        match nix::sys::uio::pwritev(
            file,
            &[std::io::IoSlice::new(header), std::io::IoSlice::new(bytes)],
            offset as i64,
        ) {
            Err(nix::Error::EINTR) => continue,
            r => break r.map_err(std::io::Error::from)?,
        }
    };
    if written < total {
        // A short write (rare on tmpfs): finish it plainly.
        let mut all = header.to_vec();
        all.extend_from_slice(bytes);
        file.write_all_at(&all[written..], offset + written as u64)?;
    }
    Ok(())
}

fn until(timeout: Option<f64>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + Duration::from_secs_f64(t))
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
        let window = region.window(DATA, WINDOW)?;
        Ok(QueueCore { region, window, fd_tx, fd_rx, ready: eventfd()?, maxsize, flavour, closed: Cell::new(false) })
    }

    /// Copies of the queue's descriptors (memfd, side channel, eventfd): with its `maxsize`
    /// and flavour, all another handle on the same queue needs ([`QueueCore::from_fds`]).
    pub fn dup_fds(&self) -> MpResult<Vec<OwnedFd>> {
        Ok(vec![self.region.dup_fd()?, self.fd_tx.try_clone()?, self.fd_rx.try_clone()?, self.ready.try_clone()?])
    }

    /// Another handle on a queue, from [`QueueCore::dup_fds`].
    pub fn from_fds(fds: Vec<OwnedFd>, maxsize: u64, flavour: Flavour) -> MpResult<QueueCore> {
        let [region, fd_tx, fd_rx, ready]: [OwnedFd; 4] =
            fds.try_into().map_err(|_| mp_err!(SerializationError, "malformed queue"))?;
        let region = Region::open(region, DATA as usize)?;
        let window = region.window(DATA, WINDOW)?;
        Ok(QueueCore { region, window, fd_tx, fd_rx, ready, maxsize, flavour, closed: Cell::new(false) })
    }

    fn field(&self, offset: usize) -> &std::sync::atomic::AtomicU64 {
        self.region.atomic(offset)
    }

    fn lock(&self) -> MpResult<Guard<'_>> {
        let mutex = Mutex::at(&self.region, MUTEX);
        let locked = mutex.lock(None)?.ok_or_else(|| mp_err!(OSError, "queue lock failed"))?;
        let guard = Guard { core: self, mutex };
        if locked.owner_died {
            self.repair();
        }
        Ok(guard)
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

    fn check_open(&self) -> MpResult<()> {
        if self.closed.get() {
            return Err(mp_err!(ValueError, "{} is closed", self.flavour.name()));
        }
        Ok(())
    }

    /// Appends an encoded item. `Full` if `maxsize` items are there and none leaves in time.
    pub fn put(&self, bytes: &[u8], fds: &[OwnedFd], block: bool, timeout: Option<f64>) -> MpResult<()> {
        let fds: Vec<std::os::fd::BorrowedFd> = fds.iter().map(AsFd::as_fd).collect();
        self.put_fds(bytes, &fds, block, timeout)
    }

    /// [`QueueCore::put`] with borrowed descriptors (the item's handles stay open here).
    pub fn put_fds(
        &self,
        bytes: &[u8],
        fds: &[std::os::fd::BorrowedFd],
        block: bool,
        timeout: Option<f64>,
    ) -> MpResult<()> {
        self.check_open()?;
        if bytes.len() > u32::MAX as usize {
            return Err(mp_err!(
                ValueError,
                "an item of {} bytes is too large for a queue (4 GiB at most)",
                bytes.len()
            ));
        }
        let deadline = until(timeout);
        if block && self.maxsize > 0 {
            // An item or a free slot often comes within microseconds: poll before sleeping.
            rhai_mp_core::spin_while(|| self.field(COUNT).load(Relaxed) >= self.maxsize);
        }
        loop {
            let g = self.lock()?;
            while self.maxsize > 0 && self.field(COUNT).load(Relaxed) >= self.maxsize {
                let full = || mp_err!(Full, "the queue is full ({} items)", self.maxsize);
                if !block {
                    return Err(full());
                }
                let signalled = Cond::at(&self.region, NOT_FULL).wait(&g.mutex, deadline)?;
                if !signalled && self.field(COUNT).load(Relaxed) >= self.maxsize {
                    return Err(full());
                }
            }
            let tail = self.field(TAIL).load(Relaxed);
            let mut rec = [0u8; RECORD];
            rec[0..4].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
            rec[4..8].copy_from_slice(&(fds.len() as u32).to_le_bytes());
            self.write_record(tail, &rec, bytes).map_err(|e| MpError::os("queue put", e))?;
            if !fds.is_empty() {
                match rhai_mp_core::transport::send_fds(self.fd_tx.as_fd(), rhai_mp_core::MessageKind::Bytes, &[], fds)
                {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        // The side channel is full: let consumers drain it, then try again.
                        drop(g);
                        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                        if left.is_some_and(|l| l.is_zero()) || !block {
                            return Err(mp_err!(Full, "too many items carrying handles are waiting in the queue"));
                        }
                        // Rare (hundreds of handle-carrying items queued): poll for room.
                        std::thread::sleep(Duration::from_millis(1).min(left.unwrap_or(Duration::MAX)));
                        continue;
                    }
                    Err(e) => return Err(MpError::os("queue put", e)),
                }
            }
            self.field(TAIL).store(tail + (RECORD + bytes.len()) as u64, Relaxed);
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

    /// Takes the oldest item. `Empty` if there is none and none arrives in time.
    pub fn get(&self, block: bool, timeout: Option<f64>) -> MpResult<(Vec<u8>, Vec<OwnedFd>)> {
        self.get_with(block, timeout, &mut |_| {})
    }

    /// As [`QueueCore::get`], calling `on_take` with the item's bytes while the queue's mutex
    /// is held, before the item leaves the queue: a process killed at any point leaves the
    /// item either still queued or recorded by `on_take` (a pool worker notes its task so).
    pub fn get_with(
        &self,
        block: bool,
        timeout: Option<f64>,
        on_take: &mut dyn FnMut(&[u8]),
    ) -> MpResult<(Vec<u8>, Vec<OwnedFd>)> {
        self.check_open()?;
        let deadline = until(timeout);
        if block {
            rhai_mp_core::spin_while(|| self.field(COUNT).load(Relaxed) == 0);
        }
        let g = self.lock()?;
        loop {
            while self.field(COUNT).load(Relaxed) == 0 {
                if !block {
                    return Err(mp_err!(Empty, "the queue is empty"));
                }
                let signalled = Cond::at(&self.region, NOT_EMPTY).wait(&g.mutex, deadline)?;
                if !signalled && self.field(COUNT).load(Relaxed) == 0 {
                    return Err(mp_err!(Empty, "the queue is empty (no item arrived within the timeout)"));
                }
            }
            if self.field(HEAD).load(Relaxed) < self.field(TAIL).load(Relaxed) {
                break;
            }
            // The count says items but the log has none (a process died half-way): rebuild.
            self.repair();
        }
        let head = self.field(HEAD).load(Relaxed);
        let (len, nfds, data) = self.read_record(head).map_err(|e| MpError::os("queue get", e))?;
        on_take(&data);
        let mut fds = Vec::new();
        if nfds > 0 {
            let mut scratch = Vec::new();
            match rhai_mp_core::transport::recv_message(self.fd_rx.as_fd(), &mut scratch) {
                Ok(Some(m)) => fds = m.fds,
                _ => {
                    self.advance(head, len);
                    return Err(mp_err!(
                        OSError,
                        "the handles of a queued item were lost (a process was killed while taking it)"
                    ));
                }
            }
        }
        self.advance(head, len);
        drop(g);
        Ok((data, fds))
    }

    /// Writes a record at log offset `at` (mutex held): through the mapped window when it
    /// fits (growing the file first), else with one `pwritev`.
    fn write_record(&self, at: u64, header: &[u8], bytes: &[u8]) -> std::io::Result<()> {
        let end = at as usize + header.len() + bytes.len();
        if end > WINDOW {
            return write_record_at(self.region.file(), DATA + at, header, bytes);
        }
        let capacity = self.field(CAPACITY).load(Relaxed) as usize;
        if end > capacity {
            let grown = end.max(capacity * 2).max(64 * 1024).next_multiple_of(4096).min(WINDOW);
            self.region.file().set_len(DATA + grown as u64)?;
            self.field(CAPACITY).store(grown as u64, Relaxed);
        }
        self.window.write(at as usize, header);
        self.window.write(at as usize + header.len(), bytes);
        Ok(())
    }

    /// Reads the record at log offset `at` (mutex held): its length, descriptor count and
    /// bytes.
    fn read_record(&self, at: u64) -> std::io::Result<(usize, usize, Vec<u8>)> {
        let at = at as usize;
        let header = if at + RECORD <= WINDOW {
            self.window.read(at, RECORD)
        } else {
            let mut h = vec![0u8; RECORD];
            self.region.file().read_exact_at(&mut h, DATA + at as u64)?;
            h
        };
        let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
        let nfds = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
        let data = if at + RECORD + len <= WINDOW {
            self.window.read(at + RECORD, len)
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

    pub fn join(&self) -> MpResult<()> {
        let g = self.lock()?;
        while self.field(UNFINISHED).load(Relaxed) > 0 {
            Cond::at(&self.region, ALL_DONE).wait(&g.mutex, None)?;
        }
        Ok(())
    }

    /// Encodes a value and puts it.
    pub fn put_value(&self, value: &Dynamic, block: bool, timeout: Option<f64>) -> MpResult<()> {
        self.check_open()?;
        let packet = rhai_mp_core::encode(value, "obj")?;
        self.put(&packet.bytes, &packet.fds, block, timeout)
    }

    /// Gets an item and decodes it.
    pub fn get_value(&self, ctx: &NativeCallContext, block: bool, timeout: Option<f64>) -> MpResult<Dynamic> {
        let (bytes, fds) = self.get(block, timeout)?;
        rhai_mp_core::decode(&bytes, fds, &ContextFns(ctx))
    }
}

/// A queue handle (`Queue` or `JoinableQueue`). Copies share the queue; `close()` applies to
/// this process's handle.
#[derive(Debug, Clone)]
pub struct Queue(pub Rc<QueueCore>);

/// Sends queues to other processes: their memfd, side channel and eventfd.
pub(crate) struct QueueCodec<T>(pub fn(Rc<QueueCore>) -> T, pub fn(&T) -> &Rc<QueueCore>, pub &'static str);

impl<T: Clone + 'static> HandleCodec for QueueCodec<T> {
    fn kind(&self) -> &'static str {
        self.2
    }
    fn type_id(&self) -> std::any::TypeId {
        std::any::TypeId::of::<T>()
    }
    fn encode(&self, value: &Dynamic, fds: &mut Vec<OwnedFd>) -> MpResult<Vec<u8>> {
        let q = value.read_lock::<T>().ok_or_else(|| mp_err!(SerializationError, "not a {}", self.2))?;
        let core = (self.1)(&q);
        fds.extend(core.dup_fds()?);
        let mut data = core.maxsize.to_le_bytes().to_vec();
        data.push(core.flavour as u8);
        Ok(data)
    }
    fn decode(&self, data: &[u8], fds: Vec<OwnedFd>) -> MpResult<Dynamic> {
        let bad = || mp_err!(SerializationError, "malformed {}", self.2);
        if data.len() != 9 || fds.len() != 4 {
            return Err(bad());
        }
        let flavour = match data[8] {
            0 => Flavour::Queue,
            1 => Flavour::Joinable,
            2 => Flavour::Simple,
            _ => return Err(bad()),
        };
        let core = QueueCore::from_fds(fds, u64::from_le_bytes(data[0..8].try_into().unwrap()), flavour)?;
        Ok(Dynamic::from((self.0)(Rc::new(core))))
    }
}

pub(crate) fn register_codecs() {
    rhai_mp_core::register_codec(QueueCodec::<Queue>(Queue, |q| &q.0, "Queue"));
}

pub(crate) fn maxsize(n: &Dynamic, func: &str) -> MpResult<u64> {
    let n = opts::arg_int(n, func, "maxsize")?;
    if n < 0 {
        return Err(mp_err!(ValueError, "maxsize must be 0 (no limit) or positive, not {n}"));
    }
    Ok(n as u64)
}

fn block_timeout(block: bool, timeout: &Dynamic, func: &str) -> MpResult<Option<f64>> {
    let t = opts::timeout(timeout, func)?;
    Ok(if block { t } else { None })
}

#[export_module]
pub mod queue_functions {
    use super::*;

    /// A process-safe FIFO queue (`Queue`) or one that counts unfinished tasks
    /// (`JoinableQueue`).
    pub type Queue = super::Queue;

    /// An unbounded queue.
    ///
    /// ```rhai
    /// let q = Queue();
    /// q.put([42, (), "hello"]);
    /// print(q.get());
    /// ```
    ///
    /// Throws when: the OS refuses the shared memory (`OSError`).
    #[rhai_fn(name = "Queue", return_raw)]
    pub fn queue() -> Result<Queue, Box<EvalAltResult>> {
        queue_max(Dynamic::from(0 as INT))
    }

    /// A queue holding at most `maxsize` items (`0`: no limit); `put` waits for room.
    ///
    /// ```rhai
    /// let q = Queue(10);
    /// ```
    ///
    /// Throws when: `maxsize` is negative (`ValueError`); the OS refuses (`OSError`).
    #[rhai_fn(name = "Queue", return_raw)]
    pub fn queue_max(maxsize: Dynamic) -> Result<Queue, Box<EvalAltResult>> {
        Ok(super::Queue(Rc::new(QueueCore::new(Flavour::Queue, super::maxsize(&maxsize, "Queue")?)?)))
    }

    /// A queue whose `join()` waits until every item put has been marked `task_done()`.
    ///
    /// ```rhai
    /// let q = JoinableQueue();
    /// ```
    ///
    /// Throws when: the OS refuses the shared memory (`OSError`).
    #[rhai_fn(name = "JoinableQueue", return_raw)]
    pub fn joinable() -> Result<Queue, Box<EvalAltResult>> {
        joinable_max(Dynamic::from(0 as INT))
    }

    /// A JoinableQueue holding at most `maxsize` items.
    ///
    /// ```rhai
    /// let q = JoinableQueue(100);
    /// ```
    ///
    /// Throws when: `maxsize` is negative (`ValueError`); the OS refuses (`OSError`).
    #[rhai_fn(name = "JoinableQueue", return_raw)]
    pub fn joinable_max(maxsize: Dynamic) -> Result<Queue, Box<EvalAltResult>> {
        Ok(super::Queue(Rc::new(QueueCore::new(Flavour::Joinable, super::maxsize(&maxsize, "JoinableQueue")?)?)))
    }

    /// Puts an item, waiting for room if the queue is full.
    ///
    /// ```rhai
    /// q.put(#{job: 1});
    /// ```
    ///
    /// Throws when: the item cannot be sent (`SerializationError`); the queue was closed in
    /// this process (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn put(q: &mut Queue, item: Dynamic) -> Result<(), Box<EvalAltResult>> {
        Ok(q.0.put_value(&item, true, None)?)
    }

    /// Puts an item; with `block == false`, throws `Full` at once instead of waiting.
    ///
    /// ```rhai
    /// q.put(1, false);
    /// ```
    ///
    /// Throws when: the queue is full and `block` is false (`Full`); as `put(item)`.
    #[rhai_fn(global, name = "put", return_raw)]
    pub fn put_block(q: &mut Queue, item: Dynamic, block: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let block = opts::arg_bool(&block, "put", "block")?;
        Ok(q.0.put_value(&item, block, None)?)
    }

    /// Puts an item, waiting at most `timeout` seconds for room (`()`: no limit).
    ///
    /// ```rhai
    /// try { q.put(1, true, 0.5) } catch (e) { if e.type == "Full" { print("no room") } }
    /// ```
    ///
    /// Throws when: no room in time (`Full`); `timeout` is negative (`ValueError`); as
    /// `put(item)`.
    #[rhai_fn(global, name = "put", return_raw)]
    pub fn put_timeout(
        q: &mut Queue,
        item: Dynamic,
        block: Dynamic,
        timeout: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        let block = opts::arg_bool(&block, "put", "block")?;
        let t = block_timeout(block, &timeout, "put")?;
        Ok(q.0.put_value(&item, block, t)?)
    }

    /// `put(item, false)`.
    ///
    /// ```rhai
    /// q.put_nowait(1);
    /// ```
    ///
    /// Throws when: the queue is full (`Full`); as `put(item)`.
    #[rhai_fn(global, return_raw)]
    pub fn put_nowait(q: &mut Queue, item: Dynamic) -> Result<(), Box<EvalAltResult>> {
        Ok(q.0.put_value(&item, false, None)?)
    }

    /// Takes the oldest item, waiting for one.
    ///
    /// ```rhai
    /// let item = q.get();
    /// ```
    ///
    /// Throws when: the queue was closed in this process (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn get(ctx: NativeCallContext, q: &mut Queue) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(q.0.get_value(&ctx, true, None)?)
    }

    /// Takes the oldest item; with `block == false`, throws `Empty` at once if there is none.
    ///
    /// ```rhai
    /// try { q.get(false) } catch (e) { if e.type == "Empty" { print("nothing") } }
    /// ```
    ///
    /// Throws when: the queue is empty and `block` is false (`Empty`); as `get()`.
    #[rhai_fn(global, name = "get", return_raw)]
    pub fn get_block(ctx: NativeCallContext, q: &mut Queue, block: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        let block = opts::arg_bool(&block, "get", "block")?;
        Ok(q.0.get_value(&ctx, block, None)?)
    }

    /// Takes the oldest item, waiting at most `timeout` seconds (`()`: no limit).
    ///
    /// ```rhai
    /// let item = q.get(true, 1.5);
    /// ```
    ///
    /// Throws when: no item in time (`Empty`); `timeout` is negative (`ValueError`); as
    /// `get()`.
    #[rhai_fn(global, name = "get", return_raw)]
    pub fn get_timeout(
        ctx: NativeCallContext,
        q: &mut Queue,
        block: Dynamic,
        timeout: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let block = opts::arg_bool(&block, "get", "block")?;
        let t = block_timeout(block, &timeout, "get")?;
        Ok(q.0.get_value(&ctx, block, t)?)
    }

    /// `get(false)`.
    ///
    /// ```rhai
    /// let item = q.get_nowait();
    /// ```
    ///
    /// Throws when: the queue is empty (`Empty`); as `get()`.
    #[rhai_fn(global, return_raw)]
    pub fn get_nowait(ctx: NativeCallContext, q: &mut Queue) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(q.0.get_value(&ctx, false, None)?)
    }

    /// The number of items (a snapshot: other processes may change it at once).
    ///
    /// ```rhai
    /// print(q.qsize());
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, pure)]
    pub fn qsize(q: &mut Queue) -> INT {
        q.0.qsize() as INT
    }

    /// Whether the queue is empty (a snapshot).
    ///
    /// ```rhai
    /// while !q.empty() { print(q.get()); }
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, pure)]
    pub fn empty(q: &mut Queue) -> bool {
        q.0.empty()
    }

    /// Whether the queue holds `maxsize` items (a snapshot; always false without a limit).
    ///
    /// ```rhai
    /// if !q.full() { q.put(1); }
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, pure)]
    pub fn full(q: &mut Queue) -> bool {
        q.0.full()
    }

    /// This process will put and get no more: later `put`/`get` here throw `ValueError`.
    /// Items already put stay in the queue for other processes.
    ///
    /// ```rhai
    /// q.close();
    /// q.join_thread();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global)]
    pub fn close(q: &mut Queue) {
        q.0.close()
    }

    /// Python waits here for the feeder thread to flush; rhai-mp's `put` is already done
    /// when it returns, so this only checks that `close()` came first.
    ///
    /// ```rhai
    /// q.close();
    /// q.join_thread();
    /// ```
    ///
    /// Throws when: the queue was not closed (`AssertionError`).
    #[rhai_fn(global, return_raw)]
    pub fn join_thread(q: &mut Queue) -> Result<(), Box<EvalAltResult>> {
        if !q.0.is_closed() {
            return Err(mp_err!(AssertionError, "{} not closed", q.0.flavour.name()).into());
        }
        Ok(())
    }

    /// Does nothing: rhai-mp never holds items back in a process, so there is nothing to
    /// flush or lose at exit.
    ///
    /// ```rhai
    /// q.cancel_join_thread();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global)]
    pub fn cancel_join_thread(_q: &mut Queue) {}

    /// Marks one item taken with `get()` as processed (JoinableQueue).
    ///
    /// ```rhai
    /// let job = q.get();
    /// work(job);
    /// q.task_done();
    /// ```
    ///
    /// Throws when: called more often than items were put (`ValueError`); the queue is not a
    /// JoinableQueue (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn task_done(q: &mut Queue) -> Result<(), Box<EvalAltResult>> {
        if q.0.flavour != Flavour::Joinable {
            return Err(mp_err!(ValueError, "task_done() needs a JoinableQueue, not a Queue").into());
        }
        Ok(q.0.task_done()?)
    }

    /// Waits until every item put has been marked with `task_done()` (JoinableQueue).
    ///
    /// ```rhai
    /// q.join();
    /// ```
    ///
    /// Throws when: the queue is not a JoinableQueue (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn join(q: &mut Queue) -> Result<(), Box<EvalAltResult>> {
        if q.0.flavour != Flavour::Joinable {
            return Err(mp_err!(ValueError, "join() needs a JoinableQueue, not a Queue").into());
        }
        Ok(q.0.join()?)
    }

    /// `<Queue qsize=3 maxsize=0>` (or `<JoinableQueue ..>`).
    ///
    /// ```rhai
    /// print(q);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(q: &mut Queue) -> String {
        format!(
            "<{} qsize={} maxsize={}{}>",
            q.0.flavour.name(),
            q.0.qsize(),
            q.0.maxsize,
            if q.0.is_closed() { " closed" } else { "" }
        )
    }
}
