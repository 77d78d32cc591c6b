//! `Condition()`, `Condition(lock)` (see the reference, "Synchronization").
//!
//! The algorithm is Python's `multiprocessing.synchronize.Condition`: three semaphores in
//! shared memory (sleepers, woken, and the one sleepers wait on) next to a Lock or RLock
//! (an RLock by default). `wait` releases the lock fully, waits, and takes it back at the
//! same recursion level; `notify(n)` wakes at most `n` sleepers and waits until they woke.

use crate::lock::{Lock, LockCore};
use crate::opts;
use crate::semaphore::EmbeddedSem;
use rhai::plugin::*;
use rhai::{Dynamic, FnPtr, INT};
use rhai_mp_core::{mp_err, Deadline, Handle, MpResult, Portable, Reader, Region, Writer};
use std::rc::Rc;

const SLEEPING: usize = 0;
const WOKEN: usize = 16;
const WAITING: usize = 32;

/// The shared state of a Condition: its semaphores, and its lock.
#[derive(Debug)]
pub struct CondCore {
    region: Region,
    pub lock: Lock,
}

impl CondCore {
    fn new(lock: Lock) -> MpResult<CondCore> {
        let region = Region::create("rhai-mp-condition", 64)?;
        for offset in [SLEEPING, WOKEN, WAITING] {
            crate::semaphore::SemCore::embedded(&region, offset, 0);
        }
        Ok(CondCore { region, lock })
    }

    fn sem(&self, offset: usize) -> EmbeddedSem<'_> {
        EmbeddedSem::at(&self.region, offset)
    }

    fn core(&self) -> &LockCore {
        &self.lock.0
    }

    /// Releases the lock, waits for a notification (at most until `deadline`), takes the
    /// lock back.
    pub fn wait(&self, deadline: Deadline) -> MpResult<bool> {
        if !self.core().is_mine() {
            return Err(mp_err!(AssertionError, "must acquire() condition before using wait()"));
        }
        self.sem(SLEEPING).release()?;
        let level = self.core().release_all()?;
        let woken = self.sem(WAITING).acquire(true, deadline);
        self.sem(WOKEN).release()?;
        self.core().reacquire(level)?;
        Ok(woken)
    }

    /// Wakes at most `n` waiting processes.
    pub fn notify(&self, n: u64) -> MpResult<()> {
        if !self.core().is_mine() {
            return Err(mp_err!(AssertionError, "lock is not owned"));
        }
        // Forget sleepers that timed out since the last notify.
        while self.sem(WOKEN).acquire(false, Deadline::NEVER) {
            self.sem(SLEEPING).acquire(false, Deadline::NEVER);
        }
        let mut sleepers = 0;
        while sleepers < n && self.sem(SLEEPING).acquire(false, Deadline::NEVER) {
            self.sem(WAITING).release()?;
            sleepers += 1;
        }
        if sleepers > 0 {
            for _ in 0..sleepers {
                self.sem(WOKEN).acquire(true, Deadline::NEVER);
            }
            // Take back wake-ups no one used (their sleepers timed out meanwhile).
            while self.sem(WAITING).acquire(false, Deadline::NEVER) {}
        }
        Ok(())
    }
}

/// A Condition handle; copies share it.
#[derive(Debug, Clone)]
pub struct Condition(pub Rc<CondCore>);

/// A Condition crosses as its memfd and its lock.
impl Portable for Condition {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.dup(self.0.region.fd())?;
        w.put(&self.0.lock)
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        let region = Region::open(r.fd()?, 64)?;
        Ok(Condition(Rc::new(CondCore { region, lock: r.get()? })))
    }
}

impl Handle for Condition {
    const KIND: &'static str = "Condition";
}

/// Calls a predicate and reads its result as a bool.
fn check(ctx: &NativeCallContext, predicate: &FnPtr) -> Result<bool, Box<EvalAltResult>> {
    let r: Dynamic = predicate.call_raw(ctx, None, [])?;
    let t = opts::type_name(&r);
    r.as_bool().map_err(|_| mp_err!(TypeError, "the predicate of wait_for() must return a bool, not {t}").into())
}

/// The Rhai bindings: `Condition` and its methods.
#[export_module]
pub mod condition_functions {
    use super::*;

    /// A condition variable over a lock.
    pub type Condition = super::Condition;

    /// A condition over a new RLock.
    ///
    /// ```rhai
    /// let c = Condition();
    /// ```
    ///
    /// Throws when: the OS refuses the shared memory (`OSError`).
    #[rhai_fn(name = "Condition", return_raw)]
    pub fn condition() -> Result<Condition, Box<EvalAltResult>> {
        Ok(super::Condition(Rc::new(CondCore::new(Lock::new(true)?)?)))
    }

    /// A condition over the given Lock or RLock.
    ///
    /// ```rhai
    /// let lock = Lock();
    /// let c = Condition(lock);
    /// ```
    ///
    /// Throws when: `lock` is not a Lock or RLock (`TypeError`).
    #[rhai_fn(name = "Condition", return_raw)]
    pub fn condition_with(lock: Dynamic) -> Result<Condition, Box<EvalAltResult>> {
        let t = opts::type_name(&lock);
        let lock =
            lock.try_cast::<Lock>().ok_or_else(|| mp_err!(TypeError, "Condition() takes a Lock or RLock, not {t}"))?;
        Ok(super::Condition(Rc::new(CondCore::new(lock)?)))
    }

    /// Takes the condition's lock (as `Lock.acquire`).
    ///
    /// ```rhai
    /// c.acquire();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, return_raw)]
    pub fn acquire(c: &mut Condition) -> Result<bool, Box<EvalAltResult>> {
        Ok(c.0.core().acquire(true, Deadline::NEVER)?)
    }

