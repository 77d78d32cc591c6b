//! `Barrier(parties)`, `Barrier(parties, #{action, timeout})` (see the reference, "Synchronization").
//!
//! Python's `threading.Barrier` algorithm (filling → draining → filling, with resetting
//! and broken states), on a robust process-shared mutex and condition variable in shared
//! memory. The `action` runs in the process that arrives last; it travels with the barrier
//! (with its captured values).

use crate::opts::{self, Opts};
use rhai::plugin::*;
use rhai::{Dynamic, FnPtr, Map, INT};
use rhai_mp_core::base::shm::{Cond, Mutex, Region, COND_SIZE, MUTEX_SIZE};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, MpResult, RhaiResult};
use rhai_mp_core::wire::{Handle, Portable, Reader, Writer};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64};

const MUTEX: usize = 0;
const COND: usize = MUTEX_SIZE;
const COUNT: usize = COND + COND_SIZE;
const STATE: usize = COUNT + 8;
const PARTIES: usize = STATE + 8;
/// The pids of the parties of the current round, by arrival index (0: none).
const SLOTS: usize = 192;
/// The most parties a barrier can have.
const MAX_PARTIES: i64 = 1 << 16;

/// The size of a barrier's region for `parties`.
fn size(parties: u64) -> usize {
    SLOTS + 4 * parties as usize
}

const FILLING: u64 = 0;
const DRAINING: u64 = 1;
const RESETTING: u64 = 2;
const BROKEN: u64 = 3;

/// The shared state of a barrier, and what its handle carries.
#[derive(Debug)]
pub struct BarrierCore {
    region: Region,
    /// The action (a function pointer or closure), if any.
    action: Option<FnPtr>,
    /// The default timeout of `wait()`, in seconds.
    timeout: Option<f64>,
}

/// Holds the barrier's mutex; unlocks when dropped.
struct Held<'a>(Mutex<'a>);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn broken() -> MpError {
    mp_err!(BrokenBarrierError, "the barrier is broken")
}

impl BarrierCore {
    fn field(&self, offset: usize) -> &AtomicU64 {
        self.region.atomic(offset)
    }

    fn state(&self) -> u64 {
        self.field(STATE).load(Relaxed)
    }

    fn set_state(&self, s: u64) {
        self.field(STATE).store(s, Relaxed)
    }

    fn lock(&self) -> MpResult<Held<'_>> {
        let m = Mutex::at(&self.region, MUTEX);
        m.lock(None)?;
        Ok(Held(m))
    }

    fn cond(&self) -> Cond<'_> {
        Cond::at(&self.region, COND)
    }

    /// The number of parties a round needs.
    pub fn parties(&self) -> u64 {
        self.field(PARTIES).load(Relaxed)
    }

    /// The parties waiting in this round.
    pub fn n_waiting(&self) -> u64 {
        if self.state() == FILLING {
            self.field(COUNT).load(Relaxed)
        } else {
            0
        }
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.state() == BROKEN
    }

    fn break_it(&self) {
        self.set_state(BROKEN);
        self.cond().notify_all();
    }

    fn slot(&self, index: u64) -> &AtomicU32 {
        self.region.atomic32(SLOTS + 4 * index.min(self.parties().saturating_sub(1)) as usize)
    }

    /// A party leaves the round (the mutex is held); the last one out lets the next round
    /// in.
    fn leave(&self, index: u64) {
        self.slot(index).store(0, Relaxed);
        let left = self.field(COUNT).fetch_sub(1, Relaxed) - 1;
        if left == 0 && matches!(self.state(), RESETTING | DRAINING) {
            self.set_state(FILLING);
            self.cond().notify_all();
        }
    }

    /// Parties of a released (or reset) round that died before they left it will never
    /// leave: they leave now, so that the next round can start (the mutex is held).
    fn reap_dead(&self) {
        if !matches!(self.state(), DRAINING | RESETTING) {
            return;
        }
        for index in 0..self.parties() {
            let pid = self.slot(index).load(Relaxed);
            if pid != 0 && rhai_mp_core::base::sys::process_is_dead(pid as i32) {
                self.leave(index);
            }
        }
    }

    /// Waits on the condition until `done` or the deadline; false on timeout.
    fn wait_until(&self, held: &Held, deadline: Deadline, done: impl Fn() -> bool) -> MpResult<bool> {
        while !done() {
            if deadline.passed() {
                return Ok(false);
            }
            self.cond().wait_slice(&held.0, deadline)?;
            self.reap_dead();
        }
        Ok(true)
    }

    /// Waits for all parties, at most until `deadline` (`None`: the barrier's default
    /// timeout); returns this process's arrival index.
    pub fn wait(&self, ctx: &NativeCallContext, deadline: Option<Deadline>) -> RhaiResult<INT> {
        let deadline = deadline.unwrap_or_else(|| self.timeout.map_or(Deadline::NEVER, Deadline::after_secs));
        let held = self.lock()?;
        // Enter: wait while a previous round drains or resets.
        if !self.wait_until(&held, deadline, || !matches!(self.state(), DRAINING | RESETTING))? {
            self.break_it();
            return Err(broken().into());
        }
        if self.state() == BROKEN {
            return Err(broken().into());
        }
        let index = self.field(COUNT).fetch_add(1, Relaxed);
        self.slot(index).store(rhai_mp_core::base::sys::pid(), Relaxed);
        let result = if index + 1 == self.parties() {
            self.release(ctx)
        } else {
            match self.wait_until(&held, deadline, || self.state() != FILLING) {
                Ok(true) if self.state() == BROKEN || self.state() == RESETTING => Err(broken().into()),
                Ok(true) => Ok(()),
                Ok(false) => {
                    self.break_it();
                    Err(broken().into())
                }
                Err(e) => {
                    // Interrupted (Ctrl-C): the others would wait for nothing, as in Python.
                    self.break_it();
                    Err(e.into())
                }
            }
        };
        self.leave(index);
        drop(held);
        result.map(|_| index as INT)
    }

    /// The last arrival: run the action, then let everyone go.
    fn release(&self, ctx: &NativeCallContext) -> RhaiResult<()> {
        if let Some(action) = &self.action {
            if let Err(e) = action.call_raw(ctx, None, []) {
                self.break_it();
                return Err(e);
            }
        }
        self.set_state(DRAINING);
        self.cond().notify_all();
        Ok(())
    }

    /// Back to its first state; parties waiting get `BrokenBarrierError`.
    pub fn reset(&self) -> MpResult<()> {
        let _held = self.lock()?;
        if self.field(COUNT).load(Relaxed) > 0 {
            if matches!(self.state(), FILLING | BROKEN) {
                self.set_state(RESETTING);
            }
        } else {
            self.set_state(FILLING);
        }
        self.cond().notify_all();
        Ok(())
    }

    /// Breaks the barrier: waiting and later parties get `BrokenBarrierError`.
    pub fn abort(&self) -> MpResult<()> {
        let _held = self.lock()?;
        self.break_it();
        Ok(())
    }
}

