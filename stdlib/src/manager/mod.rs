//! `Manager()` and its proxies (API.md, "Manager"): a server process that keeps dicts,
//! lists, namespaces, values and arrays for every process that holds a proxy, and makes
//! synchronization primitives and queues for them.
//!
//! - `server.rs`: the server process's loop and its objects;
//! - `client.rs`: proxies, connections and authentication.
//!
//! The server is a daemon child started with the current start method (so it is killed
//! if its parent dies, and terminated when the main script ends); the manager shuts it
//! down when its last copy in the process that made it goes away (proxies made there keep
//! it). Caveat: the primitives and queues a manager makes (`m.Lock()`, `m.Queue()` …) are
//! rhai-mp's shared-memory ones, made in the server and used directly by every process:
//! they behave exactly as the globals, and they keep working after `shutdown()`.

mod client;
mod server;

use self::client::{Address, Kind, Proxy, ProxyInner};
use crate::opts;
use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, FnPtr, INT};
use rhai_mp_core::{mp_err, MpResult, Process};
use std::cell::Cell;
use std::rc::Rc;

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// A manager handle; copies share it.
#[derive(Clone)]
pub struct Manager(Rc<ManagerInner>);

pub struct ManagerInner {
    process: Process,
    addr: Address,
    creator: u32,
    stopped: Cell<bool>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<Manager address={:?}>", self.0.addr.name)
    }
}

fn authkey() -> MpResult<Vec<u8>> {
    use std::io::Read;
    let mut key = vec![0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(key)
}

impl Manager {
    fn start(ctx: &NativeCallContext, method: Option<rhai_mp_core::StartMethod>) -> RhaiResult<Manager> {
        use nix::sys::socket::{self as sock, AddressFamily, SockFlag, SockType, UnixAddr};
        let name = format!(
            "rhai-mp-manager-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
        );
        let listener = sock::socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)
            .map_err(rhai_mp_core::MpError::from)?;
        sock::bind(
            listener.as_raw_fd(),
            &UnixAddr::new_abstract(name.as_bytes()).map_err(rhai_mp_core::MpError::from)?,
        )
        .map_err(rhai_mp_core::MpError::from)?;
        sock::listen(&listener, sock::Backlog::new(128).map_err(rhai_mp_core::MpError::from)?)
            .map_err(rhai_mp_core::MpError::from)?;
        let key = authkey()?;
        let target = FnPtr::new("__manager_server")?;
        let args: Array =
            vec![Dynamic::from(server::ManagerSocket(Rc::new(listener))), Dynamic::from_blob(key.clone())];
        let process = Process::new(Some(target), args, None, Some(true), method);
        process.set_name(process.name().replacen("Process", "SyncManager", 1));
        process.start(ctx)?;
        // Only the server may hold the listening socket: once it is gone, connecting fails.
        process.forget_args();
        Ok(Manager(Rc::new(ManagerInner {
            process,
            addr: Address { name, authkey: key },
            creator: rhai_mp_core::pid(),
            stopped: Cell::new(false),
        })))
    }

    fn proxy(&self, ctx: &NativeCallContext, kind: Kind, method: &str, args: Array) -> RhaiResult<Proxy> {
        let id = client::request(Some(ctx), &self.0.addr, 0, method, args)?;
        let id = id.as_int().map_err(|_| mp_err!(SerializationError, "malformed reply from the manager's server"))?;
        Ok(Proxy(Rc::new(ProxyInner { addr: self.0.addr.clone(), id: id as u64, kind, owner: Some(self.clone()) })))
    }

    fn create(&self, ctx: &NativeCallContext, name: &str, args: Array) -> RhaiResult<Dynamic> {
        client::request(Some(ctx), &self.0.addr, 0, "create", vec![name.into(), Dynamic::from_array(args)])
    }
}

impl ManagerInner {
    /// Asks the server to stop, then makes sure it did.
    fn shutdown(&self) {
        if self.stopped.replace(true) || self.creator != rhai_mp_core::pid() {
            return;
        }
        let _ = client::request(None, &self.addr, 0, "shutdown", Array::new());
        client::forget(&self.addr);
        if self.process.join(Some(5.0)).is_err() || matches!(self.process.exitcode(), Ok(None)) {
            let _ = self.process.kill();
            let _ = self.process.join(Some(5.0));
        }
    }
}

