//! `Pool`, `AsyncResult` and the `imap` iterators (see the reference, "Pool"): a set of
//! worker processes that run a function over many inputs.
//!
//! - `bindings.rs`: `Pool(..)` and the pool's methods, as scripts see them;
//! - `results.rs`: `AsyncResult` and the imap iterators, as scripts see them;
//! - `dispatch.rs`: the parent's machinery (every call pumps results);
//! - `job.rs`: one call in progress, as the parent tracks it;
//! - `task.rs`: the messages between the pool and its workers, and the workers' slots;
//! - `flavors/`: the back ends behind one interface (local worker processes, MPI ranks);
//! - `worker.rs`: the loop a worker runs (the native entry `pool-worker`);
//! - `feeder.rs`: the thread that feeds tasks the queue cannot take at once.
//!
//! Tasks go through a shared-memory queue that every worker takes from; results come back
//! on another. A worker killed at any moment fails only the task it held
//! (`WorkerLostError`), and is replaced. Caveats are in `dispatch.rs`: callbacks run during
//! pool calls, not in the background.

mod bindings;
mod dispatch;
mod executor;
mod feeder;
mod flavors;
mod job;
mod results;
mod task;
mod worker;

pub use bindings::pool_functions;
pub use dispatch::Pool;
pub(crate) use executor::PRIMITIVE as EXECUTOR;
pub use executor::{executor_functions, futures_functions};
pub(crate) use results::register as register_results;

/// Makes the imap iterators and `as_completed` work in `for` loops.
pub(crate) fn register(lib: &mut rhai::Module) {
    register_results(lib);
    executor::register(lib);
}
pub use results::result_functions;
pub(crate) use worker::{cancel_on_rank, entry as worker_entry, run_rank_init, run_rank_task, ENTRY as WORKER_ENTRY};

use self::dispatch::{CallBounds, PoolConfig};
use self::job::{Job, JobKind, Source};
use self::task::Kind;
use crate::opts::{self, Opts};
use indicatif::ProgressBar;
use rhai::{Array, Dynamic, FnPtr, Map, NativeCallContext, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpResult, RhaiResult};
use rhai_mp_core::tree::state::StartMethod;
use std::cell::RefCell;
use std::ops::{Range, RangeInclusive};
use std::rc::Rc;

/// The result of an `*_async` call.
#[derive(Clone)]
pub struct AsyncResult {
    pool: Pool,
    job: Rc<RefCell<Job>>,
}

/// The lazy iterator `imap` / `imap_unordered` return. Copies share the position.
#[derive(Clone)]
pub struct ImapIterator {
    pool: Pool,
    job: Rc<RefCell<Job>>,
    ordered: bool,
    bar: Rc<RefCell<Option<ProgressBar>>>,
    /// The deadline of the whole iteration (an executor's `map(.., #{timeout})`).
    deadline: Deadline,
}

impl ImapIterator {
    fn next_in(&self, ctx: Option<&NativeCallContext>, deadline: Deadline) -> RhaiResult<Option<Dynamic>> {
        let item = match self.pool.next_item(ctx, &self.job, deadline.min(self.deadline)) {
            // Past the whole iteration's deadline, the rest is cancelled (as Python's
            // `Executor.map` does).
            Err(e) if self.deadline.passed() => {
                self.pool.cancel(&self.job);
                return Err(e);
            }
            r => r?,
        };
        if let Some(bar) = &*self.bar.borrow() {
            if item.is_some() {
                bar.inc(1);
            } else {
                bar.finish();
            }
        }
        Ok(item)
    }
}

