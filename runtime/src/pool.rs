//! [`Pool`]: a pool of worker processes driven from Rust. It is the script's `Pool`, run
//! through the runtime's session, so the functions it maps are the session's script
//! functions (code travels to the workers as it does from the REPL) or native ones the
//! host registered.

use crate::{Error, Runtime};
use rhai::{Array, Dynamic};
use std::time::Duration;

/// What a pool is made with ([`Runtime::pool_with`]).
#[derive(Debug, Clone, Default)]
pub struct PoolOptions {
    /// How many workers (0: one per CPU).
    pub processes: usize,
    /// How long each task may run once a worker starts it (then it is stopped and fails
    /// with `TimeoutError`; the worker is killed and replaced only if it does not stop).
    pub task_timeout: Option<Duration>,
    /// How many bytes each worker may use (a task past it fails with `MemoryError`).
    pub max_memory: Option<u64>,
}

/// One call submitted with [`Pool::submit`]: wait for it, or cancel it.
pub struct Task {
    result: Dynamic,
    rt: Runtime,
}

impl Task {
    fn call(&self, code: &str, timeout: Option<Duration>) -> Result<Dynamic, Error> {
        let t = timeout.map_or(Dynamic::UNIT, |d| Dynamic::from(d.as_secs_f64()));
        self.rt.eval_with(code, vec![("__rhai_mp_r", self.result.clone()), ("__rhai_mp_t", t)])
    }

    /// The call's value, waiting at most `timeout` (`None`: no limit).
    ///
    /// Errors: what the task threw (`TimeoutError` for its own time limit, `CancelledError`
    /// after [`Task::cancel`], `WorkerLostError` …); `TimeoutError` when it is not done
    /// within `timeout`.
    pub fn result(&self, timeout: Option<Duration>) -> Result<Dynamic, Error> {
        self.call("__rhai_mp_r.get(__rhai_mp_t)", timeout)
    }

    /// Cancels the call: not started, it never runs; running, it is stopped (its worker
    /// replaced if it does not stop at once). `false` once it is done.
    ///
    /// Errors: a callback of an earlier call throws.
    pub fn cancel(&self) -> Result<bool, Error> {
        self.call("__rhai_mp_r.cancel()", None).map(|v| v.as_bool().unwrap_or(false))
    }

    /// Whether the call is done (finished, failed or cancelled).
    ///
    /// Errors: a callback of an earlier call throws.
    pub fn done(&self) -> Result<bool, Error> {
        self.call("__rhai_mp_r.ready() || __rhai_mp_r.cancelled()", None).map(|v| v.as_bool().unwrap_or(false))
    }
}

/// A pool of worker processes, made by [`Runtime::pool`]. Dropping it terminates the
/// workers.
///
/// ```no_run
/// let rt = rhai_mp::Runtime::new();
/// rt.run_if_child();
/// rt.eval::<()>("fn square(x) { x * x }").unwrap();
/// let pool = rt.pool(2).unwrap();
/// let out = pool.map("square", (1..=3).map(rhai_mp::rhai::Dynamic::from).collect()).unwrap();
/// assert_eq!(out.iter().map(|v| v.as_int().unwrap()).collect::<Vec<_>>(), [1, 4, 9]);
/// ```
pub struct Pool {
    pub(crate) inner: rhai_mp_stdlib::Pool,
    pub(crate) rt: Runtime,
}

impl Pool {
    /// Calls `f(item)` for each item in the workers and returns the results in order. `f`
    /// names a script function of the runtime's session or a native function.
    ///
    /// ```no_run
    /// # let rt = rhai_mp::Runtime::new();
    /// # let pool = rt.pool(2).unwrap();
    /// let lens = pool.map("len", vec!["ab".into(), "cde".into()]).unwrap();
    /// ```
    ///
    /// Errors: the first item's error in item order (its [`Error::kind`] is the script's
    /// type: `NameError` for a function that does not exist, the type a function threw,
    /// `WorkerLostError` …); `ValueError` on a terminated pool.
    pub fn map(&self, f: &str, items: Vec<Dynamic>) -> Result<Vec<Dynamic>, Error> {
        let out = self.call("__rhai_mp_pool.map(Fn(__rhai_mp_f), __rhai_mp_args)", f, items)?;
        out.try_cast::<Array>().ok_or_else(|| Error::new("TypeError", "map() gave no array".into()))
    }

    /// Calls `f(args..)` in a worker and returns its result.
    ///
    /// ```no_run
    /// # let rt = rhai_mp::Runtime::new();
    /// # let pool = rt.pool(1).unwrap();
    /// let pid = pool.apply("pid_of_worker", vec![]).unwrap();
    /// ```
    ///
    /// Errors: as [`Pool::map`].
    pub fn apply(&self, f: &str, args: Vec<Dynamic>) -> Result<Dynamic, Error> {
        self.call("__rhai_mp_pool.apply(Fn(__rhai_mp_f), __rhai_mp_args)", f, args)
    }

