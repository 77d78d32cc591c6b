//! The worker side of a pool: the loop a worker process runs. A worker is an ordinary
//! daemon `Process` whose target is the native function `__pool_worker` (sent by name), so
//! it starts the same way under every start method.
//!
//! The loop: run the initializer once; then take a task (noting it in the worker's slot),
//! call the function on each of its items, put `[ok, results]` on the result queue, clear
//! the slot; exit on the stop task or after `maxtasksperchild` tasks. An error thrown by the
//! function ends the chunk and goes back as a `RemoteError`.

use super::task::{frame_result, Field, Kind, PoolSlots, TaskHead, TASK_HEAD};
use crate::queue::Queue;
use rhai::{Array, Dynamic, EvalAltResult, FnPtr, NativeCallContext, INT};
use rhai_mp_core::{mp_err, ContextFns, MpError, RemoteError};
use std::os::fd::OwnedFd;

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// The name of the worker's native target.
pub const WORKER_FN: &str = "__pool_worker";

fn who() -> (String, i32) {
    (rhai_mp_core::with_state(|s| s.name.clone()), rhai_mp_core::pid() as i32)
}

fn remote(err: &EvalAltResult) -> Dynamic {
    let (name, pid) = who();
    RemoteError::capture(err, &name, pid).to_dynamic()
}

fn put_result(results: &Queue, job: u64, chunk: u64, ok: bool, value: Dynamic) -> RhaiResult<()> {
    let outcome = Dynamic::from_array(vec![ok.into(), value]);
    let packet = match rhai_mp_core::encode(&outcome, "result") {
        Ok(p) => p,
        // A result that cannot cross becomes the error it is.
        Err(e) => {
            let err: Box<EvalAltResult> = e.into();
            rhai_mp_core::encode(&Dynamic::from_array(vec![false.into(), remote(&err)]), "error")?
        }
    };
    results.0.put(&frame_result(job, chunk, &packet.bytes), &packet.fds, true, None)?;
    Ok(())
}

/// Runs one task: `Ok(results)` or `Err(error in crossing form)`.
fn run_task(
    ctx: &NativeCallContext,
    slots: &PoolSlots,
    index: usize,
    head: &TaskHead,
    bytes: &[u8],
    mut fds: Vec<OwnedFd>,
    exit: &std::cell::RefCell<Option<Box<EvalAltResult>>>,
) -> Result<Dynamic, Dynamic> {
    let as_remote = |e: MpError| remote(&Box::<EvalAltResult>::from(e));
    let rest = fds.split_off(head.func_fds.min(fds.len()));
    let func_end = TASK_HEAD + head.func_len;
    let f = rhai_mp_core::decode(&bytes[TASK_HEAD..func_end], fds, &ContextFns(ctx)).map_err(as_remote)?;
    let f = f.try_cast::<FnPtr>().ok_or_else(|| as_remote(mp_err!(SerializationError, "malformed pool task")))?;
    let payload = rhai_mp_core::decode(&bytes[func_end..], rest, &ContextFns(ctx)).map_err(as_remote)?;
    // `exit(n)` in a task ends the worker (the pool then fails the task), as in Python.
    let exiting = |e: Box<EvalAltResult>| {
        if rhai_mp_core::ExitRequest::code_of(&e).is_some() {
            *exit.borrow_mut() = Some(e);
            Dynamic::UNIT
        } else {
            remote(&e)
        }
    };
    let call = |args: Vec<Dynamic>| f.call_raw(ctx, None, args).map_err(exiting);
    let call1 = |x: Dynamic| f.call_raw(ctx, None, [x]).map_err(exiting);
    let items =
        |p: Dynamic| p.try_cast::<Array>().ok_or_else(|| as_remote(mp_err!(SerializationError, "malformed pool task")));
    // Every item runs, even after one threw: each gets its value or its error.
    let mut out = Outcome::default();
    let note = |i: usize| slots.set(index, Field::Item, head.first + i as u64);
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
                return Err(as_remote(mp_err!(SerializationError, "malformed pool task")));
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
                    as_remote(mp_err!(
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
    Ok(out.into_dynamic())
}

/// A chunk's values and errors, as they cross: `[values, [[index, error], ..]]`.
#[derive(Default)]
struct Outcome {
    values: Array,
    errors: Array,
}

impl Outcome {
    fn push(&mut self, i: usize, r: Result<Dynamic, Dynamic>) {
        match r {
            Ok(v) => self.values.push(v),
            Err(e) => {
                self.values.push(Dynamic::UNIT);
                self.errors.push(Dynamic::from_array(vec![(i as INT).into(), e]));
            }
        }
    }

    fn into_dynamic(self) -> Dynamic {
        Dynamic::from_array(vec![Dynamic::from_array(self.values), Dynamic::from_array(self.errors)])
    }
}

/// The worker loop (the target of every pool worker).
#[allow(clippy::too_many_arguments)]
pub fn work(
    ctx: &NativeCallContext,
    tasks: Queue,
    results: Queue,
    slots: PoolSlots,
    index: INT,
    initializer: Dynamic,
    initargs: Array,
    maxtasks: INT,
) -> RhaiResult<()> {
    // A forked worker may have inherited the parent's Ctrl-C catcher.
    rhai_mp_core::default_sigint();
    let index = index.max(0) as usize;
    slots.set(index, Field::Pid, rhai_mp_core::pid() as u64);
    if let Some(init) = initializer.try_cast::<FnPtr>() {
        if let Err(e) = init.call_raw(ctx, None, initargs) {
            if rhai_mp_core::ExitRequest::code_of(&e).is_some() {
                return Err(e);
            }
            // Report here first: the pool terminates its workers once it hears of this.
            let (name, pid) = who();
            rhai_mp_core::report_error(&e, Some((&name, pid)));
            put_result(&results, 0, index as u64, false, remote(&e))?;
            return Err(rhai_mp_core::ExitRequest::error(&Dynamic::from(1 as INT)));
        }
    }
    let mut done: INT = 0;
    loop {
        let mut noted = |b: &[u8]| {
            if let Some(h) = TaskHead::read(b) {
                if h.job != 0 {
                    slots.set(index, Field::Item, h.first);
                    slots.set(index, Field::Chunk, h.chunk);
                    slots.set(index, Field::Job, h.job);
                }
            }
        };
        let (bytes, fds) = tasks.0.get_with(true, None, &mut noted)?;
        let head = TaskHead::read(&bytes).ok_or_else(|| mp_err!(SerializationError, "malformed pool task"))?;
        if head.job == 0 {
            return Ok(());
        }
        let exit = std::cell::RefCell::new(None);
        let (ok, value) = match run_task(ctx, &slots, index, &head, &bytes, fds, &exit) {
            Ok(v) => (true, v),
            Err(e) => (false, e),
        };
        if let Some(e) = exit.into_inner() {
            return Err(e);
        }
        put_result(&results, head.job, head.chunk, ok, value)?;
        slots.set(index, Field::Job, 0);
        done += 1;
        if maxtasks > 0 && done >= maxtasks {
            return Ok(());
        }
    }
}
