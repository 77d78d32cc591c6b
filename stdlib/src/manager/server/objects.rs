//! The data a manager's server keeps — dicts, lists, namespaces, values and arrays — and
//! the operations of the protocol on them. The server owns a [`Store`] and runs one
//! request at a time on it, so each operation is atomic. (The queues and locks of a TCP
//! manager are `sync.rs`'s; their ids come from the same [`Store::next_id`].)
//!
//! Caveat: objects live until the server stops (proxies are not reference-counted).

use crate::manager::protocol::{Create, Op};
use crate::opts;
use crate::typecode::Typecode;
use rhai::{Array, Dynamic, Map, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::MpResult;
use std::collections::{BTreeMap, HashMap};

/// A dict proxy's key: keys of different types never collide (`1`, `1.0`, `true`, `"1"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Str(String),
    Int(INT),
    Float(u64),
    Bool(bool),
    Char(char),
}

impl Key {
    fn of(v: &Dynamic) -> MpResult<Key> {
        if let Ok(s) = v.clone().into_immutable_string() {
            return Ok(Key::Str(s.to_string()));
        }
        if let Ok(i) = v.as_int() {
            return Ok(Key::Int(i));
        }
        if let Ok(f) = v.as_float() {
            // -0.0 and 0.0 are one key, as in Python.
            return Ok(Key::Float(if f == 0.0 { 0.0f64.to_bits() } else { f.to_bits() }));
        }
        if let Ok(b) = v.as_bool() {
            return Ok(Key::Bool(b));
        }
        if let Ok(c) = v.as_char() {
            return Ok(Key::Char(c));
        }
        Err(mp_err!(
            TypeError,
            "dict proxy keys must be strings, integers, floats, booleans or chars, not {}",
            opts::type_name(v)
        ))
    }

    fn value(&self) -> Dynamic {
        match self {
            Key::Str(s) => s.clone().into(),
            Key::Int(i) => (*i).into(),
            Key::Float(f) => f64::from_bits(*f).into(),
            Key::Bool(b) => (*b).into(),
            Key::Char(c) => (*c).into(),
        }
    }

    fn text(&self) -> String {
        match self {
            Key::Str(s) => s.clone(),
            other => other.value().to_string(),
        }
    }
}

/// An insertion-ordered dict.
#[derive(Default)]
struct Dict {
    items: BTreeMap<u64, (Key, Dynamic)>,
    index: HashMap<Key, u64>,
    next: u64,
}

impl Dict {
    fn get(&self, k: &Key) -> Option<&Dynamic> {
        self.index.get(k).and_then(|n| self.items.get(n)).map(|(_, v)| v)
    }
    fn set(&mut self, k: Key, v: Dynamic) {
        match self.index.get(&k) {
            Some(n) => {
                self.items.get_mut(n).unwrap().1 = v;
            }
            None => {
                self.next += 1;
                self.index.insert(k.clone(), self.next);
                self.items.insert(self.next, (k, v));
            }
        }
    }
    fn remove(&mut self, k: &Key) -> Option<Dynamic> {
        let n = self.index.remove(k)?;
        self.items.remove(&n).map(|(_, v)| v)
    }
}

/// A managed object.
enum Obj {
    Dict(Dict),
    List(Array),
    Namespace(BTreeMap<String, Dynamic>),
    Value(Typecode, Dynamic),
    Array(Typecode, Array),
    /// A primitive made for clients (kept alive here).
    Handle(#[allow(dead_code)] Dynamic),
}

/// The objects of one server, by id.
#[derive(Default)]
pub(crate) struct Store {
    objects: HashMap<u64, Obj>,
    next_id: u64,
}

impl Store {
    /// Keeps a primitive made for clients alive as long as the server runs.
    pub(crate) fn keep(&mut self, handle: Dynamic) {
        self.add(Obj::Handle(handle));
    }

    /// A fresh object id.
    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn add(&mut self, obj: Obj) -> u64 {
        let id = self.next_id();
        self.objects.insert(id, obj);
        id
    }

