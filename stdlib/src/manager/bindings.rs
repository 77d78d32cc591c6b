//! `Manager()`, `BaseManager(..)`, `ctx.Manager()` and the manager's methods and
//! constructors (see the reference, "Manager"): the script bindings. The machinery is
//! `mod.rs`; the proxies' methods are `proxy.rs` and `proxied.rs`.

use super::protocol::Create;
use super::proxy::{Kind, Proxy};
use super::Manager;
use crate::opts::{self, Opts};
use rhai::plugin::*;
use rhai::{Array, Dynamic, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::MpResult;

fn items_arg(v: Dynamic, func: &str) -> MpResult<Dynamic> {
    if v.is_map() || v.is_unit() {
        return Ok(v);
    }
    let t = opts::type_name(&v);
    opts::items_or(v, |_| mp_err!(TypeError, "{func}() takes an iterable (array, range, string or blob), not {t}"))
        .map(Dynamic::from_array)
}

/// `#{address, authkey}`: the address (`None`: a local manager) and the key (`None`: a
/// random one).
fn options(o: rhai::Map, func: &'static str) -> MpResult<(Option<String>, Option<Vec<u8>>)> {
    let mut o = Opts::new(o, func, &["address", "authkey"])?;
    let address = o.string("address")?;
    let authkey = match o.take("authkey") {
        None => None,
        Some(k) if k.is_string() => Some(k.to_string().into_bytes()),
        Some(k) if k.is_blob() => Some(k.cast::<rhai::Blob>()),
        Some(k) => {
            return Err(mp_err!(TypeError, "{func}(): authkey must be a string or a blob, not {}", opts::type_name(&k)))
        }
    };
    Ok((address, authkey))
}

/// The Rhai bindings: `Manager()`, `BaseManager(..)` and the manager's methods.
#[export_module]
pub mod manager_functions {
    use super::*;

    /// A manager: a server process that keeps shared objects for proxies.
    pub type Manager = super::Manager;

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
        super::Manager::local(&ctx, None)
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
        super::Manager::local(&ctx, Some(c.0))
    }

    /// A manager whose server listens on TCP at `address` (`"host:port"`; port `0`: any
    /// free port), started: `BaseManager(options)` then `start()`. Other machines reach it
    /// with `BaseManager(#{address, authkey}).connect()`; every object it makes is a proxy.
    /// Through a network partition no call hangs: a connection that gets no sign of life
    /// from the other host for the liveness bound (20 s; `RHAI_MP_MANAGER_LIVENESS`
    /// seconds in the environment, read by clients and server) is closed (keepalive probes
    /// and `TCP_USER_TIMEOUT`), and the calls on it throw `BrokenPipeError`; a timed call
    /// (`q.get(true, 1)`, `acquire(true, t)`, `wait(t)`; a non-blocking one counts as 0)
    /// whose reply has not come within its timeout and half the bound throws
    /// `TimeoutError` and closes the connection (the next call connects again).
    ///
    /// ```rhai
    /// let m = Manager(#{address: "127.0.0.1:0", authkey: "secret"});
    /// print(m.address);
    /// ```
    ///
    /// Throws when: an unknown option (`ValueError`); a malformed address (`ValueError`);
    /// the address is taken or cannot be resolved (`OSError`); as `Manager()`.
    #[rhai_fn(name = "Manager", return_raw)]
    pub fn manager_opts(ctx: NativeCallContext, options: rhai::Map) -> Result<Manager, Box<EvalAltResult>> {
        let (address, authkey) = super::options(options, "Manager")?;
        let m = super::Manager::new(address, authkey)?;
        m.start(&ctx, None)?;
        Ok(m)
    }

    /// A manager not started yet, as Python's `BaseManager(address=.., authkey=..)`:
    /// `#{address: "host:port", authkey: "key"}` (no address: a local manager; no key: a
    /// random one). Then `start()` (a new server process), `connect()` (to a server already
    /// running at the address) or `serve_forever()` (serve from this process).
    ///
    /// ```rhai
    /// let m = BaseManager(#{address: "127.0.0.1:50000", authkey: "secret"});
    /// ```
    ///
    /// Throws when: an unknown option (`ValueError`); a malformed address (`ValueError`);
    /// a host that cannot be resolved (`OSError`); a key that is not a string or blob
    /// (`TypeError`).
    #[rhai_fn(name = "BaseManager", return_raw)]
    pub fn base_manager(options: rhai::Map) -> Result<Manager, Box<EvalAltResult>> {
        let (address, authkey) = super::options(options, "BaseManager")?;
        Ok(super::Manager::new(address, authkey)?)
    }

    /// `BaseManager(#{})`: a local manager not started yet.
    ///
    /// ```rhai
    /// let m = BaseManager();
    /// m.start();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(name = "BaseManager", return_raw)]
    pub fn base_manager_local() -> Result<Manager, Box<EvalAltResult>> {
        Ok(super::Manager::new(None, None)?)
    }

    /// Starts the manager's server in a new process (with the current start method),
    /// listening at its address; `m.address` then reads the address it has.
    ///
    /// ```rhai
    /// let m = BaseManager(#{address: "127.0.0.1:0"});
    /// m.start();
    /// ```
    ///
    /// Throws when: the manager is already started, connected or shut down
    /// (`ProcessError`); the address is taken (`OSError`); as `Process.start()`.
    #[rhai_fn(global, name = "start", return_raw)]
    pub fn start(ctx: NativeCallContext, m: &mut Manager) -> Result<(), Box<EvalAltResult>> {
        m.start(&ctx, None)
    }

    /// Connects to a server already running at the manager's address, and checks the key.
    ///
    /// ```rhai
    /// let m = BaseManager(#{address: "10.0.0.5:50000", authkey: "secret"});
    /// m.connect();
    /// let q = m.get("jobs");
    /// ```
    ///
    /// Throws when: nothing listens there (`ConnectionRefusedError`); no answer within 10
    /// seconds (`OSError`); the key is wrong (`AuthenticationError`); the manager has no
    /// address (`ValueError`).
    #[rhai_fn(global, name = "connect", return_raw)]
    pub fn connect(m: &mut Manager) -> Result<(), Box<EvalAltResult>> {
        Ok(m.connect()?)
    }

    /// Serves the manager's objects from this process until a client calls `shutdown()` or
    /// the process gets SIGINT, SIGTERM or SIGHUP; then returns.
    ///
    /// ```rhai
    /// let m = BaseManager(#{address: "0.0.0.0:50000", authkey: "secret"});
    /// m.serve_forever();
    /// ```
    ///
    /// Throws when: the manager is already started or connected (`ProcessError`); the
    /// address is taken (`OSError`).
    #[rhai_fn(global, name = "serve_forever", return_raw)]
    pub fn serve_forever(ctx: NativeCallContext, m: &mut Manager) -> Result<(), Box<EvalAltResult>> {
        m.serve_forever(&ctx)
    }

    /// Publishes `obj` (a proxy of this manager, or any value that can cross to the server)
    /// under `name`, for `m.get(name)` in any process connected to the same server: Python's
    /// `register("get_queue", callable=..)`.
    ///
    /// ```rhai
    /// m.register("jobs", m.Queue());
    /// ```
    ///
    /// Throws when: the manager is not started or connected (`AssertionError`); the value
    /// cannot cross (`SerializationError`); the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "register", return_raw)]
    pub fn register(m: &mut Manager, name: Dynamic, obj: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let name = opts::arg_str(&name, "register", "name")?;
        m.register(name, obj)
    }

    /// The value registered under `name` with the server.
    ///
    /// ```rhai
    /// let q = m.get("jobs");
    /// ```
    ///
    /// Throws when: nothing is registered under `name` (`KeyError`); the manager is not
    /// started or connected (`AssertionError`); the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "get", return_raw)]
    pub fn get(m: &mut Manager, name: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        let name = opts::arg_str(&name, "get", "name")?;
        m.lookup(name)
    }

    /// Stops the server; proxies then throw `BrokenPipeError`. A manager that started its
    /// server also stops it when its last copy (and the last proxy it made) goes away in
    /// the process that made it, and at the end of the main script. A connected manager
    /// stops the server it is connected to (any process with the key may).
    ///
    /// ```rhai
    /// m.shutdown();
    /// ```
    ///
    /// Throws when: a connected manager's server is already gone (`BrokenPipeError`).
    #[rhai_fn(global, return_raw)]
    pub fn shutdown(m: &mut Manager) -> Result<(), Box<EvalAltResult>> {
        m.0.shutdown()
    }

    /// The server's address: `"host:port"` for a TCP manager (the port it actually has,
    /// once started), an abstract Unix socket's name for a local one (`()` before
    /// `start()`).
    ///
    /// ```rhai
    /// print(m.address);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, get = "address")]
    pub fn address(m: &mut Manager) -> Dynamic {
        m.address()
    }

    /// The pid of the server process, if this process started it (else `()`).
    ///
    /// ```rhai
    /// print(m.pid);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, get = "pid")]
    pub fn pid(m: &mut Manager) -> Dynamic {
        m.pid().map_or(Dynamic::UNIT, |p| (p as INT).into())
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
    pub fn dict(m: &mut Manager) -> Result<Proxy, Box<EvalAltResult>> {
        m.proxy(Kind::Dict, Create::Dict(Dynamic::UNIT))
    }

    /// A managed dict holding `init` (an object map, or an array of `[key, value]` pairs).
    ///
    /// ```rhai
    /// let d = m.dict(#{a: 1, b: 2});
    /// ```
    ///
    /// Throws when: `init` is neither (`TypeError`); the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "dict", return_raw)]
    pub fn dict_init(m: &mut Manager, init: Dynamic) -> Result<Proxy, Box<EvalAltResult>> {
        m.proxy(Kind::Dict, Create::Dict(init))
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
    pub fn list(m: &mut Manager) -> Result<Proxy, Box<EvalAltResult>> {
        m.proxy(Kind::List, Create::List(Dynamic::UNIT))
    }

    /// A managed list holding the items of `init`.
    ///
    /// ```rhai
    /// let l = m.list(0..5);
    /// ```
    ///
    /// Throws when: `init` is not iterable (`TypeError`); it is an iterator (an imap's)
    /// that fails (its error); the server is gone.
    #[rhai_fn(global, name = "list", return_raw)]
    pub fn list_init(m: &mut Manager, init: Dynamic) -> Result<Proxy, Box<EvalAltResult>> {
        let init = items_arg(opts::pulled(init)?, "list")?;
        m.proxy(Kind::List, Create::List(init))
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
    pub fn namespace(m: &mut Manager) -> Result<Proxy, Box<EvalAltResult>> {
        m.proxy(Kind::Namespace, Create::Namespace)
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
    pub fn value(m: &mut Manager, tc: Dynamic, v: Dynamic) -> Result<Proxy, Box<EvalAltResult>> {
        m.proxy(Kind::Value, Create::Value(tc, v))
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
    pub fn value_lock(m: &mut Manager, tc: Dynamic, v: Dynamic, _lock: Dynamic) -> Result<Proxy, Box<EvalAltResult>> {
        value(m, tc, v)
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
        m: &mut Manager,
        tc: Dynamic,
        init: Dynamic,
        _lock: Dynamic,
    ) -> Result<Proxy, Box<EvalAltResult>> {
        array(m, tc, init)
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
    pub fn array(m: &mut Manager, tc: Dynamic, init: Dynamic) -> Result<Proxy, Box<EvalAltResult>> {
        let init = if init.is_int() { init } else { items_arg(opts::pulled(init)?, "Array")? };
        m.proxy(Kind::Array, Create::Array(tc, init))
    }

    /// A `Lock` made by the manager's server (a TCP manager's: a proxy).
    ///
    /// ```rhai
    /// let lock = m.Lock();
    /// hold(lock, || print("locked"));
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "Lock", return_raw)]
    pub fn lock(m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(Kind::Lock, Array::new())
    }

    /// An `RLock` made by the manager's server.
    ///
    /// ```rhai
    /// let r = m.RLock();
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "RLock", return_raw)]
    pub fn rlock(m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(Kind::RLock, Array::new())
    }

    /// A `Semaphore(1)` made by the manager's server.
    ///
    /// ```rhai
    /// let s = m.Semaphore();
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "Semaphore", return_raw)]
    pub fn semaphore(m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(Kind::Semaphore, Array::new())
    }

    /// A `Semaphore(n)` made by the manager's server.
    ///
    /// ```rhai
    /// let s = m.Semaphore(3);
    /// ```
    ///
    /// Throws when: as `Semaphore(n)` (`ValueError` if negative); the server is gone.
    #[rhai_fn(global, name = "Semaphore", return_raw)]
    pub fn semaphore_n(m: &mut Manager, n: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(Kind::Semaphore, vec![n])
    }

    /// A `BoundedSemaphore(1)` made by the manager's server.
    ///
    /// ```rhai
    /// let s = m.BoundedSemaphore();
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "BoundedSemaphore", return_raw)]
    pub fn bounded(m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(Kind::BoundedSemaphore, Array::new())
    }

    /// A `BoundedSemaphore(n)` made by the manager's server.
    ///
    /// ```rhai
    /// let s = m.BoundedSemaphore(2);
    /// ```
    ///
    /// Throws when: as `BoundedSemaphore(n)`; the server is gone.
    #[rhai_fn(global, name = "BoundedSemaphore", return_raw)]
    pub fn bounded_n(m: &mut Manager, n: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(Kind::BoundedSemaphore, vec![n])
    }

    /// A `Condition()` made by the manager's server.
    ///
    /// ```rhai
    /// let c = m.Condition();
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "Condition", return_raw)]
    pub fn condition(m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(Kind::Condition, Array::new())
    }

    /// A `Condition(lock)` made by the manager's server.
    ///
    /// ```rhai
    /// let c = m.Condition(m.RLock());
    /// ```
    ///
    /// Throws when: as `Condition(lock)`; the server is gone.
    #[rhai_fn(global, name = "Condition", return_raw)]
    pub fn condition_lock(m: &mut Manager, lock: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(Kind::Condition, vec![lock])
    }

    /// An `Event` made by the manager's server.
    ///
    /// ```rhai
    /// let e = m.Event();
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "Event", return_raw)]
    pub fn event(m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(Kind::Event, Array::new())
    }

    /// A `Barrier(parties)` made by the manager's server.
    ///
    /// ```rhai
    /// let b = m.Barrier(2);
    /// ```
    ///
    /// Throws when: as `Barrier(n)`; the server is gone.
    #[rhai_fn(global, name = "Barrier", return_raw)]
    pub fn barrier(m: &mut Manager, n: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(Kind::Barrier, vec![n])
    }

    /// A `Barrier(parties, options)` made by the manager's server.
    ///
    /// ```rhai
    /// let b = m.Barrier(2, #{timeout: 5});
    /// ```
    ///
    /// Throws when: as `Barrier(..)`; the server is gone.
    #[rhai_fn(global, name = "Barrier", return_raw)]
    pub fn barrier2(m: &mut Manager, n: Dynamic, o: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(Kind::Barrier, vec![n, o])
    }

    /// A `Queue()` made by the manager's server.
    ///
    /// ```rhai
    /// let q = m.Queue();
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "Queue", return_raw)]
    pub fn queue(m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(Kind::Queue, Array::new())
    }

    /// A `Queue(maxsize)` made by the manager's server.
    ///
    /// ```rhai
    /// let q = m.Queue(10);
    /// ```
    ///
    /// Throws when: as `Queue(maxsize)`; the server is gone.
    #[rhai_fn(global, name = "Queue", return_raw)]
    pub fn queue_max(m: &mut Manager, n: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(Kind::Queue, vec![n])
    }

    /// A `JoinableQueue()` made by the manager's server.
    ///
    /// ```rhai
    /// let q = m.JoinableQueue();
    /// ```
    ///
    /// Throws when: the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "JoinableQueue", return_raw)]
    pub fn joinable(m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(Kind::JoinableQueue, Array::new())
    }

    /// A `JoinableQueue(maxsize)` made by the manager's server.
    ///
    /// ```rhai
    /// let q = m.JoinableQueue(10);
    /// ```
    ///
    /// Throws when: as `JoinableQueue(maxsize)`; the server is gone.
    #[rhai_fn(global, name = "JoinableQueue", return_raw)]
    pub fn joinable_max(m: &mut Manager, n: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(Kind::JoinableQueue, vec![n])
    }
}
