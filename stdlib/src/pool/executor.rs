//! `ProcessPoolExecutor`, `Future`, `as_completed` and `futures::wait` (see the reference,
//! "Executor (concurrent.futures)"): Python's `concurrent.futures` on the pool's own
//! workers and dispatch. An executor is a [`Pool`] with an executor's states (running, shut
//! down, broken); a future is one `apply` call on it, so timeouts, cancel (of running
//! futures too), `max_memory`, lost workers and MPI ranks work as they do for the pool.
//! Unlike Python's, an executor whose worker dies goes on: only that future fails.

use super::dispatch::{CallBounds, PoolConfig};
use super::job::{Job, JobKind};
use super::task::Kind;
use super::{ImapIterator, Pool};
use crate::opts::{self, Opts};
use rhai::plugin::*;
use rhai::{Dynamic, Map, NativeCallContext};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpResult, RhaiResult};
use rhai_mp_core::tree::state::StartMethod;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// What an executor accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// `shutdown()`: `submit` throws `RuntimeError`.
    Shutdown,
    /// `terminate_workers()` / `kill_workers()`: `submit` throws `BrokenProcessPool`.
    Broken,
}

pub(super) struct ExecutorInner {
    pool: Pool,
    state: State,
}

/// A `ProcessPoolExecutor`; copies share it. The last copy to go shuts it down (waiting
/// for its futures, as `shutdown()` does).
#[derive(Clone)]
pub struct Executor(Rc<RefCell<ExecutorInner>>);

impl Drop for ExecutorInner {
    fn drop(&mut self) {
        if self.state == State::Running {
            let _ = self.pool.shutdown(None, true);
        }
    }
}

/// One task submitted to an executor.
#[derive(Clone)]
pub struct Future {
    pub(super) pool: Pool,
    pub(super) job: Rc<RefCell<Job>>,
}

impl Future {
    fn done_now(&self, ctx: Option<&NativeCallContext>) -> RhaiResult<bool> {
        self.pool.wait_job_opt(ctx, &self.job, Deadline::now())
    }

    fn outcome(&self) -> Option<RhaiResult<Dynamic>> {
        match &self.job.borrow().outcome {
            None => None,
            Some(Ok(v)) => Some(Ok(v.clone())),
            Some(Err(f)) => Some(Err(f.to_eval())),
        }
    }

    fn failed(&self) -> bool {
        matches!(self.job.borrow().outcome, Some(Err(_)))
    }
}

fn executor_config(arg: Option<Dynamic>) -> MpResult<PoolConfig> {
    let method = rhai_mp_core::tree::state::default_method();
    let mut cfg = super::config(None, method)?;
    match arg {
        None => {}
        Some(v) if v.is_unit() => {}
        Some(v) if v.is_map() => {
            let mut o = Opts::new(
                v.cast::<Map>(),
                "ProcessPoolExecutor",
                &[
                    "max_workers",
                    "initializer",
                    "initargs",
                    "max_tasks_per_child",
                    "mp_context",
                    "task_timeout",
                    "max_memory",
                ],
            )?;
            if let Some(m) = o.take("mp_context") {
                let m = if let Some(c) = m.read_lock::<crate::context::Context>() {
                    c.0
                } else if m.is_string() {
                    let name = m.to_string();
                    StartMethod::parse(&name).ok_or_else(|| mp_err!(ValueError, "cannot find context for {name:?}"))?
                } else {
                    return Err(mp_err!(
                        TypeError,
                        "mp_context of ProcessPoolExecutor() must be a start method name or a context, not {}",
                        opts::type_name(&m)
                    ));
                };
                cfg = super::config(None, m)?;
            }
            if let Some(n) = o.int("max_workers")? {
                if n < 1 {
                    return Err(mp_err!(ValueError, "max_workers must be greater than 0, not {n}"));
                }
                cfg.processes = n as usize;
            }
            cfg.initializer = o.fn_ptr("initializer")?;
            cfg.initargs = o.items("initargs")?.unwrap_or_default();
            if let Some(n) = o.int("max_tasks_per_child")? {
                if n < 1 {
                    return Err(mp_err!(ValueError, "max_tasks_per_child must be >= 1, not {n}"));
                }
                cfg.maxtasks = n;
            }
            cfg.task_timeout_ns = super::timeout_ns(o.seconds("task_timeout")?);
            cfg.max_memory = super::max_memory(o.int("max_memory")?)?;
        }
        Some(v) => {
            let n = opts::arg_int(&v, "ProcessPoolExecutor", "max_workers")?;
            if n < 1 {
                return Err(mp_err!(ValueError, "max_workers must be greater than 0, not {n}"));
            }
            cfg.processes = n as usize;
        }
    }
    Ok(cfg)
}