pub(crate) fn config(arg: Option<Dynamic>, method: StartMethod) -> MpResult<PoolConfig> {
    let mut cfg = PoolConfig {
        processes: std::thread::available_parallelism().map_or(1, |n| n.get()),
        initializer: None,
        initargs: Array::new(),
        maxtasks: 0,
        method,
        task_timeout_ns: 0,
        max_memory: 0,
    };
    if method == StartMethod::Mpi {
        // Every worker rank (an error below says when there is none).
        cfg.processes = rhai_mp_core::tree::place::size().saturating_sub(1) as usize;
    }
    let processes = |n: INT| -> MpResult<usize> {
        if n < 1 {
            return Err(mp_err!(ValueError, "Number of processes must be at least 1, not {n}"));
        }
        Ok(n as usize)
    };
    match arg {
        None => {}
        Some(v) if v.is_unit() => {}
        Some(v) if v.is_map() => {
            let mut o = Opts::new(
                v.cast::<Map>(),
                "Pool",
                &["processes", "initializer", "initargs", "maxtasksperchild", "task_timeout", "max_memory"],
            )?;
            cfg.task_timeout_ns = timeout_ns(o.seconds("task_timeout")?);
            cfg.max_memory = max_memory(o.int("max_memory")?)?;
            if let Some(n) = o.int("processes")? {
                cfg.processes = processes(n)?;
            }
            cfg.initializer = o.fn_ptr("initializer")?;
            cfg.initargs = o.items("initargs")?.unwrap_or_default();
            if let Some(n) = o.int("maxtasksperchild")? {
                if n < 1 {
                    return Err(mp_err!(ValueError, "maxtasksperchild must be a positive integer or (), not {n}"));
                }
                cfg.maxtasks = n;
            }
        }
        Some(v) => cfg.processes = processes(opts::arg_int(&v, "Pool", "processes")?)?,
    }
    Ok(cfg)
}

/// A task timeout in seconds as nanoseconds (0: none).
pub(crate) fn timeout_ns(secs: Option<f64>) -> u64 {
    secs.map_or(0, |s| (s * 1e9).clamp(1.0, u64::MAX as f64) as u64)
}

/// A `max_memory` option: bytes (0: none).
pub(crate) fn max_memory(n: Option<INT>) -> MpResult<u64> {
    match n {
        None => Ok(0),
        Some(n) if n < 1 => Err(mp_err!(ValueError, "max_memory must be a positive number of bytes, not {n}")),
        Some(n) => Ok(n as u64),
    }
}

pub(crate) fn source(iterable: Dynamic, func: &str) -> MpResult<Source> {
    if let Some(r) = iterable.read_lock::<Range<INT>>() {
        return Ok(Source::Range { next: r.start, end: r.end });
    }
    if let Some(r) = iterable.read_lock::<RangeInclusive<INT>>() {
        return Ok(Source::Range { next: *r.start(), end: r.end().saturating_add(1) });
    }
    let t = opts::type_name(&iterable);
    opts::items_or(iterable, |_| {
        mp_err!(TypeError, "iterable of {func}() must be an array, range, string or blob, not {t}")
    })
    .map(|v| Source::Items(v.into_iter()))
}

pub(crate) fn chunksize(v: &Dynamic, func: &str) -> MpResult<u64> {
    let n = opts::arg_int(v, func, "chunksize")?;
    if n < 1 {
        return Err(mp_err!(ValueError, "chunksize of {func}() must be 1 or more, not {n}"));
    }
    Ok(n as u64)
}

/// Python's default chunksize for `map`: about four chunks per worker.
fn default_chunksize(pool: &Pool, len: u64) -> u64 {
    let per = 4 * pool.0.borrow().size as u64;
    len.div_ceil(per).max(1)
}

/// Options of a call: `#{chunksize, callback, error_callback, timeout}` or a chunksize.
pub(crate) struct AsyncOpts {
    chunksize: Option<u64>,
    callback: Option<FnPtr>,
    error_callback: Option<FnPtr>,
    /// Each task's timeout (ns; `None`: the pool's).
    timeout: Option<u64>,
}

impl AsyncOpts {
    fn bounds(&self) -> CallBounds {
        CallBounds { timeout_ns: self.timeout, ahead: None }
    }
}