/// A Barrier handle; copies share it.
#[derive(Debug, Clone)]
pub struct Barrier(pub Rc<BarrierCore>);

/// A Barrier crosses as its memfd, its default timeout and its action.
impl Portable for Barrier {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.dup(self.0.region.fd())?;
        w.put(&self.0.timeout)?;
        w.value(&self.0.action.clone().map_or(Dynamic::UNIT, Dynamic::from), "action")
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        let fd = r.fd()?;
        let len = nix::sys::stat::fstat(&fd)?.st_size as usize;
        let region = Region::open(fd, len.max(SLOTS))?;
        let timeout = r.get()?;
        let action = r.value()?;
        let action = if action.is_unit() {
            None
        } else {
            Some(action.try_cast::<FnPtr>().ok_or_else(|| rhai_mp_core::wire::malformed("a Barrier's action"))?)
        };
        Ok(Barrier(Rc::new(BarrierCore { region, action, timeout })))
    }
}

impl Handle for Barrier {
    const KIND: &'static str = "Barrier";
    const ELSEWHERE: &'static str = "a TCP manager's m.Barrier(..) (Manager() under MPI, else Manager(#{address: ..}))";
}

/// A barrier's number of parties and options (`action`, `timeout`), checked (also for a
/// TCP manager's barriers).
pub(crate) fn arguments(parties: &Dynamic, options: Map) -> MpResult<(INT, Option<FnPtr>, Option<f64>)> {
    let parties = opts::arg_int(parties, "Barrier", "parties")?;
    if parties <= 0 {
        return Err(mp_err!(ValueError, "a barrier needs at least 1 party, not {parties}"));
    }
    if parties > MAX_PARTIES {
        return Err(mp_err!(ValueError, "a barrier can have at most {MAX_PARTIES} parties, not {parties}"));
    }
    let mut o = Opts::new(options, "Barrier", &["action", "timeout"])?;
    let action = o.fn_ptr("action")?;
    if let Some(f) = &action {
        // An action that could not cross would fail only when the barrier is sent.
        rhai_mp_core::wire::encode(&Dynamic::from(f.clone()), "action")?;
    }
    Ok((parties, action, o.seconds("timeout")?))
}

fn new_barrier(parties: &Dynamic, options: Map) -> MpResult<Barrier> {
    let (parties, action, timeout) = arguments(parties, options)?;
    let region = Region::create("rhai-mp-barrier", size(parties as u64))?;
    Mutex::init(&region, MUTEX)?;
    Cond::init(&region, COND)?;
    region.atomic(PARTIES).store(parties as u64, Relaxed);
    Ok(Barrier(Rc::new(BarrierCore { region, action, timeout })))
}

/// The Rhai bindings: `Barrier` and its methods.
#[export_module]
pub mod barrier_functions {
    use super::*;

    /// A barrier for a fixed number of processes.
    pub type Barrier = super::Barrier;

    /// A barrier that lets `parties` processes through together.
    ///
    /// ```rhai
    /// let b = Barrier(3);
    /// ```
    ///
    /// Throws when: `parties` is not positive or above 65536 (`ValueError`) or not an
    /// integer (`TypeError`).
    #[rhai_fn(name = "Barrier", return_raw)]
    pub fn barrier(parties: Dynamic) -> Result<Barrier, Box<EvalAltResult>> {
        Ok(new_barrier(&parties, Map::new())?)
    }

    /// A barrier with options: `action` (called by the last process to arrive, before all
    /// are released) and a default `timeout`.
    ///
    /// ```rhai
    /// let b = Barrier(2, #{action: || print("all here"), timeout: 5});
    /// ```
    ///
    /// Throws when: as `Barrier(parties)`; an option is unknown (`ValueError`), or
    /// `options` is not an object map or an option is of the wrong type (`TypeError`); the
    /// action cannot be sent (`SerializationError`).
    #[rhai_fn(name = "Barrier", return_raw)]
    pub fn barrier_opts(parties: Dynamic, options: Dynamic) -> Result<Barrier, Box<EvalAltResult>> {
        Ok(new_barrier(&parties, opts::arg_map(options, "Barrier", "options")?)?)
    }

    /// Waits until all parties have called `wait()`; returns this process's arrival index
    /// (0 .. parties - 1).
    ///
    /// ```rhai
    /// let i = b.wait();
    /// ```
    ///
    /// Throws when: the barrier is broken, is reset or aborted while waiting, or the default
    /// timeout passes (`BrokenBarrierError`); the action throws (its error).
    #[rhai_fn(global, return_raw)]
    pub fn wait(ctx: NativeCallContext, b: &mut Barrier) -> Result<INT, Box<EvalAltResult>> {
        b.0.wait(&ctx, None)
    }

    /// As `wait()`, but at most `timeout` seconds; on timeout the barrier breaks.
    ///
    /// ```rhai
    /// try { b.wait(1) } catch (e) { if e.type == "BrokenBarrierError" { print("gave up") } }
    /// ```
    ///
    /// Throws when: as `wait()`; `timeout` is negative (`ValueError`).
    #[rhai_fn(global, name = "wait", return_raw)]
    pub fn wait_timeout(ctx: NativeCallContext, b: &mut Barrier, timeout: Dynamic) -> Result<INT, Box<EvalAltResult>> {
        // `wait(())` uses the barrier's default timeout, as Python's `wait(None)` does.
        let timeout = opts::keyword("wait", "timeout", timeout)?.unwrap_or(Dynamic::UNIT);
        let deadline = if timeout.is_unit() { None } else { Some(opts::timeout_deadline(&timeout, "wait")?) };
        b.0.wait(&ctx, deadline)
    }

    /// Returns the barrier to its empty state; processes waiting get `BrokenBarrierError`.
    ///
    /// ```rhai
    /// b.reset();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, return_raw)]
    pub fn reset(b: &mut Barrier) -> Result<(), Box<EvalAltResult>> {
        Ok(b.0.reset()?)
    }

    /// Breaks the barrier: current and future `wait()`s throw `BrokenBarrierError`.
    ///
    /// ```rhai
    /// b.abort();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, return_raw)]
    pub fn abort(b: &mut Barrier) -> Result<(), Box<EvalAltResult>> {
        Ok(b.0.abort()?)
    }

    /// The number of processes needed to pass.
    ///
    /// ```rhai
    /// print(b.parties);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, get = "parties", pure)]
    pub fn parties(b: &mut Barrier) -> INT {
        b.0.parties() as INT
    }

    /// The number of processes waiting now.
    ///
    /// ```rhai
    /// print(b.n_waiting);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, get = "n_waiting", pure)]
    pub fn n_waiting(b: &mut Barrier) -> INT {
        b.0.n_waiting() as INT
    }

    /// Whether the barrier is broken.
    ///
    /// ```rhai
    /// if b.broken { b.reset(); }
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, get = "broken", pure)]
    pub fn broken(b: &mut Barrier) -> bool {
        b.0.broken()
    }

    /// `<Barrier parties=3 waiting=1>`.
    ///
    /// ```rhai
    /// print(b);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(b: &mut Barrier) -> String {
        format!(
            "<Barrier parties={} waiting={}{}>",
            b.0.parties(),
            b.0.n_waiting(),
            if b.0.broken() { " broken" } else { "" }
        )
    }
}

/// barrier's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::{handle, mirror, section};
    crate::registry::Primitive {
        name: "barrier",
        group: "Synchronization",
        sections: &[section("Barrier", &[("Barrier", "b")], &["Barrier"], &["Barrier("])],
        functions,
        module: None,
        handles: &[handle::<Barrier>()],
        machinery: None,
        mirrors: &[mirror("Barrier", &[1, 2])],
        managed: &[crate::manager::Kind::Barrier],
    }
};

/// Registers barrier's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "barrier", barrier_functions);
}
