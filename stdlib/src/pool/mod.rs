//! `Pool`, `AsyncResult` and the `imap` iterators (API.md, "Pool"): a set of worker
//! processes that run a function over many inputs.
//!
//! - `task.rs`: the messages between the pool and its workers, and the workers' slots;
//! - `worker.rs`: the loop a worker runs (the native target `__pool_worker`);
//! - `job.rs`: one call in progress, as the parent tracks it;
//! - `core.rs`: the parent's machinery (every call pumps results);
//! - `feeder.rs`: the thread that feeds tasks the queue cannot take at once.
//!
//! Tasks go through a shared-memory queue that every worker takes from; results come back
//! on another. A worker killed at any moment fails only the task it held
//! (`WorkerLostError`), and is replaced. Caveats are in `core.rs`: callbacks run during pool
//! calls, not in the background.

mod core;
mod feeder;
mod job;
mod task;
mod worker;

pub use self::core::Pool;
use self::core::PoolConfig;
use self::job::{Job, JobKind, Source};
use self::task::Kind;
use crate::context::Context;
use crate::opts::{self, Opts};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, FnPtr, Map, INT};
use rhai_mp_core::{mp_err, MpResult, StartMethod};
use std::cell::RefCell;
use std::ops::{Range, RangeInclusive};
use std::rc::Rc;

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

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
}

impl ImapIterator {
    fn next_in(&self, ctx: Option<&NativeCallContext>, timeout: Option<f64>) -> RhaiResult<Option<Dynamic>> {
        let item = self.pool.next_item(ctx, &self.job, timeout)?;
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

/// What a `for` loop over an imap iterator runs.
struct ForLoop(ImapIterator);

impl Iterator for ForLoop {
    type Item = RhaiResult<Dynamic>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_in(None, None).transpose()
    }
}

pub(crate) fn register(lib: &mut rhai::Module) {
    lib.set_iter_result(std::any::TypeId::of::<ImapIterator>(), |v: Dynamic| {
        Box::new(ForLoop(v.cast::<ImapIterator>()))
    });
}

pub(crate) fn register_codecs() {
    task::register_codecs();
}

fn config(arg: Option<Dynamic>, method: StartMethod) -> MpResult<PoolConfig> {
    let mut cfg = PoolConfig {
        processes: std::thread::available_parallelism().map_or(1, |n| n.get()),
        initializer: None,
        initargs: Array::new(),
        maxtasks: 0,
        method,
    };
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
            let mut o =
                Opts::new(v.cast::<Map>(), "Pool", &["processes", "initializer", "initargs", "maxtasksperchild"])?;
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

fn source(iterable: Dynamic, func: &str) -> MpResult<Source> {
    if let Some(r) = iterable.read_lock::<Range<INT>>() {
        return Ok(Source::Range { next: r.start, end: r.end });
    }
    if let Some(r) = iterable.read_lock::<RangeInclusive<INT>>() {
        return Ok(Source::Range { next: *r.start(), end: r.end().saturating_add(1) });
    }
    let t = opts::type_name(&iterable);
    opts::items(iterable)
        .map(|v| Source::Items(v.into_iter()))
        .map_err(|_| mp_err!(TypeError, "iterable of {func}() must be an array, range, string or blob, not {t}"))
}

fn chunksize(v: &Dynamic, func: &str) -> MpResult<u64> {
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

/// Options of an `*_async` call: `#{chunksize, callback, error_callback}` or a chunksize.
struct AsyncOpts {
    chunksize: Option<u64>,
    callback: Option<FnPtr>,
    error_callback: Option<FnPtr>,
}

fn async_opts(v: Option<Dynamic>, func: &'static str, with_chunksize: bool) -> MpResult<AsyncOpts> {
    let mut out = AsyncOpts { chunksize: None, callback: None, error_callback: None };
    match v {
        None => {}
        Some(v) if v.is_unit() => {}
        Some(v) if v.is_map() => {
            let keys: &[&str] = if with_chunksize {
                &["chunksize", "callback", "error_callback"]
            } else {
                &["callback", "error_callback"]
            };
            let mut o = Opts::new(v.cast::<Map>(), func, keys)?;
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
                "the last argument of {func}() must be an option map #{{callback, error_callback}}, not {}",
                opts::type_name(&v)
            ))
        }
    }
    Ok(out)
}

/// Runs due callbacks (a call on the pool is their deadline) without waiting.
fn settle_due(ctx: Option<&NativeCallContext>, pool: &Pool) -> RhaiResult<()> {
    if ctx.is_some() {
        pool.pump(ctx, Some(std::time::Instant::now()), &|| true)?;
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
    let src = source(iterable, func)?;
    let cs = o.chunksize.unwrap_or_else(|| default_chunksize(pool, src.len()));
    pool.submit(JobKind::Map, task, f, src, cs, o.callback, o.error_callback)
}

fn start_apply(
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
            opts::items(a).map_err(|_| mp_err!(TypeError, "args of {func}() must be an array of arguments, not {t}"))?
        }
    };
    let src = Source::Items(vec![Dynamic::from_array(args)].into_iter());
    pool.submit(JobKind::Apply, Kind::Apply, f, src, 1, o.callback, o.error_callback)
}

