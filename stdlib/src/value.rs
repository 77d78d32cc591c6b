//! `Value(typecode, init)`, `Value(typecode, init, lock)`, `RawValue(typecode, init)`
//! (see the reference, "Shared memory"): one typed item in shared memory, with a lock (an RLock by
//! default, a given Lock/RLock, or none for a raw value).

use crate::lock::Lock;
use crate::opts;
use crate::typecode::Typecode;
use rhai::plugin::*;
use rhai::Dynamic;
use rhai_mp_core::base::shm::Region;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::MpResult;
use rhai_mp_core::wire::{Handle, Portable, Reader, Writer};
use std::rc::Rc;

/// The shared state of a Value.
#[derive(Debug)]
pub struct ValueCore {
    region: Region,
    /// Its typecode.
    pub typecode: Typecode,
    /// Its lock (`None`: a raw value).
    pub lock: Option<Lock>,
}

/// A Value or RawValue handle; copies share the item.
#[derive(Debug, Clone)]
pub struct Value(pub Rc<ValueCore>);

/// The lock a `Value` or `Array` gets from its `lock` argument: `true` (a new RLock),
/// `false` (none), or a Lock/RLock, positional or in a keyword map (`#{lock: false}`).
pub(crate) fn lock_arg(lock: &Dynamic, func: &str) -> MpResult<Option<Lock>> {
    let lock = &match opts::keyword(func, "lock", lock.clone())? {
        Some(l) => l,
        None => Dynamic::TRUE,
    };
    if let Ok(b) = lock.as_bool() {
        return Ok(if b { Some(Lock::new(true)?) } else { None });
    }
    lock.clone().try_cast::<Lock>().map(Some).ok_or_else(|| {
        mp_err!(TypeError, "lock of {func}() must be true, false or a Lock/RLock, not {}", opts::type_name(lock))
    })
}

fn new_value(typecode: &Dynamic, init: &Dynamic, lock: Option<Lock>, func: &str) -> MpResult<Value> {
    let tc = Typecode::parse(typecode, func)?;
    let bits = tc.bits(init, &|| format!("{func}()"))?;
    let region = Region::create("rhai-mp-value", 64)?;
    tc.store(&region, 0, bits);
    Ok(Value(Rc::new(ValueCore { region, typecode: tc, lock })))
}

/// A Value crosses as its memfd, its typecode and its lock (if any).
impl Portable for Value {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.dup(self.0.region.fd())?;
        w.put(&self.0.typecode)?;
        w.put(&self.0.lock)
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        let region = Region::open(r.fd()?, 64)?;
        Ok(Value(Rc::new(ValueCore { region, typecode: r.get()?, lock: r.get()? })))
    }
}

impl Handle for Value {
    const KIND: &'static str = "Value";
    const ELSEWHERE: &'static str = "a TCP manager's m.Value(..) (Manager() under MPI, else Manager(#{address: ..}))";
}

/// The Rhai bindings: `Value`, `RawValue` and their methods.
#[export_module]
pub mod value_functions {
    use super::*;

    /// One typed item in shared memory.
    pub type Value = super::Value;

    /// A shared item of `typecode` (`"i"`, `"d"` …) starting at `init`, with an RLock.
    ///
    /// ```rhai
    /// let counter = Value("i", 0);
    /// ```
    ///
    /// Throws when: the typecode is unknown or `init` has the wrong type (`TypeError`);
    /// `init` is out of range (`ValueError`).
    #[rhai_fn(name = "Value", return_raw)]
    pub fn value(typecode: Dynamic, init: Dynamic) -> Result<Value, Box<EvalAltResult>> {
        Ok(new_value(&typecode, &init, Some(Lock::new(true)?), "Value")?)
    }

    /// A shared item with `lock`: `true` (a new RLock), `false` (no lock) or a Lock/RLock,
    /// positional or in a map.
    ///
    /// ```rhai
    /// let v = Value("d", 0.5, Lock());
    /// let w = Value("i", 0, #{lock: false});
    /// ```
    ///
    /// Throws when: as `Value(typecode, init)`; `lock` is of another type (`TypeError`); an
    /// unknown option (`ValueError`).
    #[rhai_fn(name = "Value", return_raw)]
    pub fn value_lock(typecode: Dynamic, init: Dynamic, lock: Dynamic) -> Result<Value, Box<EvalAltResult>> {
        let lock = lock_arg(&lock, "Value")?;
        Ok(new_value(&typecode, &init, lock, "Value")?)
    }

    /// A shared item without a lock.
    ///
    /// ```rhai
    /// let v = RawValue("q", 0);
    /// ```
    ///
    /// Throws when: as `Value(typecode, init)`.
    #[rhai_fn(name = "RawValue", return_raw)]
    pub fn raw_value(typecode: Dynamic, init: Dynamic) -> Result<Value, Box<EvalAltResult>> {
        Ok(new_value(&typecode, &init, None, "RawValue")?)
    }

    /// The item (read atomically; use the lock to read-modify-write).
    ///
    /// ```rhai
    /// print(v.value);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, get = "value", pure)]
    pub fn get_value(v: &mut Value) -> Dynamic {
        v.0.typecode.load(&v.0.region, 0)
    }

    /// Sets the item. `v.value += 1` is a read then a write: hold `v.get_lock()` around it
    /// when other processes update it too.
    ///
    /// ```rhai
    /// hold(v.get_lock(), || v.value += 1);
    /// ```
    ///
    /// Throws when: the value has the wrong type (`TypeError`) or is out of range
    /// (`ValueError`).
    #[rhai_fn(global, set = "value", return_raw)]
    pub fn set_value(v: &mut Value, x: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let bits = v.0.typecode.bits(&x, &|| "Value.value".to_string())?;
        v.0.typecode.store(&v.0.region, 0, bits);
        Ok(())
    }

    /// The value's lock.
    ///
    /// ```rhai
    /// let l = v.get_lock();
    /// l.acquire(); v.value += 1; l.release();
    /// ```
    ///
    /// Throws when: the value is raw (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn get_lock(v: &mut Value) -> Result<Lock, Box<EvalAltResult>> {
        v.0.lock.clone().ok_or_else(|| {
            mp_err!(ValueError, "get_lock() needs a synchronized Value; this one is raw (RawValue or lock = false)")
                .into()
        })
    }

    /// `Value('i', 5)`.
    ///
    /// ```rhai
    /// print(v);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(v: &mut Value) -> String {
        let kind = if v.0.lock.is_some() { "Value" } else { "RawValue" };
        format!("{kind}('{}', {})", v.0.typecode.code(), v.0.typecode.load(&v.0.region, 0))
    }
}

/// value's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::{handle, mirror, section};
    crate::registry::Primitive {
        name: "value",
        group: "Shared memory",
        sections: &[section("Value and RawValue", &[("Value", "v")], &["Value", "RawValue"], &["Value("])],
        functions,
        module: None,
        handles: &[handle::<Value>()],
        machinery: None,
        mirrors: &[mirror("Value", &[2, 3]), mirror("RawValue", &[2])],
        managed: &[crate::manager::Kind::Value],
    }
};

/// Registers value's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "value", value_functions);
}