    /// [`Pool::map`] where each item may run at most `timeout` once a worker starts it (an
    /// item past it fails with `TimeoutError`; the others still run).
    ///
    /// ```no_run
    /// # let rt = rhai_mp::Runtime::new();
    /// # let pool = rt.pool(2).unwrap();
    /// let out = pool.map_timeout("abs", vec![(-1_i64).into()], std::time::Duration::from_secs(1));
    /// ```
    ///
    /// Errors: as [`Pool::map`]; `TimeoutError` (fields `task`, `pid`, `timeout`).
    pub fn map_timeout(&self, f: &str, items: Vec<Dynamic>, timeout: Duration) -> Result<Vec<Dynamic>, Error> {
        let out = self.call_timed(
            "__rhai_mp_pool.map(Fn(__rhai_mp_f), __rhai_mp_args, #{timeout: __rhai_mp_t})",
            f,
            items,
            timeout,
        )?;
        out.try_cast::<Array>().ok_or_else(|| Error::new("TypeError", "map() gave no array".into()))
    }

    /// [`Pool::apply`] with a time limit for the task (from when a worker starts it).
    ///
    /// ```no_run
    /// # let rt = rhai_mp::Runtime::new();
    /// # let pool = rt.pool(1).unwrap();
    /// let v = pool.apply_timeout("abs", vec![(-3_i64).into()], std::time::Duration::from_secs(1));
    /// ```
    ///
    /// Errors: as [`Pool::apply`]; `TimeoutError`.
    pub fn apply_timeout(&self, f: &str, args: Vec<Dynamic>, timeout: Duration) -> Result<Dynamic, Error> {
        self.call_timed(
            "__rhai_mp_pool.apply(Fn(__rhai_mp_f), __rhai_mp_args, #{timeout: __rhai_mp_t})",
            f,
            args,
            timeout,
        )
    }

    /// Starts `f(args..)` in a worker without waiting: a [`Task`] to wait for or cancel.
    /// `timeout`, if given, is the task's time limit.
    ///
    /// ```no_run
    /// # let rt = rhai_mp::Runtime::new();
    /// # let pool = rt.pool(1).unwrap();
    /// let t = pool.submit("abs", vec![(-3_i64).into()], None).unwrap();
    /// assert_eq!(t.result(None).unwrap().as_int().unwrap(), 3);
    /// ```
    ///
    /// Errors: the pool is closed or terminated (`ValueError`); `SerializationError`.
    pub fn submit(&self, f: &str, args: Vec<Dynamic>, timeout: Option<Duration>) -> Result<Task, Error> {
        let t = timeout.map_or(Dynamic::UNIT, |d| Dynamic::from(d.as_secs_f64()));
        let vars = vec![
            ("__rhai_mp_pool", Dynamic::from(self.inner.clone())),
            ("__rhai_mp_f", Dynamic::from(f.to_string())),
            ("__rhai_mp_args", Dynamic::from_array(args)),
            ("__rhai_mp_t", t),
        ];
        let result = self
            .rt
            .eval_with("__rhai_mp_pool.apply_async(Fn(__rhai_mp_f), __rhai_mp_args, #{timeout: __rhai_mp_t})", vars)?;
        Ok(Task { result, rt: self.rt.clone() })
    }

    fn call_timed(&self, code: &str, f: &str, args: Array, timeout: Duration) -> Result<Dynamic, Error> {
        let vars = vec![
            ("__rhai_mp_pool", Dynamic::from(self.inner.clone())),
            ("__rhai_mp_f", Dynamic::from(f.to_string())),
            ("__rhai_mp_args", Dynamic::from_array(args)),
            ("__rhai_mp_t", Dynamic::from(timeout.as_secs_f64())),
        ];
        self.rt.eval_with(code, vars)
    }

    /// Stops taking calls and waits until the workers have finished and exited.
    ///
    /// ```no_run
    /// # let rt = rhai_mp::Runtime::new();
    /// let pool = rt.pool(2).unwrap();
    /// pool.close().unwrap();
    /// ```
    ///
    /// Errors: a callback of an earlier call throws.
    pub fn close(self) -> Result<(), Error> {
        self.call("__rhai_mp_pool.close(); __rhai_mp_pool.join()", "", Array::new()).map(|_| ())
    }

    /// Stops every worker now (calls still running fail).
    ///
    /// ```no_run
    /// # let rt = rhai_mp::Runtime::new();
    /// rt.pool(2).unwrap().terminate();
    /// ```
    pub fn terminate(self) {
        self.inner.terminate();
    }

    fn call(&self, code: &str, f: &str, args: Array) -> Result<Dynamic, Error> {
        let vars = vec![
            ("__rhai_mp_pool", Dynamic::from(self.inner.clone())),
            ("__rhai_mp_f", Dynamic::from(f.to_string())),
            ("__rhai_mp_args", Dynamic::from_array(args)),
        ];
        self.rt.eval_with(code, vars)
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}