/// Waits for a call and returns its outcome (the blocking forms).
fn outcome(ctx: &NativeCallContext, pool: &Pool, job: Rc<RefCell<Job>>) -> RhaiResult<Dynamic> {
    pool.wait_job(ctx, &job, None)?;
    let r = job.borrow_mut().outcome.take();
    match r {
        Some(Ok(v)) => Ok(v),
        Some(Err(f)) => Err(f.to_eval()),
        None => Err(mp_err!(RuntimeError, "pool call ended without an outcome").into()),
    }
}

fn start_imap(
    ctx: &NativeCallContext,
    pool: &Pool,
    func: &'static str,
    ordered: bool,
    f: Dynamic,
    iterable: Dynamic,
    chunks: Option<Dynamic>,
) -> RhaiResult<ImapIterator> {
    let f = opts::arg_fn(f, func, "func")?;
    let cs = chunks.map(|c| chunksize(&c, func)).transpose()?.unwrap_or(1);
    let src = source(iterable, func)?;
    pool.refresh_functions(ctx);
    let job = pool.submit(JobKind::Imap { ordered }, Kind::Map, f, src, cs, None, None)?;
    Ok(ImapIterator { pool: pool.clone(), job, ordered, bar: Rc::new(RefCell::new(None)) })
}

#[export_module]
pub mod pool_functions {
    use super::*;

    /// A pool of worker processes. Copies share it; when the last goes, it is terminated.
    pub type Pool = super::Pool;
    /// The result of an `*_async` pool call.
    pub type AsyncResult = super::AsyncResult;
    /// The lazy iterator of `imap` / `imap_unordered`.
    pub type ImapIterator = super::ImapIterator;
    /// The workers' task slots (internal to pools).
    pub type PoolSlots = super::task::PoolSlots;

    /// A pool with one worker per CPU.
    ///
    /// ```rhai
    /// let p = Pool();
    /// print(p.map(|x| x * x, [1, 2, 3]));   // [1, 4, 9]
    /// p.terminate();
    /// ```
    ///
    /// Throws when: this is a child still running the script's top level (`RuntimeError`);
    /// this process is a daemon, such as a pool worker (`AssertionError`); the OS refuses
    /// (`OSError`).
    #[rhai_fn(name = "Pool", return_raw)]
    pub fn pool_new(ctx: NativeCallContext) -> Result<Pool, Box<EvalAltResult>> {
        super::core::Pool::new(&ctx, config(None, rhai_mp_core::default_method())?)
    }

    /// A pool of `processes` workers, or one described by
    /// `#{processes, initializer, initargs, maxtasksperchild}`.
    ///
    /// ```rhai
    /// fn init(x) { print(`worker ready: ${x}`) }
    /// let p = Pool(#{processes: 2, initializer: init, initargs: [1], maxtasksperchild: 10});
    /// ```
    ///
    /// Throws when: `processes` is below 1 or `maxtasksperchild` below 1, or an option is
    /// unknown (`ValueError`); an argument has the wrong type (`TypeError`); as `Pool()`.
    #[rhai_fn(name = "Pool", return_raw)]
    pub fn pool_with(ctx: NativeCallContext, arg: Dynamic) -> Result<Pool, Box<EvalAltResult>> {
        super::core::Pool::new(&ctx, config(Some(arg), rhai_mp_core::default_method())?)
    }