    /// Makes an object (all but the primitives, which need the script's functions).
    pub(crate) fn create(&mut self, c: Create) -> MpResult<u64> {
        let obj = match c {
            Create::Dict(init) => Obj::Dict(Dict::from_init(init)?),
            Create::List(init) => Obj::List(if init.is_unit() {
                Array::new()
            } else {
                opts::items(init).map_err(|e| mp_err!(TypeError, "list() takes an iterable: {}", e.message))?
            }),
            Create::Namespace => Obj::Namespace(BTreeMap::new()),
            Create::Value(tc, v) => {
                let tc = Typecode::parse(&tc, "Value")?;
                Obj::Value(tc, checked(tc, v, "Value")?)
            }
            Create::Array(tc, init) => {
                let tc = Typecode::parse(&tc, "Array")?;
                let items = if let Ok(n) = init.as_int() {
                    if n < 0 {
                        return Err(mp_err!(ValueError, "Array size must be non-negative, not {n}"));
                    }
                    // The server keeps the items as values: check it can hold that many.
                    let bytes = n as u128 * std::mem::size_of::<Dynamic>() as u128;
                    rhai_mp_core::base::limits::allocation(bytes, &format!("Array('{}', {n})", tc.code()))?;
                    (0..n).map(|_| zero(tc)).collect()
                } else {
                    let xs = opts::items(init)
                        .map_err(|e| mp_err!(TypeError, "Array() takes a size or an iterable: {}", e.message))?;
                    xs.into_iter().map(|x| checked(tc, x, "Array")).collect::<MpResult<Array>>()?
                };
                Obj::Array(tc, items)
            }
            Create::Primitive(..) => return Err(mp_err!(RuntimeError, "primitives are made by the server")),
        };
        Ok(self.add(obj))
    }

