//! The worker side of a pool: the loop a worker process runs. A worker is an ordinary
//! daemon `Process` whose target is the native entry [`ENTRY`] with typed arguments
//! ([`WorkerArgs`]), so it starts the same way under every start method.
//!
//! The loop: run the initializer once; then take a task (noting it in the worker's slot),
//! call the function on each of its items, put the chunk's outcome on the result queue,
//! clear the slot; exit on the stop task or after `maxtasksperchild` tasks. An error thrown
//! by the function for one item goes back as that item's `RemoteError`; the other items of
//! the chunk still run.
//!
//! Bounds: an item with a timeout arms a timer (one per worker, signalling this thread with
//! `interrupt::STOP_SIGNAL`; set lazily, so that timed items cost no system call each, see
//! [`ItemTimer`]); an item of a cancelled call (its bit in the slots region) is
//! stopped the same way when the pool signals the worker. The stop hook ([`stop_hook`])
//! decides: the interpreter's progress hook and every wait then end the call, and the item
//! fails with `TimeoutError` (fields `task`, `pid`, `timeout`) or `CancelledError`; the
//! worker goes on with the next item. A call that does not stop (a native function that
//! does not return) is the pool's to kill. A streamed task (flag `STREAM`) sends each
//! item's result at once, so that a kill loses none that were done. `max_memory` is the
//! worker's `RLIMIT_DATA` and its budget for values built at once (`base::limits`).

use super::task::{
    encode_result, encode_result_apart, now_ns, ChunkOutcome, Field, Kind, PoolSlots, TaskHead, WorkerArgs, STREAM,
    TASK_HEAD,
};
use crate::queue::Queue;
use rhai::{Array, Dynamic, EvalAltResult, FnPtr, NativeCallContext};
use rhai_mp_core::base::error::ExitRequest;
use rhai_mp_core::base::interrupt;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, RhaiResult};
use rhai_mp_core::run::remote::RemoteError;
use rhai_mp_core::wire::Packet;
use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;

/// The name of the workers' native entry point.
pub(crate) const ENTRY: &str = "pool-worker";

fn who() -> (String, i32) {
    (rhai_mp_core::tree::state::with(|s| s.name.clone()), rhai_mp_core::base::sys::pid() as i32)
}

fn remote(err: &EvalAltResult) -> RemoteError {
    let (name, pid) = who();
    RemoteError::capture(err, &name, pid)
}

fn remote_mp(e: MpError) -> RemoteError {
    remote(&Box::<EvalAltResult>::from(e))
}

/// The call that runs now, as the stop hook sees it (this thread runs the calls).
struct Current {
    job: Cell<u64>,
    /// The running item's deadline (`CLOCK_MONOTONIC` ns; 0: none).
    deadline: Cell<u64>,
    /// The slots whose cancel bits say which calls were cancelled (local workers).
    slots: RefCell<Option<PoolSlots>>,
    /// The calls cancelled on this rank (`(owner, job)`), and the owner that runs now.
    rank_cancelled: RefCell<Vec<(u64, u64)>>,
    owner: Cell<u64>,
}

thread_local! {
    static CURRENT: Current = const {
        Current {
            job: Cell::new(0),
            deadline: Cell::new(0),
            slots: RefCell::new(None),
            rank_cancelled: RefCell::new(Vec::new()),
            owner: Cell::new(0),
        }
    };
}

/// Calls cancelled on this rank, as the rank's reader thread hears of them.
static RANK_CANCELS: std::sync::Mutex<Vec<(u64, u64)>> = std::sync::Mutex::new(Vec::new());

/// Whether the call `job` (of `owner` on a rank) was cancelled.
fn is_cancelled(c: &Current, job: u64) -> bool {
    if let Some(s) = &*c.slots.borrow() {
        return s.cancelled(job);
    }
    let owner = c.owner.get();
    let mut mine = c.rank_cancelled.borrow_mut();
    if let Ok(mut new) = RANK_CANCELS.lock() {
        mine.append(&mut new);
        // A rank serves the whole job: keep the latest few hundred.
        let n = mine.len();
        if n > 512 {
            mine.drain(..n - 512);
        }
    }
    mine.contains(&(owner, job))
}

