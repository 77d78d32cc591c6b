//! `Condition()`, `Condition(lock)` (see the reference, "Synchronization").
//!
//! A condition is a Lock or RLock (an RLock by default) and a table of waiter slots in
//! shared memory, guarded by that lock. `wait` takes a slot (its pid and a ticket), releases
//! the lock fully, and sleeps on the slot's futex word until a notifier marks it; then it
//! takes the lock back at the same recursion level and frees the slot. `notify(n)` marks
//! the `n` oldest waiting slots and wakes them, skipping waiters that died; it never waits
//! for anyone, so the death of any participant cannot block it (Python's three-semaphore
//! algorithm waits for a "woken" acknowledgement that a killed waiter never sends). A slot
//! left behind by a dead waiter is taken over by the next `wait`.

use crate::lock::{Lock, LockCore};
use crate::opts;
use rhai::plugin::*;
use rhai::{Dynamic, FnPtr};
use rhai_mp_core::base::shm::Region;
use rhai_mp_core::base::sys::{futex_wait, futex_wake};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, MpResult};
use rhai_mp_core::wire::{Handle, Portable, Reader, Writer};
use std::rc::Rc;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::SeqCst;

/// The next ticket (the order of waits), then the number of slots in use (a high-water mark).
const NEXT_TICKET: usize = 0;
const HIGH: usize = 4;
const FIRST_SLOT: usize = 64;
const SLOT: usize = 16;
/// The most processes that may wait on one condition at once.
const SLOTS: usize = 1020;
const SIZE: usize = FIRST_SLOT + SLOTS * SLOT;

/// A slot's state (its futex word).
const EMPTY: u32 = 0;
const WAITING: u32 = 1;
const NOTIFIED: u32 = 2;

/// The shared state of a Condition: its waiter slots, and its lock.
#[derive(Debug)]
pub struct CondCore {
    region: Region,
    /// The lock the condition guards with.
    pub lock: Lock,
}

/// A waiter slot: `[state, pid, ticket, unused]`.
struct Slot<'r> {
    state: &'r AtomicU32,
    pid: &'r AtomicU32,
    ticket: &'r AtomicU32,
}

impl CondCore {
    fn new(lock: Lock) -> MpResult<CondCore> {
        Ok(CondCore { region: Region::create("rhai-mp-condition", SIZE)?, lock })
    }