    /// `Pool()` with this context's start method.
    ///
    /// ```rhai
    /// let p = get_context("fork").Pool();
    /// ```
    ///
    /// Throws when: as `Pool()`.
    #[rhai_fn(global, name = "Pool", return_raw)]
    pub fn ctx_pool(ctx: NativeCallContext, c: &mut Context) -> Result<Pool, Box<EvalAltResult>> {
        super::core::Pool::new(&ctx, config(None, c.0)?)
    }

    /// `Pool(processes)` or `Pool(#{..})` with this context's start method.
    ///
    /// ```rhai
    /// let p = get_context("forkserver").Pool(2);
    /// ```
    ///
    /// Throws when: as `Pool(..)`.
    #[rhai_fn(global, name = "Pool", return_raw)]
    pub fn ctx_pool_with(ctx: NativeCallContext, c: &mut Context, arg: Dynamic) -> Result<Pool, Box<EvalAltResult>> {
        super::core::Pool::new(&ctx, config(Some(arg), c.0)?)
    }

    /// Calls `f()` in a worker and returns its result.
    ///
    /// ```rhai
    /// let pid = p.apply(|| os::getpid());
    /// ```
    ///
    /// Throws when: the pool is closed or terminated (`ValueError`); `f` throws (the same
    /// value); the worker dies (`WorkerLostError`); `f` cannot be sent (`SerializationError`).
    #[rhai_fn(global, name = "apply", return_raw)]
    pub fn apply0(ctx: NativeCallContext, p: &mut Pool, f: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        let job = start_apply(p, "apply", f, None, async_opts(None, "apply", false)?)?;
        outcome(&ctx, p, job)
    }

    /// Calls `f(args..)` in a worker and returns its result.
    ///
    /// ```rhai
    /// print(p.apply(|a, b| a + b, [1, 2]));   // 3
    /// ```
    ///
    /// Throws when: as `apply(f)`; `args` is not an array (`TypeError`).
    #[rhai_fn(global, name = "apply", return_raw)]
    pub fn apply(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        args: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let job = start_apply(p, "apply", f, Some(args), async_opts(None, "apply", false)?)?;
        outcome(&ctx, p, job)
    }

    /// Starts `f()` in a worker; returns an `AsyncResult`.
    ///
    /// ```rhai
    /// let r = p.apply_async(|| 42);
    /// print(r.get());
    /// ```
    ///
    /// Throws when: the pool is closed or terminated (`ValueError`); `f` cannot be sent
    /// (`SerializationError`).
    #[rhai_fn(global, name = "apply_async", return_raw)]
    pub fn apply_async0(ctx: NativeCallContext, p: &mut Pool, f: Dynamic) -> Result<AsyncResult, Box<EvalAltResult>> {
        settle_due(Some(&ctx), p)?;
        let job = start_apply(p, "apply_async", f, None, async_opts(None, "apply_async", false)?)?;
        Ok(super::AsyncResult { pool: p.clone(), job })
    }

    /// Starts `f(args..)` in a worker; returns an `AsyncResult`.
    ///
    /// ```rhai
    /// let r = p.apply_async(|x| x * 2, [21]);
    /// print(r.get());   // 42
    /// ```
    ///
    /// Throws when: as `apply_async(f)`; `args` is not an array (`TypeError`).
    #[rhai_fn(global, name = "apply_async", return_raw)]
    pub fn apply_async(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        args: Dynamic,
    ) -> Result<AsyncResult, Box<EvalAltResult>> {
        settle_due(Some(&ctx), p)?;
        let job = start_apply(p, "apply_async", f, Some(args), async_opts(None, "apply_async", false)?)?;
        Ok(super::AsyncResult { pool: p.clone(), job })
    }

    /// Starts `f(args..)` with `#{callback, error_callback}`: `callback(result)` or
    /// `error_callback(error)` runs in this process, in completion order, during a later
    /// call on the pool or one of its results.
    ///
    /// ```rhai
    /// p.apply_async(|x| x * 2, [21], #{callback: |r| print(r), error_callback: |e| print(e)});
    /// ```
    ///
    /// Throws when: as `apply_async(f, args)`; an option is unknown (`ValueError`) or not a
    /// function (`TypeError`).
    #[rhai_fn(global, name = "apply_async", return_raw)]
    pub fn apply_async_opts(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        args: Dynamic,
        o: Dynamic,
    ) -> Result<AsyncResult, Box<EvalAltResult>> {
        settle_due(Some(&ctx), p)?;
        let job = start_apply(p, "apply_async", f, Some(args), async_opts(Some(o), "apply_async", false)?)?;
        Ok(super::AsyncResult { pool: p.clone(), job })
    }

