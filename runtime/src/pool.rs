//! [`Pool`]: a pool of worker processes driven from Rust. It is the script's `Pool`, run
//! through the runtime's session, so the functions it maps are the session's script
//! functions (code travels to the workers as it does from the REPL) or native ones the
//! host registered.

use crate::{Error, Runtime};
use rhai::{Array, Dynamic};

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
