//! Proxies (see the reference, "Manager"): handles on the objects a manager's server keeps,
//! as scripts see them. Every method is one typed request to the server. This file has
//! the proxy type and the methods of dicts, lists, namespaces, values and arrays (and the
//! names they share with queues and events: `get`, `clear`); `proxied.rs` has the methods
//! of the queues and synchronization primitives a TCP manager holds.
//!
//! A proxy names its object by the server's address, the manager's key and the object's
//! id; that is all that crosses a process boundary (no descriptors), so a proxy works in
//! any process it reaches — on another machine too, for a TCP manager's.

use super::client::{self, Address, Endpoint};
use super::protocol::{Op, Request, Timeout};
use rhai::plugin::*;
use rhai::{Array, Dynamic, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{MpResult, RhaiResult};
use rhai_mp_core::wire::{malformed, Handle, Portable, Reader, Writer};
use std::rc::Rc;

/// What a proxy stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `m.dict()`.
    Dict = 1,
    /// `m.list()`.
    List = 2,
    /// `m.Namespace()`.
    Namespace = 3,
    /// `m.Value(..)`.
    Value = 4,
    /// `m.Array(..)`.
    Array = 5,
    /// A TCP manager's `m.Queue()`.
    Queue = 6,
    /// A TCP manager's `m.JoinableQueue()`.
    JoinableQueue = 7,
    /// A TCP manager's `m.Lock()`.
    Lock = 8,
    /// A TCP manager's `m.RLock()`.
    RLock = 9,
    /// A TCP manager's `m.Semaphore()`.
    Semaphore = 10,
    /// A TCP manager's `m.BoundedSemaphore()`.
    BoundedSemaphore = 11,
    /// A TCP manager's `m.Condition()`.
    Condition = 12,
    /// A TCP manager's `m.Event()`.
    Event = 13,
    /// A TCP manager's `m.Barrier(..)`.
    Barrier = 14,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 14] = [
        Kind::Dict,
        Kind::List,
        Kind::Namespace,
        Kind::Value,
        Kind::Array,
        Kind::Queue,
        Kind::JoinableQueue,
        Kind::Lock,
        Kind::RLock,
        Kind::Semaphore,
        Kind::BoundedSemaphore,
        Kind::Condition,
        Kind::Event,
        Kind::Barrier,
    ];

    /// The kind numbered `b` on the wire.
    pub(crate) fn from_u8(b: u8) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| *k as u8 == b)
    }

    /// Whether it is data a manager keeps (a dict, list, namespace, value or array),
    /// rather than one of the primitives a TCP manager holds.
    pub(crate) fn is_data(self) -> bool {
        matches!(self, Kind::Dict | Kind::List | Kind::Namespace | Kind::Value | Kind::Array)
    }

    /// The object's type, for messages (`"Queue"`): for a primitive, the global that
    /// makes it.
    pub fn object(self) -> &'static str {
        match self {
            Kind::Dict => "dict",
            Kind::List => "list",
            Kind::Namespace => "Namespace",
            Kind::Value => "Value",
            Kind::Array => "Array",
            Kind::Queue => "Queue",
            Kind::JoinableQueue => "JoinableQueue",
            Kind::Lock => "Lock",
            Kind::RLock => "RLock",
            Kind::Semaphore => "Semaphore",
            Kind::BoundedSemaphore => "BoundedSemaphore",
            Kind::Condition => "Condition",
            Kind::Event => "Event",
            Kind::Barrier => "Barrier",
        }
    }

    /// Whether it is a queue.
    pub(super) fn is_queue(self) -> bool {
        matches!(self, Kind::Queue | Kind::JoinableQueue)
    }
}

/// A proxy: a handle on an object kept by a manager's server. Copies share it.
#[derive(Clone)]
pub struct Proxy(pub Rc<ProxyInner>);

