//! `Lock()` and `RLock()` (see the reference, "Synchronization"), and the lock machinery `Condition`,
//! `Value` and `Array` use.
//!
//! A lock is one 32-bit futex word in shared memory (a memfd page): `0` when free, else the
//! owner's pid, with a bit saying someone waits. Taking a free lock is one compare-and-swap;
//! waiting is a futex wait; releasing wakes one waiter. Any process may release a `Lock`
//! (as in Python); only the owner may release an `RLock`.
//!
//! Owner death (Python deadlocks here): a waiter wakes at least every
//! [`OWNER_CHECK`] to see whether the owner's pid is gone; if so it takes the lock over,
//! `owner_died` reads true until the next release, and one warning line naming the dead
//! pid goes to stderr. Normal hand-overs are woken by the kernel, never by that check.

use crate::opts;
use rhai::plugin::*;
use rhai::Dynamic;
use rhai_mp_core::base::shm::Region;
use rhai_mp_core::base::sys::{futex_wait, futex_wake};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpResult};
use rhai_mp_core::wire::{Handle, Portable, Reader, Writer};
use std::rc::Rc;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::time::Duration;

const STATE: usize = 0;
const OWNER_DIED: usize = 4;
const COUNT: usize = 8;
const WAITERS: u32 = 1 << 31;
/// How often a waiter checks that the lock's owner is still alive.
pub(crate) const OWNER_CHECK: Duration = Duration::from_millis(100);

fn me() -> u32 {
    rhai_mp_core::base::sys::pid()
}

/// The shared state of a Lock or RLock.
#[derive(Debug)]
pub struct LockCore {
    region: Region,
    /// Whether it is an RLock.
    pub recursive: bool,
    /// How long an `acquire` here polls before it sleeps (adaptive).
    spin: rhai_mp_core::base::spin::Spin,
}

impl LockCore {
    /// A new Lock (or RLock).
    pub fn new(recursive: bool) -> MpResult<LockCore> {
        Ok(LockCore {
            region: Region::create(if recursive { "rhai-mp-rlock" } else { "rhai-mp-lock" }, 64)?,
            recursive,
            spin: rhai_mp_core::base::spin::Spin::new(),
        })
    }

    fn state(&self) -> &AtomicU32 {
        self.region.atomic32(STATE)
    }

    fn count(&self) -> &AtomicU32 {
        self.region.atomic32(COUNT)
    }