    /// `[f(x) for x in iterable]`, computed by the workers in chunks (about four per
    /// worker by default); the results keep the input's order.
    ///
    /// ```rhai
    /// print(p.map(|x| x * x, 0..5));   // [0, 1, 4, 9, 16]
    /// ```
    ///
    /// Throws when: the pool is closed or terminated (`ValueError`); `f` throws for an item
    /// (the same value); a worker dies (`WorkerLostError`); an item cannot be sent
    /// (`SerializationError` naming it); `iterable` is not iterable (`TypeError`).
    #[rhai_fn(global, name = "map", return_raw)]
    pub fn map(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        iterable: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let job = start_map(p, "map", Kind::Map, f, iterable, async_opts(None, "map", true)?)?;
        outcome(&ctx, p, job)
    }

    /// `map` with chunks of `chunksize` items.
    ///
    /// ```rhai
    /// print(p.map(|x| x + 1, [1, 2, 3, 4], 2));   // [2, 3, 4, 5]
    /// ```
    ///
    /// Throws when: as `map(f, iterable)`; `chunksize` is below 1 (`ValueError`).
    #[rhai_fn(global, name = "map", return_raw)]
    pub fn map_chunks(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        iterable: Dynamic,
        chunksize: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let job = start_map(p, "map", Kind::Map, f, iterable, async_opts(Some(chunksize), "map", true)?)?;
        outcome(&ctx, p, job)
    }

    /// `map` without waiting: returns an `AsyncResult` whose `get()` is the list.
    ///
    /// ```rhai
    /// let r = p.map_async(|x| x * x, [1, 2, 3]);
    /// print(r.get());
    /// ```
    ///
    /// Throws when: as `map`.
    #[rhai_fn(global, name = "map_async", return_raw)]
    pub fn map_async(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        iterable: Dynamic,
    ) -> Result<AsyncResult, Box<EvalAltResult>> {
        settle_due(Some(&ctx), p)?;
        let job = start_map(p, "map_async", Kind::Map, f, iterable, async_opts(None, "map_async", true)?)?;
        Ok(super::AsyncResult { pool: p.clone(), job })
    }

    /// `map_async` with a chunksize or `#{chunksize, callback, error_callback}`.
    ///
    /// ```rhai
    /// p.map_async(|x| x * x, [1, 2, 3], #{callback: |rs| print(rs)}).wait();
    /// ```
    ///
    /// Throws when: as `map`; an option is unknown (`ValueError`) or of the wrong type
    /// (`TypeError`).
    #[rhai_fn(global, name = "map_async", return_raw)]
    pub fn map_async_opts(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        iterable: Dynamic,
        o: Dynamic,
    ) -> Result<AsyncResult, Box<EvalAltResult>> {
        settle_due(Some(&ctx), p)?;
        let job = start_map(p, "map_async", Kind::Map, f, iterable, async_opts(Some(o), "map_async", true)?)?;
        Ok(super::AsyncResult { pool: p.clone(), job })
    }

    /// `[f(args..) for args in iterable]`: each item is an array of arguments.
    ///
    /// ```rhai
    /// print(p.starmap(|a, b| a * b, [[1, 2], [3, 4]]));   // [2, 12]
    /// ```
    ///
    /// Throws when: as `map`; an item is not an array (`TypeError`, from the worker).
    #[rhai_fn(global, name = "starmap", return_raw)]
    pub fn starmap(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        iterable: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let job = start_map(p, "starmap", Kind::Starmap, f, iterable, async_opts(None, "starmap", true)?)?;
        outcome(&ctx, p, job)
    }

    /// `starmap` with chunks of `chunksize` items.
    ///
    /// ```rhai
    /// print(p.starmap(|a, b| a + b, [[1, 2], [3, 4]], 1));   // [3, 7]
    /// ```
    ///
    /// Throws when: as `starmap(f, iterable)`; `chunksize` is below 1 (`ValueError`).
    #[rhai_fn(global, name = "starmap", return_raw)]
    pub fn starmap_chunks(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        iterable: Dynamic,
        chunksize: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let job = start_map(p, "starmap", Kind::Starmap, f, iterable, async_opts(Some(chunksize), "starmap", true)?)?;
        outcome(&ctx, p, job)
    }

