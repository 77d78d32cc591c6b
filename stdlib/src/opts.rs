//! Argument helpers shared by every primitive: keyword-style option maps, timeouts, and
//! iterables. They produce the `ValueError` / `TypeError` messages the reference promises (naming
//! the option and the function).

use rhai::{Array, Dynamic, FnPtr, Map, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, MpResult, RhaiResult};
use std::ops::{Range, RangeInclusive};

/// The Rhai name of a value's type, for messages.
pub(crate) fn type_name(v: &Dynamic) -> String {
    let name = v.type_name();
    name.rsplit("::").next().unwrap_or(name).to_string()
}

/// An option map (`#{name: "w", daemon: true}`) being taken apart.
pub(crate) struct Opts {
    map: Map,
    func: &'static str,
}

impl Opts {
    /// Checks that every key is one of `allowed`: an unknown key throws `ValueError`.
    pub(crate) fn new(map: Map, func: &'static str, allowed: &[&str]) -> MpResult<Opts> {
        if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(mp_err!(
                ValueError,
                "{func}() got an unknown option '{key}' (it takes: {})",
                allowed.join(", ")
            ));
        }
        Ok(Opts { map, func })
    }

    /// The value of `key`, or `None` when it is absent or `()`.
    pub(crate) fn take(&mut self, key: &str) -> Option<Dynamic> {
        self.map.remove(key).filter(|v| !v.is_unit())
    }

    fn wrong(&self, key: &str, want: &str, v: &Dynamic) -> rhai_mp_core::prelude::MpError {
        mp_err!(TypeError, "option '{key}' of {}() must be {want}, not {}", self.func, type_name(v))
    }

    pub(crate) fn fn_ptr(&mut self, key: &str) -> MpResult<Option<FnPtr>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v.clone().try_cast::<FnPtr>().map(Some).ok_or_else(|| self.wrong(key, "a function pointer", &v)),
        }
    }

    pub(crate) fn string(&mut self, key: &str) -> MpResult<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v.clone().into_string().map(Some).map_err(|_| self.wrong(key, "a string", &v)),
        }
    }

    pub(crate) fn bool(&mut self, key: &str) -> MpResult<Option<bool>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).map_err(|_| self.wrong(key, "a bool", &v)),
        }
    }

    pub(crate) fn int(&mut self, key: &str) -> MpResult<Option<INT>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v.as_int().map(Some).map_err(|_| self.wrong(key, "an integer", &v)),
        }
    }

    /// A timeout option in seconds (`()` or absent: none), checked as [`seconds`] does.
    pub(crate) fn seconds(&mut self, key: &str) -> MpResult<Option<f64>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => seconds(&v, self.func),
        }
    }

    /// An iterable option, as an array (`args`).
    pub(crate) fn items(&mut self, key: &str) -> MpResult<Option<Array>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => items_or(v.clone(), |_| self.wrong(key, "an array or another iterable", &v)).map(Some),
        }
    }
}

/// Python's keyword arguments on a function or method: `params` names its parameters in
/// order after the receiver, of which the first `required` are always positional; `given`
/// are the arguments the script passed. When `given` goes past the required ones and ends
/// with an option map, the map names the parameters not given positionally
/// (`q.get(#{timeout: 0.5})`, `q.put(v, #{block: false})`, `q.get(true, #{timeout: 1})`).
/// Returns one value per parameter (`None` where none was given). An unknown key throws
/// `ValueError` naming it; a key for a parameter also given positionally `TypeError`. (A
/// value of the wrong type is the caller's check, which names the parameter.)
pub(crate) fn keywords<const N: usize>(
    func: &str,
    params: [&str; N],
    required: usize,
    mut given: Vec<Dynamic>,
) -> MpResult<[Option<Dynamic>; N]> {
    let map = match given.last() {
        Some(last) if given.len() > required && last.is_map() => given.pop().and_then(|m| m.try_cast::<Map>()),
        _ => None,
    };
    if given.len() > N {
        return Err(mp_err!(TypeError, "{func}() takes at most {N} arguments, not {}", given.len()));
    }
    let mut out: [Option<Dynamic>; N] = std::array::from_fn(|_| None);
    let positional = given.len();
    for (slot, v) in out.iter_mut().zip(given) {
        *slot = Some(v);
    }
    for (key, v) in map.into_iter().flatten() {
        match params.iter().position(|p| *p == key.as_str()) {
            Some(i) if i < positional => {
                return Err(mp_err!(TypeError, "{func}() got multiple values for '{key}'"));
            }
            Some(i) => out[i] = Some(v),
            None => {
                let takes = params[positional.min(N)..].join(", ");
                return Err(mp_err!(
                    ValueError,
                    "{func}() got an unknown option '{key}' (it takes: {})",
                    if takes.is_empty() { "none".to_string() } else { takes }
                ));
            }
        }
    }
    Ok(out)
}

/// One optional parameter, positional or in a keyword map (see [`keywords`]): `None`
/// when a map was given that does not name it.
pub(crate) fn keyword(func: &str, param: &str, given: Dynamic) -> MpResult<Option<Dynamic>> {
    let [v] = keywords(func, [param], 0, vec![given])?;
    Ok(v)
}