impl Executor {
    fn new(ctx: &NativeCallContext, arg: Option<Dynamic>) -> RhaiResult<Executor> {
        let pool = Pool::new(ctx, executor_config(arg)?)?;
        Ok(Executor(Rc::new(RefCell::new(ExecutorInner { pool, state: State::Running }))))
    }

    fn pool(&self) -> Pool {
        self.0.borrow().pool.clone()
    }

    fn check(&self, what: &str) -> RhaiResult<()> {
        match self.0.borrow().state {
            State::Running => Ok(()),
            State::Shutdown => Err(mp_err!(RuntimeError, "cannot {what} after shutdown").into()),
            State::Broken => Err(mp_err!(
                BrokenProcessPool,
                "A child process terminated abruptly, the process pool is not usable anymore (its workers were terminated)"
            )
            .into()),
        }
    }

    fn submit(
        &self,
        ctx: &NativeCallContext,
        f: Dynamic,
        args: Option<Dynamic>,
        o: Option<Dynamic>,
    ) -> RhaiResult<Future> {
        self.check("schedule new futures")?;
        let pool = self.pool();
        super::settle_due(Some(ctx), &pool)?;
        let o = super::async_opts(o, "submit", false)?;
        if o.callback.is_some() || o.error_callback.is_some() {
            return Err(mp_err!(ValueError, "submit() takes no callback (use add_done_callback)").into());
        }
        let job = super::start_apply(&pool, "submit", f, args, o)?;
        Ok(Future { pool, job })
    }

    fn map(&self, f: Dynamic, iterable: Dynamic, o: Option<Dynamic>) -> RhaiResult<ImapIterator> {
        self.check("schedule new futures")?;
        let pool = self.pool();
        let f = opts::arg_fn(f, "map", "func")?;
        let (mut timeout, mut chunksize, mut ahead) = (None, 1, None);
        if let Some(v) = o.filter(|v| !v.is_unit()) {
            let map = v.try_cast::<Map>().ok_or_else(|| {
                mp_err!(TypeError, "the options of map() must be a map #{{timeout, chunksize, buffersize}}")
            })?;
            let mut o = Opts::new(map, "map", &["timeout", "chunksize", "buffersize"])?;
            timeout = o.seconds("timeout")?;
            if let Some(n) = o.int("chunksize")? {
                chunksize = super::chunksize(&n.into(), "map")?;
            }
            if let Some(n) = o.int("buffersize")? {
                if n < 1 {
                    return Err(mp_err!(ValueError, "buffersize must be None or > 0, not {n}").into());
                }
                ahead = Some(n as u64);
            }
        }
        let deadline = timeout.map_or(Deadline::NEVER, Deadline::after_secs);
        let src = super::source(iterable, "map")?;
        let bounds = CallBounds { timeout_ns: None, ahead };
        let job = pool.submit(JobKind::Imap { ordered: true }, Kind::Map, f, src, chunksize, None, None, bounds)?;
        Ok(ImapIterator { pool, job, ordered: true, bar: Rc::new(RefCell::new(None)), deadline })
    }
}