    /// `"Lock"` or `"RLock"`.
    pub fn name(&self) -> &'static str {
        if self.recursive {
            "RLock"
        } else {
            "Lock"
        }
    }

    /// The pid holding the lock, if any.
    pub fn owner(&self) -> Option<u32> {
        Some(self.state().load(Relaxed) & !WAITERS).filter(|&p| p != 0)
    }

    /// Whether this process holds the lock.
    pub fn is_mine(&self) -> bool {
        self.owner() == Some(me())
    }

    /// The recursion level this process holds (0 if it does not hold it).
    pub fn level(&self) -> u32 {
        if self.is_mine() {
            if self.recursive {
                self.count().load(Relaxed)
            } else {
                1
            }
        } else {
            0
        }
    }

    /// Whether its last owner died holding it (until the next release).
    pub fn owner_died(&self) -> bool {
        self.region.atomic32(OWNER_DIED).load(Relaxed) == 1
    }

    /// Takes the lock; `false` if not by `deadline` (or at once, when `!block`).
    pub fn acquire(&self, block: bool, deadline: Deadline) -> MpResult<bool> {
        let me = me();
        let state = self.state();
        if self.recursive && state.load(Relaxed) & !WAITERS == me {
            self.count().fetch_add(1, Relaxed);
            return Ok(true);
        }
        if state.compare_exchange(0, me, Acquire, Relaxed).is_ok() {
            self.count().store(1, Relaxed);
            return Ok(true);
        }
        if !block {
            return Ok(false);
        }
        // The holder often releases within microseconds: poll before sleeping.
        self.spin.spin_while(|| state.load(Relaxed) != 0);
        loop {
            let v = state.load(Relaxed);
            if v == 0 {
                // Others may be waiting too: keep the bit so our release wakes them.
                if state.compare_exchange(0, me | WAITERS, Acquire, Relaxed).is_ok() {
                    self.count().store(1, Relaxed);
                    return Ok(true);
                }
                continue;
            }
            if v & WAITERS == 0 && state.compare_exchange(v, v | WAITERS, Relaxed, Relaxed).is_err() {
                continue;
            }
            if deadline.passed() {
                return Ok(false);
            }
            rhai_mp_core::base::interrupt::check()?;
            futex_wait(state, v | WAITERS, Some(deadline.slice(OWNER_CHECK)));
            let owner = v & !WAITERS;
            if state.load(Relaxed) == v | WAITERS
                && rhai_mp_core::base::sys::process_is_dead(owner as i32)
                && state.compare_exchange(v | WAITERS, me | WAITERS, Acquire, Relaxed).is_ok()
            {
                self.count().store(1, Relaxed);
                self.region.atomic32(OWNER_DIED).store(1, Relaxed);
                let who = rhai_mp_core::tree::state::with(|s| s.name.clone());
                rhai_mp_core::base::output::stderr_line(&format!(
                    "rhai-mp: warning: the process holding a {} (pid {owner}) died; {who} (pid {me}) has taken it over (owner_died is true until it is released)",
                    self.name()
                ));
                return Ok(true);
            }
        }
    }

    /// Releases the lock (one level of an RLock).
    pub fn release(&self) -> MpResult<()> {
        let state = self.state();
        let v = state.load(Relaxed);
        if self.recursive {
            if v & !WAITERS != me() {
                return Err(mp_err!(AssertionError, "attempt to release recursive lock not owned by this process"));
            }
            let level = self.count().load(Relaxed);
            if level > 1 {
                self.count().store(level - 1, Relaxed);
                return Ok(());
            }
        } else if v == 0 {
            return Err(mp_err!(ValueError, "semaphore or lock released too many times"));
        }
        self.count().store(0, Relaxed);
        self.region.atomic32(OWNER_DIED).store(0, Relaxed);
        if state.swap(0, Release) & WAITERS != 0 {
            futex_wake(state, 1);
        }
        Ok(())
    }

    /// Releases every level this process holds, returning how many (for `Condition.wait`).
    pub fn release_all(&self) -> MpResult<u32> {
        let level = self.level();
        if level == 0 {
            return Ok(0);
        }
        self.count().store(1, Relaxed);
        self.release()?;
        Ok(level)
    }

    /// Takes the lock back at `level` (after `release_all`).
    pub fn reacquire(&self, level: u32) -> MpResult<()> {
        if level > 0 {
            self.acquire(true, Deadline::NEVER)?;
            self.count().store(level, SeqCst);
        }
        Ok(())
    }
}

/// A Lock or RLock handle; copies share the lock.
#[derive(Debug, Clone)]
pub struct Lock(pub Rc<LockCore>);

impl Lock {
    /// A new Lock (or RLock).
    pub fn new(recursive: bool) -> MpResult<Lock> {
        Ok(Lock(Rc::new(LockCore::new(recursive)?)))
    }
}

/// A lock crosses as its memfd and whether it is re-entrant.
impl Portable for Lock {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.dup(self.0.region.fd())?;
        w.bool(self.0.recursive);
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        let region = Region::open(r.fd()?, 64)?;
        Ok(Lock(Rc::new(LockCore { region, recursive: r.bool()?, spin: rhai_mp_core::base::spin::Spin::new() })))
    }
}

impl Handle for Lock {
    const KIND: &'static str = "Lock";
    const ELSEWHERE: &'static str =
        "a TCP manager's m.Lock() or m.RLock() (Manager() under MPI, else Manager(#{address: ..}))";
}

/// `acquire(block, timeout)` argument handling shared by the lock-like primitives.
pub(crate) fn block_timeout(block: &Dynamic, timeout: &Dynamic) -> MpResult<(bool, Deadline)> {
    let block = opts::arg_bool(block, "acquire", "block")?;
    let deadline = opts::timeout_deadline(timeout, "acquire")?;
    Ok((block, if block { deadline } else { Deadline::NEVER }))
}

/// `block` and `timeout` of an `acquire` (a lock's, a semaphore's, a condition's),
/// positional or in a keyword map (`lock.acquire(#{timeout: 2})`).
pub(crate) fn acquire_args(given: Vec<Dynamic>) -> MpResult<(bool, Deadline)> {
    let [block, timeout] = opts::keywords("acquire", ["block", "timeout"], 0, given)?;
    block_timeout(&block.unwrap_or(Dynamic::TRUE), &timeout.unwrap_or(Dynamic::UNIT))
}

/// The Rhai bindings: `Lock`, `RLock` and their methods.
#[export_module]
pub mod lock_functions {
    use super::*;

    /// A process-shared lock (`Lock()`) or re-entrant lock (`RLock()`).
    pub type Lock = super::Lock;