/// A timeout in seconds, as a script gives it: `()` is no limit (`None`), so is an infinite
/// one; a negative or NaN one throws `ValueError`, a value that is not a number `TypeError`.
/// The one place where timeouts are read.
pub(crate) fn seconds(v: &Dynamic, func: &str) -> MpResult<Option<f64>> {
    let secs = if v.is_unit() {
        return Ok(None);
    } else if let Ok(i) = v.as_int() {
        i as f64
    } else if let Ok(f) = v.as_float() {
        f
    } else {
        return Err(mp_err!(TypeError, "timeout of {func}() must be a number of seconds or (), not {}", type_name(v)));
    };
    if secs.is_nan() {
        return Err(mp_err!(ValueError, "timeout of {func}() must be a number of seconds, not NaN"));
    }
    if secs < 0.0 {
        return Err(mp_err!(ValueError, "timeout of {func}() must be non-negative, not {secs}"));
    }
    Ok(Some(secs).filter(|s| s.is_finite()))
}

/// A timeout (see [`seconds`]) as the deadline a wait ends at.
pub(crate) fn deadline(v: &Dynamic, func: &str) -> MpResult<Deadline> {
    Ok(seconds(v, func)?.map_or(Deadline::NEVER, Deadline::after_secs))
}

/// A method's `timeout` parameter: as [`seconds`], or a keyword map in its place
/// (`r.get(#{timeout: 3})`), which gives its `timeout` (none: no limit; another key:
/// `ValueError`).
pub(crate) fn timeout(v: &Dynamic, func: &str) -> MpResult<Option<f64>> {
    if !v.is_map() {
        return seconds(v, func);
    }
    match keyword(func, "timeout", v.clone())? {
        Some(t) if t.is_map() => {
            Err(mp_err!(TypeError, "timeout of {func}() must be a number of seconds or (), not map"))
        }
        Some(t) => seconds(&t, func),
        None => Ok(None),
    }
}

/// A method's `timeout` parameter (see [`timeout`]) as the deadline a wait ends at.
pub(crate) fn timeout_deadline(v: &Dynamic, func: &str) -> MpResult<Deadline> {
    Ok(timeout(v, func)?.map_or(Deadline::NEVER, Deadline::after_secs))
}

/// The items of an iterable — an array, a range, a string (its chars) or a blob (its
/// bytes) — not yet turned into an array, so that a range of a billion numbers costs
/// nothing until (and unless) its items are needed.
pub(crate) enum Items {
    /// An array's items.
    Array(Array),
    /// `start..end`.
    Range(INT, INT),
    /// A string's chars.
    Chars(Vec<char>),
    /// A blob's bytes.
    Blob(rhai::Blob),
}

impl Items {
    /// The items of `v`; `TypeError` if it is not iterable.
    pub(crate) fn of(v: Dynamic) -> MpResult<Items> {
        if v.is_array() {
            return Ok(Items::Array(v.cast::<Array>()));
        }
        if let Some(r) = v.read_lock::<Range<INT>>() {
            return Ok(Items::Range(r.start, r.end.max(r.start)));
        }
        if let Some(r) = v.read_lock::<RangeInclusive<INT>>() {
            let (a, b) = (*r.start(), *r.end());
            return Ok(if b < a { Items::Range(a, a) } else { Items::Range(a, b.saturating_add(1)) });
        }
        if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
            return Ok(Items::Chars(s.chars().collect()));
        }
        if let Some(b) = v.read_lock::<rhai::Blob>() {
            return Ok(Items::Blob(b.clone()));
        }
        Err(mp_err!(TypeError, "expected an iterable (array, range, string or blob), not {}", type_name(&v)))
    }

    /// How many items there are.
    pub(crate) fn len(&self) -> u128 {
        match self {
            Items::Array(a) => a.len() as u128,
            Items::Range(a, b) => (*b as i128 - *a as i128).max(0) as u128,
            Items::Chars(c) => c.len() as u128,
            Items::Blob(b) => b.len() as u128,
        }
    }

    /// The items, one by one.
    pub(crate) fn iter(self) -> Box<dyn Iterator<Item = Dynamic>> {
        match self {
            Items::Array(a) => Box::new(a.into_iter()),
            Items::Range(a, b) => Box::new((a..b).map(Dynamic::from)),
            Items::Chars(c) => Box::new(c.into_iter().map(Dynamic::from)),
            Items::Blob(b) => Box::new(b.into_iter().map(|x| Dynamic::from(x as INT))),
        }
    }

    /// The items as an array, if the machine can hold it (`MemoryError` otherwise).
    pub(crate) fn into_array(self) -> MpResult<Array> {
        match self {
            Items::Array(a) => Ok(a),
            other => {
                let n = other.len();
                rhai_mp_core::base::limits::allocation(
                    n * std::mem::size_of::<Dynamic>() as u128,
                    "an array of that many items",
                )?;
                let mut out = Array::with_capacity(n as usize);
                out.extend(other.iter());
                Ok(out)
            }
        }
    }
}