    /// `starmap` without waiting: returns an `AsyncResult`.
    ///
    /// ```rhai
    /// let r = p.starmap_async(|a, b| a + b, [[1, 2], [3, 4]]);
    /// print(r.get());   // [3, 7]
    /// ```
    ///
    /// Throws when: as `starmap`.
    #[rhai_fn(global, name = "starmap_async", return_raw)]
    pub fn starmap_async(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        iterable: Dynamic,
    ) -> Result<AsyncResult, Box<EvalAltResult>> {
        settle_due(Some(&ctx), p)?;
        let job = start_map(p, "starmap_async", Kind::Starmap, f, iterable, async_opts(None, "starmap_async", true)?)?;
        Ok(super::AsyncResult { pool: p.clone(), job })
    }

    /// `starmap_async` with a chunksize or `#{chunksize, callback, error_callback}`.
    ///
    /// ```rhai
    /// p.starmap_async(|a, b| a + b, [[1, 2]], #{callback: |rs| print(rs)}).wait();
    /// ```
    ///
    /// Throws when: as `starmap_async(f, iterable)`; an option is unknown (`ValueError`) or
    /// of the wrong type (`TypeError`).
    #[rhai_fn(global, name = "starmap_async", return_raw)]
    pub fn starmap_async_opts(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        iterable: Dynamic,
        o: Dynamic,
    ) -> Result<AsyncResult, Box<EvalAltResult>> {
        settle_due(Some(&ctx), p)?;
        let job =
            start_map(p, "starmap_async", Kind::Starmap, f, iterable, async_opts(Some(o), "starmap_async", true)?)?;
        Ok(super::AsyncResult { pool: p.clone(), job })
    }

    /// A lazy, ordered iterator over `f(x)` for each `x`: results stream while later ones
    /// are computed, and only a bounded part of the input is sent ahead.
    ///
    /// ```rhai
    /// for r in p.imap(|x| x * x, 0..1000000) { if r > 100 { break; } }
    /// ```
    ///
    /// Throws when: the pool is closed or terminated (`ValueError`); `iterable` is not
    /// iterable (`TypeError`). Errors of `f` come out of the iterator at their position.
    #[rhai_fn(global, name = "imap", return_raw)]
    pub fn imap(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        iterable: Dynamic,
    ) -> Result<ImapIterator, Box<EvalAltResult>> {
        start_imap(&ctx, p, "imap", true, f, iterable, None)
    }

    /// `imap` with chunks of `chunksize` items.
    ///
    /// ```rhai
    /// let it = p.imap(|x| x + 1, 0..100, 10);
    /// ```
    ///
    /// Throws when: as `imap(f, iterable)`; `chunksize` is below 1 (`ValueError`).
    #[rhai_fn(global, name = "imap", return_raw)]
    pub fn imap_chunks(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        iterable: Dynamic,
        chunksize: Dynamic,
    ) -> Result<ImapIterator, Box<EvalAltResult>> {
        start_imap(&ctx, p, "imap", true, f, iterable, Some(chunksize))
    }

    /// As `imap`, but results come in the order they are ready.
    ///
    /// ```rhai
    /// for r in p.imap_unordered(|x| x * x, [3, 1, 2]) { print(r); }
    /// ```
    ///
    /// Throws when: as `imap`.
    #[rhai_fn(global, name = "imap_unordered", return_raw)]
    pub fn imap_unordered(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        iterable: Dynamic,
    ) -> Result<ImapIterator, Box<EvalAltResult>> {
        start_imap(&ctx, p, "imap_unordered", false, f, iterable, None)
    }

    /// `imap_unordered` with chunks of `chunksize` items.
    ///
    /// ```rhai
    /// let it = p.imap_unordered(|x| x, 0..100, 25);
    /// ```
    ///
    /// Throws when: as `imap_unordered(f, iterable)`; `chunksize` is below 1 (`ValueError`).
    #[rhai_fn(global, name = "imap_unordered", return_raw)]
    pub fn imap_unordered_chunks(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        iterable: Dynamic,
        chunksize: Dynamic,
    ) -> Result<ImapIterator, Box<EvalAltResult>> {
        start_imap(&ctx, p, "imap_unordered", false, f, iterable, Some(chunksize))
    }