    /// Takes the condition's lock; with `block == false` returns `false` at once if held.
    ///
    /// ```rhai
    /// if c.acquire(false) { c.release(); }
    /// ```
    ///
    /// Throws when: `block` is not a bool (`TypeError`).
    #[rhai_fn(global, name = "acquire", return_raw)]
    pub fn acquire_block(c: &mut Condition, block: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        let (block, _) = crate::lock::block_timeout(&block, &Dynamic::UNIT)?;
        Ok(c.0.core().acquire(block, Deadline::NEVER)?)
    }

    /// Takes the condition's lock, waiting at most `timeout` seconds.
    ///
    /// ```rhai
    /// if c.acquire(true, 1) { c.release(); }
    /// ```
    ///
    /// Throws when: `timeout` is negative (`ValueError`) or not a number (`TypeError`).
    #[rhai_fn(global, name = "acquire", return_raw)]
    pub fn acquire_timeout(c: &mut Condition, block: Dynamic, timeout: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        let (block, timeout) = crate::lock::block_timeout(&block, &timeout)?;
        Ok(c.0.core().acquire(block, timeout)?)
    }

    /// Releases the condition's lock.
    ///
    /// ```rhai
    /// c.release();
    /// ```
    ///
    /// Throws when: as the lock's `release()`.
    #[rhai_fn(global, return_raw)]
    pub fn release(c: &mut Condition) -> Result<(), Box<EvalAltResult>> {
        Ok(c.0.core().release()?)
    }

    /// Releases the lock, waits for `notify`, takes the lock back; returns `true`.
    ///
    /// ```rhai
    /// hold(c, || { while !ready() { c.wait(); } });
    /// ```
    ///
    /// Throws when: this process does not hold the lock (`AssertionError`).
    #[rhai_fn(global, return_raw)]
    pub fn wait(c: &mut Condition) -> Result<bool, Box<EvalAltResult>> {
        Ok(c.0.wait(Deadline::NEVER)?)
    }

    /// As `wait()`, but at most `timeout` seconds; returns `false` on timeout.
    ///
    /// ```rhai
    /// hold(c, || c.wait(0.5));
    /// ```
    ///
    /// Throws when: this process does not hold the lock (`AssertionError`); `timeout` is
    /// negative (`ValueError`) or not a number (`TypeError`).
    #[rhai_fn(global, name = "wait", return_raw)]
    pub fn wait_timeout(c: &mut Condition, timeout: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        Ok(c.0.wait(opts::deadline(&timeout, "wait")?)?)
    }

    /// Waits until `predicate()` returns true; returns its last result.
    ///
    /// ```rhai
    /// hold(c, || c.wait_for(|| v.value > 0));
    /// ```
    ///
    /// Throws when: this process does not hold the lock (`AssertionError`); the predicate
    /// does not return a bool (`TypeError`) or throws (its error).
    #[rhai_fn(global, return_raw)]
    pub fn wait_for(ctx: NativeCallContext, c: &mut Condition, predicate: FnPtr) -> Result<bool, Box<EvalAltResult>> {
        wait_for_timeout(ctx, c, predicate, Dynamic::UNIT)
    }

    /// Waits at most `timeout` seconds until `predicate()` returns true; returns its last
    /// result.
    ///
    /// ```rhai
    /// let ok = hold(c, || c.wait_for(|| q.qsize() > 0, 2));
    /// ```
    ///
    /// Throws when: as `wait_for(predicate)`; `timeout` is negative (`ValueError`).
    #[rhai_fn(global, name = "wait_for", return_raw)]
    pub fn wait_for_timeout(
        ctx: NativeCallContext,
        c: &mut Condition,
        predicate: FnPtr,
        timeout: Dynamic,
    ) -> Result<bool, Box<EvalAltResult>> {
        let deadline = opts::deadline(&timeout, "wait_for")?;
        let mut result = check(&ctx, &predicate)?;
        while !result && !deadline.passed() {
            c.0.wait(deadline)?;
            result = check(&ctx, &predicate)?;
        }
        Ok(result)
    }

    /// Wakes one process waiting on the condition.
    ///
    /// ```rhai
    /// hold(c, || c.notify());
    /// ```
    ///
    /// Throws when: this process does not hold the lock (`AssertionError`).
    #[rhai_fn(global, return_raw)]
    pub fn notify(c: &mut Condition) -> Result<(), Box<EvalAltResult>> {
        Ok(c.0.notify(1)?)
    }

    /// Wakes at most `n` waiting processes.
    ///
    /// ```rhai
    /// hold(c, || c.notify(2));
    /// ```
    ///
    /// Throws when: this process does not hold the lock (`AssertionError`); `n` is negative
    /// (`ValueError`).
    #[rhai_fn(global, name = "notify", return_raw)]
    pub fn notify_n(c: &mut Condition, n: INT) -> Result<(), Box<EvalAltResult>> {
        if n < 0 {
            return Err(mp_err!(ValueError, "notify() needs n >= 0, not {n}").into());
        }
        Ok(c.0.notify(n as u64)?)
    }

    /// Wakes every process waiting on the condition.
    ///
    /// ```rhai
    /// hold(c, || c.notify_all());
    /// ```
    ///
    /// Throws when: this process does not hold the lock (`AssertionError`).
    #[rhai_fn(global, return_raw)]
    pub fn notify_all(c: &mut Condition) -> Result<(), Box<EvalAltResult>> {
        Ok(c.0.notify(u64::MAX)?)
    }

    /// `<Condition(<RLock unlocked>)>`.
    ///
    /// ```rhai
    /// print(c);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(c: &mut Condition) -> String {
        format!("<Condition({})>", crate::lock::lock_functions::describe(&mut c.0.lock.clone()))
    }
}