    /// Runs an operation on object `id`.
    pub(crate) fn call(&mut self, id: u64, op: Op) -> MpResult<Dynamic> {
        let obj = self
            .objects
            .get_mut(&id)
            .ok_or_else(|| mp_err!(KeyError, "the manager has no object {id} (a proxy from another manager?)"))?;
        call(obj, op)
    }
}

impl Dict {
    /// A dict from `m.dict(init)`'s argument: `()`, an object map, or `[key, value]` pairs.
    fn from_init(init: Dynamic) -> MpResult<Dict> {
        let mut d = Dict::default();
        if init.is_map() {
            for (k, v) in init.cast::<Map>() {
                d.set(Key::Str(k.to_string()), v);
            }
        } else if !init.is_unit() {
            let t = opts::type_name(&init);
            let pairs = opts::items(init).map_err(|_| {
                mp_err!(TypeError, "dict() takes an object map or an array of [key, value] pairs, not {t}")
            })?;
            for p in pairs {
                let kv = p.try_cast::<Array>().filter(|a| a.len() == 2).ok_or_else(|| {
                    mp_err!(TypeError, "dict() takes an object map or an array of [key, value] pairs")
                })?;
                d.set(Key::of(&kv[0])?, kv[1].clone());
            }
        }
        Ok(d)
    }
}

fn index(i: &Dynamic, len: usize, what: &str) -> MpResult<usize> {
    let i =
        i.as_int().map_err(|_| mp_err!(TypeError, "{what} indices must be integers, not {}", opts::type_name(i)))?;
    let n = len as INT;
    let j = if i < 0 { i + n } else { i };
    if j < 0 || j >= n {
        return Err(mp_err!(IndexError, "{what} index {i} out of range (length {len})"));
    }
    Ok(j as usize)
}

fn repr(v: &Dynamic) -> String {
    if let Some(p) = v.read_lock::<crate::manager::Proxy>() {
        return format!("{p:?}");
    }
    if v.is_string() {
        return format!("{v:?}");
    }
    if let Some(a) = v.read_lock::<Array>() {
        return format!("[{}]", a.iter().map(repr).collect::<Vec<_>>().join(", "));
    }
    if v.is_unit() {
        return "()".into();
    }
    format!("{v:?}")
}

fn sort(items: &mut Array) -> MpResult<()> {
    use std::cmp::Ordering;
    let all = |f: fn(&Dynamic) -> bool| items.iter().all(f);
    if all(|v| v.is_int() || v.is_float()) {
        let num = |v: &Dynamic| v.as_int().map(|i| i as f64).or_else(|_| v.as_float()).unwrap_or(0.0);
        items.sort_by(|a, b| num(a).partial_cmp(&num(b)).unwrap_or(Ordering::Equal));
    } else if all(|v| v.is_string()) {
        items.sort_by_key(|a| a.to_string());
    } else if all(|v| v.is_char()) {
        items.sort_by_key(|a| a.as_char().unwrap_or_default());
    } else if all(|v| v.is_bool()) {
        items.sort_by_key(|a| a.as_bool().unwrap_or_default());
    } else {
        return Err(mp_err!(
            TypeError,
            "sort() needs items that compare: all numbers, all strings, all chars or all booleans"
        ));
    }
    Ok(())
}

fn zero(tc: Typecode) -> Dynamic {
    match tc.code() {
        'f' | 'd' => 0.0.into(),
        'c' => Dynamic::from_blob(vec![0]),
        _ => (0 as INT).into(),
    }
}

/// Checks a value against a typecode (as `Value`/`Array` do); floats take integers.
fn checked(tc: Typecode, v: Dynamic, func: &str) -> MpResult<Dynamic> {
    tc.bits(&v, &|| format!("{func}({:?})", tc.code()))?;
    if matches!(tc.code(), 'f' | 'd') {
        if let Ok(i) = v.as_int() {
            return Ok((i as rhai::FLOAT).into());
        }
    }
    Ok(v)
}

/// The proxy method an operation is, for messages.
pub(crate) fn method(op: &Op) -> &'static str {
    match op {
        Op::GetItem(_) => "[]",
        Op::SetItem(..) => "[]=",
        Op::Get(..) => "get",
        Op::Contains(_) => "contains",
        Op::Keys => "keys",
        Op::Values => "values",
        Op::Items => "items",
        Op::Len => "len",
        Op::Remove(_) => "remove",
        Op::Clear => "clear",
        Op::ToMap => "to_map",
        Op::Push(_) => "push",
        Op::Pop => "pop",
        Op::Insert(..) => "insert",
        Op::Reverse => "reverse",
        Op::Sort => "sort",
        Op::ToArray => "to_array",
        Op::Repr => "to_string",
        Op::GetValue => "value",
        Op::SetValue(_) => "value=",
        Op::Put(..) => "put",
        Op::Take(..) => "get",
        Op::QSize => "qsize",
        Op::IsEmpty => "empty",
        Op::IsFull => "full",
        Op::TaskDone => "task_done",
        Op::Join => "join",
        Op::Acquire(..) => "acquire",
        Op::Release => "release",
        Op::OwnerDied => "owner_died",
        Op::SemValue => "get_value",
        Op::Set => "set",
        Op::IsSet => "is_set",
        Op::Wait(_) => "wait",
        Op::Notify(_) => "notify",
        Op::Reset => "reset",
        Op::Abort => "abort",
        Op::Parties => "parties",
        Op::NWaiting => "n_waiting",
        Op::Broken => "broken",
    }
}

const UNIT: Result<Dynamic, rhai_mp_core::prelude::MpError> = Ok(Dynamic::UNIT);

