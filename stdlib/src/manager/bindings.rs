//! `Manager()` and `ctx.Manager()` and the manager's constructors (see the reference,
//! "Manager"): the script bindings. The machinery is `mod.rs`; the proxies' methods are
//! `proxy.rs`.

use super::protocol::{Create, Primitive};
use super::proxy::{Kind, Proxy};
use super::Manager;
use crate::opts;
use rhai::plugin::*;
use rhai::{Array, Dynamic, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::MpResult;

fn items_arg(v: Dynamic, func: &str) -> MpResult<Dynamic> {
    if v.is_map() || v.is_unit() {
        return Ok(v);
    }
    let t = opts::type_name(&v);
    opts::items_or(v, |_| mp_err!(TypeError, "{func}() takes an iterable (array, range, string or blob), not {t}"))
        .map(Dynamic::from_array)
}

/// The Rhai bindings: `Manager()` and the manager's methods.
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
    /// Throws when: `init` is not iterable (`TypeError`); the server is gone.
    #[rhai_fn(global, name = "list", return_raw)]
    pub fn list_init(m: &mut Manager, init: Dynamic) -> Result<Proxy, Box<EvalAltResult>> {
        let init = items_arg(init, "list")?;
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
        let init = if init.is_int() { init } else { items_arg(init, "Array")? };
        m.proxy(Kind::Array, Create::Array(tc, init))
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
    pub fn lock(m: &mut Manager) -> Result<Dynamic, Box<EvalAltResult>> {
        m.create(Primitive::Lock, Array::new())
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
        m.create(Primitive::RLock, Array::new())
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
        m.create(Primitive::Semaphore, Array::new())
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
        m.create(Primitive::Semaphore, vec![n])
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
        m.create(Primitive::BoundedSemaphore, Array::new())
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
        m.create(Primitive::BoundedSemaphore, vec![n])
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
        m.create(Primitive::Condition, Array::new())
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
        m.create(Primitive::Condition, vec![lock])
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
        m.create(Primitive::Event, Array::new())
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
        m.create(Primitive::Barrier, vec![n])
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
        m.create(Primitive::Barrier, vec![n, o])
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
        m.create(Primitive::Queue, Array::new())
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
        m.create(Primitive::Queue, vec![n])
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
        m.create(Primitive::JoinableQueue, Array::new())
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
        m.create(Primitive::JoinableQueue, vec![n])
    }
}