    /// Stops taking calls; the workers exit once the calls made so far are done (`join()`
    /// waits for that).
    ///
    /// ```rhai
    /// p.close();
    /// p.join();
    /// ```
    ///
    /// Throws when: a due callback throws (the same error).
    #[rhai_fn(global, return_raw)]
    pub fn close(ctx: NativeCallContext, p: &mut Pool) -> Result<(), Box<EvalAltResult>> {
        p.close(&ctx)
    }

    /// Stops every worker now (SIGTERM, then SIGKILL) and reaps them; calls still running
    /// fail with `RuntimeError`.
    ///
    /// ```rhai
    /// p.terminate();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global)]
    pub fn terminate(p: &mut Pool) {
        p.terminate();
    }

    /// Waits for the calls to finish and the workers to exit; after `close()` or
    /// `terminate()`.
    ///
    /// ```rhai
    /// p.close();
    /// p.join();
    /// ```
    ///
    /// Throws when: the pool is still running (`ValueError`); a due callback throws.
    #[rhai_fn(global, return_raw)]
    pub fn join(ctx: NativeCallContext, p: &mut Pool) -> Result<(), Box<EvalAltResult>> {
        p.join(&ctx)
    }

    /// `<Pool state=RUN pool_size=2>`.
    ///
    /// ```rhai
    /// print(p);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug")]
    pub fn pool_describe(p: &mut Pool) -> String {
        p.describe()
    }

    /// The call's result: its value, or the list of a map. Waits for it, at most `timeout`
    /// seconds with `get(timeout)`.
    ///
    /// ```rhai
    /// let r = p.apply_async(|| 1);
    /// print(r.get());
    /// ```
    ///
    /// Throws when: the call failed (its error: the value `f` threw, `WorkerLostError`, …).
    #[rhai_fn(global, name = "get", return_raw)]
    pub fn get(ctx: NativeCallContext, r: &mut AsyncResult) -> Result<Dynamic, Box<EvalAltResult>> {
        get_timeout(ctx, r, Dynamic::UNIT)
    }

    /// `get()` waiting at most `timeout` seconds.
    ///
    /// ```rhai
    /// try { r.get(0.1) } catch (e) { print(e.type) }   // TimeoutError
    /// ```
    ///
    /// Throws when: the result is not ready in time (`TimeoutError`); as `get()`; a
    /// negative timeout (`ValueError`).
    #[rhai_fn(global, name = "get", return_raw)]
    pub fn get_timeout(
        ctx: NativeCallContext,
        r: &mut AsyncResult,
        timeout: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let t = opts::timeout(&timeout, "get")?;
        if !r.pool.wait_job(&ctx, &r.job, t)? {
            return Err(mp_err!(TimeoutError, "the result was not ready within {} s", t.unwrap_or(0.0)).into());
        }
        let j = r.job.borrow();
        match &j.outcome {
            Some(Ok(v)) => Ok(v.clone()),
            Some(Err(f)) => Err(f.to_eval()),
            None => Err(mp_err!(RuntimeError, "pool call ended without an outcome").into()),
        }
    }

    /// Waits until the result is ready.
    ///
    /// ```rhai
    /// r.wait();
    /// ```
    ///
    /// Throws when: a due callback throws.
    #[rhai_fn(global, name = "wait", return_raw)]
    pub fn wait(ctx: NativeCallContext, r: &mut AsyncResult) -> Result<(), Box<EvalAltResult>> {
        r.pool.wait_job(&ctx, &r.job, None).map(|_| ())
    }

    /// Waits at most `timeout` seconds for the result to be ready.
    ///
    /// ```rhai
    /// r.wait(0.5);
    /// if r.ready() { print(r.get()) }
    /// ```
    ///
    /// Throws when: a negative timeout (`ValueError`); a due callback throws.
    #[rhai_fn(global, name = "wait", return_raw)]
    pub fn wait_timeout(
        ctx: NativeCallContext,
        r: &mut AsyncResult,
        timeout: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        let t = opts::timeout(&timeout, "wait")?;
        r.pool.wait_job(&ctx, &r.job, t).map(|_| ())
    }

