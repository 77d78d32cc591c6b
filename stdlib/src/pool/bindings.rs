//! `Pool(..)` and the pool's methods (see the reference, "Pool"): the script bindings. The
//! machinery is `dispatch.rs`; the argument helpers are in `mod.rs`.

use super::{
    config, run_apply, run_apply_async, run_map, run_map_async, start_imap, AsyncResult, ImapIterator, Kind, Pool,
};
use crate::context::Context;
use rhai::plugin::*;
use rhai::Dynamic;

/// The Rhai bindings: `Pool` and its methods.
#[export_module]
pub mod pool_functions {
    use super::*;

    /// A pool of worker processes. Copies share it; when the last goes, it is terminated.
    pub type Pool = super::Pool;

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
        super::Pool::new(&ctx, config(None, rhai_mp_core::tree::state::default_method())?)
    }

    /// A pool of `processes` workers, or one described by
    /// `#{processes, initializer, initargs, maxtasksperchild}`.
    ///
    /// ```rhai
    /// fn init(x) { print(`worker ready: ${x}`) }
    /// let p = Pool(#{processes: 2, initializer: init, initargs: [1], maxtasksperchild: 10});
    /// ```
    ///
    /// Throws when: `processes` is below 1 or above 2048, `maxtasksperchild` below 1, or an
    /// option is unknown (`ValueError`); an argument has the wrong type (`TypeError`); as
    /// `Pool()`.
    #[rhai_fn(name = "Pool", return_raw)]
    pub fn pool_with(ctx: NativeCallContext, arg: Dynamic) -> Result<Pool, Box<EvalAltResult>> {
        super::Pool::new(&ctx, config(Some(arg), rhai_mp_core::tree::state::default_method())?)
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
        super::Pool::new(&ctx, config(None, c.0)?)
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
        super::Pool::new(&ctx, config(Some(arg), c.0)?)
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
        run_apply(&ctx, p, f, None, None)
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
        run_apply(&ctx, p, f, Some(args), None)
    }

    /// `apply(f, args)` with options: `#{timeout}` (seconds the task may run, counted from
    /// when a worker starts it; past it the task is stopped and fails with `TimeoutError`).
    ///
    /// ```rhai
    /// try { p.apply(|| loop {}, [], #{timeout: 0.5}) } catch (e) { print(e.type) }   // TimeoutError
    /// ```
    ///
    /// Throws when: as `apply(f, args)`; the task runs past its timeout (`TimeoutError`,
    /// fields `task`, `pid`, `timeout`); an unknown option (`ValueError`); a negative
    /// timeout (`ValueError`).
    #[rhai_fn(global, name = "apply", return_raw)]
    pub fn apply_opts(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        args: Dynamic,
        options: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        run_apply(&ctx, p, f, Some(args), Some(options))
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
        run_apply_async(&ctx, p, f, None, None)
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
        run_apply_async(&ctx, p, f, Some(args), None)
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
        run_apply_async(&ctx, p, f, Some(args), Some(o))
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
        run_map(&ctx, p, "map", Kind::Map, f, iterable, None)
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
        run_map(&ctx, p, "map", Kind::Map, f, iterable, Some(chunksize))
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
        run_map_async(&ctx, p, "map_async", Kind::Map, f, iterable, None)
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
        run_map_async(&ctx, p, "map_async", Kind::Map, f, iterable, Some(o))
    }

    /// `[f(args..) for args in iterable]`: each item is an array of arguments.
    ///
    /// ```rhai
    /// print(p.starmap(|a, b| a * b, [[1, 2], [3, 4]]));   // [2, 12]
    /// ```
    ///
    /// Throws when: as `map`; an item is not an array or another iterable (`TypeError`,
    /// from the worker).
    #[rhai_fn(global, name = "starmap", return_raw)]
    pub fn starmap(
        ctx: NativeCallContext,
        p: &mut Pool,
        f: Dynamic,
        iterable: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        run_map(&ctx, p, "starmap", Kind::Starmap, f, iterable, None)
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
        run_map(&ctx, p, "starmap", Kind::Starmap, f, iterable, Some(chunksize))
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
        run_map_async(&ctx, p, "starmap_async", Kind::Starmap, f, iterable, None)
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
        run_map_async(&ctx, p, "starmap_async", Kind::Starmap, f, iterable, Some(o))
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
    pub fn imap(p: &mut Pool, f: Dynamic, iterable: Dynamic) -> Result<ImapIterator, Box<EvalAltResult>> {
        start_imap(p, "imap", true, f, iterable, None)
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
        p: &mut Pool,
        f: Dynamic,
        iterable: Dynamic,
        chunksize: Dynamic,
    ) -> Result<ImapIterator, Box<EvalAltResult>> {
        start_imap(p, "imap", true, f, iterable, Some(chunksize))
    }

    /// As `imap`, but results come in the order they are ready.
    ///
    /// ```rhai
    /// for r in p.imap_unordered(|x| x * x, [3, 1, 2]) { print(r); }
    /// ```
    ///
    /// Throws when: as `imap`.
    #[rhai_fn(global, name = "imap_unordered", return_raw)]
    pub fn imap_unordered(p: &mut Pool, f: Dynamic, iterable: Dynamic) -> Result<ImapIterator, Box<EvalAltResult>> {
        start_imap(p, "imap_unordered", false, f, iterable, None)
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
        p: &mut Pool,
        f: Dynamic,
        iterable: Dynamic,
        chunksize: Dynamic,
    ) -> Result<ImapIterator, Box<EvalAltResult>> {
        start_imap(p, "imap_unordered", false, f, iterable, Some(chunksize))
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
}