/// What a proxy holds.
pub struct ProxyInner {
    /// The server.
    pub addr: Address,
    /// The object's id there.
    pub id: u64,
    /// What the object is.
    pub kind: Kind,
    /// In the process that made the manager: keeps it running while proxies exist.
    #[allow(dead_code)] // held, never read
    pub owner: Option<super::Manager>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{}Proxy id={}>", self.0.kind.object(), self.0.id)
    }
}

impl Proxy {
    /// Runs an operation on the proxied object.
    pub(crate) fn call(&self, op: Op) -> RhaiResult {
        client::request(&self.0.addr, &Request::Call { id: self.0.id, op })
    }

    /// The error for a method this proxy's object does not have.
    pub(super) fn no_method(&self, method: &str) -> Box<EvalAltResult> {
        mp_err!(TypeError, "a {} proxy has no method '{method}'", self.0.kind.object()).into()
    }
}

/// A proxy crosses as the server's address, the key and the object's id. A local manager's
/// (an abstract Unix socket) cannot leave this host.
impl Portable for Proxy {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        let (tcp, name) = match &self.0.addr.endpoint {
            Endpoint::Local(name) => (false, name),
            Endpoint::Tcp(address) => (true, address),
        };
        if !tcp && w.is_remote() {
            return Err(mp_err!(
                SerializationError,
                "a proxy of Manager() works on this host only: to share objects with other machines, make the manager with an address (Manager(#{{address: \"0.0.0.0:0\"}}))"
            ));
        }
        w.u64(self.0.id);
        w.u8(self.0.kind as u8);
        w.bool(tcp);
        w.str(name);
        w.bytes(&self.0.addr.authkey);
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        let id = r.u64()?;
        let kind = r.u8()?;
        let kind = Kind::from_u8(kind).ok_or_else(|| malformed(&format!("proxy kind {kind}")))?;
        let tcp = r.bool()?;
        let name = r.string()?;
        let endpoint = if tcp { Endpoint::Tcp(name) } else { Endpoint::Local(name) };
        let addr = Address { endpoint, authkey: r.bytes()?.to_vec() };
        Ok(Proxy(Rc::new(ProxyInner { addr, id, kind, owner: None })))
    }
}

impl Handle for Proxy {
    const KIND: &'static str = "Proxy";
}