/// Runs an operation on an object.
fn call(obj: &mut Obj, op: Op) -> MpResult<Dynamic> {
    let none = |kind: &str, op: &Op| mp_err!(TypeError, "a {kind} proxy has no method '{}'", method(op));
    match (obj, op) {
        (Obj::Dict(d), op) => match op {
            Op::GetItem(k) => {
                d.get(&Key::of(&k)?).cloned().ok_or_else(|| mp_err!(KeyError, "{}", repr(&k)).with("key", k))
            }
            Op::SetItem(k, v) => {
                d.set(Key::of(&k)?, v);
                UNIT
            }
            Op::Get(k, default) => Ok(d.get(&Key::of(&k)?).cloned().unwrap_or(default)),
            Op::Contains(k) => Ok(Key::of(&k).ok().is_some_and(|k| d.get(&k).is_some()).into()),
            Op::Keys => Ok(Dynamic::from_array(d.items.values().map(|(k, _)| k.value()).collect())),
            Op::Values => Ok(Dynamic::from_array(d.items.values().map(|(_, v)| v.clone()).collect())),
            Op::Items => Ok(Dynamic::from_array(
                d.items.values().map(|(k, v)| Dynamic::from_array(vec![k.value(), v.clone()])).collect(),
            )),
            Op::Len => Ok((d.items.len() as INT).into()),
            Op::Remove(k) => Ok(d.remove(&Key::of(&k)?).unwrap_or(Dynamic::UNIT)),
            Op::Clear => {
                *d = Dict::default();
                UNIT
            }
            Op::ToMap => Ok(d.items.values().map(|(k, v)| (k.text().into(), v.clone())).collect::<Map>().into()),
            Op::Repr => Ok(format!(
                "{{{}}}",
                d.items
                    .values()
                    .map(|(k, v)| format!("{}: {}", repr(&k.value()), repr(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .into()),
            op => Err(none("dict", &op)),
        },
        (Obj::List(l), op) => match op {
            Op::GetItem(i) => Ok(l[index(&i, l.len(), "list")?].clone()),
            Op::SetItem(i, v) => {
                let i = index(&i, l.len(), "list")?;
                l[i] = v;
                UNIT
            }
            Op::Push(v) => {
                l.push(v);
                UNIT
            }
            Op::Pop => l.pop().ok_or_else(|| mp_err!(IndexError, "pop from an empty list")),
            Op::Insert(i, v) => {
                let i = i.as_int().map_err(|_| mp_err!(TypeError, "insert() takes an integer index"))?;
                let n = l.len() as INT;
                let at = if i < 0 { (i + n).max(0) } else { i.min(n) };
                l.insert(at as usize, v);
                UNIT
            }
            Op::Remove(i) => {
                let i = index(&i, l.len(), "list")?;
                Ok(l.remove(i))
            }
            Op::Reverse => {
                l.reverse();
                UNIT
            }
            Op::Sort => sort(l).map(|_| Dynamic::UNIT),
            Op::Len => Ok((l.len() as INT).into()),
            Op::Contains(x) => Ok(l.iter().any(|v| repr(v) == repr(&x) && v.type_id() == x.type_id()).into()),
            Op::ToArray | Op::Keys => Ok(Dynamic::from_array(l.clone())),
            Op::Repr => Ok(repr(&Dynamic::from_array(l.clone())).into()),
            op => Err(none("list", &op)),
        },
        (Obj::Namespace(ns), op) => match op {
            Op::GetItem(name) => {
                let name = name.to_string();
                ns.get(&name).cloned().ok_or_else(|| mp_err!(KeyError, "the Namespace has no attribute '{name}'"))
            }
            Op::GetValue => {
                ns.get("value").cloned().ok_or_else(|| mp_err!(KeyError, "the Namespace has no attribute 'value'"))
            }
            Op::SetItem(name, v) => {
                ns.insert(name.to_string(), v);
                UNIT
            }
            Op::SetValue(v) => {
                ns.insert("value".to_string(), v);
                UNIT
            }
            Op::Contains(name) => Ok(ns.contains_key(&name.to_string()).into()),
            Op::ToMap => Ok(ns.iter().map(|(k, v)| (k.as_str().into(), v.clone())).collect::<Map>().into()),
            Op::Repr => Ok(format!(
                "Namespace({})",
                ns.iter().map(|(k, v)| format!("{k}={}", repr(v))).collect::<Vec<_>>().join(", ")
            )
            .into()),
            op => Err(none("Namespace", &op)),
        },
        (Obj::Value(tc, v), op) => match op {
            Op::GetValue => Ok(v.clone()),
            Op::SetValue(x) => {
                *v = checked(*tc, x, "Value")?;
                UNIT
            }
            Op::Repr => Ok(format!("Value('{}', {})", tc.code(), repr(v)).into()),
            op => Err(none("Value", &op)),
        },
        (Obj::Array(tc, a), op) => match op {
            Op::GetItem(i) => Ok(a[index(&i, a.len(), "Array")?].clone()),
            Op::SetItem(i, x) => {
                let i = index(&i, a.len(), "Array")?;
                a[i] = checked(*tc, x, "Array")?;
                UNIT
            }
            Op::Len => Ok((a.len() as INT).into()),
            Op::ToArray | Op::Keys => Ok(Dynamic::from_array(a.clone())),
            Op::Repr => Ok(format!("array('{}', {})", tc.code(), repr(&Dynamic::from_array(a.clone()))).into()),
            op => Err(none("Array", &op)),
        },
        (Obj::Handle(_), op) => Err(none("primitive", &op)),
    }
}