/// The stop hook (see `interrupt::watch_stops`): whether the running item is to stop.
fn stop_hook() -> Option<i32> {
    CURRENT.with(|c| {
        let job = c.job.get();
        if job == 0 {
            return None;
        }
        if is_cancelled(c, job) {
            return Some(interrupt::CANCELLED);
        }
        let d = c.deadline.get();
        if d == 0 {
            return None;
        }
        let now = now_ns();
        if now >= d {
            return Some(interrupt::TIMED_OUT);
        }
        // Early (the timer was set for an earlier item's deadline, or another stop was
        // asked): the timer waits for this item's deadline.
        TIMER.with(|t| {
            if let Ok(mut t) = t.try_borrow_mut() {
                t.catch_up(d, now);
            }
        });
        None
    })
}

/// On a rank: the rank's reader thread heard that `owner`'s call `job` is cancelled.
pub(crate) fn cancel_on_rank(owner: u64, job: u64) {
    if let Ok(mut c) = RANK_CANCELS.lock() {
        c.push((owner, job));
    }
    interrupt::request_stop();
}

/// Makes this thread's calls stoppable (the stop signal's handler and the hook); once.
fn watch() {
    thread_local!(static ON: Cell<bool> = const { Cell::new(false) });
    if !ON.with(|o| o.replace(true)) {
        interrupt::watch_stops(stop_hook);
    }
}

/// The timer that stops an item at its deadline (made on the first item with a timeout).
/// It is set lazily, so that a run of timed items makes no system call per item: an item
/// whose deadline is no earlier than the pending expiry leaves the timer as it is; when it
/// fires before the running item's deadline, the stop hook sets it again for that deadline
/// ([`ItemTimer::catch_up`]). An item without a timeout clears a pending expiry; one that
/// fires between items (the worker idle) finds no item to stop.
#[derive(Default)]
struct ItemTimer {
    timer: Option<nix::sys::timer::Timer>,
    /// When the pending expiry comes (`CLOCK_MONOTONIC` ns; 0: none pending).
    expires: u64,
}

impl ItemTimer {
    /// Sets the timer to fire at `at` (it is `now`).
    fn set(&mut self, at: u64, now: u64) {
        use nix::sys::signal::{SigEvent, SigevNotify, Signal};
        use nix::sys::time::TimeSpec;
        use nix::sys::timer::{Expiration, Timer, TimerSetTimeFlags};
        if self.timer.is_none() {
            let ev = SigEvent::new(SigevNotify::SigevThreadId {
                signal: Signal::SIGUSR2,
                thread_id: nix::unistd::gettid().as_raw(),
                si_value: 0,
            });
            self.timer = Timer::new(nix::time::ClockId::CLOCK_MONOTONIC, ev).ok();
        }
        if let Some(t) = &mut self.timer {
            let ts = TimeSpec::from_duration(std::time::Duration::from_nanos(at.saturating_sub(now).max(1)));
            let ok = t.set(Expiration::OneShot(ts), TimerSetTimeFlags::empty()).is_ok();
            self.expires = if ok { at } else { 0 };
        }
    }

    /// An item with the deadline `at` starts (it is `now`): the timer fires by then.
    fn cover(&mut self, at: u64, now: u64) {
        if self.expires > now && self.expires <= at {
            return;
        }
        self.set(at, now);
    }

    /// The timer fired (or another stop was asked) before the running item's deadline `at`
    /// (it is `now`): set it again unless an expiry is still pending.
    fn catch_up(&mut self, at: u64, now: u64) {
        if self.expires <= now {
            self.set(at, now);
        }
    }

    /// An item without a timeout starts (it is `now`): a pending expiry is cleared.
    fn clear(&mut self, now: u64) {
        use nix::sys::time::TimeSpec;
        use nix::sys::timer::{Expiration, TimerSetTimeFlags};
        if self.expires > now {
            if let Some(t) = &mut self.timer {
                let _ = t.set(Expiration::OneShot(TimeSpec::new(0, 0)), TimerSetTimeFlags::empty());
            }
        }
        self.expires = 0;
    }
}

thread_local!(static TIMER: RefCell<ItemTimer> = RefCell::new(ItemTimer::default()));

fn put_result(results: &Queue, head: (u64, u64, u64), outcome: ChunkOutcome) -> RhaiResult<()> {
    let packet = match encode_result_apart(head, outcome, false) {
        Ok(p) => p,
        // A result that cannot cross becomes the error it is.
        Err(e) => encode_result_apart(head, ChunkOutcome::Failed(remote_mp(e)), false)?,
    };
    results.0.put_pieces(&packet.pieces(), packet.fds(), true, Deadline::NEVER)?;
    Ok(())
}