pub(crate) fn async_opts(v: Option<Dynamic>, func: &'static str, with_chunksize: bool) -> MpResult<AsyncOpts> {
    let mut out = AsyncOpts { chunksize: None, callback: None, error_callback: None, timeout: None };
    match v {
        None => {}
        Some(v) if v.is_unit() => {}
        Some(v) if v.is_map() => {
            let keys: &[&str] = if with_chunksize {
                &["chunksize", "callback", "error_callback", "timeout"]
            } else {
                &["callback", "error_callback", "timeout"]
            };
            let mut o = Opts::new(v.cast::<Map>(), func, keys)?;
            if let Some(t) = o.take("timeout") {
                out.timeout = Some(timeout_ns(opts::seconds(&t, func)?));
            }
            if let Some(n) = o.int("chunksize")? {
                out.chunksize = Some(chunksize(&n.into(), func)?);
            }
            out.callback = o.fn_ptr("callback")?;
            out.error_callback = o.fn_ptr("error_callback")?;
        }
        Some(v) if with_chunksize => out.chunksize = Some(chunksize(&v, func)?),
        Some(v) => {
            return Err(mp_err!(
                TypeError,
                "the last argument of {func}() must be an option map #{{callback, error_callback, timeout}}, not {}",
                opts::type_name(&v)
            ))
        }
    }
    Ok(out)
}

/// Runs due callbacks (a call on the pool is their deadline) without waiting.
pub(crate) fn settle_due(ctx: Option<&NativeCallContext>, pool: &Pool) -> RhaiResult<()> {
    if ctx.is_some() {
        pool.pump(ctx, Deadline::now(), &|| true)?;
    }
    Ok(())
}

fn start_map(
    pool: &Pool,
    func: &'static str,
    task: Kind,
    f: Dynamic,
    iterable: Dynamic,
    o: AsyncOpts,
) -> RhaiResult<Rc<RefCell<Job>>> {
    let f = opts::arg_fn(f, func, "func")?;
    // An iterator that fails midway fails the call, as Python's `list(iterable)` does.
    let src = source(opts::pulled(iterable)?, func)?;
    let cs = o.chunksize.unwrap_or_else(|| default_chunksize(pool, src.len()));
    let bounds = o.bounds();
    pool.submit(JobKind::Map, task, f, src, cs, o.callback, o.error_callback, bounds)
}

pub(crate) fn start_apply(
    pool: &Pool,
    func: &'static str,
    f: Dynamic,
    args: Option<Dynamic>,
    o: AsyncOpts,
) -> RhaiResult<Rc<RefCell<Job>>> {
    let f = opts::arg_fn(f, func, "func")?;
    let args = match args {
        None => Array::new(),
        Some(a) if a.is_unit() => Array::new(),
        Some(a) => {
            let t = opts::type_name(&a);
            opts::items_or(a, |_| mp_err!(TypeError, "args of {func}() must be an array of arguments, not {t}"))?
        }
    };
    let src = Source::Items(vec![Dynamic::from_array(args)].into_iter());
    let bounds = o.bounds();
    pool.submit(JobKind::Apply, Kind::Apply, f, src, 1, o.callback, o.error_callback, bounds)
}

/// Waits for a call and returns its outcome (the blocking forms). A stop while it waits
/// (a host's stop handle) cancels the call.
fn outcome(ctx: &NativeCallContext, pool: &Pool, job: Rc<RefCell<Job>>) -> RhaiResult<Dynamic> {
    if let Err(e) = pool.wait_job(ctx, &job, Deadline::NEVER) {
        pool.cancel(&job);
        return Err(e);
    }
    let r = job.borrow_mut().outcome.take();
    match r {
        Some(Ok(v)) => Ok(v),
        Some(Err(f)) => Err(f.to_eval()),
        None => Err(mp_err!(RuntimeError, "pool call ended without an outcome").into()),
    }
}