/// Futures grouped for waiting: each pool once.
fn pools_of(fs: &[Future]) -> Vec<Pool> {
    let mut out: Vec<Pool> = Vec::new();
    for f in fs {
        if !out.iter().any(|p| Rc::ptr_eq(&p.0, &f.pool.0)) {
            out.push(f.pool.clone());
        }
    }
    out
}

/// Waits until `ready(futures)` or the deadline (`Ok(false)`), pumping their pools.
fn wait_until(
    ctx: Option<&NativeCallContext>,
    fs: &[Future],
    deadline: Deadline,
    ready: &dyn Fn() -> bool,
) -> RhaiResult<bool> {
    let pools = pools_of(fs);
    loop {
        for p in &pools {
            p.pump(ctx, Deadline::now(), &|| true)?;
        }
        if ready() {
            return Ok(true);
        }
        if deadline.passed() {
            return Ok(false);
        }
        // One pool: sleep on its results; several: take turns.
        let slice = if pools.len() == 1 { Duration::from_millis(50) } else { Duration::from_millis(5) };
        for p in &pools {
            if p.pump(ctx, Deadline::after(deadline.slice(slice)), ready)? {
                return Ok(true);
            }
        }
    }
}

fn futures_of(v: Dynamic, func: &str) -> MpResult<Vec<Future>> {
    let t = opts::type_name(&v);
    let items = opts::items_or(v, |_| mp_err!(TypeError, "{func}() takes an array of futures, not {t}"))?;
    items
        .into_iter()
        .map(|x| {
            let t = opts::type_name(&x);
            x.try_cast::<Future>().ok_or_else(|| mp_err!(TypeError, "{func}() takes futures, not {t}"))
        })
        .collect()
}

/// The iterator `as_completed` returns.
#[derive(Clone)]
pub struct AsCompleted(Rc<RefCell<(Vec<Future>, Deadline, usize)>>);

impl AsCompleted {
    pub(super) fn next_in(&self, ctx: Option<&NativeCallContext>) -> RhaiResult<Option<Future>> {
        let (pending, deadline) = {
            let s = self.0.borrow();
            (s.0.clone(), s.1)
        };
        if pending.is_empty() {
            return Ok(None);
        }
        let ready = || pending.iter().any(|f| f.job.borrow().outcome.is_some());
        if !wait_until(ctx, &pending, deadline, &ready)? {
            let total = self.0.borrow().2;
            return Err(mp_err!(TimeoutError, "{} (of {total}) futures unfinished", pending.len()).into());
        }
        let mut s = self.0.borrow_mut();
        let i = s.0.iter().position(|f| f.job.borrow().outcome.is_some()).unwrap_or(0);
        Ok(Some(s.0.remove(i)))
    }
}

/// What a `for` loop over `as_completed(..)` runs.
struct AsCompletedLoop(AsCompleted);

impl Iterator for AsCompletedLoop {
    type Item = RhaiResult<Dynamic>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_in(None).map(|f| f.map(Dynamic::from)).transpose()
    }
}

/// Makes `as_completed(..)` work in `for` loops.
pub(crate) fn register(lib: &mut rhai::Module) {
    lib.set_iter_result(std::any::TypeId::of::<AsCompleted>(), |v: Dynamic| {
        Box::new(AsCompletedLoop(v.cast::<AsCompleted>()))
    });
}

fn fail_of(f: &Future) -> Dynamic {
    match &f.job.borrow().outcome {
        Some(Err(e)) => e.value(),
        _ => Dynamic::UNIT,
    }
}

/// The Rhai bindings: `ProcessPoolExecutor`, `Future`, `as_completed`.
#[export_module]
pub mod executor_functions {
    use super::*;

    /// A `concurrent.futures` executor on the pool's workers.
    pub type ProcessPoolExecutor = super::Executor;
    /// A task submitted to an executor.
    pub type Future = super::Future;
    /// The iterator of `as_completed`.
    pub type AsCompletedIterator = super::AsCompleted;