/// Where a task runs: a local worker (its slot, its result queue) or a rank.
struct Place<'a> {
    slots: Option<(&'a PoolSlots, usize)>,
    results: Option<&'a Queue>,
}

impl Place<'_> {
    fn note(&self, field: Field, v: u64) {
        if let Some((s, i)) = self.slots {
            s.set(i, field, v);
        }
    }
}

/// The error an item that was stopped fails with, or the error it threw.
fn item_error(
    e: Box<EvalAltResult>,
    head: &TaskHead,
    item: u64,
    exit: &RefCell<Option<Box<EvalAltResult>>>,
) -> RemoteError {
    match ExitRequest::of(&e) {
        Some(ExitRequest::Signal(interrupt::TIMED_OUT)) => {
            interrupt::clear_abort();
            let (_, pid) = who();
            let t = head.timeout_ns as f64 / 1e9;
            remote_mp(
                mp_err!(TimeoutError, "task {item} ran longer than its timeout of {t} s and was stopped")
                    .with("task", item as rhai::INT)
                    .with("pid", pid as rhai::INT)
                    .with("timeout", t),
            )
        }
        Some(ExitRequest::Signal(interrupt::CANCELLED)) => {
            interrupt::clear_abort();
            remote_mp(mp_err!(CancelledError, "task {item} was cancelled").with("task", item as rhai::INT))
        }
        // `exit(n)` in a task ends the worker (the pool then fails the task), as in Python;
        // so does a real signal (SIGTERM).
        Some(_) => {
            *exit.borrow_mut() = Some(e);
            remote_mp(mp_err!(RuntimeError, "the worker exited"))
        }
        None => remote(&e),
    }
}

/// Runs one task's items. `exit` receives an `exit(n)` request (or a signal's end), which
/// ends the worker.
fn run_task(
    ctx: &NativeCallContext,
    place: &Place,
    head: &TaskHead,
    bytes: &[u8],
    mut fds: Vec<OwnedFd>,
    exit: &RefCell<Option<Box<EvalAltResult>>>,
) -> Result<ChunkOutcome, RemoteError> {
    let rest = fds.split_off(head.func_fds.min(fds.len()));
    let func_end = TASK_HEAD + head.func_len;
    let f = rhai_mp_core::wire::decode(&bytes[TASK_HEAD..func_end], fds).map_err(remote_mp)?;
    let f = f.try_cast::<FnPtr>().ok_or_else(|| remote_mp(mp_err!(SerializationError, "malformed pool task")))?;
    let payload = rhai_mp_core::wire::decode(&bytes[func_end..], rest).map_err(remote_mp)?;
    let malformed = || remote_mp(mp_err!(SerializationError, "malformed pool task"));
    let items = |p: Dynamic| p.try_cast::<Array>().ok_or_else(malformed);
    // The items, each its argument list.
    let args: Box<dyn Iterator<Item = Result<Args, RemoteError>>> = match head.kind {
        Kind::Apply => Box::new(std::iter::once(Ok(Args::Many(items(payload)?)))),
        Kind::Map => Box::new(items(payload)?.into_iter().map(|x| Ok(Args::One(x)))),
        Kind::MapRange => {
            let bounds = items(payload)?;
            let (Some(a), Some(b)) =
                (bounds.first().and_then(|x| x.as_int().ok()), bounds.get(1).and_then(|x| x.as_int().ok()))
            else {
                return Err(malformed());
            };
            Box::new((a..b).map(|x| Ok(Args::One(Dynamic::from(x)))))
        }
        Kind::Starmap => {
            let first = head.first;
            Box::new(items(payload)?.into_iter().enumerate().map(move |(i, x)| {
                let t = crate::opts::type_name(&x);
                crate::opts::items(x).map(Args::Many).map_err(|_| {
                    remote_mp(mp_err!(
                        TypeError,
                        "starmap() items must be arrays (or other iterables) of arguments; item {} is {t}",
                        first + i as u64
                    ))
                })
            }))
        }
    };
    let stream = head.flags & STREAM != 0 && place.results.is_some();
    let timed = head.timeout_ns > 0;
    if timed || stream {
        watch();
    }
    if !timed {
        // (No clock read unless a timed item left an expiry pending.)
        TIMER.with(|t| {
            let mut t = t.borrow_mut();
            if t.expires != 0 {
                t.clear(now_ns());
            }
        });
    }
    CURRENT.with(|c| c.job.set(head.job));
    // Every item runs, even after one threw: each gets its value or its error.
    let mut out = Outcome::default();
    for (i, a) in args.into_iter().enumerate() {
        let item = head.first + i as u64;
        if head.kind != Kind::Apply {
            place.note(Field::Item, item);
        }
        let cancelled = CURRENT.with(|c| is_cancelled(c, head.job));
        let r = if cancelled {
            Err(remote_mp(mp_err!(CancelledError, "task {item} was cancelled").with("task", item as rhai::INT)))
        } else {
            a.and_then(|a| {
                if timed {
                    let start = now_ns();
                    let at = start.saturating_add(head.timeout_ns);
                    CURRENT.with(|c| c.deadline.set(at));
                    place.note(Field::Limit, head.timeout_ns);
                    place.note(Field::Started, start);
                    TIMER.with(|t| t.borrow_mut().cover(at, start));
                }
                let r = match a {
                    Args::One(x) => f.call_raw(ctx, None, [x]),
                    Args::Many(v) => f.call_raw(ctx, None, v),
                }
                .map_err(|e| item_error(e, head, item, exit));
                if timed {
                    place.note(Field::Started, 0);
                    CURRENT.with(|c| c.deadline.set(0));
                }
                r
            })
        };
        if stream {
            let mut one = Outcome::default();
            one.push(0, r);
            let outcome = ChunkOutcome::Ran { values: one.values, errors: one.errors };
            if let Some(q) = place.results {
                put_result(q, (head.job, head.chunk, head.offset + i as u64), outcome).map_err(|e| remote(&e))?;
            }
        } else {
            out.push(i, r);
        }
        if exit.borrow().is_some() || cancelled {
            break;
        }
    }
    CURRENT.with(|c| c.job.set(0));
    if stream {
        return Ok(ChunkOutcome::Ran { values: Array::new(), errors: Vec::new() });
    }
    Ok(ChunkOutcome::Ran { values: out.values, errors: out.errors })
}

