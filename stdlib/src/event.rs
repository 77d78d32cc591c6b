//! `Event()` (see the reference, "Synchronization"): a flag in shared memory that processes wait on.
//!
//! The flag is a 32-bit futex word; `set()` wakes every sleeper, and only makes a system
//! call when someone sleeps.

use crate::opts;
use rhai::plugin::*;
use rhai::Dynamic;
use rhai_mp_core::base::shm::Region;
use rhai_mp_core::base::sys::{futex_wait, futex_wake};
use rhai_mp_core::prelude::{Deadline, MpResult};
use rhai_mp_core::wire::{Handle, Portable, Reader, Writer};
use std::rc::Rc;
use std::sync::atomic::Ordering::SeqCst;

const FLAG: usize = 0;
const SLEEPERS: usize = 4;

/// The shared state of an Event.
#[derive(Debug)]
pub struct EventCore {
    region: Region,
    /// How long a `wait` here polls before it sleeps (adaptive).
    spin: rhai_mp_core::base::spin::Spin,
}

impl EventCore {
    fn new() -> MpResult<EventCore> {
        Ok(EventCore { region: Region::create("rhai-mp-event", 64)?, spin: rhai_mp_core::base::spin::Spin::new() })
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.region.atomic32(FLAG).load(SeqCst) == 1
    }

    /// Sets the flag, waking every waiter.
    pub fn set(&self) {
        self.region.atomic32(FLAG).store(1, SeqCst);
        if self.region.atomic32(SLEEPERS).load(SeqCst) > 0 {
            futex_wake(self.region.atomic32(FLAG), i32::MAX);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.region.atomic32(FLAG).store(0, SeqCst);
    }

    /// Waits until the flag is set, at most until `deadline`; returns the flag.
    pub fn wait(&self, deadline: Deadline) -> MpResult<bool> {
        let flag = self.region.atomic32(FLAG);
        if flag.load(SeqCst) == 1 || (!deadline.passed() && self.spin.spin_while(|| flag.load(SeqCst) == 0)) {
            return Ok(true);
        }
        self.region.atomic32(SLEEPERS).fetch_add(1, SeqCst);
        let set = loop {
            if flag.load(SeqCst) == 1 {
                break Ok(true);
            }
            if deadline.passed() {
                break Ok(false);
            }
            if let Err(e) = rhai_mp_core::base::interrupt::check() {
                break Err(e.into());
            }
            futex_wait(flag, 0, Some(deadline.slice(rhai_mp_core::base::interrupt::SLICE)));
        };
        self.region.atomic32(SLEEPERS).fetch_sub(1, SeqCst);
        set
    }
}

/// An Event handle; copies share the flag.
#[derive(Debug, Clone)]
pub struct Event(pub Rc<EventCore>);

/// An Event crosses as its memfd.
impl Portable for Event {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.dup(self.0.region.fd())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(Event(Rc::new(EventCore {
            region: Region::open(r.fd()?, 64)?,
            spin: rhai_mp_core::base::spin::Spin::new(),
        })))
    }
}

impl Handle for Event {
    const KIND: &'static str = "Event";
    const ELSEWHERE: &'static str = "a TCP manager's m.Event() (Manager() under MPI, else Manager(#{address: ..}))";
}

/// The Rhai bindings: `Event` and its methods.
#[export_module]
pub mod event_functions {
    use super::*;

    /// A flag processes can wait for.
    pub type Event = super::Event;

    /// A new event, not set.
    ///
    /// ```rhai
    /// let e = Event();
    /// ```
    ///
    /// Throws when: the OS refuses the shared memory (`OSError`).
    #[rhai_fn(name = "Event", return_raw)]
    pub fn event() -> Result<Event, Box<EvalAltResult>> {
        Ok(super::Event(Rc::new(EventCore::new()?)))
    }

    /// Sets the flag, waking every process waiting for it.
    ///
    /// ```rhai
    /// e.set();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global)]
    pub fn set(e: &mut Event) {
        e.0.set()
    }

    /// Clears the flag: later `wait()`s block until the next `set()`.
    ///
    /// ```rhai
    /// e.clear();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global)]
    pub fn clear(e: &mut Event) {
        e.0.clear()
    }

    /// Whether the flag is set.
    ///
    /// ```rhai
    /// if e.is_set() { print("green"); }
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, pure)]
    pub fn is_set(e: &mut Event) -> bool {
        e.0.is_set()
    }

    /// Waits until the flag is set; returns `true`.
    ///
    /// ```rhai
    /// e.wait();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, return_raw)]
    pub fn wait(e: &mut Event) -> Result<bool, Box<EvalAltResult>> {
        Ok(e.0.wait(Deadline::NEVER)?)
    }

    /// Waits at most `timeout` seconds (`()`: no limit); returns whether the flag is set.
    ///
    /// ```rhai
    /// if e.wait(2) { print("go"); } else { print("ran the red light"); }
    /// ```
    ///
    /// Throws when: `timeout` is negative (`ValueError`) or not a number (`TypeError`).
    #[rhai_fn(global, name = "wait", return_raw)]
    pub fn wait_timeout(e: &mut Event, timeout: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        let timeout = opts::keyword("wait", "timeout", timeout)?.unwrap_or(Dynamic::UNIT);
        Ok(e.0.wait(opts::timeout_deadline(&timeout, "wait")?)?)
    }

    /// `<Event set>` or `<Event unset>`.
    ///
    /// ```rhai
    /// print(e);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(e: &mut Event) -> String {
        format!("<Event {}>", if e.0.is_set() { "set" } else { "unset" })
    }
}

/// event's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::{handle, mirror, section};
    crate::registry::Primitive {
        name: "event",
        group: "Synchronization",
        sections: &[section("Event", &[("Event", "e")], &["Event"], &["Event("])],
        functions,
        module: None,
        handles: &[handle::<Event>()],
        machinery: None,
        mirrors: &[mirror("Event", &[0])],
        managed: &[crate::manager::Kind::Event],
    }
};

/// Registers event's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "event", event_functions);
}
