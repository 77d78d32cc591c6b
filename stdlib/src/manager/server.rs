//! The manager's server: the loop its process runs (the native target `__manager_server`),
//! and the objects it keeps (dicts, lists, namespaces, values, arrays, and the primitives it
//! made for clients).
//!
//! One thread serves every connection in turn (`poll`), so each request runs alone and
//! sees the effects of all earlier ones: no lost updates, whatever the number of clients.
//! No request blocks the server: the synchronization primitives and queues a manager makes
//! are rhai-mp's own shared-memory ones, which clients use directly.
//!
//! Security: a connection must come from this user (`SO_PEERCRED`) and its first message
//! must be the manager's key; anything else is refused (`AuthenticationError` for the
//! client) and closed.
//!
//! Caveat: objects live until the server stops (proxies are not reference-counted).

use super::client::{AUTH_BAD, AUTH_OK};
use crate::opts;
use crate::typecode::Typecode;
use rhai::{Array, Dynamic, EvalAltResult, Map, NativeCallContext, INT};
use rhai_mp_core::{mp_err, ContextFns, MessageKind, MpError, MpResult, RemoteError};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

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

enum Obj {
    Dict(Dict),
    List(Array),
    Namespace(BTreeMap<String, Dynamic>),
    Value(Typecode, Dynamic),
    Array(Typecode, Array),
    /// A primitive made for clients (kept alive here).
    Handle(#[allow(dead_code)] Dynamic),
}

/// The listening socket handed to the server process.
#[derive(Debug, Clone)]
pub struct ManagerSocket(pub std::rc::Rc<OwnedFd>);

pub(crate) struct SocketCodec;

impl rhai_mp_core::HandleCodec for SocketCodec {
    fn kind(&self) -> &'static str {
        "ManagerSocket"
    }
    fn type_id(&self) -> std::any::TypeId {
        std::any::TypeId::of::<ManagerSocket>()
    }
    fn encode(&self, value: &Dynamic, fds: &mut Vec<OwnedFd>) -> MpResult<Vec<u8>> {
        let s = value.read_lock::<ManagerSocket>().ok_or_else(|| mp_err!(SerializationError, "not a socket"))?;
        fds.push(s.0.try_clone()?);
        Ok(Vec::new())
    }
    fn decode(&self, _data: &[u8], fds: Vec<OwnedFd>) -> MpResult<Dynamic> {
        let fd = fds.into_iter().next().ok_or_else(|| mp_err!(SerializationError, "malformed manager socket"))?;
        Ok(Dynamic::from(ManagerSocket(std::rc::Rc::new(fd))))
    }
}

fn same_uid(conn: &OwnedFd) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(conn, PeerCredentials).is_ok_and(|c| c.uid() == nix::unistd::getuid().as_raw())
}

/// Compares keys without stopping at the first difference.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

struct Conn {
    fd: OwnedFd,
    authed: bool,
}

/// The server loop: returns after a `shutdown` request.
pub fn serve(ctx: &NativeCallContext, listener: ManagerSocket, authkey: Vec<u8>) -> RhaiResult<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::socket::{accept4, SockFlag};
    // As Python's: Ctrl-C is for the script, not the server it keeps its data in.
    rhai_mp_core::ignore_sigint();
    let mut server = Server { objects: HashMap::new(), next_id: 0 };
    let mut conns: Vec<Conn> = Vec::new();
    let mut scratch = Vec::new();
    loop {
        let ready: Vec<bool> = {
            let mut fds = vec![PollFd::new(listener.0.as_fd(), PollFlags::POLLIN)];
            fds.extend(conns.iter().map(|c| PollFd::new(c.fd.as_fd(), PollFlags::POLLIN)));
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(MpError::from(e).into()),
                Ok(_) => {}
            }
            fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect()
        };
        let mut closed = Vec::new();
        for (i, c) in conns.iter_mut().enumerate() {
            if !ready[i + 1] {
                continue;
            }
            // A client in a loop sends its next request within microseconds: serve it at
            // once (a few dozen in a row at most, so that others get their turn).
            for turn in 0..64 {
                if turn > 0 && !rhai_mp_core::spin_while(|| !readable_now(&c.fd)) {
                    break;
                }
                match serve_one(&mut server, ctx, c, &authkey, &mut scratch) {
                    Step::Continue => {}
                    Step::Close => {
                        closed.push(i);
                        break;
                    }
                    Step::Stop => return Ok(()),
                }
            }
        }
        for i in closed.into_iter().rev() {
            conns.remove(i);
        }
        if ready[0] {
            if let Ok(raw) = accept4(listener.0.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                let fd = rhai_mp_core::own_fd(raw);
                if same_uid(&fd) {
                    conns.push(Conn { fd, authed: false });
                }
            }
        }
    }
}