/// One item's arguments.
enum Args {
    One(Dynamic),
    Many(Vec<Dynamic>),
}

/// A chunk's values and errors as they are collected.
#[derive(Default)]
struct Outcome {
    values: Array,
    errors: Vec<(u64, RemoteError)>,
}

impl Outcome {
    fn push(&mut self, i: usize, r: Result<Dynamic, RemoteError>) {
        match r {
            Ok(v) => self.values.push(v),
            Err(e) => {
                self.values.push(Dynamic::UNIT);
                self.errors.push((i as u64, e));
            }
        }
    }
}

/// The native entry of every pool worker: decodes its arguments and runs [`work`].
pub(crate) fn entry(ctx: &NativeCallContext, payload: Packet) -> RhaiResult<()> {
    let args: WorkerArgs = rhai_mp_core::wire::decode_message(&payload.bytes, payload.fds)?;
    work(ctx, args)
}

/// The worker loop.
fn work(ctx: &NativeCallContext, args: WorkerArgs) -> RhaiResult<()> {
    let WorkerArgs { tasks, results, slots, index, initializer, initargs, maxtasks, max_memory } = args;
    // A worker ignores Ctrl-C, which reaches the whole process group: its parent handles it
    // (a pool call it interrupts terminates the workers).
    rhai_mp_core::base::sys::ignore_signal(libc::SIGINT);
    let index = index as usize;
    slots.set(index, Field::Pid, rhai_mp_core::base::sys::pid() as u64);
    CURRENT.with(|c| *c.slots.borrow_mut() = Some(slots.clone()));
    // The pool may signal this worker to stop a cancelled item at any time.
    watch();
    if max_memory > 0 {
        rhai_mp_core::base::limits::limit_memory(max_memory)?;
    }
    if let Some(init) = initializer {
        if let Err(e) = init.call_raw(ctx, None, initargs) {
            if rhai_mp_core::base::error::ExitRequest::code_of(&e).is_some() {
                return Err(e);
            }
            // Report here first: the pool terminates its workers once it hears of this.
            let (name, pid) = who();
            rhai_mp_core::run::interp::report_error(&e, Some((&name, pid)));
            put_result(&results, (0, index as u64, 0), ChunkOutcome::Failed(remote(&e)))?;
            return Err(rhai_mp_core::base::error::ExitRequest::exit(&Dynamic::from(1 as rhai::INT)));
        }
    }
    let place = Place { slots: Some((&slots, index)), results: Some(&results) };
    let mut done: u64 = 0;
    loop {
        let mut noted = |b: &[u8]| {
            if let Some(h) = TaskHead::read_prefix(b) {
                if h.job != 0 {
                    slots.set(index, Field::Item, h.first);
                    slots.set(index, Field::Chunk, h.chunk);
                    slots.set(index, Field::Job, h.job);
                }
            }
        };
        let (bytes, fds) = tasks.0.get_with(true, Deadline::NEVER, &mut noted)?;
        let head = TaskHead::read(&bytes).ok_or_else(|| mp_err!(SerializationError, "malformed pool task"))?;
        if head.job == 0 {
            return Ok(());
        }
        if slots.cancelled(head.job) {
            // A cancelled call: its tasks never run (the pool does not wait for them).
            slots.set(index, Field::Job, 0);
            continue;
        }
        let exit = RefCell::new(None);
        let outcome = run_task(ctx, &place, &head, &bytes, fds, &exit).unwrap_or_else(ChunkOutcome::Failed);
        if let Some(e) = exit.into_inner() {
            return Err(e);
        }
        if head.flags & STREAM == 0 || matches!(outcome, ChunkOutcome::Failed(_)) {
            put_result(&results, (head.job, head.chunk, head.offset), outcome)?;
        }
        slots.set(index, Field::Job, 0);
        done += 1;
        if maxtasks > 0 && done >= maxtasks {
            return Ok(());
        }
    }
}