    /// An executor with one worker per CPU.
    ///
    /// ```rhai
    /// let ex = ProcessPoolExecutor();
    /// print(ex.submit(|x| x * 2, [21]).result());   // 42
    /// ```
    ///
    /// Throws when: as `Pool()`.
    #[rhai_fn(name = "ProcessPoolExecutor", return_raw)]
    pub fn executor_new(ctx: NativeCallContext) -> Result<Executor, Box<EvalAltResult>> {
        Executor::new(&ctx, None)
    }

    /// An executor of `max_workers` workers, or one described by `#{max_workers,
    /// initializer, initargs, max_tasks_per_child, mp_context, task_timeout, max_memory}`
    /// (`mp_context`: a start method name or a context).
    ///
    /// ```rhai
    /// let ex = ProcessPoolExecutor(#{max_workers: 2, mp_context: "fork", task_timeout: 10});
    /// ```
    ///
    /// Throws when: `max_workers` below 1, an unknown option or start method (`ValueError`);
    /// an option of the wrong type (`TypeError`); as `Pool()`.
    #[rhai_fn(name = "ProcessPoolExecutor", return_raw)]
    pub fn executor_with(ctx: NativeCallContext, arg: Dynamic) -> Result<Executor, Box<EvalAltResult>> {
        Executor::new(&ctx, Some(arg))
    }

    /// Runs `f()` in a worker; returns its `Future`.
    ///
    /// ```rhai
    /// let fut = ex.submit(|| 7);
    /// ```
    ///
    /// Throws when: after `shutdown()` (`RuntimeError`); after `terminate_workers()` or
    /// `kill_workers()` (`BrokenProcessPool`); `f` cannot be sent (`SerializationError`).
    #[rhai_fn(global, name = "submit", return_raw)]
    pub fn submit0(ctx: NativeCallContext, ex: &mut Executor, f: Dynamic) -> Result<Future, Box<EvalAltResult>> {
        ex.submit(&ctx, f, None, None)
    }

    /// Runs `f(args..)` in a worker; returns its `Future`.
    ///
    /// ```rhai
    /// let fut = ex.submit(|a, b| a + b, [1, 2]);
    /// print(fut.result());   // 3
    /// ```
    ///
    /// Throws when: as `submit(f)`; `args` is not an array (`TypeError`).
    #[rhai_fn(global, name = "submit", return_raw)]
    pub fn submit(
        ctx: NativeCallContext,
        ex: &mut Executor,
        f: Dynamic,
        args: Dynamic,
    ) -> Result<Future, Box<EvalAltResult>> {
        ex.submit(&ctx, f, Some(args), None)
    }

    /// `submit(f, args)` with `#{timeout}`: seconds the task may run once a worker starts
    /// it (then it is stopped and fails with `TimeoutError`).
    ///
    /// ```rhai
    /// let fut = ex.submit(|| loop {}, [], #{timeout: 0.5});
    /// print(fut.exception().type);   // TimeoutError
    /// ```
    ///
    /// Throws when: as `submit(f, args)`; an unknown option or a negative timeout
    /// (`ValueError`).
    #[rhai_fn(global, name = "submit", return_raw)]
    pub fn submit_opts(
        ctx: NativeCallContext,
        ex: &mut Executor,
        f: Dynamic,
        args: Dynamic,
        options: Dynamic,
    ) -> Result<Future, Box<EvalAltResult>> {
        ex.submit(&ctx, f, Some(args), Some(options))
    }

    /// `f(item)` for each item, as a lazy iterator of the results in input order.
    ///
    /// ```rhai
    /// for r in ex.map(|x| x * x, 0..5) { print(r) }
    /// ```
    ///
    /// Throws when: as `submit`; `iterable` is not iterable (`TypeError`).
    #[rhai_fn(global, name = "map", return_raw)]
    pub fn map(ex: &mut Executor, f: Dynamic, iterable: Dynamic) -> Result<ImapIterator, Box<EvalAltResult>> {
        ex.map(f, iterable, None)
    }

