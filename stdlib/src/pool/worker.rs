//! The worker side of a pool: the loop a worker process runs. A worker is an ordinary
//! daemon `Process` whose target is the native entry [`ENTRY`] with typed arguments
//! ([`WorkerArgs`]), so it starts the same way under every start method.
//!
//! The loop: run the initializer once; then take a task (noting it in the worker's slot),
//! call the function on each of its items, put the chunk's outcome on the result queue,
//! clear the slot; exit on the stop task or after `maxtasksperchild` tasks. An error thrown
//! by the function for one item goes back as that item's `RemoteError`; the other items of
//! the chunk still run.

use super::task::{encode_result, encode_result_apart, ChunkOutcome, Field, Kind, TaskHead, WorkerArgs, TASK_HEAD};
use crate::queue::Queue;
use rhai::{Array, Dynamic, EvalAltResult, FnPtr, NativeCallContext};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, RhaiResult};
use rhai_mp_core::run::remote::RemoteError;
use rhai_mp_core::wire::Packet;
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

fn put_result(results: &Queue, job: u64, chunk: u64, outcome: ChunkOutcome) -> RhaiResult<()> {
    let packet = match encode_result_apart(job, chunk, outcome, false) {
        Ok(p) => p,
        // A result that cannot cross becomes the error it is.
        Err(e) => encode_result_apart(job, chunk, ChunkOutcome::Failed(remote_mp(e)), false)?,
    };
    results.0.put_pieces(&packet.pieces(), packet.fds(), true, Deadline::NEVER)?;
    Ok(())
}