    /// Whether the call has finished.
    ///
    /// ```rhai
    /// while !r.ready() { time::sleep(0.01); }
    /// ```
    ///
    /// Throws when: a due callback throws.
    #[rhai_fn(global, return_raw)]
    pub fn ready(ctx: NativeCallContext, r: &mut AsyncResult) -> Result<bool, Box<EvalAltResult>> {
        r.pool.wait_job(&ctx, &r.job, Some(0.0))
    }

    /// Whether the call finished without an error.
    ///
    /// ```rhai
    /// r.wait();
    /// print(r.successful());
    /// ```
    ///
    /// Throws when: the result is not ready (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn successful(ctx: NativeCallContext, r: &mut AsyncResult) -> Result<bool, Box<EvalAltResult>> {
        r.pool.wait_job(&ctx, &r.job, Some(0.0))?;
        match &r.job.borrow().outcome {
            None => Err(mp_err!(ValueError, "the result is not ready").into()),
            Some(o) => Ok(o.is_ok()),
        }
    }

    /// `<AsyncResult ready>` or `<AsyncResult pending>`.
    ///
    /// ```rhai
    /// print(r);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug")]
    pub fn result_describe(r: &mut AsyncResult) -> String {
        let state = if r.job.borrow().outcome.is_some() { "ready" } else { "pending" };
        format!("<AsyncResult {state}>")
    }

    /// The next result (waiting for it).
    ///
    /// ```rhai
    /// let it = p.imap(|x| x * 2, [1, 2]);
    /// print(it.next());   // 2
    /// ```
    ///
    /// Throws when: past the end (`StopIteration`); `f` threw for this item (that error).
    #[rhai_fn(global, name = "next", return_raw)]
    pub fn next(ctx: NativeCallContext, it: &mut ImapIterator) -> Result<Dynamic, Box<EvalAltResult>> {
        next_timeout(ctx, it, Dynamic::UNIT)
    }

    /// The next result, waiting at most `timeout` seconds.
    ///
    /// ```rhai
    /// try { it.next(0.5) } catch (e) { if e.type == "TimeoutError" { print("not yet") } }
    /// ```
    ///
    /// Throws when: none arrives in time (`TimeoutError`); as `next()`.
    #[rhai_fn(global, name = "next", return_raw)]
    pub fn next_timeout(
        ctx: NativeCallContext,
        it: &mut ImapIterator,
        timeout: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let t = opts::timeout(&timeout, "next")?;
        match it.next_in(Some(&ctx), t)? {
            Some(v) => Ok(v),
            None => Err(mp_err!(
                StopIteration,
                "the {} iterator is exhausted",
                if it.ordered { "imap" } else { "imap_unordered" }
            )
            .into()),
        }
    }

    /// Draws a progress bar on stderr as results are read, when stderr is a terminal
    /// (silent otherwise); returns the same iterator.
    ///
    /// ```rhai
    /// for r in p.imap(|x| x * x, 0..100).progress() { }
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global)]
    pub fn progress(it: &mut ImapIterator) -> ImapIterator {
        use std::io::IsTerminal;
        let mut bar = it.bar.borrow_mut();
        if bar.is_none() {
            let total = it.job.borrow().total;
            let target = if std::io::stderr().is_terminal() {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            };
            let b = ProgressBar::with_draw_target(total, target);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}]")
            {
                b.set_style(style);
            }
            *bar = Some(b);
        }
        drop(bar);
        it.clone()
    }

    /// `<imap iterator>`.
    ///
    /// ```rhai
    /// print(p.imap(|x| x, [1]));
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug")]
    pub fn imap_describe(it: &mut ImapIterator) -> String {
        format!("<{} iterator>", if it.ordered { "imap" } else { "imap_unordered" })
    }

    /// The loop every pool worker runs (internal: a pool starts its workers with it).
    ///
    /// ```rhai
    /// // not for scripts: Pool(..) uses it
    /// ```
    ///
    /// Throws when: the pool's queues fail (`OSError`); the initializer throws (its error).
    #[rhai_fn(name = "__pool_worker", return_raw)]
    pub fn pool_worker(
        ctx: NativeCallContext,
        tasks: crate::queue::Queue,
        results: crate::queue::Queue,
        slots: PoolSlots,
        index: INT,
        initializer: Dynamic,
        initargs: Array,
        maxtasks: INT,
    ) -> Result<(), Box<EvalAltResult>> {
        super::worker::work(&ctx, tasks, results, slots, index, initializer, initargs, maxtasks)
    }
}