    /// A new lock. Any process may release it.
    ///
    /// ```rhai
    /// let lock = Lock();
    /// lock.acquire();
    /// lock.release();
    /// ```
    ///
    /// Throws when: the OS refuses the shared memory (`OSError`).
    #[rhai_fn(name = "Lock", return_raw)]
    pub fn new_lock() -> Result<Lock, Box<EvalAltResult>> {
        Ok(super::Lock::new(false)?)
    }

    /// A new re-entrant lock: its owner may take it again; it is free after as many
    /// releases as acquires. Only the owner may release it.
    ///
    /// ```rhai
    /// let r = RLock();
    /// r.acquire(); r.acquire(); r.release(); r.release();
    /// ```
    ///
    /// Throws when: the OS refuses the shared memory (`OSError`).
    #[rhai_fn(name = "RLock", return_raw)]
    pub fn new_rlock() -> Result<Lock, Box<EvalAltResult>> {
        Ok(super::Lock::new(true)?)
    }

    /// Takes the lock, waiting as long as needed; returns `true`.
    ///
    /// ```rhai
    /// lock.acquire();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, return_raw)]
    pub fn acquire(lock: &mut Lock) -> Result<bool, Box<EvalAltResult>> {
        Ok(lock.0.acquire(true, Deadline::NEVER)?)
    }

    /// Takes the lock; with `block == false`, returns `false` at once if it is held.
    ///
    /// ```rhai
    /// if lock.acquire(false) { work(); lock.release(); }
    /// ```
    ///
    /// Throws when: `block` is not a bool (`TypeError`).
    #[rhai_fn(global, name = "acquire", return_raw)]
    pub fn acquire_block(lock: &mut Lock, block: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        let (block, deadline) = acquire_args(vec![block])?;
        Ok(lock.0.acquire(block, deadline)?)
    }

    /// Takes the lock, waiting at most `timeout` seconds (`()`: no limit); returns whether
    /// it got it.
    ///
    /// ```rhai
    /// if lock.acquire(true, 0.5) { lock.release(); } else { print("busy"); }
    /// ```
    ///
    /// Throws when: `timeout` is negative (`ValueError`) or not a number (`TypeError`).
    #[rhai_fn(global, name = "acquire", return_raw)]
    pub fn acquire_timeout(lock: &mut Lock, block: Dynamic, timeout: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        let (block, timeout) = acquire_args(vec![block, timeout])?;
        Ok(lock.0.acquire(block, timeout)?)
    }

    /// Releases the lock (one level of an RLock).
    ///
    /// ```rhai
    /// lock.release();
    /// ```
    ///
    /// Throws when: a Lock is not held (`ValueError`); an RLock is not held by this process
    /// (`AssertionError`).
    #[rhai_fn(global, return_raw)]
    pub fn release(lock: &mut Lock) -> Result<(), Box<EvalAltResult>> {
        Ok(lock.0.release()?)
    }

    /// True when the lock was taken over from a process that died holding it, until the
    /// next release.
    ///
    /// ```rhai
    /// lock.acquire();
    /// if lock.owner_died { repair_shared_state(); }
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, get = "owner_died", pure)]
    pub fn owner_died(lock: &mut Lock) -> bool {
        lock.0.owner_died()
    }

    /// `<Lock unlocked>`, `<Lock owner=123>`, `<RLock owner=123 count=2>`.
    ///
    /// ```rhai
    /// print(lock);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(lock: &mut Lock) -> String {
        let name = lock.0.name();
        match lock.0.owner() {
            None => format!("<{name} unlocked>"),
            Some(p) if lock.0.recursive && p == rhai_mp_core::base::sys::pid() => {
                format!("<{name} owner={p} count={}>", lock.0.level())
            }
            Some(p) => format!("<{name} owner={p}>"),
        }
    }
}

/// lock's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::{handle, mirror, section};
    crate::registry::Primitive {
        name: "lock",
        group: "Synchronization",
        sections: &[section(
            "Lock and RLock",
            &[("Lock", "lock")],
            &["Lock", "RLock"],
            &["Lock(", "RLock(", ".get_lock("],
        )],
        functions,
        module: None,
        handles: &[handle::<Lock>()],
        machinery: None,
        mirrors: &[mirror("Lock", &[0]), mirror("RLock", &[0])],
        managed: &[crate::manager::Kind::Lock, crate::manager::Kind::RLock],
    }
};

/// Registers lock's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "lock", lock_functions);
}
