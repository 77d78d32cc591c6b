//! `Semaphore(n)` and `BoundedSemaphore(n)` (see the reference, "Synchronization"), and the semaphore
//! machinery `Condition` uses.
//!
//! A semaphore is a 32-bit futex word (its value) in shared memory, plus a count of
//! sleepers so that `release` makes a system call only when someone waits. Semaphores have
//! no owner, in Python and here: a process that dies holding a slot does not give it back.

use crate::opts;
use rhai::plugin::*;
use rhai::{Dynamic, INT};
use rhai_mp_core::base::shm::Region;
use rhai_mp_core::base::sys::{futex_wait, futex_wake};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpResult};
use rhai_mp_core::wire::{Handle, Portable, Reader, Writer};
use std::rc::Rc;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::SeqCst;

const VALUE: usize = 0;
const SLEEPERS: usize = 4;
const BOUND: usize = 8;
/// The largest initial value (Python's SEM_VALUE_MAX).
pub(crate) const MAX: INT = i32::MAX as INT;

/// The shared state of a semaphore: a value and, if bounded, its maximum.
#[derive(Debug)]
pub struct SemCore {
    region: Region,
    /// How long an `acquire` here polls before it sleeps (adaptive).
    spin: rhai_mp_core::base::spin::Spin,
}

impl SemCore {
    /// A semaphore starting at `value`; `bound` makes over-release an error.
    pub fn new(value: u32, bounded: bool) -> MpResult<SemCore> {
        let region = Region::create("rhai-mp-semaphore", 64)?;
        region.atomic32(VALUE).store(value, SeqCst);
        region.atomic32(BOUND).store(if bounded { value } else { u32::MAX }, SeqCst);
        Ok(SemCore { region, spin: rhai_mp_core::base::spin::Spin::new() })
    }

    /// A semaphore inside another object's region, at `offset` (16 bytes).
    pub fn embedded(region: &Region, offset: usize, value: u32) -> EmbeddedSem<'_> {
        region.atomic32(offset + VALUE).store(value, SeqCst);
        region.atomic32(offset + BOUND).store(u32::MAX, SeqCst);
        EmbeddedSem { region, offset, spin: &rhai_mp_core::base::spin::SHARED }
    }

    fn sem(&self) -> EmbeddedSem<'_> {
        EmbeddedSem { region: &self.region, offset: 0, spin: &self.spin }
    }

    /// Whether it is a BoundedSemaphore.
    pub fn bounded(&self) -> bool {
        self.region.atomic32(BOUND).load(SeqCst) != u32::MAX
    }

    /// Takes one unit; `false` if none comes by `deadline` (or at once, when `!block`).
    pub fn acquire(&self, block: bool, deadline: Deadline) -> MpResult<bool> {
        self.sem().acquire(block, deadline)
    }

    /// Gives one unit back.
    pub fn release(&self) -> MpResult<()> {
        self.sem().release()
    }

    /// Its value now.
    pub fn value(&self) -> u32 {
        self.sem().value()
    }
}

/// A semaphore at an offset of some region (also used inside Condition and Barrier).
pub struct EmbeddedSem<'r> {
    region: &'r Region,
    offset: usize,
    /// The polling budget (the semaphore's own, or the process-wide one).
    spin: &'r rhai_mp_core::base::spin::Spin,
}