    fn slot(&self, i: usize) -> Slot<'_> {
        let at = FIRST_SLOT + i * SLOT;
        Slot {
            state: self.region.atomic32(at),
            pid: self.region.atomic32(at + 4),
            ticket: self.region.atomic32(at + 8),
        }
    }

    fn high(&self) -> usize {
        (self.region.atomic32(HIGH).load(SeqCst) as usize).min(SLOTS)
    }

    fn core(&self) -> &LockCore {
        &self.lock.0
    }

    /// Takes a free slot, or one a dead waiter left (the lock is held).
    fn claim(&self) -> MpResult<usize> {
        let high = self.high();
        let free = (0..high).find(|&i| {
            let s = self.slot(i);
            let state = s.state.load(SeqCst);
            state == EMPTY || rhai_mp_core::base::sys::process_is_dead(s.pid.load(SeqCst) as i32)
        });
        let i = match free {
            Some(i) => i,
            None if high < SLOTS => {
                self.region.atomic32(HIGH).store(high as u32 + 1, SeqCst);
                high
            }
            None => return Err(mp_err!(OSError, "too many processes wait on this Condition ({SLOTS} at most)")),
        };
        let s = self.slot(i);
        s.pid.store(rhai_mp_core::base::sys::pid(), SeqCst);
        s.ticket.store(self.region.atomic32(NEXT_TICKET).fetch_add(1, SeqCst), SeqCst);
        s.state.store(WAITING, SeqCst);
        Ok(i)
    }

    /// Releases the lock, waits for a notification (at most until `deadline`), takes the
    /// lock back; whether it was notified.
    pub fn wait(&self, deadline: Deadline) -> MpResult<bool> {
        if !self.core().is_mine() {
            return Err(mp_err!(AssertionError, "must acquire() condition before using wait()"));
        }
        let i = self.claim()?;
        let level = self.core().release_all()?;
        let state = self.slot(i).state;
        let mut interrupted = None;
        while state.load(SeqCst) == WAITING && !deadline.passed() {
            if let Err(e) = rhai_mp_core::base::interrupt::check() {
                interrupted = Some(e.into());
                break;
            }
            futex_wait(state, WAITING, Some(deadline.slice(rhai_mp_core::base::interrupt::SLICE)));
        }
        self.reacquire(level, &mut interrupted);
        let notified = state.swap(EMPTY, SeqCst) == NOTIFIED;
        interrupted.map_or(Ok(notified), Err)
    }

    /// Takes the lock back after a wait, whatever happens meanwhile: a signal that comes
    /// then is kept in `interrupted` and thrown once the lock is held again (as Python's
    /// `wait` takes the lock back in a `finally`).
    fn reacquire(&self, level: u32, interrupted: &mut Option<MpError>) {
        loop {
            match self.core().reacquire(level) {
                Ok(()) => return,
                Err(e) => {
                    interrupted.get_or_insert(e);
                }
            }
        }
    }

    /// Wakes at most `n` waiting processes, the longest-waiting first.
    pub fn notify(&self, n: u64) -> MpResult<()> {
        if !self.core().is_mine() {
            return Err(mp_err!(AssertionError, "lock is not owned"));
        }
        let mut waiting: Vec<(u32, usize)> = (0..self.high())
            .filter(|&i| self.slot(i).state.load(SeqCst) == WAITING)
            .map(|i| (self.slot(i).ticket.load(SeqCst), i))
            .collect();
        waiting.sort_unstable();
        let mut woken = 0;
        for (_, i) in waiting {
            if woken >= n {
                break;
            }
            let s = self.slot(i);
            if n != u64::MAX && rhai_mp_core::base::sys::process_is_dead(s.pid.load(SeqCst) as i32) {
                s.state.store(EMPTY, SeqCst);
                continue;
            }
            s.state.store(NOTIFIED, SeqCst);
            futex_wake(s.state, 1);
            woken += 1;
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
        let region = Region::open(r.fd()?, SIZE)?;
        Ok(Condition(Rc::new(CondCore { region, lock: r.get()? })))
    }
}

impl Handle for Condition {
    const KIND: &'static str = "Condition";
    const ELSEWHERE: &'static str = "a TCP manager's m.Condition() (Manager() under MPI, else Manager(#{address: ..}))";
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
        let (block, deadline) = crate::lock::acquire_args(vec![block])?;
        Ok(c.0.core().acquire(block, deadline)?)
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
        let (block, timeout) = crate::lock::acquire_args(vec![block, timeout])?;
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
        let timeout = opts::keyword("wait", "timeout", timeout)?.unwrap_or(Dynamic::UNIT);
        Ok(c.0.wait(opts::timeout_deadline(&timeout, "wait")?)?)
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
    pub fn wait_for(ctx: NativeCallContext, c: &mut Condition, predicate: Dynamic) -> Result<bool, Box<EvalAltResult>> {
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
        predicate: Dynamic,
        timeout: Dynamic,
    ) -> Result<bool, Box<EvalAltResult>> {
        let [predicate, timeout] = opts::keywords("wait_for", ["predicate", "timeout"], 1, vec![predicate, timeout])?;
        let predicate = opts::arg_fn(predicate.unwrap_or_default(), "wait_for", "predicate")?;
        let deadline = opts::timeout_deadline(&timeout.unwrap_or_default(), "wait_for")?;
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
    pub fn notify_n(c: &mut Condition, n: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let n =
            opts::arg_int(&opts::keyword("notify", "n", n)?.unwrap_or(Dynamic::from(1 as rhai::INT)), "notify", "n")?;
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

/// condition's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::{handle, mirror, section};
    crate::registry::Primitive {
        name: "condition",
        group: "Synchronization",
        sections: &[section("Condition", &[("Condition", "c")], &["Condition"], &["Condition("])],
        functions,
        module: None,
        handles: &[handle::<Condition>()],
        machinery: None,
        mirrors: &[mirror("Condition", &[0, 1])],
        managed: &[crate::manager::Kind::Condition],
    }
};

/// Registers condition's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "condition", condition_functions);
}
