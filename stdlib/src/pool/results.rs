//! `AsyncResult` and the imap iterators (see the reference, "Pool"): the script bindings of
//! a pool call's results. A `for` loop over an imap iterator reads it through
//! [`register`]'s iterator.

use super::{AsyncResult, ImapIterator};
use crate::opts;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rhai::plugin::*;
use rhai::Dynamic;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, RhaiResult};

/// What a `for` loop over an imap iterator runs.
struct ForLoop(ImapIterator);

impl Iterator for ForLoop {
    type Item = RhaiResult<Dynamic>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_in(None, Deadline::NEVER).transpose()
    }
}

/// Makes imap iterators work in `for` loops, and as the iterable of pool calls,
/// `Array(..)` and `m.list(..)`.
pub(crate) fn register(lib: &mut rhai::Module) {
    opts::set_iterable(lib, std::any::TypeId::of::<ImapIterator>(), |v: Dynamic| {
        Box::new(ForLoop(v.cast::<ImapIterator>()))
    });
}

/// The Rhai bindings: The methods of `AsyncResult` and of the imap iterators.
#[export_module]
pub mod result_functions {
    use super::*;

    /// The result of an `*_async` pool call.
    pub type AsyncResult = super::AsyncResult;
    /// The lazy iterator of `imap` / `imap_unordered`.
    pub type ImapIterator = super::ImapIterator;

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
        let deadline = opts::timeout_deadline(&timeout, "get")?;
        if !r.pool.wait_job(&ctx, &r.job, deadline)? {
            return Err(mp_err!(TimeoutError, "the result was not ready within the timeout").into());
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
        r.pool.wait_job(&ctx, &r.job, Deadline::NEVER).map(|_| ())
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
        r.pool.wait_job(&ctx, &r.job, opts::timeout_deadline(&timeout, "wait")?).map(|_| ())
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
        r.pool.wait_job(&ctx, &r.job, Deadline::now())
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
        r.pool.wait_job(&ctx, &r.job, Deadline::now())?;
        match &r.job.borrow().outcome {
            None => Err(mp_err!(ValueError, "the result is not ready").into()),
            Some(o) => Ok(o.is_ok()),
        }
    }

    /// Cancels the call: a task not started never runs, a running one is stopped (its
    /// worker is killed and replaced if it does not stop at once); `get()` then throws
    /// `CancelledError`. `true` if the call (for `map_async`: every item not yet done) will
    /// not complete, `false` once it is done.
    ///
    /// ```rhai
    /// let r = p.apply_async(|| time::sleep(60));
    /// print(r.cancel());      // true
    /// print(r.cancelled());   // true
    /// ```
    ///
    /// Throws when: a due callback throws.
    #[rhai_fn(global, name = "cancel", return_raw)]
    pub fn cancel(ctx: NativeCallContext, r: &mut AsyncResult) -> Result<bool, Box<EvalAltResult>> {
        r.pool.wait_job(&ctx, &r.job, Deadline::now())?;
        Ok(r.pool.cancel(&r.job))
    }

    /// Whether the call was cancelled.
    ///
    /// ```rhai
    /// print(r.cancelled());
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "cancelled")]
    pub fn cancelled(r: &mut AsyncResult) -> bool {
        r.job.borrow().cancelled
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
        match it.next_in(Some(&ctx), opts::timeout_deadline(&timeout, "next")?)? {
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

    /// Cancels the items not yet returned: those not started never run, running ones are
    /// stopped; `next()` then throws `CancelledError` (once), then `StopIteration`. `false`
    /// when every item was returned already.
    ///
    /// ```rhai
    /// let it = p.imap(|x| x * x, 0..1000);
    /// print(it.next());   // 0
    /// it.cancel();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "cancel")]
    pub fn imap_cancel(it: &mut ImapIterator) -> bool {
        it.pool.cancel(&it.job)
    }

    /// Whether the iterator was cancelled.
    ///
    /// ```rhai
    /// print(it.cancelled());
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "cancelled")]
    pub fn imap_cancelled(it: &mut ImapIterator) -> bool {
        it.job.borrow().cancelled
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
}