/// The items of an iterable (see [`Items`]) as an array.
pub(crate) fn items(v: Dynamic) -> MpResult<Array> {
    Items::of(v)?.into_array()
}

/// [`items`], with `wrong` making the error for a value that is not iterable; a
/// `MemoryError` (too many items for this machine) stays one.
pub(crate) fn items_or(v: Dynamic, wrong: impl FnOnce(MpError) -> MpError) -> MpResult<Array> {
    Items::of(v).map_err(wrong)?.into_array()
}

/// How the items of an iterator object of this API are pulled (the function a `for` loop
/// over it runs).
pub(crate) type Puller = fn(Dynamic) -> Box<dyn Iterator<Item = RhaiResult<Dynamic>>>;

/// The iterator objects of this API (imap iterators, proxies …) and how to pull them.
static PULLERS: std::sync::Mutex<Vec<(std::any::TypeId, Puller)>> = std::sync::Mutex::new(Vec::new());

/// Makes values of type `ty` work in `for` loops with `pull`, and accepted wherever an
/// iterable is ([`pulled`]).
pub(crate) fn set_iterable(lib: &mut rhai::Module, ty: std::any::TypeId, pull: Puller) {
    lib.set_iter_result(ty, pull);
    let mut all = PULLERS.lock().unwrap_or_else(|e| e.into_inner());
    if !all.iter().any(|(t, _)| *t == ty) {
        all.push((ty, pull));
    }
}

/// The items an iterator object of this API yields, up to its end or its first error.
pub(crate) struct Pulled {
    /// The items before the end (or the error).
    pub items: Array,
    /// The error the iterator gave instead of its next item, if it failed midway.
    pub error: Option<Box<rhai::EvalAltResult>>,
}

/// The items of `v` if it is an iterator object of this API (an imap iterator, a proxy, a
/// shared `Array`), pulled to its end or first error; `None` for any other value.
pub(crate) fn pull(v: &Dynamic) -> Option<Pulled> {
    if let Some(a) = v.read_lock::<crate::array::SharedArray>() {
        return Some(Pulled { items: a.0.to_array(), error: None });
    }
    let ty = v.type_id();
    let puller = PULLERS.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|(t, _)| *t == ty).map(|(_, f)| *f)?;
    let mut items = Array::new();
    for item in puller(v.clone()) {
        match item {
            Ok(x) => items.push(x),
            Err(e) => return Some(Pulled { items, error: Some(e) }),
        }
    }
    Some(Pulled { items, error: None })
}

/// `v`, or, when it is an iterator object of this API, its items as an array; the error
/// it gives midway is thrown, as Python's `list(iterable)` raises it.
pub(crate) fn pulled(v: Dynamic) -> RhaiResult<Dynamic> {
    match pull(&v) {
        None => Ok(v),
        Some(Pulled { error: Some(e), .. }) => Err(e),
        Some(Pulled { items, error: None }) => Ok(Dynamic::from_array(items)),
    }
}

/// A positional argument that must be a bool.
pub(crate) fn arg_bool(v: &Dynamic, func: &str, name: &str) -> MpResult<bool> {
    v.as_bool().map_err(|_| mp_err!(TypeError, "{name} of {func}() must be a bool, not {}", type_name(v)))
}

/// A positional argument that must be an integer.
pub(crate) fn arg_int(v: &Dynamic, func: &str, name: &str) -> MpResult<INT> {
    v.as_int().map_err(|_| mp_err!(TypeError, "{name} of {func}() must be an integer, not {}", type_name(v)))
}

/// A positional argument that must be a function pointer or closure.
pub(crate) fn arg_fn(v: Dynamic, func: &str, name: &str) -> MpResult<FnPtr> {
    let t = type_name(&v);
    v.try_cast::<FnPtr>()
        .ok_or_else(|| mp_err!(TypeError, "{name} of {func}() must be a function pointer or closure, not {t}"))
}

/// A positional argument that must be a string.
pub(crate) fn arg_str(v: &Dynamic, func: &str, name: &str) -> MpResult<String> {
    v.clone().into_string().map_err(|_| mp_err!(TypeError, "{name} of {func}() must be a string, not {}", type_name(v)))
}

/// A positional argument that must be an array.
pub(crate) fn arg_array(v: Dynamic, func: &str, name: &str) -> MpResult<Array> {
    let t = type_name(&v);
    v.try_cast::<Array>().ok_or_else(|| mp_err!(TypeError, "{name} of {func}() must be an array, not {t}"))
}

/// A positional argument that must be a blob.
pub(crate) fn arg_blob(v: Dynamic, func: &str, name: &str) -> MpResult<rhai::Blob> {
    let t = type_name(&v);
    v.try_cast::<rhai::Blob>().ok_or_else(|| mp_err!(TypeError, "{name} of {func}() must be a blob, not {t}"))
}

/// A positional argument that must be an option map (`#{..}`).
pub(crate) fn arg_map(v: Dynamic, func: &str, name: &str) -> MpResult<Map> {
    let t = type_name(&v);
    v.try_cast::<Map>().ok_or_else(|| mp_err!(TypeError, "{name} of {func}() must be an option map #{{..}}, not {t}"))
}