    /// `map` with `#{timeout, chunksize, buffersize}`: `timeout` counts from the call (a
    /// result not there by then throws `TimeoutError` and the rest is cancelled);
    /// `buffersize` bounds the tasks sent ahead of the results read.
    ///
    /// ```rhai
    /// let it = ex.map(|x| x + 1, 0..1000, #{chunksize: 10, buffersize: 4, timeout: 60});
    /// ```
    ///
    /// Throws when: as `map(f, iterable)`; `chunksize` or `buffersize` below 1, an unknown
    /// option (`ValueError`).
    #[rhai_fn(global, name = "map", return_raw)]
    pub fn map_opts(
        ex: &mut Executor,
        f: Dynamic,
        iterable: Dynamic,
        options: Dynamic,
    ) -> Result<ImapIterator, Box<EvalAltResult>> {
        ex.map(f, iterable, Some(options))
    }

    /// Stops taking tasks and waits for the submitted ones, then for the workers to exit.
    ///
    /// ```rhai
    /// ex.shutdown();
    /// ```
    ///
    /// Throws when: a done callback throws.
    #[rhai_fn(global, name = "shutdown", return_raw)]
    pub fn shutdown(ctx: NativeCallContext, ex: &mut Executor) -> Result<(), Box<EvalAltResult>> {
        shutdown_opts(ctx, ex, Dynamic::UNIT)
    }

    /// `shutdown()` with `#{wait, cancel_futures}`: `wait: false` returns at once;
    /// `cancel_futures: true` cancels the futures no worker has started.
    ///
    /// ```rhai
    /// ex.shutdown(#{wait: false, cancel_futures: true});
    /// ```
    ///
    /// Throws when: an unknown option (`ValueError`); a done callback throws.
    #[rhai_fn(global, name = "shutdown", return_raw)]
    pub fn shutdown_opts(
        ctx: NativeCallContext,
        ex: &mut Executor,
        options: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        let (mut wait, mut cancel) = (true, false);
        if let Some(map) = options.clone().try_cast::<Map>() {
            let mut o = Opts::new(map, "shutdown", &["wait", "cancel_futures"])?;
            wait = o.bool("wait")?.unwrap_or(true);
            cancel = o.bool("cancel_futures")?.unwrap_or(false);
        } else if !options.is_unit() {
            wait = opts::arg_bool(&options, "shutdown", "wait")?;
        }
        let pool = ex.pool();
        if ex.0.borrow().state == State::Running {
            ex.0.borrow_mut().state = State::Shutdown;
        }
        if cancel {
            pool.cancel_pending();
        }
        pool.shutdown(Some(&ctx), wait)
    }

    /// Ends the workers now (SIGTERM): pending futures fail with `BrokenProcessPool`.
    ///
    /// ```rhai
    /// ex.terminate_workers();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "terminate_workers")]
    pub fn terminate_workers(ex: &mut Executor) {
        ex.0.borrow_mut().state = State::Broken;
        ex.pool().break_off(false);
    }

    /// Kills the workers now (SIGKILL): pending futures fail with `BrokenProcessPool`.
    ///
    /// ```rhai
    /// ex.kill_workers();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "kill_workers")]
    pub fn kill_workers(ex: &mut Executor) {
        ex.0.borrow_mut().state = State::Broken;
        ex.pool().break_off(true);
    }

    /// `<ProcessPoolExecutor max_workers=2>`.
    ///
    /// ```rhai
    /// print(ex);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug")]
    pub fn executor_describe(ex: &mut Executor) -> String {
        let n = ex.pool().0.try_borrow().map_or(0, |p| p.size);
        format!("<ProcessPoolExecutor max_workers={n}>")
    }