/// Makes proxies work in `for` loops (over a dict's keys, a list's items), and as
/// iterables.
pub(crate) fn register(lib: &mut rhai::Module) {
    crate::opts::set_iterable(lib, std::any::TypeId::of::<Proxy>(), |v: Dynamic| {
        let p = v.cast::<Proxy>();
        match p.call(Op::Keys).and_then(|a| {
            a.try_cast::<Array>().ok_or_else(|| mp_err!(TypeError, "this proxy cannot be iterated").into())
        }) {
            Ok(items) => Box::new(items.into_iter().map(Ok)),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    });
}

/// The Rhai bindings: The methods of a manager's proxies.
#[export_module]
pub mod proxy_functions {
    use super::*;

    /// A proxy for an object kept by a manager: a dict, list, Namespace, Value or Array
    /// (any manager), or a Queue, lock, Event, Condition or Barrier (a TCP manager).
    pub type Proxy = super::Proxy;

    /// `proxy[key]`: a dict's value (`KeyError` if missing), a list's or array's item
    /// (`IndexError`), a namespace's property.
    ///
    /// ```rhai
    /// let x = d["a"];
    /// ```
    ///
    /// Throws when: as described; the key has an unsupported type (`TypeError`); the
    /// server is gone (`BrokenPipeError`).
    #[rhai_fn(global, index_get, return_raw)]
    pub fn get_item(p: &mut Proxy, key: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Op::GetItem(key))
    }

    /// `proxy[key] = value` (also `ns.name = value` on a namespace).
    ///
    /// ```rhai
    /// d["a"] = 1;
    /// ```
    ///
    /// Throws when: a list or array index is out of range (`IndexError`); the value does
    /// not fit an array's typecode; the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, index_set, return_raw)]
    pub fn set_item(p: &mut Proxy, key: Dynamic, value: Dynamic) -> Result<(), Box<EvalAltResult>> {
        p.call(Op::SetItem(key, value)).map(|_| ())
    }

    /// A managed Value's value (on a namespace: its property `value`).
    ///
    /// ```rhai
    /// print(v.value);
    /// ```
    ///
    /// Throws when: the proxy is not a Value or namespace (`TypeError`); the server is gone.
    #[rhai_fn(global, get = "value", return_raw)]
    pub fn get_value(p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Op::GetValue)
    }

    /// Sets a managed Value's value.
    ///
    /// ```rhai
    /// v.value = 3;
    /// ```
    ///
    /// Throws when: the value does not fit the typecode; the server is gone.
    #[rhai_fn(global, set = "value", return_raw)]
    pub fn set_value(p: &mut Proxy, x: Dynamic) -> Result<(), Box<EvalAltResult>> {
        p.call(Op::SetValue(x)).map(|_| ())
    }

    /// A dict's keys (with their types), a list's or array's items.
    ///
    /// ```rhai
    /// for k in d.keys() { print(k) }
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, return_raw)]
    pub fn keys(p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Op::Keys)
    }

    /// A dict's values.
    ///
    /// ```rhai
    /// print(d.values());
    /// ```
    ///
    /// Throws when: not a dict (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn values(p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Op::Values)
    }

    /// A dict's `[key, value]` pairs.
    ///
    /// ```rhai
    /// for kv in d.items() { print(`${kv[0]} = ${kv[1]}`) }
    /// ```
    ///
    /// Throws when: not a dict (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn items(p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Op::Items)
    }

    /// The number of entries or items.
    ///
    /// ```rhai
    /// print(l.len());
    /// ```
    ///
    /// Throws when: a namespace or Value (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn len(p: &mut Proxy) -> Result<INT, Box<EvalAltResult>> {
        p.call(Op::Len)?.as_int().map_err(|_| mp_err!(TypeError, "len() is not a number").into())
    }

    /// Whether a dict has the key (or a list the item, a namespace the property); also
    /// `k in d`.
    ///
    /// ```rhai
    /// if "a" in d { print(d["a"]) }
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, return_raw)]
    pub fn contains(p: &mut Proxy, key: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        Ok(p.call(Op::Contains(key))?.as_bool().unwrap_or(false))
    }

    /// A proxied queue's next item, waiting for one (`q.get()`).
    ///
    /// ```rhai
    /// let job = q.get();
    /// ```
    ///
    /// Throws when: not a queue (`TypeError`: a dict's `get` takes a key); the server is
    /// gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "get", return_raw)]
    pub fn get_next(p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        if !p.0.kind.is_queue() {
            return Err(mp_err!(TypeError, "get() of a {} proxy takes a key", p.0.kind.object()).into());
        }
        p.call(Op::Take(true, Timeout::Never))
    }

    /// A dict's value for `key`, or `()` if it has none; on a proxied queue, `get(block)`
    /// (`Empty` when `block` is false and the queue is empty).
    ///
    /// ```rhai
    /// let x = d.get("a");
    /// let item = q.get(false);
    /// ```
    ///
    /// Throws when: not a dict or queue (`TypeError`); `block` is not a bool (`TypeError`);
    /// the queue is empty (`Empty`, without blocking); the server is gone.
    #[rhai_fn(global, name = "get", return_raw)]
    pub fn get(p: &mut Proxy, key: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        if p.0.kind.is_queue() {
            let (block, timeout) = crate::manager::protocol::block_timeout(&key, &Dynamic::UNIT, "get")?;
            return p.call(Op::Take(block, timeout));
        }
        p.call(Op::Get(key, Dynamic::UNIT))
    }

    /// A dict's value for `key`, or `default`; on a proxied queue, `get(block, timeout)`
    /// (`Empty` after `timeout` seconds).
    ///
    /// ```rhai
    /// let n = d.get("n", 0);
    /// let item = q.get(true, 5);
    /// ```
    ///
    /// Throws when: not a dict or queue (`TypeError`); a bad `block` or `timeout`
    /// (`TypeError`, `ValueError`); no item in time (`Empty`); the server is gone.
    #[rhai_fn(global, name = "get", return_raw)]
    pub fn get_default(p: &mut Proxy, key: Dynamic, default: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        if p.0.kind.is_queue() {
            let (block, timeout) = crate::manager::protocol::block_timeout(&key, &default, "get")?;
            return p.call(Op::Take(block, timeout));
        }
        p.call(Op::Get(key, default))
    }

    /// Removes a dict's key (returning its value, or `()`), or a list's item at an index
    /// (returning it; `IndexError` if out of range).
    ///
    /// ```rhai
    /// d.remove("a");
    /// l.remove(0);
    /// ```
    ///
    /// Throws when: as described; the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn remove(p: &mut Proxy, key: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Op::Remove(key))
    }

    /// Empties a dict; on a proxied event, clears it.
    ///
    /// ```rhai
    /// d.clear();
    /// ```
    ///
    /// Throws when: not a dict or event (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn clear(p: &mut Proxy) -> Result<(), Box<EvalAltResult>> {
        p.call(Op::Clear).map(|_| ())
    }

    /// A copy of a dict (keys become strings) or namespace as an object map.
    ///
    /// ```rhai
    /// let copy = d.to_map();
    /// ```
    ///
    /// Throws when: not a dict or namespace (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn to_map(p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Op::ToMap)
    }

    /// Appends to a list.
    ///
    /// ```rhai
    /// l.push(4);
    /// ```
    ///
    /// Throws when: not a list (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn push(p: &mut Proxy, v: Dynamic) -> Result<(), Box<EvalAltResult>> {
        p.call(Op::Push(v)).map(|_| ())
    }

    /// Removes and returns a list's last item.
    ///
    /// ```rhai
    /// let last = l.pop();
    /// ```
    ///
    /// Throws when: the list is empty (`IndexError`); not a list (`TypeError`).
    #[rhai_fn(global, return_raw)]
    pub fn pop(p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Op::Pop)
    }

    /// Inserts into a list before index `i` (clamped, as Python's `insert`).
    ///
    /// ```rhai
    /// l.insert(0, "first");
    /// ```
    ///
    /// Throws when: not a list (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn insert(p: &mut Proxy, i: Dynamic, v: Dynamic) -> Result<(), Box<EvalAltResult>> {
        p.call(Op::Insert(i, v)).map(|_| ())
    }

    /// Reverses a list in place.
    ///
    /// ```rhai
    /// l.reverse();
    /// ```
    ///
    /// Throws when: not a list (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn reverse(p: &mut Proxy) -> Result<(), Box<EvalAltResult>> {
        p.call(Op::Reverse).map(|_| ())
    }

    /// Sorts a list in place (numbers, strings, chars or booleans).
    ///
    /// ```rhai
    /// l.sort();
    /// ```
    ///
    /// Throws when: the items do not compare (`TypeError`); not a list.
    #[rhai_fn(global, return_raw)]
    pub fn sort(p: &mut Proxy) -> Result<(), Box<EvalAltResult>> {
        p.call(Op::Sort).map(|_| ())
    }

    /// A copy of a list's or array's items.
    ///
    /// ```rhai
    /// let xs = l.to_array();
    /// ```
    ///
    /// Throws when: not a list or array (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn to_array(p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Op::ToArray)
    }

    /// The referent's contents: `{1: "1", "2": 2}`, `[1, 2]`, `Namespace(x=1)`.
    ///
    /// ```rhai
    /// print(d);
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "to_string", name = "to_debug", return_raw)]
    pub fn proxy_describe(p: &mut Proxy) -> Result<String, Box<EvalAltResult>> {
        Ok(p.call(Op::Repr)?.to_string())
    }
}