impl EmbeddedSem<'_> {
    /// The semaphore another process made at `offset` of `region`.
    pub fn at(region: &Region, offset: usize) -> EmbeddedSem<'_> {
        EmbeddedSem { region, offset, spin: &rhai_mp_core::base::spin::SHARED }
    }

    fn word(&self, field: usize) -> &AtomicU32 {
        self.region.atomic32(self.offset + field)
    }

    /// Its value now.
    pub fn value(&self) -> u32 {
        self.word(VALUE).load(SeqCst)
    }

    /// Takes one unit; `false` if none comes by `deadline` (or at once, when `!block`).
    pub fn acquire(&self, block: bool, deadline: Deadline) -> MpResult<bool> {
        let value = self.word(VALUE);
        loop {
            let v = value.load(SeqCst);
            if v > 0 {
                if value.compare_exchange(v, v - 1, SeqCst, SeqCst).is_ok() {
                    return Ok(true);
                }
                continue;
            }
            if !block {
                return Ok(false);
            }
            if self.spin.spin_while(|| value.load(SeqCst) == 0) {
                continue;
            }
            if deadline.passed() {
                return Ok(false);
            }
            rhai_mp_core::base::interrupt::check()?;
            self.word(SLEEPERS).fetch_add(1, SeqCst);
            futex_wait(value, 0, Some(deadline.slice(rhai_mp_core::base::interrupt::SLICE)));
            self.word(SLEEPERS).fetch_sub(1, SeqCst);
        }
    }

    /// Gives one unit back, waking a sleeper.
    pub fn release(&self) -> MpResult<()> {
        let value = self.word(VALUE);
        let bound = self.word(BOUND).load(SeqCst);
        loop {
            let v = value.load(SeqCst);
            if v >= bound {
                return Err(mp_err!(ValueError, "semaphore or lock released too many times"));
            }
            if v as INT >= MAX {
                return Err(mp_err!(ValueError, "a semaphore's value cannot go above {MAX}"));
            }
            if value.compare_exchange(v, v + 1, SeqCst, SeqCst).is_ok() {
                break;
            }
        }
        if self.word(SLEEPERS).load(SeqCst) > 0 {
            futex_wake(value, 1);
        }
        Ok(())
    }
}

/// A Semaphore or BoundedSemaphore handle; copies share it.
#[derive(Debug, Clone)]
pub struct Semaphore(pub Rc<SemCore>);

/// A semaphore's initial value, checked (also for a TCP manager's semaphores).
pub(crate) fn initial(n: &Dynamic, func: &str) -> MpResult<u32> {
    let n = opts::arg_int(n, func, "value")?;
    if n < 0 {
        return Err(mp_err!(ValueError, "semaphore initial value must be >= 0, not {n}"));
    }
    if n > MAX {
        return Err(mp_err!(ValueError, "semaphore initial value must be at most {MAX}, not {n}"));
    }
    Ok(n as u32)
}

/// A semaphore crosses as its memfd (value and bound live in it).
impl Portable for Semaphore {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.dup(self.0.region.fd())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(Semaphore(Rc::new(SemCore {
            region: Region::open(r.fd()?, 64)?,
            spin: rhai_mp_core::base::spin::Spin::new(),
        })))
    }
}

impl Handle for Semaphore {
    const KIND: &'static str = "Semaphore";
    const ELSEWHERE: &'static str =
        "a TCP manager's m.Semaphore(..) (Manager() under MPI, else Manager(#{address: ..}))";
}

/// The Rhai bindings: `Semaphore`, `BoundedSemaphore` and their methods.
#[export_module]
pub mod semaphore_functions {
    use super::*;

    /// A process-shared counting semaphore (`Semaphore`, `BoundedSemaphore`).
    pub type Semaphore = super::Semaphore;

    /// A semaphore with value 1.
    ///
    /// ```rhai
    /// let s = Semaphore();
    /// ```
    ///
    /// Throws when: the OS refuses the shared memory (`OSError`).
    #[rhai_fn(name = "Semaphore", return_raw)]
    pub fn semaphore() -> Result<Semaphore, Box<EvalAltResult>> {
        Ok(super::Semaphore(Rc::new(SemCore::new(1, false)?)))
    }

    /// A semaphore with value `n`: `n` processes may hold it at once.
    ///
    /// ```rhai
    /// let room = Semaphore(2);
    /// ```
    ///
    /// Throws when: `n` is negative or too large (`ValueError`) or not an integer
    /// (`TypeError`).
    #[rhai_fn(name = "Semaphore", return_raw)]
    pub fn semaphore_n(n: Dynamic) -> Result<Semaphore, Box<EvalAltResult>> {
        Ok(super::Semaphore(Rc::new(SemCore::new(initial(&n, "Semaphore")?, false)?)))
    }