enum Step {
    Continue,
    Close,
    Stop,
}

fn readable_now(fd: &OwnedFd) -> bool {
    rhai_mp_core::wait_readable(fd.as_fd(), Some(std::time::Duration::ZERO)).unwrap_or(true)
}

/// Reads and answers one message of a connection.
fn serve_one(
    server: &mut Server,
    ctx: &NativeCallContext,
    c: &mut Conn,
    authkey: &[u8],
    scratch: &mut Vec<u8>,
) -> Step {
    {
        {
            let msg = match rhai_mp_core::transport::recv_message(c.fd.as_fd(), scratch) {
                Ok(Some(m)) => m,
                _ => return Step::Close,
            };
            if !c.authed {
                let ok = msg.kind == MessageKind::Bytes && same_key(&msg.data, authkey);
                let answer = if ok { AUTH_OK } else { AUTH_BAD };
                let _ = rhai_mp_core::transport::send(c.fd.as_fd(), MessageKind::Bytes, answer, &[]);
                if ok {
                    c.authed = true;
                    return Step::Continue;
                }
                return Step::Close;
            }
            let (reply, stop) = match server.request(ctx, &msg.data, msg.fds) {
                Ok((v, stop)) => (Dynamic::from_array(vec![true.into(), v]), stop),
                Err(e) => (Dynamic::from_array(vec![false.into(), e]), false),
            };
            let packet = match rhai_mp_core::encode(&reply, "reply") {
                Ok(p) => p,
                Err(e) => {
                    match rhai_mp_core::encode(&Dynamic::from_array(vec![false.into(), e.to_map().into()]), "reply") {
                        Ok(p) => p,
                        Err(_) => return Step::Close,
                    }
                }
            };
            let sent = rhai_mp_core::transport::send(c.fd.as_fd(), MessageKind::Value, &packet.bytes, &packet.fds);
            if stop {
                return Step::Stop;
            }
            if sent.is_err() {
                return Step::Close;
            }
            Step::Continue
        }
    }
}

struct Server {
    objects: HashMap<u64, Obj>,
    next_id: u64,
}

/// The value a local `catch` would have received for `e`.
fn caught(e: Box<EvalAltResult>) -> Dynamic {
    let who = rhai_mp_core::with_state(|s| s.name.clone());
    RemoteError::capture(&e, &who, rhai_mp_core::pid() as i32).value
}

