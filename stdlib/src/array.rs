//! `Array(typecode, size_or_iterable)`, `Array(typecode, init, lock)`, `RawArray(..)`
//! (see the reference, "Shared memory"): a fixed-length typed array in shared memory, with a lock (an
//! RLock by default, a given Lock/RLock, or none for a raw array). Its Rhai type is
//! `SharedArray` (Rhai's own arrays are `array`).

use crate::lock::Lock;
use crate::opts;
use crate::typecode::Typecode;
use crate::value::lock_arg;
use rhai::plugin::*;
use rhai::{Array, Blob, Dynamic, INT};
use rhai_mp_core::base::shm::Region;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::MpResult;
use rhai_mp_core::wire::{Handle, Portable, Reader, Writer};
use std::rc::Rc;

/// The shared state of an Array.
#[derive(Debug)]
pub struct ArrayCore {
    region: Region,
    /// Its items' typecode.
    pub typecode: Typecode,
    /// Its number of items.
    pub len: usize,
    /// Its lock (`None`: a raw array).
    pub lock: Option<Lock>,
}

impl ArrayCore {
    fn offset(&self, index: INT) -> MpResult<usize> {
        let len = self.len as INT;
        let i = if index < 0 { index + len } else { index };
        if i < 0 || i >= len {
            return Err(mp_err!(IndexError, "index {index} is out of range for an Array of length {len}"));
        }
        Ok(i as usize * self.typecode.size())
    }

    /// The item at `index` (negative: from the end).
    pub fn get(&self, index: INT) -> MpResult<Dynamic> {
        Ok(self.typecode.load(&self.region, self.offset(index)?))
    }

    /// Sets the item at `index` (negative: from the end).
    pub fn set(&self, index: INT, v: &Dynamic) -> MpResult<()> {
        let offset = self.offset(index)?;
        let bits = self.typecode.bits(v, &|| format!("Array[{index}]"))?;
        self.typecode.store(&self.region, offset, bits);
        Ok(())
    }

    /// Every item, as a Rhai array.
    pub fn to_array(&self) -> Array {
        (0..self.len).map(|i| self.typecode.load(&self.region, i * self.typecode.size())).collect()
    }
}

/// An Array or RawArray handle; copies share the items.
#[derive(Debug, Clone)]
pub struct SharedArray(pub Rc<ArrayCore>);

impl IntoIterator for SharedArray {
    type Item = Dynamic;
    type IntoIter = std::vec::IntoIter<Dynamic>;

    /// Iterates over a snapshot of the items.
    fn into_iter(self) -> Self::IntoIter {
        self.0.to_array().into_iter()
    }
}

fn new_array(typecode: &Dynamic, init: &Dynamic, lock: Option<Lock>, func: &str) -> MpResult<SharedArray> {
    let tc = Typecode::parse(typecode, func)?;
    // A size gives zeros (the fresh region's); an iterable's items are written one by one,
    // straight into the region.
    let (len, items) = match init.as_int() {
        Ok(n) if n < 0 => return Err(mp_err!(ValueError, "{func}() size must be >= 0, not {n}")),
        Ok(n) => (n as u128, None),
        Err(_) => {
            let items = opts::Items::of(init.clone())
                .map_err(|e| mp_err!(TypeError, "{func}() takes a size or an iterable: {}", e.message))?;
            (items.len(), Some(items))
        }
    };
    let bytes =
        rhai_mp_core::base::limits::allocation(len * tc.size() as u128, &format!("{func}('{}', {len})", tc.code()))?;
    let region = Region::create("rhai-mp-array", bytes.max(64))?;
    for (i, x) in items.into_iter().flat_map(opts::Items::iter).enumerate() {
        let bits = tc.bits(&x, &|| format!("{func}() item {i}"))?;
        tc.store(&region, i * tc.size(), bits);
    }
    Ok(SharedArray(Rc::new(ArrayCore { region, typecode: tc, len: len as usize, lock })))
}

/// An Array crosses as its memfd, length, typecode and lock (if any).
impl Portable for SharedArray {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.dup(self.0.region.fd())?;
        w.u64(self.0.len as u64);
        w.put(&self.0.typecode)?;
        w.put(&self.0.lock)
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        let fd = r.fd()?;
        let len = r.u64()?;
        let typecode: Typecode = r.get()?;
        let bytes = usize::try_from(len)
            .ok()
            .and_then(|n| n.checked_mul(typecode.size()))
            .ok_or_else(|| rhai_mp_core::wire::malformed("an Array's length"))?;
        let region = Region::open(fd, bytes.max(64))?;
        Ok(SharedArray(Rc::new(ArrayCore { region, typecode, len: len as usize, lock: r.get()? })))
    }
}