/// Runs one pool task on an MPI worker rank (see `cluster/rank.rs`) for `owner`: its
/// result, encoded for another machine. `exit(n)` in the function fails the item instead of
/// ending the rank (the rank serves on); so do the task's timeout and a cancel.
pub(crate) fn run_rank_task(ctx: &NativeCallContext, owner: u64, bytes: &[u8]) -> Vec<u8> {
    let Some(head) = TaskHead::read(bytes).filter(|h| h.job != 0 && h.func_fds == 0) else {
        let e = remote_mp(mp_err!(SerializationError, "malformed pool task"));
        return encode_result((u64::MAX, 0, 0), ChunkOutcome::Failed(e), true).map(|p| p.bytes).unwrap_or_default();
    };
    watch();
    CURRENT.with(|c| c.owner.set(owner));
    let at = (head.job, head.chunk, head.offset);
    let exit = RefCell::new(None);
    let place = Place { slots: None, results: None };
    let outcome = run_task(ctx, &place, &head, bytes, Vec::new(), &exit).unwrap_or_else(ChunkOutcome::Failed);
    match encode_result(at, outcome, true) {
        Ok(p) => p.bytes,
        // A result that cannot cross (an object of this host's memory) becomes the error it is.
        Err(e) => encode_result(at, ChunkOutcome::Failed(remote_mp(e)), true).map(|p| p.bytes).unwrap_or_default(),
    }
}

/// Runs a pool's initializer (an encoded `[function, args]`) on an MPI worker rank: `None`
/// if it ran, else the pool's "initializer failed" result for rank `rank`.
pub(crate) fn run_rank_init(ctx: &NativeCallContext, call: &[u8], rank: u32) -> Option<Vec<u8>> {
    let ran = rhai_mp_core::wire::decode(call, Vec::new()).map_err(Box::<EvalAltResult>::from).and_then(|v| {
        let mut parts = v.try_cast::<Array>().unwrap_or_default().into_iter();
        let f = parts.next().and_then(|f| f.try_cast::<FnPtr>());
        let args = parts.next().and_then(|a| a.try_cast::<Array>()).unwrap_or_default();
        match f {
            Some(f) => f.call_raw(ctx, None, args).map(|_| ()),
            None => Err(mp_err!(SerializationError, "malformed pool initializer").into()),
        }
    });
    let e = ran.err()?;
    let (name, pid) = who();
    rhai_mp_core::run::interp::report_error(&e, Some((&name, pid)));
    encode_result((0, rank as u64, 0), ChunkOutcome::Failed(remote(&e)), true).ok().map(|p| p.bytes)
}
