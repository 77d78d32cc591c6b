//! The methods of the queues and synchronization primitives a TCP manager holds (see the
//! reference, "Manager"): the globals' methods, timeouts and errors, each one request to
//! the server. A call that waits (`q.get()`, `lock.acquire()`, `ev.wait()` …) waits in the
//! server, which goes on serving everyone else; Ctrl-C cancels it there.

use super::client;
use super::protocol::{block_timeout, Op, Reply, Request, Timeout};
use super::proxy::{Kind, Proxy};
use crate::opts;
use rhai::plugin::*;
use rhai::{Dynamic, FnPtr, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::RhaiResult;

impl Proxy {
    /// Runs `op` if this proxy is one of `kinds`; `TypeError` naming `method` otherwise.
    fn on(&self, kinds: &[Kind], method: &str, op: Op) -> RhaiResult {
        if !kinds.contains(&self.0.kind) {
            return Err(self.no_method(method));
        }
        self.call(op)
    }

    fn bool_of(v: Dynamic) -> RhaiResult<bool> {
        v.as_bool().map_err(|_| mp_err!(SerializationError, "the manager's server sent a non-bool").into())
    }

    /// Takes a lock, semaphore or condition (for `acquire` and `hold`).
    pub(crate) fn acquire(&self, block: bool, timeout: Timeout) -> RhaiResult<bool> {
        Proxy::bool_of(self.on(LOCKS, "acquire", Op::Acquire(block, timeout))?)
    }

    /// Releases a lock, semaphore or condition.
    pub(crate) fn release(&self) -> RhaiResult<()> {
        self.on(LOCKS, "release", Op::Release).map(|_| ())
    }

    /// Whether this proxy can be held (`hold(proxy, f)`).
    pub(crate) fn is_lock(&self) -> bool {
        LOCKS.contains(&self.0.kind)
    }

    /// A barrier's `wait`: the last arrival runs the action here, then everyone goes.
    fn barrier_wait(&self, ctx: &NativeCallContext, timeout: Timeout) -> RhaiResult<INT> {
        let request = Request::Call { id: self.0.id, op: Op::Wait(timeout) };
        let reply = client::exchange(&self.0.addr, &request)?;
        let Reply::RunAction(action) = reply else {
            return client::value_of(reply)?
                .as_int()
                .map_err(|_| mp_err!(SerializationError, "a barrier index that is not a number").into());
        };
        let ran = match action.try_cast::<FnPtr>() {
            Some(f) => f.call_raw(ctx, None, []).map(|_| ()),
            None => Err(mp_err!(SerializationError, "the barrier's action is not a function").into()),
        };
        let outcome = match &ran {
            Ok(()) => Ok(()),
            Err(e) => Err(rhai_mp_core::run::remote::RemoteError::capture(
                e,
                &rhai_mp_core::tree::state::with(|s| s.name.clone()),
                rhai_mp_core::base::sys::pid() as i32,
            )
            .value),
        };
        let index = client::request(&self.0.addr, &Request::ActionDone(outcome));
        // An action that threw: its own error, as with a local barrier.
        ran?;
        index?.as_int().map_err(|_| mp_err!(SerializationError, "a barrier index that is not a number").into())
    }
}

const QUEUES: &[Kind] = &[Kind::Queue, Kind::JoinableQueue];
const LOCKS: &[Kind] = &[Kind::Lock, Kind::RLock, Kind::Semaphore, Kind::BoundedSemaphore, Kind::Condition];

/// The Rhai bindings: the methods of a TCP manager's queue, lock, semaphore, event,
/// condition and barrier proxies.
#[export_module]
pub mod proxied_functions {
    use super::*;

    /// Puts an item into a proxied queue, waiting while it is full.
    ///
    /// ```rhai
    /// q.put(42);
    /// ```
    ///
    /// Throws when: not a queue (`TypeError`); the item cannot cross to the server
    /// (`SerializationError`); the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "put", return_raw)]
    pub fn put(p: &mut Proxy, item: Dynamic) -> Result<(), Box<EvalAltResult>> {
        p.on(QUEUES, "put", Op::Put(item, true, Timeout::Never)).map(|_| ())
    }

    /// `put(item, block)`: with `block` false, `Full` at once when the queue is full.
    ///
    /// ```rhai
    /// q.put(1, false);
    /// ```
    ///
    /// Throws when: as `put(item)`; the queue is full (`Full`); `block` is not a bool.
    #[rhai_fn(global, name = "put", return_raw)]
    pub fn put_block(p: &mut Proxy, item: Dynamic, block: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let (block, timeout) = block_timeout(&block, &Dynamic::UNIT, "put")?;
        p.on(QUEUES, "put", Op::Put(item, block, timeout)).map(|_| ())
    }

    /// `put(item, block, timeout)`: `Full` if there is no room within `timeout` seconds.
    ///
    /// ```rhai
    /// q.put(1, true, 0.5);
    /// ```
    ///
    /// Throws when: as `put(item)`; no room in time (`Full`); a bad `timeout` (`ValueError`,
    /// `TypeError`).
    #[rhai_fn(global, name = "put", return_raw)]
    pub fn put_timeout(
        p: &mut Proxy,
        item: Dynamic,
        block: Dynamic,
        timeout: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        let (block, timeout) = block_timeout(&block, &timeout, "put")?;
        p.on(QUEUES, "put", Op::Put(item, block, timeout)).map(|_| ())
    }

    /// `put(item, false)`.
    ///
    /// ```rhai
    /// q.put_nowait(1);
    /// ```
    ///
    /// Throws when: the queue is full (`Full`); not a queue (`TypeError`).
    #[rhai_fn(global, return_raw)]
    pub fn put_nowait(p: &mut Proxy, item: Dynamic) -> Result<(), Box<EvalAltResult>> {
        p.on(QUEUES, "put_nowait", Op::Put(item, false, Timeout::Never)).map(|_| ())
    }

    /// `get(false)`.
    ///
    /// ```rhai
    /// let x = q.get_nowait();
    /// ```
    ///
    /// Throws when: the queue is empty (`Empty`); not a queue (`TypeError`).
    #[rhai_fn(global, return_raw)]
    pub fn get_nowait(p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        p.on(QUEUES, "get_nowait", Op::Take(false, Timeout::Never))
    }

    /// The number of items in a proxied queue.
    ///
    /// ```rhai
    /// print(q.qsize());
    /// ```
    ///
    /// Throws when: not a queue (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn qsize(p: &mut Proxy) -> Result<INT, Box<EvalAltResult>> {
        p.on(QUEUES, "qsize", Op::QSize)?
            .as_int()
            .map_err(|_| mp_err!(SerializationError, "qsize() is not a number").into())
    }

    /// Whether a proxied queue is empty.
    ///
    /// ```rhai
    /// if q.empty() { print("nothing to do") }
    /// ```
    ///
    /// Throws when: not a queue (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn empty(p: &mut Proxy) -> Result<bool, Box<EvalAltResult>> {
        Proxy::bool_of(p.on(QUEUES, "empty", Op::IsEmpty)?)
    }

    /// Whether a proxied queue is full.
    ///
    /// ```rhai
    /// if !q.full() { q.put(1) }
    /// ```
    ///
    /// Throws when: not a queue (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn full(p: &mut Proxy) -> Result<bool, Box<EvalAltResult>> {
        Proxy::bool_of(p.on(QUEUES, "full", Op::IsFull)?)
    }

    /// Accepted for the global `Queue`'s sake; a proxied queue has no feeder or pipe of its
    /// own to close, so it does nothing.
    ///
    /// ```rhai
    /// q.close();
    /// ```
    ///
    /// Throws when: not a queue (`TypeError`).
    #[rhai_fn(global, name = "close", name = "join_thread", name = "cancel_join_thread", return_raw)]
    pub fn close(p: &mut Proxy) -> Result<(), Box<EvalAltResult>> {
        if !p.0.kind.is_queue() {
            return Err(p.no_method("close"));
        }
        Ok(())
    }

    /// Marks one item taken from a proxied JoinableQueue as done.
    ///
    /// ```rhai
    /// let job = q.get();
    /// q.task_done();
    /// ```
    ///
    /// Throws when: called more times than items were put (`ValueError`); not a
    /// JoinableQueue (`ValueError`, `TypeError`).
    #[rhai_fn(global, return_raw)]
    pub fn task_done(p: &mut Proxy) -> Result<(), Box<EvalAltResult>> {
        p.on(QUEUES, "task_done", Op::TaskDone).map(|_| ())
    }

    /// Waits until every item put into a proxied JoinableQueue is marked done.
    ///
    /// ```rhai
    /// q.join();
    /// ```
    ///
    /// Throws when: not a JoinableQueue (`ValueError`, `TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn join(p: &mut Proxy) -> Result<(), Box<EvalAltResult>> {
        p.on(QUEUES, "join", Op::Join).map(|_| ())
    }

    /// Takes a proxied lock, semaphore or condition's lock, waiting for it; returns `true`.
    ///
    /// ```rhai
    /// lock.acquire();
    /// ```
    ///
    /// Throws when: not a lock, semaphore or condition (`TypeError`); the server is gone.
    #[rhai_fn(global, name = "acquire", return_raw)]
    pub fn acquire(p: &mut Proxy) -> Result<bool, Box<EvalAltResult>> {
        p.acquire(true, Timeout::Never)
    }

    /// `acquire(block)`: with `block` false, `false` at once when it is taken.
    ///
    /// ```rhai
    /// if lock.acquire(false) { lock.release() }
    /// ```
    ///
    /// Throws when: as `acquire()`; `block` is not a bool (`TypeError`).
    #[rhai_fn(global, name = "acquire", return_raw)]
    pub fn acquire_block(p: &mut Proxy, block: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        let (block, timeout) = block_timeout(&block, &Dynamic::UNIT, "acquire")?;
        p.acquire(block, timeout)
    }

    /// `acquire(block, timeout)`: `false` if not taken within `timeout` seconds.
    ///
    /// ```rhai
    /// let got = lock.acquire(true, 0.5);
    /// ```
    ///
    /// Throws when: as `acquire()`; a bad `timeout` (`ValueError`, `TypeError`).
    #[rhai_fn(global, name = "acquire", return_raw)]
    pub fn acquire_timeout(p: &mut Proxy, block: Dynamic, timeout: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        let (block, timeout) = block_timeout(&block, &timeout, "acquire")?;
        p.acquire(block, timeout)
    }

    /// Releases a proxied lock, semaphore or condition's lock.
    ///
    /// ```rhai
    /// lock.release();
    /// ```
    ///
    /// Throws when: a Lock that is not held or a BoundedSemaphore above its start
    /// (`ValueError`); an RLock or condition this process does not hold (`AssertionError`);
    /// not a lock (`TypeError`).
    #[rhai_fn(global, name = "release", return_raw)]
    pub fn release(p: &mut Proxy) -> Result<(), Box<EvalAltResult>> {
        p.release()
    }

    /// Whether the last holder of a proxied lock died holding it (true until the next
    /// release).
    ///
    /// ```rhai
    /// if lock.owner_died { print("the data may be half-written") }
    /// ```
    ///
    /// Throws when: not a lock or condition (`TypeError`); the server is gone.
    #[rhai_fn(global, get = "owner_died", return_raw)]
    pub fn owner_died(p: &mut Proxy) -> Result<bool, Box<EvalAltResult>> {
        Proxy::bool_of(p.on(&[Kind::Lock, Kind::RLock, Kind::Condition], "owner_died", Op::OwnerDied)?)
    }

    /// A proxied semaphore's value.
    ///
    /// ```rhai
    /// print(s.get_value());
    /// ```
    ///
    /// Throws when: not a semaphore (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn get_value(p: &mut Proxy) -> Result<INT, Box<EvalAltResult>> {
        p.on(&[Kind::Semaphore, Kind::BoundedSemaphore], "get_value", Op::SemValue)?
            .as_int()
            .map_err(|_| mp_err!(SerializationError, "get_value() is not a number").into())
    }

    /// Sets a proxied event: every process waiting on it goes on.
    ///
    /// ```rhai
    /// ev.set();
    /// ```
    ///
    /// Throws when: not an event (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn set(p: &mut Proxy) -> Result<(), Box<EvalAltResult>> {
        p.on(&[Kind::Event], "set", Op::Set).map(|_| ())
    }

    /// Whether a proxied event is set.
    ///
    /// ```rhai
    /// print(ev.is_set());
    /// ```
    ///
    /// Throws when: not an event (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn is_set(p: &mut Proxy) -> Result<bool, Box<EvalAltResult>> {
        Proxy::bool_of(p.on(&[Kind::Event], "is_set", Op::IsSet)?)
    }

    /// Waits on a proxied event (until set: `true`), condition (until notified: `true`;
    /// the lock must be held) or barrier (until all parties arrive: the arrival index).
    ///
    /// ```rhai
    /// ev.wait();
    /// let i = b.wait();
    /// ```
    ///
    /// Throws when: a condition whose lock this process does not hold (`AssertionError`); a
    /// broken barrier, or a barrier whose default timeout passes (`BrokenBarrierError`); not
    /// one of these (`TypeError`); the server is gone (`BrokenPipeError`).
    #[rhai_fn(global, name = "wait", return_raw)]
    pub fn wait(ctx: NativeCallContext, p: &mut Proxy) -> Result<Dynamic, Box<EvalAltResult>> {
        wait_timeout(ctx, p, Dynamic::UNIT)
    }

    /// `wait(timeout)`: an event or condition returns `false` after `timeout` seconds; a
    /// barrier breaks (`BrokenBarrierError`). `wait(())` is `wait()`.
    ///
    /// ```rhai
    /// if !ev.wait(2) { print("not yet") }
    /// ```
    ///
    /// Throws when: as `wait()`; a bad `timeout` (`ValueError`, `TypeError`).
    #[rhai_fn(global, name = "wait", return_raw)]
    pub fn wait_timeout(
        ctx: NativeCallContext,
        p: &mut Proxy,
        timeout: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        // `()` is the object's default: no limit, or a barrier's own timeout.
        let timeout = if timeout.is_unit() { Timeout::Default } else { Timeout::of(&timeout, "wait")? };
        match p.0.kind {
            Kind::Barrier => p.barrier_wait(&ctx, timeout).map(Dynamic::from),
            Kind::Event | Kind::Condition => p.call(Op::Wait(timeout)),
            _ => Err(p.no_method("wait")),
        }
    }

    /// Waits on a proxied condition until `predicate()` returns true; returns its last
    /// result. The lock must be held.
    ///
    /// ```rhai
    /// hold(c, || c.wait_for(|| d["ready"]));
    /// ```
    ///
    /// Throws when: this process does not hold the lock (`AssertionError`); the predicate
    /// does not return a bool (`TypeError`) or throws; not a condition (`TypeError`).
    #[rhai_fn(global, name = "wait_for", return_raw)]
    pub fn wait_for(ctx: NativeCallContext, p: &mut Proxy, predicate: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        wait_for_timeout(ctx, p, predicate, Dynamic::UNIT)
    }

    /// As `wait_for(predicate)`, for at most `timeout` seconds.
    ///
    /// ```rhai
    /// let ok = hold(c, || c.wait_for(|| d["ready"], 2));
    /// ```
    ///
    /// Throws when: as `wait_for(predicate)`; a bad `timeout` (`ValueError`, `TypeError`).
    #[rhai_fn(global, name = "wait_for", return_raw)]
    pub fn wait_for_timeout(
        ctx: NativeCallContext,
        p: &mut Proxy,
        predicate: Dynamic,
        timeout: Dynamic,
    ) -> Result<bool, Box<EvalAltResult>> {
        if p.0.kind != Kind::Condition {
            return Err(p.no_method("wait_for"));
        }
        let predicate = opts::arg_fn(predicate, "wait_for", "predicate")?;
        let deadline = opts::timeout_deadline(&timeout, "wait_for")?;
        let check = |ctx: &NativeCallContext| -> RhaiResult<bool> {
            predicate
                .call_raw(ctx, None, [])?
                .as_bool()
                .map_err(|t| mp_err!(TypeError, "the predicate of wait_for() must return a bool, not {t}").into())
        };
        let mut result = check(&ctx)?;
        while !result && !deadline.passed() {
            let left = deadline.left().map_or(Timeout::Never, |d| Timeout::Secs(d.as_secs_f64()));
            let _ = p.call(Op::Wait(left))?;
            result = check(&ctx)?;
        }
        Ok(result)
    }

    /// Wakes one process waiting on a proxied condition. The lock must be held.
    ///
    /// ```rhai
    /// hold(c, || c.notify());
    /// ```
    ///
    /// Throws when: this process does not hold the lock (`AssertionError`); not a
    /// condition (`TypeError`).
    #[rhai_fn(global, name = "notify", return_raw)]
    pub fn notify(p: &mut Proxy) -> Result<(), Box<EvalAltResult>> {
        p.on(&[Kind::Condition], "notify", Op::Notify(Some(1))).map(|_| ())
    }

    /// Wakes up to `n` processes waiting on a proxied condition.
    ///
    /// ```rhai
    /// hold(c, || c.notify(2));
    /// ```
    ///
    /// Throws when: as `notify()`; `n` is negative (`ValueError`) or not an integer.
    #[rhai_fn(global, name = "notify", return_raw)]
    pub fn notify_n(p: &mut Proxy, n: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let n = opts::arg_int(&n, "notify", "n")?;
        if n < 0 {
            return Err(mp_err!(ValueError, "notify(n) needs n >= 0, not {n}").into());
        }
        p.on(&[Kind::Condition], "notify", Op::Notify(Some(n as u64))).map(|_| ())
    }

    /// Wakes every process waiting on a proxied condition.
    ///
    /// ```rhai
    /// hold(c, || c.notify_all());
    /// ```
    ///
    /// Throws when: as `notify()`.
    #[rhai_fn(global, return_raw)]
    pub fn notify_all(p: &mut Proxy) -> Result<(), Box<EvalAltResult>> {
        p.on(&[Kind::Condition], "notify_all", Op::Notify(None)).map(|_| ())
    }

    /// Returns a proxied barrier to its empty state; parties waiting get
    /// `BrokenBarrierError`.
    ///
    /// ```rhai
    /// b.reset();
    /// ```
    ///
    /// Throws when: not a barrier (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn reset(p: &mut Proxy) -> Result<(), Box<EvalAltResult>> {
        p.on(&[Kind::Barrier], "reset", Op::Reset).map(|_| ())
    }

    /// Breaks a proxied barrier: parties waiting, and later ones, get `BrokenBarrierError`.
    ///
    /// ```rhai
    /// b.abort();
    /// ```
    ///
    /// Throws when: not a barrier (`TypeError`); the server is gone.
    #[rhai_fn(global, return_raw)]
    pub fn abort(p: &mut Proxy) -> Result<(), Box<EvalAltResult>> {
        p.on(&[Kind::Barrier], "abort", Op::Abort).map(|_| ())
    }

    /// A proxied barrier's number of parties.
    ///
    /// ```rhai
    /// print(b.parties);
    /// ```
    ///
    /// Throws when: not a barrier (`TypeError`); the server is gone.
    #[rhai_fn(global, get = "parties", return_raw)]
    pub fn parties(p: &mut Proxy) -> Result<INT, Box<EvalAltResult>> {
        p.on(&[Kind::Barrier], "parties", Op::Parties)?
            .as_int()
            .map_err(|_| mp_err!(SerializationError, "parties is not a number").into())
    }

    /// How many parties wait at a proxied barrier.
    ///
    /// ```rhai
    /// print(b.n_waiting);
    /// ```
    ///
    /// Throws when: not a barrier (`TypeError`); the server is gone.
    #[rhai_fn(global, get = "n_waiting", return_raw)]
    pub fn n_waiting(p: &mut Proxy) -> Result<INT, Box<EvalAltResult>> {
        p.on(&[Kind::Barrier], "n_waiting", Op::NWaiting)?
            .as_int()
            .map_err(|_| mp_err!(SerializationError, "n_waiting is not a number").into())
    }

    /// Whether a proxied barrier is broken.
    ///
    /// ```rhai
    /// if b.broken { b.reset() }
    /// ```
    ///
    /// Throws when: not a barrier (`TypeError`); the server is gone.
    #[rhai_fn(global, get = "broken", return_raw)]
    pub fn broken(p: &mut Proxy) -> Result<bool, Box<EvalAltResult>> {
        Proxy::bool_of(p.on(&[Kind::Barrier], "broken", Op::Broken)?)
    }
}
