//! The messages between a pool and its workers, and the slots where workers note what they
//! are running. Everything is written with the wire format's typed messages.
//!
//! - A worker's arguments: [`WorkerArgs`] (its queues, its slot, the initializer …).
//! - A task is `[job][chunk][first][kind][func length][func descriptor count][offset]
//!   [timeout][flags]`, then the encoded function, then the encoded payload (the arguments
//!   of an `apply`, the items of a chunk, or `[start, end]` of a chunk of a range). Job 0
//!   tells a worker to exit. The function is encoded once per call and shared by its tasks;
//!   the fixed head lets a worker note its task without decoding it. `offset` is where the
//!   task's items start in their chunk (not 0 for the rest of a chunk sent again after its
//!   worker was killed); `timeout` is each item's limit in nanoseconds (0: none); flag
//!   [`STREAM`] asks for each item's result as soon as it is there.
//! - A result is `[job][chunk][offset]`, then a [`ChunkOutcome`] for the items from
//!   `offset` on. Job 0 reports that the initializer failed in the worker numbered `chunk`.
//! - Slots: a shared region with one 64-byte slot per worker, `[pid, job, chunk, item,
//!   started, limit]`. A worker writes `job`/`chunk` under the task queue's mutex as it
//!   takes a task (see `QueueCore::get_with`), so a worker killed at any moment leaves its
//!   task either queued or named in its slot, `item` as it goes through a chunk, and, for an
//!   item with a timeout, when it started (`CLOCK_MONOTONIC` nanoseconds) and its limit.
//!   After the slots, one bit per job number (modulo [`CANCEL_BITS`]): the calls that were
//!   cancelled, whose tasks a worker skips.

use crate::queue::Queue;
use rhai::{Array, Dynamic, FnPtr};
use rhai_mp_core::base::shm::Region;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::MpResult;
use rhai_mp_core::run::remote::RemoteError;
use rhai_mp_core::wire::{malformed, Portable, Reader, Writer};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

/// What a task asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `f(args..)`, once; the payload is the argument array.
    Apply = 0,
    /// `f(item)` for each item of the payload array.
    Map = 1,
    /// `f(i)` for each `i` in `start..end` (the payload is `[start, end]`).
    MapRange = 2,
    /// `f(args..)` for each argument array of the payload array.
    Starmap = 3,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0 => Kind::Apply,
            1 => Kind::Map,
            2 => Kind::MapRange,
            3 => Kind::Starmap,
            _ => return None,
        })
    }
}

/// The fixed part of a task.
pub(super) const TASK_HEAD: usize = 8 * 3 + 1 + 4 + 4 + 8 + 8 + 1;

/// Task flag: send each item's result as soon as it is there (a bounded chunk: the items
/// done keep their results if the worker is killed).
pub(super) const STREAM: u8 = 1;

/// A task's fixed part.
#[derive(Debug, Clone, Copy)]
pub(super) struct TaskHead {
    pub job: u64,
    pub chunk: u64,
    pub first: u64,
    pub kind: Kind,
    pub func_len: usize,
    pub func_fds: usize,
    /// Where the task's items start in their chunk.
    pub offset: u64,
    /// Each item's time limit in nanoseconds (0: none).
    pub timeout_ns: u64,
    /// [`STREAM`] or 0.
    pub flags: u8,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

impl TaskHead {
    /// Reads the fixed part; `None` if the bytes are too short or malformed.
    pub(super) fn read(b: &[u8]) -> Option<TaskHead> {
        if b.len() < 8 {
            return None;
        }
        let job = u64_at(b, 0);
        if job == 0 {
            return Some(TaskHead {
                job,
                chunk: 0,
                first: 0,
                kind: Kind::Apply,
                func_len: 0,
                func_fds: 0,
                offset: 0,
                timeout_ns: 0,
                flags: 0,
            });
        }
        if b.len() < TASK_HEAD {
            return None;
        }
        let head = TaskHead {
            job,
            chunk: u64_at(b, 8),
            first: u64_at(b, 16),
            kind: Kind::from_u8(b[24])?,
            func_len: u32_at(b, 25) as usize,
            func_fds: u32_at(b, 29) as usize,
            offset: u64_at(b, 33),
            timeout_ns: u64_at(b, 41),
            flags: b[49],
        };
        (TASK_HEAD + head.func_len <= b.len()).then_some(head)
    }

    /// [`TaskHead::read`] of a task's first bytes only (a queue record of a large task
    /// keeps those): the head, without checking that the function follows.
    pub(super) fn read_prefix(b: &[u8]) -> Option<TaskHead> {
        let mut whole = b.get(..TASK_HEAD).unwrap_or(b).to_vec();
        if whole.len() == TASK_HEAD {
            whole[25..29].copy_from_slice(&0u32.to_le_bytes());
        }
        TaskHead::read(&whole)
    }