    /// The future's value, waiting for it.
    ///
    /// ```rhai
    /// print(ex.submit(|| 1).result());
    /// ```
    ///
    /// Throws when: the task threw (that error; `WorkerLostError`, `TimeoutError` for its
    /// own timeout …); it was cancelled (`CancelledError`).
    #[rhai_fn(global, name = "result", return_raw)]
    pub fn result(ctx: NativeCallContext, f: &mut Future) -> Result<Dynamic, Box<EvalAltResult>> {
        result_timeout(ctx, f, Dynamic::UNIT)
    }

    /// `result()` waiting at most `timeout` seconds.
    ///
    /// ```rhai
    /// try { fut.result(0.1) } catch (e) { print(e.type) }
    /// ```
    ///
    /// Throws when: not done in time (`TimeoutError`); as `result()`; a negative timeout
    /// (`ValueError`).
    #[rhai_fn(global, name = "result", return_raw)]
    pub fn result_timeout(
        ctx: NativeCallContext,
        f: &mut Future,
        timeout: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let deadline = opts::timeout_deadline(&timeout, "result")?;
        if !f.pool.wait_job(&ctx, &f.job, deadline)? {
            return Err(mp_err!(TimeoutError, "the future was not done within the timeout").into());
        }
        f.outcome().unwrap_or_else(|| Err(mp_err!(RuntimeError, "the future ended without an outcome").into()))
    }

    /// The error the task ended with (the map `catch` would get), or `()`; waits for it.
    ///
    /// ```rhai
    /// let e = ex.submit(|| throw "no").exception();
    /// ```
    ///
    /// Throws when: it was cancelled (`CancelledError`).
    #[rhai_fn(global, name = "exception", return_raw)]
    pub fn exception(ctx: NativeCallContext, f: &mut Future) -> Result<Dynamic, Box<EvalAltResult>> {
        exception_timeout(ctx, f, Dynamic::UNIT)
    }

    /// `exception()` waiting at most `timeout` seconds.
    ///
    /// ```rhai
    /// print(fut.exception(5));
    /// ```
    ///
    /// Throws when: not done in time (`TimeoutError`); it was cancelled (`CancelledError`).
    #[rhai_fn(global, name = "exception", return_raw)]
    pub fn exception_timeout(
        ctx: NativeCallContext,
        f: &mut Future,
        timeout: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let deadline = opts::timeout_deadline(&timeout, "exception")?;
        if !f.pool.wait_job(&ctx, &f.job, deadline)? {
            return Err(mp_err!(TimeoutError, "the future was not done within the timeout").into());
        }
        if f.job.borrow().cancelled {
            return Err(mp_err!(CancelledError, "the future was cancelled").into());
        }
        Ok(fail_of(f))
    }

    /// Cancels the future: one not started never runs, a running one is stopped (its worker
    /// replaced if it does not stop at once). `true` unless it was done already.
    ///
    /// ```rhai
    /// let fut = ex.submit(|| time::sleep(60));
    /// print(fut.cancel());
    /// ```
    ///
    /// Throws when: a due callback throws.
    #[rhai_fn(global, name = "cancel", return_raw)]
    pub fn cancel(ctx: NativeCallContext, f: &mut Future) -> Result<bool, Box<EvalAltResult>> {
        f.done_now(Some(&ctx))?;
        let out = f.pool.cancel(&f.job);
        super::super::settle_due(Some(&ctx), &f.pool)?;
        Ok(out)
    }