impl Handle for SharedArray {
    const KIND: &'static str = "SharedArray";
    const ELSEWHERE: &'static str = "a TCP manager's m.Array(..) (Manager() under MPI, else Manager(#{address: ..}))";
}

/// The Rhai bindings: `Array`, `RawArray` and the methods of a shared array.
#[export_module]
pub mod array_functions {
    use super::*;

    /// A fixed-length typed array in shared memory.
    pub type SharedArray = super::SharedArray;

    /// A shared array of `typecode`: `n` zeros, or the items of an iterable (a blob for
    /// typecode `"c"`), with an RLock.
    ///
    /// ```rhai
    /// let a = Array("i", [1, 2, 3]);
    /// let zeros = Array("d", 10);
    /// ```
    ///
    /// Throws when: the typecode is unknown or an item has the wrong type (`TypeError`); an
    /// item is out of range or the size negative (`ValueError`); the machine cannot hold
    /// that many items (`MemoryError`); `init` is an iterator (an imap's) that fails (its
    /// error).
    #[rhai_fn(name = "Array", return_raw)]
    pub fn array(typecode: Dynamic, init: Dynamic) -> Result<SharedArray, Box<EvalAltResult>> {
        let init = opts::pulled(init)?;
        Ok(new_array(&typecode, &init, Some(Lock::new(true)?), "Array")?)
    }

    /// A shared array with `lock`: `true` (a new RLock), `false` (none) or a Lock/RLock,
    /// positional or in a map.
    ///
    /// ```rhai
    /// let a = Array("i", 10, false);
    /// let b = Array("d", [0.5, 1.5], #{lock: Lock()});
    /// ```
    ///
    /// Throws when: as `Array(typecode, init)`; `lock` is of another type (`TypeError`); an
    /// unknown option (`ValueError`).
    #[rhai_fn(name = "Array", return_raw)]
    pub fn array_lock(typecode: Dynamic, init: Dynamic, lock: Dynamic) -> Result<SharedArray, Box<EvalAltResult>> {
        let lock = lock_arg(&lock, "Array")?;
        let init = opts::pulled(init)?;
        Ok(new_array(&typecode, &init, lock, "Array")?)
    }

    /// A shared array without a lock.
    ///
    /// ```rhai
    /// let a = RawArray("B", blob(16));
    /// ```
    ///
    /// Throws when: as `Array(typecode, init)`.
    #[rhai_fn(name = "RawArray", return_raw)]
    pub fn raw_array(typecode: Dynamic, init: Dynamic) -> Result<SharedArray, Box<EvalAltResult>> {
        let init = opts::pulled(init)?;
        Ok(new_array(&typecode, &init, None, "RawArray")?)
    }

    /// The item at `index` (negative counts from the end).
    ///
    /// ```rhai
    /// print(a[0] + a[-1]);
    /// ```
    ///
    /// Throws when: the index is out of range (`IndexError`).
    #[rhai_fn(global, index_get, return_raw)]
    pub fn get(a: &mut SharedArray, index: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(a.0.get(opts::arg_int(&index, "Array[]", "index")?)?)
    }

    /// Sets the item at `index` (negative counts from the end).
    ///
    /// ```rhai
    /// a[0] = -a[0];
    /// ```
    ///
    /// Throws when: the index is out of range (`IndexError`); the value has the wrong type
    /// (`TypeError`) or is out of range (`ValueError`).
    #[rhai_fn(global, index_set, return_raw)]
    pub fn set(a: &mut SharedArray, index: Dynamic, value: Dynamic) -> Result<(), Box<EvalAltResult>> {
        Ok(a.0.set(opts::arg_int(&index, "Array[]=", "index")?, &value)?)
    }

    /// The number of items.
    ///
    /// ```rhai
    /// for i in 0..a.len() { a[i] = i; }
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "len", get = "len", pure)]
    pub fn len(a: &mut SharedArray) -> INT {
        a.0.len as INT
    }

    /// A copy of the items as a Rhai array (Python's `a[:]`).
    ///
    /// ```rhai
    /// print(a.to_array());
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, pure)]
    pub fn to_array(a: &mut SharedArray) -> Array {
        a.0.to_array()
    }

    /// A copy of the items' bytes as a blob (for typecode `"c"`, the characters).
    ///
    /// ```rhai
    /// let s = Array("c", "hello".to_blob());
    /// print(s.to_blob().as_string());
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, pure)]
    pub fn to_blob(a: &mut SharedArray) -> Blob {
        let size = a.0.typecode.size();
        let mut out = Vec::with_capacity(a.0.len * size);
        for i in 0..a.0.len {
            let bits = match a.0.typecode.load(&a.0.region, i * size) {
                v if v.is_float() => {
                    let f = v.as_float().unwrap_or_default();
                    if size == 4 {
                        (f as f32).to_bits() as u64
                    } else {
                        f.to_bits()
                    }
                }
                v => v.as_int().unwrap_or_default() as u64,
            };
            out.extend_from_slice(&bits.to_le_bytes()[..size]);
        }
        out
    }

    /// The array's lock.
    ///
    /// ```rhai
    /// hold(a.get_lock(), || a[0] += 1);
    /// ```
    ///
    /// Throws when: the array is raw (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn get_lock(a: &mut SharedArray) -> Result<Lock, Box<EvalAltResult>> {
        a.0.lock.clone().ok_or_else(|| {
            mp_err!(ValueError, "get_lock() needs a synchronized Array; this one is raw (RawArray or lock = false)")
                .into()
        })
    }

    /// `Array('i', [1, 2, 3])`.
    ///
    /// ```rhai
    /// print(a);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(a: &mut SharedArray) -> String {
        let kind = if a.0.lock.is_some() { "Array" } else { "RawArray" };
        format!("{kind}('{}', {:?})", a.0.typecode.code(), a.0.to_array())
    }
}

/// array's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::{handle, mirror, section};
    crate::registry::Primitive {
        name: "array",
        group: "Shared memory",
        sections: &[section("Array and RawArray", &[("SharedArray", "a")], &["Array", "RawArray"], &["Array("])],
        functions,
        module: None,
        handles: &[handle::<SharedArray>()],
        machinery: None,
        mirrors: &[mirror("Array", &[2, 3]), mirror("RawArray", &[2])],
        managed: &[crate::manager::Kind::Array],
    }
};

/// Registers array's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "array", array_functions);
    lib.set_iterable::<SharedArray>();
}