impl Drop for ManagerInner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

use std::os::fd::AsRawFd;

pub(crate) fn register(lib: &mut rhai::Module) {
    lib.set_iter_result(std::any::TypeId::of::<Proxy>(), |v: Dynamic| {
        let p = v.cast::<Proxy>();
        match p.call(None, "keys", Array::new()).and_then(|a| {
            a.try_cast::<Array>().ok_or_else(|| mp_err!(TypeError, "this proxy cannot be iterated").into())
        }) {
            Ok(items) => Box::new(items.into_iter().map(Ok)),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    });
}

pub(crate) fn register_codecs() {
    rhai_mp_core::register_codec(client::ProxyCodec);
    rhai_mp_core::register_codec(server::SocketCodec);
}

fn items_arg(v: Dynamic, func: &str) -> MpResult<Dynamic> {
    if v.is_map() || v.is_unit() {
        return Ok(v);
    }
    let t = opts::type_name(&v);
    opts::items(v)
        .map(Dynamic::from_array)
        .map_err(|_| mp_err!(TypeError, "{func}() takes an iterable (array, range, string or blob), not {t}"))
}

#[export_module]
pub mod manager_functions {
    use super::*;

    /// A manager: a server process that keeps shared objects for proxies.
    pub type Manager = super::Manager;
    /// A proxy for a dict, list, Namespace, Value or Array kept by a manager.
    pub type Proxy = super::client::Proxy;
    /// The manager server's listening socket (internal).
    pub type ManagerSocket = super::server::ManagerSocket;

    /// Starts a manager's server process (with the current start method).
    ///
    /// ```rhai
    /// let m = Manager();
    /// let d = m.dict();
    /// ```
    ///
    /// Throws when: as `Process.start()` (the missing `__main__` guard, a daemon caller …);
    /// the OS refuses (`OSError`).
    #[rhai_fn(name = "Manager", return_raw)]
    pub fn manager(ctx: NativeCallContext) -> Result<Manager, Box<EvalAltResult>> {
        super::Manager::start(&ctx, None)
    }

    /// `Manager()` whose server starts with this context's start method.
    ///
    /// ```rhai
    /// let m = get_context("fork").Manager();
    /// ```
    ///
    /// Throws when: as `Manager()`.
    #[rhai_fn(global, name = "Manager", return_raw)]
    pub fn ctx_manager(ctx: NativeCallContext, c: &mut crate::context::Context) -> Result<Manager, Box<EvalAltResult>> {
        super::Manager::start(&ctx, Some(c.0))
    }

    /// Stops the server; proxies then throw `BrokenPipeError`. Also happens when the last
    /// copy of the manager (and of the proxies it made) goes away, and at the end of the
    /// main script.
    ///
    /// ```rhai
    /// m.shutdown();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global)]
    pub fn shutdown(m: &mut Manager) {
        m.0.shutdown();
    }

    /// The server's socket name (an abstract Unix socket).
    ///
    /// ```rhai
    /// print(m.address);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, get = "address")]
    pub fn address(m: &mut Manager) -> String {
        m.0.addr.name.clone()
    }

    /// The pid of the server process.
    ///
    /// ```rhai
    /// print(m.pid);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, get = "pid")]
    pub fn pid(m: &mut Manager) -> INT {
        m.0.process.pid().ok().flatten().unwrap_or(0) as INT
    }

    /// `<Manager address=..>`.
    ///
    /// ```rhai
    /// print(m);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug")]
    pub fn manager_describe(m: &mut Manager) -> String {
        format!("{m:?}")
    }

    /// An empty managed dict.
    ///
    /// ```rhai
    /// let d = m.dict();
    /// d[1] = "1"; d["2"] = 2; d[0.25] = ();
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "dict", return_raw)]
    pub fn dict(ctx: NativeCallContext, m: &mut Manager) -> Result<Proxy, Box<EvalAltResult>> {
        m.proxy(&ctx, Kind::Dict, "dict", Array::new())
    }

    /// A managed dict holding `init` (an object map, or an array of `[key, value]` pairs).
    ///
    /// ```rhai
    /// let d = m.dict(#{a: 1, b: 2});
    /// ```
    ///
    /// Throws when: `init` is neither (`TypeError`); the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "dict", return_raw)]
    pub fn dict_init(ctx: NativeCallContext, m: &mut Manager, init: Dynamic) -> Result<Proxy, Box<EvalAltResult>> {
        m.proxy(&ctx, Kind::Dict, "dict", vec![init])
    }

    /// An empty managed list.
    ///
    /// ```rhai
    /// let l = m.list();
    /// l.push(1);
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "list", return_raw)]
    pub fn list(ctx: NativeCallContext, m: &mut Manager) -> Result<Proxy, Box<EvalAltResult>> {
        m.proxy(&ctx, Kind::List, "list", Array::new())
    }

    /// A managed list holding the items of `init`.
    ///
    /// ```rhai
    /// let l = m.list(0..5);
    /// ```
    ///
    /// Throws when: `init` is not iterable (`TypeError`); the server is gone.
    #[rhai_fn(global, name = "list", return_raw)]
    pub fn list_init(ctx: NativeCallContext, m: &mut Manager, init: Dynamic) -> Result<Proxy, Box<EvalAltResult>> {
        let init = items_arg(init, "list")?;
        m.proxy(&ctx, Kind::List, "list", vec![init])
    }

    /// A managed namespace: set and read any property.
    ///
    /// ```rhai
    /// let ns = m.Namespace();
    /// ns.x = 1;
    /// print(ns.x);
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "Namespace", return_raw)]
    pub fn namespace(ctx: NativeCallContext, m: &mut Manager) -> Result<Proxy, Box<EvalAltResult>> {
        m.proxy(&ctx, Kind::Namespace, "Namespace", Array::new())
    }

    /// A managed value of a typecode, read and written as `.value`.
    ///
    /// ```rhai
    /// let v = m.Value("i", 0);
    /// v.value += 1;
    /// ```
    ///
    /// Throws when: the typecode is unknown or the value does not fit it (as `Value()`).
    #[rhai_fn(global, name = "Value", return_raw)]
    pub fn value(
        ctx: NativeCallContext,
        m: &mut Manager,
        tc: Dynamic,
        v: Dynamic,
    ) -> Result<Proxy, Box<EvalAltResult>> {
        m.proxy(&ctx, Kind::Value, "Value", vec![tc, v])
    }

    /// `m.Value(tc, v, lock)`: as the global `Value`'s signature; a managed value has no
    /// lock of its own (each request is atomic), so `lock` is accepted and ignored, as in
    /// Python.
    ///
    /// ```rhai
    /// let v = m.Value("d", 0.5, false);
    /// ```
    ///
    /// Throws when: as `m.Value(tc, v)`.
    #[rhai_fn(global, name = "Value", return_raw)]
    pub fn value_lock(
        ctx: NativeCallContext,
        m: &mut Manager,
        tc: Dynamic,
        v: Dynamic,
        _lock: Dynamic,
    ) -> Result<Proxy, Box<EvalAltResult>> {
        value(ctx, m, tc, v)
    }

    /// `m.Array(tc, init, lock)`: `lock` is accepted and ignored, as for `m.Value`.
    ///
    /// ```rhai
    /// let a = m.Array("i", 4, true);
    /// ```
    ///
    /// Throws when: as `m.Array(tc, init)`.
    #[rhai_fn(global, name = "Array", return_raw)]
    pub fn array_lock(
        ctx: NativeCallContext,
        m: &mut Manager,
        tc: Dynamic,
        init: Dynamic,
        _lock: Dynamic,
    ) -> Result<Proxy, Box<EvalAltResult>> {
        array(ctx, m, tc, init)
    }

    /// A managed array of a typecode: a size, or the initial items.
    ///
    /// ```rhai
    /// let a = m.Array("i", [1, 2, 3]);
    /// a[0] = 5;
    /// ```
    ///
    /// Throws when: as `Array()`.
    #[rhai_fn(global, name = "Array", return_raw)]
    pub fn array(
        ctx: NativeCallContext,
        m: &mut Manager,
        tc: Dynamic,
        init: Dynamic,
    ) -> Result<Proxy, Box<EvalAltResult>> {
        let init = if init.is_int() { init } else { items_arg(init, "Array")? };
        m.proxy(&ctx, Kind::Array, "Array", vec![tc, init])
    }

    /// A `Lock` made by the manager's server.
    ///
    /// ```rhai
    /// let lock = m.Lock();
    /// hold(lock, || print("locked"));
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "Lock", return_raw)]
    pub fn lock(ctx: NativeCallContext, m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(&ctx, "Lock", Array::new())
    }

    /// An `RLock` made by the manager's server.
    ///
    /// ```rhai
    /// let r = m.RLock();
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "RLock", return_raw)]
    pub fn rlock(ctx: NativeCallContext, m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(&ctx, "RLock", Array::new())
    }

    /// A `Semaphore(1)` made by the manager's server.
    ///
    /// ```rhai
    /// let s = m.Semaphore();
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "Semaphore", return_raw)]
    pub fn semaphore(ctx: NativeCallContext, m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(&ctx, "Semaphore", Array::new())
    }

    /// A `Semaphore(n)` made by the manager's server.
    ///
    /// ```rhai
    /// let s = m.Semaphore(3);
    /// ```
    ///
    /// Throws when: as `Semaphore(n)` (`ValueError` if negative); the server is gone.
    #[rhai_fn(global, name = "Semaphore", return_raw)]
    pub fn semaphore_n(ctx: NativeCallContext, m: &mut Manager, n: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(&ctx, "Semaphore", vec![n])
    }

    /// A `BoundedSemaphore(1)` made by the manager's server.
    ///
    /// ```rhai
    /// let s = m.BoundedSemaphore();
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "BoundedSemaphore", return_raw)]
    pub fn bounded(ctx: NativeCallContext, m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(&ctx, "BoundedSemaphore", Array::new())
    }

    /// A `BoundedSemaphore(n)` made by the manager's server.
    ///
    /// ```rhai
    /// let s = m.BoundedSemaphore(2);
    /// ```
    ///
    /// Throws when: as `BoundedSemaphore(n)`; the server is gone.
    #[rhai_fn(global, name = "BoundedSemaphore", return_raw)]
    pub fn bounded_n(ctx: NativeCallContext, m: &mut Manager, n: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(&ctx, "BoundedSemaphore", vec![n])
    }

    /// A `Condition()` made by the manager's server.
    ///
    /// ```rhai
    /// let c = m.Condition();
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "Condition", return_raw)]
    pub fn condition(ctx: NativeCallContext, m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(&ctx, "Condition", Array::new())
    }

    /// A `Condition(lock)` made by the manager's server.
    ///
    /// ```rhai
    /// let c = m.Condition(m.RLock());
    /// ```
    ///
    /// Throws when: as `Condition(lock)`; the server is gone.
    #[rhai_fn(global, name = "Condition", return_raw)]
    pub fn condition_lock(
        ctx: NativeCallContext,
        m: &mut Manager,
        lock: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(&ctx, "Condition", vec![lock])
    }

    /// An `Event` made by the manager's server.
    ///
    /// ```rhai
    /// let e = m.Event();
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "Event", return_raw)]
    pub fn event(ctx: NativeCallContext, m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(&ctx, "Event", Array::new())
    }

    /// A `Barrier(parties)` made by the manager's server.
    ///
    /// ```rhai
    /// let b = m.Barrier(2);
    /// ```
    ///
    /// Throws when: as `Barrier(n)`; the server is gone.
    #[rhai_fn(global, name = "Barrier", return_raw)]
    pub fn barrier(ctx: NativeCallContext, m: &mut Manager, n: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(&ctx, "Barrier", vec![n])
    }

    /// A `Barrier(parties, options)` made by the manager's server.
    ///
    /// ```rhai
    /// let b = m.Barrier(2, #{timeout: 5});
    /// ```
    ///
    /// Throws when: as `Barrier(..)`; the server is gone.
    #[rhai_fn(global, name = "Barrier", return_raw)]
    pub fn barrier2(
        ctx: NativeCallContext,
        m: &mut Manager,
        n: Dynamic,
        o: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(&ctx, "Barrier", vec![n, o])
    }

    /// A `Queue()` made by the manager's server.
    ///
    /// ```rhai
    /// let q = m.Queue();
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "Queue", return_raw)]
    pub fn queue(ctx: NativeCallContext, m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(&ctx, "Queue", Array::new())
    }

    /// A `Queue(maxsize)` made by the manager's server.
    ///
    /// ```rhai
    /// let q = m.Queue(10);
    /// ```
    ///
    /// Throws when: as `Queue(maxsize)`; the server is gone.
    #[rhai_fn(global, name = "Queue", return_raw)]
    pub fn queue_max(ctx: NativeCallContext, m: &mut Manager, n: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(&ctx, "Queue", vec![n])
    }

    /// A `JoinableQueue()` made by the manager's server.
    ///
    /// ```rhai
    /// let q = m.JoinableQueue();
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "JoinableQueue", return_raw)]
    pub fn joinable(ctx: NativeCallContext, m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(&ctx, "JoinableQueue", Array::new())
    }

    /// A `JoinableQueue(maxsize)` made by the manager's server.
    ///
    /// ```rhai
    /// let q = m.JoinableQueue(10);
    /// ```
    ///
    /// Throws when: as `JoinableQueue(maxsize)`; the server is gone.
    #[rhai_fn(global, name = "JoinableQueue", return_raw)]
    pub fn joinable_max(ctx: NativeCallContext, m: &mut Manager, n: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(&ctx, "JoinableQueue", vec![n])
    }

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
    pub fn get_item(ctx: NativeCallContext, p: &mut Proxy, key: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Some(&ctx), "get_item", vec![key])
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
    pub fn set_item(
        ctx: NativeCallContext,
        p: &mut Proxy,
        key: Dynamic,
        value: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        p.call(Some(&ctx), "set_item", vec![key, value]).map(|_| ())
    }

    /// A managed Value's value (on a namespace: its property `value`).
    ///
    /// ```rhai
    /// print(v.value);
    /// ```
    ///
    /// Throws when: the proxy is not a Value or namespace (`TypeError`); the server is gone.
    #[rhai_fn(global, get = "value", return_raw)]
    pub fn get_value(ctx: NativeCallContext, p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Some(&ctx), "get_value", Array::new())
    }

    /// Sets a managed Value's value.
    ///
    /// ```rhai
    /// v.value = 3;
    /// ```
    ///
    /// Throws when: the value does not fit the typecode; the server is gone.
    #[rhai_fn(global, set = "value", return_raw)]
    pub fn set_value(ctx: NativeCallContext, p: &mut Proxy, x: Dynamic) -> Result<(), Box<EvalAltResult>> {
        p.call(Some(&ctx), "set_value", vec![x]).map(|_| ())
    }

    /// A dict's keys (with their types), a list's or array's items.
    ///
    /// ```rhai
    /// for k in d.keys() { print(k) }
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, return_raw)]
    pub fn keys(ctx: NativeCallContext, p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Some(&ctx), "keys", Array::new())
    }

    /// A dict's values.
    ///
    /// ```rhai
    /// print(d.values());
    /// ```
    ///
    /// Throws when: not a dict (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn values(ctx: NativeCallContext, p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Some(&ctx), "values", Array::new())
    }

    /// A dict's `[key, value]` pairs.
    ///
    /// ```rhai
    /// for kv in d.items() { print(`${kv[0]} = ${kv[1]}`) }
    /// ```
    ///
    /// Throws when: not a dict (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn items(ctx: NativeCallContext, p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Some(&ctx), "items", Array::new())
    }

    /// The number of entries or items.
    ///
    /// ```rhai
    /// print(l.len());
    /// ```
    ///
    /// Throws when: a namespace or Value (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn len(ctx: NativeCallContext, p: &mut Proxy) -> Result<INT, Box<EvalAltResult>> {
        p.call(Some(&ctx), "len", Array::new())?
            .as_int()
            .map_err(|_| mp_err!(TypeError, "len() is not a number").into())
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
    pub fn contains(ctx: NativeCallContext, p: &mut Proxy, key: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        Ok(p.call(Some(&ctx), "contains", vec![key])?.as_bool().unwrap_or(false))
    }

    /// A dict's value for `key`, or `()` if it has none.
    ///
    /// ```rhai
    /// let x = d.get("a");
    /// ```
    ///
    /// Throws when: not a dict (`TypeError`); the server is gone.
    #[rhai_fn(global, name = "get", return_raw)]
    pub fn get(ctx: NativeCallContext, p: &mut Proxy, key: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Some(&ctx), "get", vec![key, Dynamic::UNIT])
    }

    /// A dict's value for `key`, or `default`.
    ///
    /// ```rhai
    /// let n = d.get("n", 0);
    /// ```
    ///
    /// Throws when: not a dict (`TypeError`); the server is gone.
    #[rhai_fn(global, name = "get", return_raw)]
    pub fn get_default(
        ctx: NativeCallContext,
        p: &mut Proxy,
        key: Dynamic,
        default: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Some(&ctx), "get", vec![key, default])
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
    pub fn remove(ctx: NativeCallContext, p: &mut Proxy, key: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Some(&ctx), "remove", vec![key])
    }

    /// Empties a dict.
    ///
    /// ```rhai
    /// d.clear();
    /// ```
    ///
    /// Throws when: not a dict (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn clear(ctx: NativeCallContext, p: &mut Proxy) -> Result<(), Box<EvalAltResult>> {
        p.call(Some(&ctx), "clear", Array::new()).map(|_| ())
    }

    /// A copy of a dict (keys become strings) or namespace as an object map.
    ///
    /// ```rhai
    /// let copy = d.to_map();
    /// ```
    ///
    /// Throws when: not a dict or namespace (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn to_map(ctx: NativeCallContext, p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Some(&ctx), "to_map", Array::new())
    }

    /// Appends to a list.
    ///
    /// ```rhai
    /// l.push(4);
    /// ```
    ///
    /// Throws when: not a list (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn push(ctx: NativeCallContext, p: &mut Proxy, v: Dynamic) -> Result<(), Box<EvalAltResult>> {
        p.call(Some(&ctx), "push", vec![v]).map(|_| ())
    }

    /// Removes and returns a list's last item.
    ///
    /// ```rhai
    /// let last = l.pop();
    /// ```
    ///
    /// Throws when: the list is empty (`IndexError`); not a list (`TypeError`).
    #[rhai_fn(global, return_raw)]
    pub fn pop(ctx: NativeCallContext, p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Some(&ctx), "pop", Array::new())
    }

    /// Inserts into a list before index `i` (clamped, as Python's `insert`).
    ///
    /// ```rhai
    /// l.insert(0, "first");
    /// ```
    ///
    /// Throws when: not a list (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn insert(ctx: NativeCallContext, p: &mut Proxy, i: Dynamic, v: Dynamic) -> Result<(), Box<EvalAltResult>> {
        p.call(Some(&ctx), "insert", vec![i, v]).map(|_| ())
    }

    /// Reverses a list in place.
    ///
    /// ```rhai
    /// l.reverse();
    /// ```
    ///
    /// Throws when: not a list (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn reverse(ctx: NativeCallContext, p: &mut Proxy) -> Result<(), Box<EvalAltResult>> {
        p.call(Some(&ctx), "reverse", Array::new()).map(|_| ())
    }

    /// Sorts a list in place (numbers, strings, chars or booleans).
    ///
    /// ```rhai
    /// l.sort();
    /// ```
    ///
    /// Throws when: the items do not compare (`TypeError`); not a list.
    #[rhai_fn(global, return_raw)]
    pub fn sort(ctx: NativeCallContext, p: &mut Proxy) -> Result<(), Box<EvalAltResult>> {
        p.call(Some(&ctx), "sort", Array::new()).map(|_| ())
    }

    /// A copy of a list's or array's items.
    ///
    /// ```rhai
    /// let xs = l.to_array();
    /// ```
    ///
    /// Throws when: not a list or array (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn to_array(ctx: NativeCallContext, p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        p.call(Some(&ctx), "to_array", Array::new())
    }

    /// The referent's contents: `{1: "1", "2": 2}`, `[1, 2]`, `Namespace(x=1)`.
    ///
    /// ```rhai
    /// print(d);
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "to_string", name = "to_debug", return_raw)]
    pub fn proxy_describe(ctx: NativeCallContext, p: &mut Proxy) -> Result<String, Box<EvalAltResult>> {
        Ok(p.call(Some(&ctx), "repr", Array::new())?.to_string())
    }

    /// The loop a manager's server process runs (internal: `Manager()` starts it).
    ///
    /// ```rhai
    /// // not for scripts: Manager() uses it
    /// ```
    ///
    /// Throws when: the server's socket fails (`OSError`).
    #[rhai_fn(name = "__manager_server", return_raw)]
    pub fn manager_server(
        ctx: NativeCallContext,
        sock: ManagerSocket,
        authkey: rhai::Blob,
    ) -> Result<(), Box<EvalAltResult>> {
        super::server::serve(&ctx, sock, authkey)
    }
}