fn start_imap(
    pool: &Pool,
    func: &'static str,
    ordered: bool,
    f: Dynamic,
    iterable: Dynamic,
    chunks: Option<Dynamic>,
) -> RhaiResult<ImapIterator> {
    let f = opts::arg_fn(f, func, "func")?;
    let o = match chunks {
        Some(c) if c.is_map() => async_opts(Some(c), func, true)?,
        c => AsyncOpts {
            chunksize: c.map(|c| chunksize(&c, func)).transpose()?,
            callback: None,
            error_callback: None,
            timeout: None,
        },
    };
    if o.callback.is_some() || o.error_callback.is_some() {
        return Err(mp_err!(ValueError, "{func}() takes no callback (read the iterator)").into());
    }
    let cs = o.chunksize.unwrap_or(1);
    // An iterator that fails midway gives the items of the chunks made before the failure,
    // then its error (Python loses the chunk the failure was in, and so do we).
    let (iterable, tail) = match opts::pull(&iterable) {
        None => (iterable, None),
        Some(opts::Pulled { mut items, error }) => {
            if error.is_some() {
                items.truncate(items.len() - items.len() % cs.min(usize::MAX as u64) as usize);
            }
            (Dynamic::from_array(items), error)
        }
    };
    let src = source(iterable, func)?;
    let job = pool.submit(JobKind::Imap { ordered }, Kind::Map, f, src, cs, None, None, o.bounds())?;
    job.borrow_mut().tail = tail;
    Ok(ImapIterator { pool: pool.clone(), job, ordered, bar: Rc::new(RefCell::new(None)), deadline: Deadline::NEVER })
}

/// `map` / `starmap`: starts the call and waits for its outcome.
fn run_map(
    ctx: &NativeCallContext,
    pool: &Pool,
    func: &'static str,
    task: Kind,
    f: Dynamic,
    iterable: Dynamic,
    options: Option<Dynamic>,
) -> RhaiResult {
    let job = start_map(pool, func, task, f, iterable, async_opts(options, func, true)?)?;
    outcome(ctx, pool, job)
}

/// `map_async` / `starmap_async`: runs the due callbacks, then starts the call.
fn run_map_async(
    ctx: &NativeCallContext,
    pool: &Pool,
    func: &'static str,
    task: Kind,
    f: Dynamic,
    iterable: Dynamic,
    options: Option<Dynamic>,
) -> RhaiResult<AsyncResult> {
    settle_due(Some(ctx), pool)?;
    let job = start_map(pool, func, task, f, iterable, async_opts(options, func, true)?)?;
    Ok(AsyncResult { pool: pool.clone(), job })
}

/// `apply`: runs `f(args..)` in a worker and waits for it.
fn run_apply(
    ctx: &NativeCallContext,
    pool: &Pool,
    f: Dynamic,
    args: Option<Dynamic>,
    options: Option<Dynamic>,
) -> RhaiResult {
    let o = async_opts(options, "apply", false)?;
    if o.callback.is_some() || o.error_callback.is_some() {
        return Err(mp_err!(ValueError, "apply() takes no callback (use apply_async)").into());
    }
    let job = start_apply(pool, "apply", f, args, o)?;
    outcome(ctx, pool, job)
}

/// `apply_async`: runs the due callbacks, then starts `f(args..)` in a worker.
fn run_apply_async(
    ctx: &NativeCallContext,
    pool: &Pool,
    f: Dynamic,
    args: Option<Dynamic>,
    options: Option<Dynamic>,
) -> RhaiResult<AsyncResult> {
    settle_due(Some(ctx), pool)?;
    let job = start_apply(pool, "apply_async", f, args, async_opts(options, "apply_async", false)?)?;
    Ok(AsyncResult { pool: pool.clone(), job })
}

/// pool's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::section;
    crate::registry::Primitive {
        name: "pool",
        group: "Pool, AsyncResult, imap iterators",
        sections: &[
            section("Pool", &[("Pool", "pool")], &["Pool"], &["Pool("]),
            section("AsyncResult", &[("AsyncResult", "r")], &[], &[".apply_async(", ".map_async(", ".starmap_async("]),
            section("imap iterators", &[("ImapIterator", "it")], &[], &[".imap(", ".imap_unordered(", ".map("]),
        ],
        functions,
        module: None,
        handles: &[],
        machinery: Some(machinery),
        mirrors: &[],
        managed: &[],
    }
};

/// Registers pool's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "pool", pool_functions);
    rhai::combine_with_exported_module!(lib, "pool_results", result_functions);
    register(lib);
}

/// The pool workers' native entry point.
fn machinery() {
    rhai_mp_core::run::child::register_entry(WORKER_ENTRY, worker_entry);
}