    /// Whether the future was cancelled.
    ///
    /// ```rhai
    /// print(fut.cancelled());
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "cancelled")]
    pub fn cancelled(f: &mut Future) -> bool {
        f.job.borrow().cancelled
    }

    /// Whether a worker runs the task now.
    ///
    /// ```rhai
    /// print(fut.running());
    /// ```
    ///
    /// Throws when: a due callback throws.
    #[rhai_fn(global, name = "running", return_raw)]
    pub fn running(ctx: NativeCallContext, f: &mut Future) -> Result<bool, Box<EvalAltResult>> {
        if f.done_now(Some(&ctx))? {
            return Ok(false);
        }
        Ok(f.pool.running(&f.job))
    }

    /// Whether the future is done (finished, failed or cancelled).
    ///
    /// ```rhai
    /// while !fut.done() { time::sleep(0.01) }
    /// ```
    ///
    /// Throws when: a due callback throws.
    #[rhai_fn(global, name = "done", return_raw)]
    pub fn done(ctx: NativeCallContext, f: &mut Future) -> Result<bool, Box<EvalAltResult>> {
        f.done_now(Some(&ctx))
    }

    /// Calls `cb(future)` in this process once the future is done (at once if it is),
    /// as pool callbacks run: no later than the next call on the executor or a future.
    ///
    /// ```rhai
    /// fut.add_done_callback(|f| print(`done: ${f.result()}`));
    /// ```
    ///
    /// Throws when: `cb` is not a function (`TypeError`); `cb` throws (when it runs now).
    #[rhai_fn(global, name = "add_done_callback", return_raw)]
    pub fn add_done_callback(ctx: NativeCallContext, f: &mut Future, cb: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let cb = opts::arg_fn(cb, "add_done_callback", "fn")?;
        if f.done_now(Some(&ctx))? {
            let _ = cb.call_raw(&ctx, None, [Dynamic::from(f.clone())])?;
            return Ok(());
        }
        f.job.borrow_mut().done_callbacks.push(cb);
        Ok(())
    }

    /// `<Future pending>`, `<Future running>`, `<Future finished>`, `<Future cancelled>`.
    ///
    /// ```rhai
    /// print(fut);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug")]
    pub fn future_describe(f: &mut Future) -> String {
        let state = if f.job.borrow().cancelled {
            "cancelled"
        } else if f.job.borrow().outcome.is_some() {
            if f.failed() {
                "finished (raised)"
            } else {
                "finished"
            }
        } else if f.pool.running(&f.job) {
            "running"
        } else {
            "pending"
        };
        format!("<Future {state}>")
    }

    /// An iterator over the futures as they finish.
    ///
    /// ```rhai
    /// let fs = [ex.submit(|| 1), ex.submit(|| 2)];
    /// for f in as_completed(fs) { print(f.result()) }
    /// ```
    ///
    /// Throws when: `futures` holds something that is not a future (`TypeError`).
    #[rhai_fn(name = "as_completed", return_raw)]
    pub fn as_completed(futures: Dynamic) -> Result<AsCompleted, Box<EvalAltResult>> {
        as_completed_timeout(futures, Dynamic::UNIT)
    }

    /// `as_completed(futures)` with a deadline `timeout` seconds from now: `next()` (or the
    /// loop) throws `TimeoutError` when it passes with futures unfinished.
    ///
    /// ```rhai
    /// for f in as_completed(fs, 30) { print(f.result()) }
    /// ```
    ///
    /// Throws when: as `as_completed(futures)`; a negative timeout (`ValueError`).
    #[rhai_fn(name = "as_completed", return_raw)]
    pub fn as_completed_timeout(futures: Dynamic, timeout: Dynamic) -> Result<AsCompleted, Box<EvalAltResult>> {
        let fs = futures_of(futures, "as_completed")?;
        let deadline = opts::timeout_deadline(&timeout, "as_completed")?;
        let n = fs.len();
        Ok(AsCompleted(Rc::new(RefCell::new((fs, deadline, n)))))
    }

    /// The next future to finish.
    ///
    /// ```rhai
    /// let it = as_completed(fs);
    /// print(it.next().result());
    /// ```
    ///
    /// Throws when: every future was returned (`StopIteration`); the deadline passed
    /// (`TimeoutError`).
    #[rhai_fn(global, name = "next", return_raw)]
    pub fn as_completed_next(ctx: NativeCallContext, it: &mut AsCompleted) -> Result<Future, Box<EvalAltResult>> {
        it.next_in(Some(&ctx))?.ok_or_else(|| mp_err!(StopIteration, "as_completed() is exhausted").into())
    }
}