    /// The task's bytes: this head, the encoded function, the encoded payload.
    pub(super) fn frame(&self, func: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::with_capacity(TASK_HEAD + func.len() + payload.len());
        b.extend_from_slice(&self.job.to_le_bytes());
        b.extend_from_slice(&self.chunk.to_le_bytes());
        b.extend_from_slice(&self.first.to_le_bytes());
        b.push(self.kind as u8);
        b.extend_from_slice(&(func.len() as u32).to_le_bytes());
        b.extend_from_slice(&(self.func_fds as u32).to_le_bytes());
        b.extend_from_slice(&self.offset.to_le_bytes());
        b.extend_from_slice(&self.timeout_ns.to_le_bytes());
        b.push(self.flags);
        b.extend_from_slice(func);
        b.extend_from_slice(payload);
        b
    }
}

/// The task that tells a worker to exit.
pub(super) fn stop_task() -> Vec<u8> {
    0u64.to_le_bytes().to_vec()
}

/// What came back for a chunk: one value per item and the items that threw (their index
/// in the chunk and the error), or an error for the whole chunk (the task could not be
/// decoded, a result could not cross, the initializer failed).
pub(super) enum ChunkOutcome {
    /// The chunk ran: `values` (`()` where an item threw) and `errors`.
    Ran {
        /// One value per item.
        values: Array,
        /// `(index in the chunk, error)` for the items that threw.
        errors: Vec<(u64, RemoteError)>,
    },
    /// The chunk failed as a whole.
    Failed(RemoteError),
}

/// (A worker writes its outcomes with [`encode_result_apart`], which writes `Ran` as this
/// does, without copying the values.)
impl Portable for ChunkOutcome {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        match self {
            ChunkOutcome::Ran { values, errors } => {
                w.u8(0);
                w.value(&Dynamic::from_array(values.clone()), "result")?;
                w.put(errors)
            }
            ChunkOutcome::Failed(e) => {
                w.u8(1);
                w.put(e)
            }
        }
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        match r.u8()? {
            0 => Ok(ChunkOutcome::Ran {
                values: r.value()?.try_cast::<Array>().ok_or_else(|| malformed("a pool result"))?,
                errors: r.get()?,
            }),
            1 => Ok(ChunkOutcome::Failed(r.get()?)),
            t => Err(malformed(&format!("pool result kind {t}"))),
        }
    }
}

/// A result's bytes and descriptors: `[job][chunk][offset]`, then the outcome (as
/// [`ChunkOutcome`]'s `write` writes it). The outcome is given up: its values are not
/// copied, and their large blobs and int arrays stay apart, to be copied once into the
/// results queue (see `rhai_mp_core::wire::Segmented`). `remote`: for another machine (an MPI
/// rank), where objects of this host's memory cannot go.
pub(super) fn encode_result_apart(
    (job, chunk, offset): (u64, u64, u64),
    outcome: ChunkOutcome,
    remote: bool,
) -> MpResult<rhai_mp_core::wire::Segmented> {
    let mut w = if remote { Writer::remote() } else { Writer::new() };
    w.u64(job);
    w.u64(chunk);
    w.u64(offset);
    match outcome {
        ChunkOutcome::Ran { values, errors } => {
            w.u8(0);
            w.value_owned(Dynamic::from_array(values), "result")?;
            w.put(&errors)?;
        }
        failed => w.put(&failed)?,
    }
    let p = w.finish_apart();
    if remote && !p.fds().is_empty() {
        return Err(mp_err!(SerializationError, "the result holds objects that live in this host's memory"));
    }
    Ok(p)
}

/// [`encode_result_apart`] in one piece.
pub(super) fn encode_result(
    head: (u64, u64, u64),
    outcome: ChunkOutcome,
    remote: bool,
) -> MpResult<rhai_mp_core::wire::Packet> {
    encode_result_apart(head, outcome, remote).map(rhai_mp_core::wire::Segmented::into_packet)
}

/// A result's job, chunk and offset (read without decoding the rest).
pub(super) fn result_head(b: &[u8]) -> MpResult<(u64, u64, u64)> {
    if b.len() < 24 {
        return Err(mp_err!(SerializationError, "malformed pool result ({} bytes)", b.len()));
    }
    Ok((u64_at(b, 0), u64_at(b, 8), u64_at(b, 16)))
}

/// A result's outcome.
pub(super) fn result_outcome(b: &[u8], fds: Vec<std::os::fd::OwnedFd>) -> MpResult<ChunkOutcome> {
    rhai_mp_core::wire::decode_message(b.get(24..).unwrap_or_default(), fds)
}