fn err(e: MpError) -> Dynamic {
    e.to_map().into()
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
    if let Some(p) = v.read_lock::<super::client::Proxy>() {
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

impl Server {
    fn add(&mut self, obj: Obj) -> Dynamic {
        self.next_id += 1;
        self.objects.insert(self.next_id, obj);
        (self.next_id as INT).into()
    }

    /// Decodes and runs one request: `Ok((value, stop))` or `Err(error value)`.
    fn request(&mut self, ctx: &NativeCallContext, data: &[u8], fds: Vec<OwnedFd>) -> Result<(Dynamic, bool), Dynamic> {
        let bad = || err(mp_err!(SerializationError, "malformed request to the manager's server"));
        let msg = rhai_mp_core::decode(data, fds, &ContextFns(ctx)).map_err(err)?;
        let mut parts = msg.try_cast::<Array>().ok_or_else(bad)?;
        if parts.len() != 3 {
            return Err(bad());
        }
        let args = parts.pop().unwrap().try_cast::<Array>().ok_or_else(bad)?;
        let method = parts.pop().unwrap().into_string().map_err(|_| bad())?;
        let id = parts.pop().unwrap().as_int().map_err(|_| bad())? as u64;
        if id == 0 {
            if method == "shutdown" {
                return Ok((Dynamic::UNIT, true));
            }
            return self.manager_call(ctx, &method, args).map(|v| (v, false));
        }
        let obj = self
            .objects
            .get_mut(&id)
            .ok_or_else(|| err(mp_err!(KeyError, "the manager has no object {id} (a proxy from another manager?)")))?;
        call(obj, &method, args).map(|v| (v, false)).map_err(err)
    }

    fn manager_call(&mut self, ctx: &NativeCallContext, method: &str, args: Array) -> Result<Dynamic, Dynamic> {
        let arg = |i: usize| args.get(i).cloned().unwrap_or(Dynamic::UNIT);
        match method {
            "dict" => {
                let mut d = Dict::default();
                let init = arg(0);
                if init.is_map() {
                    for (k, v) in init.cast::<Map>() {
                        d.set(Key::Str(k.to_string()), v);
                    }
                } else if !init.is_unit() {
                    let t = opts::type_name(&init);
                    let pairs = opts::items(init).map_err(|_| {
                        err(mp_err!(TypeError, "dict() takes an object map or an array of [key, value] pairs, not {t}"))
                    })?;
                    for p in pairs {
                        let kv = p.try_cast::<Array>().filter(|a| a.len() == 2).ok_or_else(|| {
                            err(mp_err!(TypeError, "dict() takes an object map or an array of [key, value] pairs"))
                        })?;
                        d.set(Key::of(&kv[0]).map_err(err)?, kv[1].clone());
                    }
                }
                Ok(self.add(Obj::Dict(d)))
            }
            "list" => {
                let init = arg(0);
                let items = if init.is_unit() {
                    Array::new()
                } else {
                    opts::items(init).map_err(|e| err(mp_err!(TypeError, "list() takes an iterable: {}", e.message)))?
                };
                Ok(self.add(Obj::List(items)))
            }
            "Namespace" => Ok(self.add(Obj::Namespace(BTreeMap::new()))),
            "Value" => {
                let tc = Typecode::parse(&arg(0), "Value").map_err(err)?;
                let v = checked(tc, arg(1), "Value").map_err(err)?;
                Ok(self.add(Obj::Value(tc, v)))
            }
            "Array" => {
                let tc = Typecode::parse(&arg(0), "Array").map_err(err)?;
                let init = arg(1);
                let items = if let Ok(n) = init.as_int() {
                    if n < 0 {
                        return Err(err(mp_err!(ValueError, "Array size must be non-negative, not {n}")));
                    }
                    (0..n).map(|_| zero(tc)).collect()
                } else {
                    let xs = opts::items(init)
                        .map_err(|e| err(mp_err!(TypeError, "Array() takes a size or an iterable: {}", e.message)))?;
                    xs.into_iter().map(|x| checked(tc, x, "Array")).collect::<MpResult<Array>>().map_err(err)?
                };
                Ok(self.add(Obj::Array(tc, items)))
            }
            "create" => {
                const MADE: &[&str] = &[
                    "Lock",
                    "RLock",
                    "Semaphore",
                    "BoundedSemaphore",
                    "Condition",
                    "Event",
                    "Barrier",
                    "Queue",
                    "JoinableQueue",
                ];
                let name = arg(0).into_string().map_err(|_| err(mp_err!(TypeError, "bad constructor name")))?;
                if !MADE.contains(&name.as_str()) {
                    return Err(err(mp_err!(ValueError, "a manager cannot make a '{name}'")));
                }
                let mut rest = arg(1).try_cast::<Array>().unwrap_or_default();
                let mut refs: Vec<&mut Dynamic> = rest.iter_mut().collect();
                let v = ctx.call_fn_raw(&name, false, false, &mut refs).map_err(caught)?;
                let _ = self.add(Obj::Handle(v.clone()));
                Ok(v)
            }
            "ping" => Ok(Dynamic::UNIT),
            other => Err(err(mp_err!(ValueError, "a manager has no method '{other}'"))),
        }
    }
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

fn kind_of(obj: &Obj) -> &'static str {
    match obj {
        Obj::Dict(_) => "dict",
        Obj::List(_) => "list",
        Obj::Namespace(_) => "Namespace",
        Obj::Value(..) => "Value",
        Obj::Array(..) => "Array",
        Obj::Handle(_) => "primitive",
    }
}

/// Runs a method on an object.
fn call(obj: &mut Obj, method: &str, args: Array) -> MpResult<Dynamic> {
    let arg = |i: usize| args.get(i).cloned().unwrap_or(Dynamic::UNIT);
    let none = |obj: &Obj| mp_err!(TypeError, "a {} proxy has no method '{method}'", kind_of(obj));
    match obj {
        Obj::Dict(d) => match method {
            "get_item" => {
                let k = Key::of(&arg(0))?;
                d.get(&k).cloned().ok_or_else(|| mp_err!(KeyError, "{}", repr(&arg(0))).with("key", arg(0)))
            }
            "set_item" => {
                d.set(Key::of(&arg(0))?, arg(1));
                Ok(Dynamic::UNIT)
            }
            "get" => Ok(d.get(&Key::of(&arg(0))?).cloned().unwrap_or_else(|| arg(1))),
            "contains" => Ok(Key::of(&arg(0)).ok().is_some_and(|k| d.get(&k).is_some()).into()),
            "keys" => Ok(Dynamic::from_array(d.items.values().map(|(k, _)| k.value()).collect())),
            "values" => Ok(Dynamic::from_array(d.items.values().map(|(_, v)| v.clone()).collect())),
            "items" => Ok(Dynamic::from_array(
                d.items.values().map(|(k, v)| Dynamic::from_array(vec![k.value(), v.clone()])).collect(),
            )),
            "len" => Ok((d.items.len() as INT).into()),
            "remove" => Ok(d.remove(&Key::of(&arg(0))?).unwrap_or(Dynamic::UNIT)),
            "clear" => {
                *d = Dict::default();
                Ok(Dynamic::UNIT)
            }
            "to_map" => {
                let mut m = Map::new();
                for (k, v) in d.items.values() {
                    m.insert(k.text().into(), v.clone());
                }
                Ok(m.into())
            }
            "repr" => Ok(format!(
                "{{{}}}",
                d.items
                    .values()
                    .map(|(k, v)| format!("{}: {}", repr(&k.value()), repr(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .into()),
            _ => Err(none(obj)),
        },
        Obj::List(l) => match method {
            "get_item" => Ok(l[index(&arg(0), l.len(), "list")?].clone()),
            "set_item" => {
                let i = index(&arg(0), l.len(), "list")?;
                l[i] = arg(1);
                Ok(Dynamic::UNIT)
            }
            "push" => {
                l.push(arg(0));
                Ok(Dynamic::UNIT)
            }
            "pop" => l.pop().ok_or_else(|| mp_err!(IndexError, "pop from an empty list")),
            "insert" => {
                let i = arg(0).as_int().map_err(|_| mp_err!(TypeError, "insert() takes an integer index"))?;
                let n = l.len() as INT;
                let at = if i < 0 { (i + n).max(0) } else { i.min(n) };
                l.insert(at as usize, arg(1));
                Ok(Dynamic::UNIT)
            }
            "remove" => {
                let i = index(&arg(0), l.len(), "list")?;
                Ok(l.remove(i))
            }
            "reverse" => {
                l.reverse();
                Ok(Dynamic::UNIT)
            }
            "sort" => sort(l).map(|_| Dynamic::UNIT),
            "len" => Ok((l.len() as INT).into()),
            "contains" => {
                let x = arg(0);
                Ok(l.iter().any(|v| repr(v) == repr(&x) && v.type_id() == x.type_id()).into())
            }
            "to_array" | "keys" => Ok(Dynamic::from_array(l.clone())),
            "repr" => Ok(repr(&Dynamic::from_array(l.clone())).into()),
            _ => Err(none(obj)),
        },
        Obj::Namespace(ns) => match method {
            "get_item" | "get_value" => {
                let name = if method == "get_value" { "value".to_string() } else { arg(0).to_string() };
                ns.get(&name).cloned().ok_or_else(|| mp_err!(KeyError, "the Namespace has no attribute '{name}'"))
            }
            "set_item" | "set_value" => {
                let (name, v) =
                    if method == "set_value" { ("value".to_string(), arg(0)) } else { (arg(0).to_string(), arg(1)) };
                ns.insert(name, v);
                Ok(Dynamic::UNIT)
            }
            "contains" => Ok(ns.contains_key(&arg(0).to_string()).into()),
            "to_map" => Ok(ns.iter().map(|(k, v)| (k.as_str().into(), v.clone())).collect::<Map>().into()),
            "repr" => Ok(format!(
                "Namespace({})",
                ns.iter().map(|(k, v)| format!("{k}={}", repr(v))).collect::<Vec<_>>().join(", ")
            )
            .into()),
            _ => Err(none(obj)),
        },
        Obj::Value(tc, v) => match method {
            "get_value" => Ok(v.clone()),
            "set_value" => {
                *v = checked(*tc, arg(0), "Value")?;
                Ok(Dynamic::UNIT)
            }
            "repr" => Ok(format!("Value('{}', {})", tc.code(), repr(v)).into()),
            _ => Err(none(obj)),
        },
        Obj::Array(tc, a) => match method {
            "get_item" => Ok(a[index(&arg(0), a.len(), "Array")?].clone()),
            "set_item" => {
                let i = index(&arg(0), a.len(), "Array")?;
                a[i] = checked(*tc, arg(1), "Array")?;
                Ok(Dynamic::UNIT)
            }
            "len" => Ok((a.len() as INT).into()),
            "to_array" | "keys" => Ok(Dynamic::from_array(a.clone())),
            "repr" => Ok(format!("array('{}', {})", tc.code(), repr(&Dynamic::from_array(a.clone()))).into()),
            _ => Err(none(obj)),
        },
        Obj::Handle(_) => Err(none(obj)),
    }
}