    /// A bounded semaphore with value 1: releasing it above 1 throws.
    ///
    /// ```rhai
    /// let s = BoundedSemaphore();
    /// ```
    ///
    /// Throws when: the OS refuses the shared memory (`OSError`).
    #[rhai_fn(name = "BoundedSemaphore", return_raw)]
    pub fn bounded() -> Result<Semaphore, Box<EvalAltResult>> {
        Ok(super::Semaphore(Rc::new(SemCore::new(1, true)?)))
    }

    /// A bounded semaphore with value `n`: releasing it above `n` throws.
    ///
    /// ```rhai
    /// let s = BoundedSemaphore(3);
    /// ```
    ///
    /// Throws when: `n` is negative or too large (`ValueError`) or not an integer
    /// (`TypeError`).
    #[rhai_fn(name = "BoundedSemaphore", return_raw)]
    pub fn bounded_n(n: Dynamic) -> Result<Semaphore, Box<EvalAltResult>> {
        Ok(super::Semaphore(Rc::new(SemCore::new(initial(&n, "BoundedSemaphore")?, true)?)))
    }

    /// Takes one unit, waiting as long as needed; returns `true`.
    ///
    /// ```rhai
    /// room.acquire();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, return_raw)]
    pub fn acquire(s: &mut Semaphore) -> Result<bool, Box<EvalAltResult>> {
        Ok(s.0.acquire(true, Deadline::NEVER)?)
    }

    /// Takes one unit; with `block == false`, returns `false` at once if none is free.
    ///
    /// ```rhai
    /// if room.acquire(false) { room.release(); }
    /// ```
    ///
    /// Throws when: `block` is not a bool (`TypeError`).
    #[rhai_fn(global, name = "acquire", return_raw)]
    pub fn acquire_block(s: &mut Semaphore, block: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        let (block, deadline) = crate::lock::acquire_args(vec![block])?;
        Ok(s.0.acquire(block, deadline)?)
    }

    /// Takes one unit, waiting at most `timeout` seconds; returns whether it got one.
    ///
    /// ```rhai
    /// if room.acquire(true, 2) { print("in"); room.release(); } else { print("gave up"); }
    /// ```
    ///
    /// Throws when: `timeout` is negative (`ValueError`) or not a number (`TypeError`).
    #[rhai_fn(global, name = "acquire", return_raw)]
    pub fn acquire_timeout(s: &mut Semaphore, block: Dynamic, timeout: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        let (block, timeout) = crate::lock::acquire_args(vec![block, timeout])?;
        Ok(s.0.acquire(block, timeout)?)
    }

    /// Gives one unit back.
    ///
    /// ```rhai
    /// room.release();
    /// ```
    ///
    /// Throws when: a BoundedSemaphore would go above its initial value (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn release(s: &mut Semaphore) -> Result<(), Box<EvalAltResult>> {
        Ok(s.0.release()?)
    }

    /// The current value (a snapshot).
    ///
    /// ```rhai
    /// print(room.get_value());
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, pure)]
    pub fn get_value(s: &mut Semaphore) -> INT {
        s.0.value() as INT
    }

    /// `<Semaphore value=2>` or `<BoundedSemaphore value=1>`.
    ///
    /// ```rhai
    /// print(room);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(s: &mut Semaphore) -> String {
        format!("<{} value={}>", if s.0.bounded() { "BoundedSemaphore" } else { "Semaphore" }, s.0.value())
    }
}

/// semaphore's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::{handle, mirror, section};
    crate::registry::Primitive {
        name: "semaphore",
        group: "Synchronization",
        sections: &[section(
            "Semaphore and BoundedSemaphore",
            &[("Semaphore", "s")],
            &["Semaphore", "BoundedSemaphore"],
            &["Semaphore("],
        )],
        functions,
        module: None,
        handles: &[handle::<Semaphore>()],
        machinery: None,
        mirrors: &[mirror("Semaphore", &[0, 1]), mirror("BoundedSemaphore", &[0, 1])],
        managed: &[crate::manager::Kind::Semaphore, crate::manager::Kind::BoundedSemaphore],
    }
};

/// Registers semaphore's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "semaphore", semaphore_functions);
}