/// The Rhai bindings: the `futures::` module.
#[export_module]
pub mod futures_functions {
    use super::*;

    /// Waits for every future: `#{done: [..], not_done: [..]}`.
    ///
    /// ```rhai
    /// let r = futures::wait([ex.submit(|| 1)]);
    /// print(r.done.len());   // 1
    /// ```
    ///
    /// Throws when: `futures` holds something that is not a future (`TypeError`).
    #[rhai_fn(name = "wait", return_raw)]
    pub fn wait(ctx: NativeCallContext, futures: Dynamic) -> Result<Map, Box<EvalAltResult>> {
        wait_opts(ctx, futures, Dynamic::UNIT)
    }

    /// `wait` with `#{timeout, return_when}`: `return_when` is `"ALL_COMPLETED"` (the
    /// default), `"FIRST_COMPLETED"` or `"FIRST_EXCEPTION"`; at the timeout it returns
    /// what is done so far.
    ///
    /// ```rhai
    /// let r = futures::wait(fs, #{timeout: 5, return_when: "FIRST_COMPLETED"});
    /// ```
    ///
    /// Throws when: as `wait(futures)`; an unknown option or `return_when`, a negative
    /// timeout (`ValueError`).
    #[rhai_fn(name = "wait", return_raw)]
    pub fn wait_opts(ctx: NativeCallContext, futures: Dynamic, options: Dynamic) -> Result<Map, Box<EvalAltResult>> {
        let fs = futures_of(futures, "wait")?;
        let (mut deadline, mut when) = (Deadline::NEVER, "ALL_COMPLETED".to_string());
        if let Some(map) = options.clone().try_cast::<Map>() {
            let mut o = Opts::new(map, "wait", &["timeout", "return_when"])?;
            deadline = o.seconds("timeout")?.map_or(Deadline::NEVER, Deadline::after_secs);
            when = o.string("return_when")?.unwrap_or(when);
        } else if !options.is_unit() {
            deadline = opts::timeout_deadline(&options, "wait")?;
        }
        let done = |f: &Future| f.job.borrow().outcome.is_some();
        let ready: Box<dyn Fn() -> bool> = match when.as_str() {
            "ALL_COMPLETED" => Box::new(|| fs.iter().all(done)),
            "FIRST_COMPLETED" => Box::new(|| fs.is_empty() || fs.iter().any(done)),
            "FIRST_EXCEPTION" => {
                Box::new(|| fs.iter().all(done) || fs.iter().any(|f| f.failed() && !f.job.borrow().cancelled))
            }
            w => {
                return Err(mp_err!(
                    ValueError,
                    "return_when must be ALL_COMPLETED, FIRST_COMPLETED or FIRST_EXCEPTION, not {w:?}"
                )
                .into())
            }
        };
        wait_until(Some(&ctx), &fs, deadline, &*ready)?;
        let (d, n): (Vec<Future>, Vec<Future>) = fs.iter().cloned().partition(done);
        let mut out = Map::new();
        out.insert("done".into(), Dynamic::from_array(d.into_iter().map(Dynamic::from).collect()));
        out.insert("not_done".into(), Dynamic::from_array(n.into_iter().map(Dynamic::from).collect()));
        Ok(out)
    }
}

/// The executor's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::{module_section, section};
    crate::registry::Primitive {
        name: "futures",
        group: "Executor (concurrent.futures)",
        sections: &[
            section("ProcessPoolExecutor", &[("Executor", "ex")], &["ProcessPoolExecutor"], &["ProcessPoolExecutor("]),
            section("Future", &[("Future", "fut")], &[], &[".submit("]),
            section("as_completed", &[("AsCompleted", "it")], &["as_completed"], &["as_completed("]),
            module_section("futures"),
        ],
        functions,
        module: Some(|| rhai::exported_module!(futures_functions)),
        handles: &[],
        machinery: None,
        mirrors: &[],
        managed: &[],
    }
};

/// Registers the executor's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "executor", executor_functions);
}