/// Runs one task's items. `exit` receives an `exit(n)` request, which ends the worker.
fn run_task(
    ctx: &NativeCallContext,
    note_item: &dyn Fn(u64),
    head: &TaskHead,
    bytes: &[u8],
    mut fds: Vec<OwnedFd>,
    exit: &std::cell::RefCell<Option<Box<EvalAltResult>>>,
) -> Result<ChunkOutcome, RemoteError> {
    let rest = fds.split_off(head.func_fds.min(fds.len()));
    let func_end = TASK_HEAD + head.func_len;
    let f = rhai_mp_core::wire::decode(&bytes[TASK_HEAD..func_end], fds).map_err(remote_mp)?;
    let f = f.try_cast::<FnPtr>().ok_or_else(|| remote_mp(mp_err!(SerializationError, "malformed pool task")))?;
    let payload = rhai_mp_core::wire::decode(&bytes[func_end..], rest).map_err(remote_mp)?;
    // `exit(n)` in a task ends the worker (the pool then fails the task), as in Python.
    let exiting = |e: Box<EvalAltResult>| {
        if rhai_mp_core::base::error::ExitRequest::code_of(&e).is_some() {
            *exit.borrow_mut() = Some(e);
            remote_mp(mp_err!(RuntimeError, "the worker exited"))
        } else {
            remote(&e)
        }
    };
    let call = |args: Vec<Dynamic>| f.call_raw(ctx, None, args).map_err(exiting);
    let call1 = |x: Dynamic| f.call_raw(ctx, None, [x]).map_err(exiting);
    let items =
        |p: Dynamic| p.try_cast::<Array>().ok_or_else(|| remote_mp(mp_err!(SerializationError, "malformed pool task")));
    // Every item runs, even after one threw: each gets its value or its error.
    let mut out = Outcome::default();
    let note = |i: usize| note_item(head.first + i as u64);
    match head.kind {
        Kind::Apply => out.push(0, call(items(payload)?)),
        Kind::Map => {
            for (i, x) in items(payload)?.into_iter().enumerate() {
                note(i);
                out.push(i, call1(x));
                if exit.borrow().is_some() {
                    break;
                }
            }
        }
        Kind::MapRange => {
            let bounds = items(payload)?;
            let (Some(a), Some(b)) =
                (bounds.first().and_then(|x| x.as_int().ok()), bounds.get(1).and_then(|x| x.as_int().ok()))
            else {
                return Err(remote_mp(mp_err!(SerializationError, "malformed pool task")));
            };
            out.values.reserve((b - a).max(0) as usize);
            for (i, x) in (a..b).enumerate() {
                note(i);
                out.push(i, call1(Dynamic::from(x)));
                if exit.borrow().is_some() {
                    break;
                }
            }
        }
        Kind::Starmap => {
            for (i, x) in items(payload)?.into_iter().enumerate() {
                note(i);
                let t = crate::opts::type_name(&x);
                let args = crate::opts::items(x).map_err(|_| {
                    remote_mp(mp_err!(
                        TypeError,
                        "starmap() items must be arrays (or other iterables) of arguments; item {} is {t}",
                        head.first + i as u64
                    ))
                });
                out.push(i, args.and_then(call));
                if exit.borrow().is_some() {
                    break;
                }
            }
        }
    }
    Ok(ChunkOutcome::Ran { values: out.values, errors: out.errors })
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
    let WorkerArgs { tasks, results, slots, index, initializer, initargs, maxtasks } = args;
    // A forked worker may have inherited the parent's Ctrl-C catcher.
    rhai_mp_core::base::interrupt::restore_sigint();
    let index = index as usize;
    slots.set(index, Field::Pid, rhai_mp_core::base::sys::pid() as u64);
    if let Some(init) = initializer {
        if let Err(e) = init.call_raw(ctx, None, initargs) {
            if rhai_mp_core::base::error::ExitRequest::code_of(&e).is_some() {
                return Err(e);
            }
            // Report here first: the pool terminates its workers once it hears of this.
            let (name, pid) = who();
            rhai_mp_core::run::interp::report_error(&e, Some((&name, pid)));
            put_result(&results, 0, index as u64, ChunkOutcome::Failed(remote(&e)))?;
            return Err(rhai_mp_core::base::error::ExitRequest::exit(&Dynamic::from(1 as rhai::INT)));
        }
    }
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
        let exit = std::cell::RefCell::new(None);
        let note = |item: u64| slots.set(index, Field::Item, item);
        let outcome = run_task(ctx, &note, &head, &bytes, fds, &exit).unwrap_or_else(ChunkOutcome::Failed);
        if let Some(e) = exit.into_inner() {
            return Err(e);
        }
        put_result(&results, head.job, head.chunk, outcome)?;
        slots.set(index, Field::Job, 0);
        done += 1;
        if maxtasks > 0 && done >= maxtasks {
            return Ok(());
        }
    }
}

/// Runs one pool task on an MPI worker rank (see `cluster/rank.rs`): its result, encoded
/// for another machine. `exit(n)` in the function fails the item instead of ending the
/// rank (the rank serves on).
pub(crate) fn run_rank_task(ctx: &NativeCallContext, bytes: &[u8]) -> Vec<u8> {
    let Some(head) = TaskHead::read(bytes).filter(|h| h.job != 0 && h.func_fds == 0) else {
        let e = remote_mp(mp_err!(SerializationError, "malformed pool task"));
        return encode_result(u64::MAX, 0, ChunkOutcome::Failed(e), true).map(|p| p.bytes).unwrap_or_default();
    };
    let exit = std::cell::RefCell::new(None);
    let outcome = run_task(ctx, &|_| {}, &head, bytes, Vec::new(), &exit).unwrap_or_else(ChunkOutcome::Failed);
    match encode_result(head.job, head.chunk, outcome, true) {
        Ok(p) => p.bytes,
        // A result that cannot cross (an object of this host's memory) becomes the error it is.
        Err(e) => encode_result(head.job, head.chunk, ChunkOutcome::Failed(remote_mp(e)), true)
            .map(|p| p.bytes)
            .unwrap_or_default(),
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
    encode_result(0, rank as u64, ChunkOutcome::Failed(remote(&e)), true).ok().map(|p| p.bytes)
}