/// What a pool worker is started with (the payload of its native entry).
pub(super) struct WorkerArgs {
    /// The queue it takes tasks from.
    pub tasks: Queue,
    /// The queue it puts results on.
    pub results: Queue,
    /// The workers' slots.
    pub slots: PoolSlots,
    /// Its slot.
    pub index: u64,
    /// The function it calls first, with `initargs`.
    pub initializer: Option<FnPtr>,
    /// The initializer's arguments.
    pub initargs: Array,
    /// How many tasks it runs before it exits (0: no limit).
    pub maxtasks: u64,
    /// The most memory it may use, in bytes (0: no limit of its own).
    pub max_memory: u64,
}

impl Portable for WorkerArgs {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.put(&self.tasks)?;
        w.put(&self.results)?;
        w.put(&self.slots)?;
        w.u64(self.index);
        w.value(&self.initializer.clone().map_or(Dynamic::UNIT, Dynamic::from), "initializer")?;
        w.value(&Dynamic::from_array(self.initargs.clone()), "initargs")?;
        w.u64(self.maxtasks);
        w.u64(self.max_memory);
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(WorkerArgs {
            tasks: r.get()?,
            results: r.get()?,
            slots: r.get()?,
            index: r.u64()?,
            initializer: r.value()?.try_cast::<FnPtr>(),
            initargs: r.value()?.try_cast::<Array>().ok_or_else(|| malformed("a pool's initargs"))?,
            maxtasks: r.u64()?,
            max_memory: r.u64()?,
        })
    }
}

/// The most workers a pool can have (the slots region holds this many).
pub(super) const MAX_WORKERS: usize = 2048;
const SLOT: usize = 64;
/// How many job numbers the cancel bits tell apart (a job's bit is cleared when the job
/// number that shares it is made).
pub(super) const CANCEL_BITS: u64 = 1 << 16;
pub(super) const SLOTS_SIZE: usize = MAX_WORKERS * SLOT + (CANCEL_BITS / 8) as usize;

/// The workers' slots (shared memory); copies share them.
#[derive(Debug, Clone)]
pub(super) struct PoolSlots(pub Rc<Region>);

/// A slot's fields.
#[derive(Debug, Clone, Copy)]
pub(super) enum Field {
    Pid = 0,
    Job = 1,
    Chunk = 2,
    Item = 3,
    /// When the running item started (`CLOCK_MONOTONIC` ns), if it has a timeout.
    Started = 4,
    /// The running item's timeout (ns), if it has one.
    Limit = 5,
}

/// `CLOCK_MONOTONIC` now, in nanoseconds (the same clock in every process).
pub(super) fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(0, |t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
}

impl PoolSlots {
    pub(super) fn new() -> MpResult<PoolSlots> {
        Ok(PoolSlots(Rc::new(Region::create("rhai-mp-pool", SLOTS_SIZE)?)))
    }

    fn at(&self, worker: usize, field: Field) -> &std::sync::atomic::AtomicU64 {
        self.0.atomic(worker.min(MAX_WORKERS - 1) * SLOT + field as usize * 8)
    }

    pub(super) fn get(&self, worker: usize, field: Field) -> u64 {
        self.at(worker, field).load(Relaxed)
    }

    pub(super) fn set(&self, worker: usize, field: Field, v: u64) {
        self.at(worker, field).store(v, Relaxed)
    }

    fn cancel_word(&self, job: u64) -> (&std::sync::atomic::AtomicU64, u64) {
        let bit = job % CANCEL_BITS;
        (self.0.atomic(MAX_WORKERS * SLOT + (bit / 64) as usize * 8), 1 << (bit % 64))
    }

    /// Marks a call cancelled: workers skip its tasks and stop its running item.
    pub(super) fn cancel(&self, job: u64) {
        let (w, m) = self.cancel_word(job);
        w.fetch_or(m, std::sync::atomic::Ordering::SeqCst);
    }

    /// Clears a job number's cancel bit (a new call got the number that shares it).
    pub(super) fn uncancel(&self, job: u64) {
        let (w, m) = self.cancel_word(job);
        w.fetch_and(!m, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a call was cancelled.
    pub(super) fn cancelled(&self, job: u64) -> bool {
        let (w, m) = self.cancel_word(job);
        w.load(std::sync::atomic::Ordering::SeqCst) & m != 0
    }
}

impl Portable for PoolSlots {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.dup(self.0.fd())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(PoolSlots(Rc::new(Region::open(r.fd()?, SLOTS_SIZE)?)))
    }
}
