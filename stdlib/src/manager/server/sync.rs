//! The queues and synchronization primitives a TCP manager's server holds for its clients
//! (a local `Manager()` hands out shared-memory ones instead), and the requests that wait
//! on them.
//!
//! A request that cannot be done at once (a `get` on an empty queue, an `acquire` of a held
//! lock) is *parked*: its connection waits for the reply while the server serves everyone
//! else. Each object keeps its parked connections in arrival order; whenever an object
//! changes, [`Sync::wake`] retries them in that order, so the first to wait is the first
//! served. A parked request ends when it is done, when its deadline passes (the timeout
//! result: `Empty`, `Full`, `false`, a broken barrier), when its client cancels it (Ctrl-C)
//! or when its client disconnects.
//!
//! Ownership is per connection (one per client process): a lock is held by a connection,
//! and a connection that closes — its process exited or was killed — gives up every lock it
//! held; the next holder sees `owner_died`, as with local locks. A barrier party that
//! disconnects while waiting leaves the round; one that disconnects while running the
//! action breaks the barrier. Replies go to [`Sync::out`]; the server sends them.

use crate::manager::protocol::{Op, Primitive, Reply, Timeout};
use crate::manager::Proxy;
use crate::opts;
use rhai::{Array, Dynamic, Map, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, MpResult};
use std::collections::{HashMap, VecDeque};

/// A connection, as the server numbers them.
pub(crate) type ConnId = u64;

/// A queue.
struct QueueObj {
    items: VecDeque<Dynamic>,
    /// 0: no limit.
    maxsize: u64,
    joinable: bool,
    unfinished: u64,
}

impl QueueObj {
    fn full(&self) -> bool {
        self.maxsize > 0 && self.items.len() as u64 >= self.maxsize
    }
}

/// A Lock or RLock.
struct LockObj {
    recursive: bool,
    owner: Option<ConnId>,
    level: u32,
    /// The last holder died holding it; true until the next release.
    owner_died: bool,
    /// Who that was, for the warning the next holder gets (once).
    dead_owner: Option<String>,
}

/// A barrier.
struct BarrierObj {
    parties: u64,
    timeout: Option<f64>,
    action: Option<Dynamic>,
    broken: bool,
    generation: u64,
    /// The parties waiting in this round, in arrival order, with their indexes.
    arrived: Vec<(ConnId, u64)>,
    /// The last arrival is running the action: others wait to enter.
    acting: bool,
}

/// An object of this module.
enum SyncObj {
    Queue(QueueObj),
    Lock(LockObj),
    Semaphore { value: u64, max: Option<u64> },
    Event(bool),
    Condition { lock: u64 },
    Barrier(BarrierObj),
}

impl SyncObj {
    fn name(&self) -> &'static str {
        match self {
            SyncObj::Queue(q) if q.joinable => "JoinableQueue",
            SyncObj::Queue(_) => "Queue",
            SyncObj::Lock(l) if l.recursive => "RLock",
            SyncObj::Lock(_) => "Lock",
            SyncObj::Semaphore { max: Some(_), .. } => "BoundedSemaphore",
            SyncObj::Semaphore { .. } => "Semaphore",
            SyncObj::Event(_) => "Event",
            SyncObj::Condition { .. } => "Condition",
            SyncObj::Barrier(_) => "Barrier",
        }
    }
}

/// What a parked request waits for.
enum Wait {
    /// An item (`q.get`).
    Take,
    /// Room for this item (`q.put`).
    Put(Dynamic),
    /// No unfinished tasks (`q.join`).
    Join,
    /// The lock or semaphore.
    Acquire,
    /// The event to be set.
    Event,
    /// A notify (`c.wait`): the lock was released at this level.
    Notified { level: u32 },
    /// The lock back at `level` after a condition's wait, which then ends with `outcome`.
    Reacquire { level: u32, outcome: Outcome },
    /// A barrier's release (this party arrived with `index`).
    Released,
    /// A barrier that is running its action, to enter the next round.
    Enter(Deadline),
}

#[derive(Clone, Copy)]
enum Outcome {
    Notified,
    TimedOut,
    Cancelled,
}

struct Parked {
    obj: u64,
    wait: Wait,
    deadline: Deadline,
}

/// The synchronization objects of one server, and the requests waiting on them.
#[derive(Default)]
pub(crate) struct Sync {
    objects: HashMap<u64, SyncObj>,
    parked: HashMap<ConnId, Parked>,
    /// Per object, the connections parked on it, in arrival order.
    waiting: HashMap<u64, VecDeque<ConnId>>,
    /// Per connection, the locks it holds.
    held: HashMap<ConnId, Vec<u64>>,
    /// Connections running a barrier's action: the barrier and its round.
    acting: HashMap<ConnId, (u64, u64)>,
    /// Who each connection is ("pid 12 on host"), for messages.
    who: HashMap<ConnId, String>,
    /// The key of the server (a Condition's lock must be a proxy of this server).
    key: Vec<u8>,
    /// Replies to send.
    pub(crate) out: Vec<(ConnId, Reply)>,
}

fn timeout_deadline(t: Timeout, default: Option<f64>) -> Deadline {
    match t {
        Timeout::Never => Deadline::NEVER,
        Timeout::Secs(s) => Deadline::after_secs(s),
        Timeout::Default => default.map_or(Deadline::NEVER, Deadline::after_secs),
    }
}

fn broken_barrier() -> MpError {
    mp_err!(BrokenBarrierError, "the barrier is broken")
}

impl Sync {
    /// The objects of a server whose key is `key`.
    pub(crate) fn new(key: Vec<u8>) -> Sync {
        Sync { key, ..Sync::default() }
    }

    /// Whether `id` is one of these objects.
    pub(crate) fn has(&self, id: u64) -> bool {
        self.objects.contains_key(&id)
    }

    /// Notes who a connection is.
    pub(crate) fn connected(&mut self, conn: ConnId, who: String) {
        self.who.insert(conn, who);
    }

    fn who(&self, conn: ConnId) -> String {
        self.who.get(&conn).cloned().unwrap_or_else(|| format!("connection {conn}"))
    }

    fn reply(&mut self, conn: ConnId, r: impl Into<Reply>) {
        self.out.push((conn, r.into()));
    }

    fn value(&mut self, conn: ConnId, v: impl Into<Dynamic>) {
        self.out.push((conn, Reply::Value(v.into())));
    }

    /// The earliest deadline of a parked request.
    pub(crate) fn next_deadline(&self) -> Deadline {
        self.parked.values().fold(Deadline::NEVER, |d, p| d.min(p.deadline))
    }

    /// Makes primitive `p` with the global's arguments, as object `id`.
    pub(crate) fn create(&mut self, id: u64, p: Primitive, args: Array) -> MpResult<()> {
        let arg = |i: usize| args.get(i).cloned();
        let n_args = |max: usize| {
            if args.len() > max {
                Err(mp_err!(TypeError, "{}() takes at most {max} arguments, not {}", p.global(), args.len()))
            } else {
                Ok(())
            }
        };
        let obj = match p {
            Primitive::Lock | Primitive::RLock => {
                n_args(0)?;
                SyncObj::Lock(LockObj {
                    recursive: p == Primitive::RLock,
                    owner: None,
                    level: 0,
                    owner_died: false,
                    dead_owner: None,
                })
            }
            Primitive::Semaphore | Primitive::BoundedSemaphore => {
                n_args(1)?;
                let value = match arg(0) {
                    Some(n) => crate::semaphore::initial(&n, p.global())? as u64,
                    None => 1,
                };
                SyncObj::Semaphore { value, max: (p == Primitive::BoundedSemaphore).then_some(value) }
            }
            Primitive::Event => {
                n_args(0)?;
                SyncObj::Event(false)
            }
            Primitive::Condition => {
                n_args(1)?;
                let lock = match arg(0) {
                    None => {
                        let lock = id + (1 << 62);
                        self.create(lock, Primitive::RLock, Array::new())?;
                        lock
                    }
                    Some(l) => self.lock_of(&l)?,
                };
                SyncObj::Condition { lock }
            }
            Primitive::Barrier => {
                n_args(2)?;
                let options = match arg(1) {
                    None => Map::new(),
                    Some(o) => o.try_cast::<Map>().ok_or_else(|| {
                        mp_err!(TypeError, "Barrier() takes an object map of options (#{{action, timeout}})")
                    })?,
                };
                let (parties, action, timeout) = crate::barrier::arguments(&arg(0).unwrap_or_default(), options)?;
                SyncObj::Barrier(BarrierObj {
                    parties: parties as u64,
                    timeout,
                    action: action.map(Dynamic::from),
                    broken: false,
                    generation: 0,
                    arrived: Vec::new(),
                    acting: false,
                })
            }
            Primitive::Queue | Primitive::JoinableQueue => {
                n_args(1)?;
                let maxsize = match arg(0) {
                    Some(n) => crate::queue::maxsize(&n, p.global())?,
                    None => 0,
                };
                SyncObj::Queue(QueueObj {
                    items: VecDeque::new(),
                    maxsize,
                    joinable: p == Primitive::JoinableQueue,
                    unfinished: 0,
                })
            }
        };
        self.objects.insert(id, obj);
        Ok(())
    }

    /// The lock of `Condition(lock)`: a Lock or RLock proxy of this server.
    fn lock_of(&self, l: &Dynamic) -> MpResult<u64> {
        let refuse = || {
            mp_err!(
                TypeError,
                "Condition() takes a Lock or RLock of the same manager (m.Lock(), m.RLock()), not {}",
                opts::type_name(l)
            )
        };
        let p = l.read_lock::<Proxy>().ok_or_else(refuse)?;
        if p.0.addr.authkey != self.key || !matches!(self.objects.get(&p.0.id), Some(SyncObj::Lock(_))) {
            return Err(refuse());
        }
        Ok(p.0.id)
    }

    /// Runs `op` on object `id` for connection `conn`: replies, or parks the request.
    pub(crate) fn call(&mut self, conn: ConnId, id: u64, op: Op) {
        let result = self.run(conn, id, op);
        if let Err(e) = result {
            self.reply(conn, e);
        }
    }

    fn park(&mut self, conn: ConnId, obj: u64, wait: Wait, deadline: Deadline) {
        self.parked.insert(conn, Parked { obj, wait, deadline });
        self.waiting.entry(obj).or_default().push_back(conn);
    }

    fn unpark(&mut self, conn: ConnId) -> Option<Parked> {
        let p = self.parked.remove(&conn)?;
        if let Some(q) = self.waiting.get_mut(&p.obj) {
            q.retain(|c| *c != conn);
            if q.is_empty() {
                self.waiting.remove(&p.obj);
            }
        }
        Some(p)
    }

    fn run(&mut self, conn: ConnId, id: u64, op: Op) -> MpResult<()> {
        let obj = self.objects.get_mut(&id).ok_or_else(|| mp_err!(KeyError, "the manager has no object {id}"))?;
        let name = obj.name();
        let none = |op: &Op| mp_err!(TypeError, "a {name} proxy has no method '{}'", super::objects::method(op));
        match obj {
            SyncObj::Queue(q) => match op {
                Op::Put(item, block, t) => {
                    if !q.full() {
                        q.items.push_back(item);
                        if q.joinable {
                            q.unfinished += 1;
                        }
                        self.value(conn, ());
                        self.wake(id);
                    } else if !block {
                        return Err(mp_err!(Full, "the queue is full"));
                    } else {
                        self.park(conn, id, Wait::Put(item), timeout_deadline(t, None));
                    }
                }
                Op::Take(block, t) => {
                    if let Some(item) = q.items.pop_front() {
                        self.value(conn, item);
                        self.wake(id);
                    } else if !block {
                        return Err(mp_err!(Empty, "the queue is empty"));
                    } else {
                        self.park(conn, id, Wait::Take, timeout_deadline(t, None));
                    }
                }
                Op::QSize => {
                    let n = q.items.len() as INT;
                    self.value(conn, n);
                }
                Op::IsEmpty => {
                    let e = q.items.is_empty();
                    self.value(conn, e);
                }
                Op::IsFull => {
                    let f = q.full();
                    self.value(conn, f);
                }
                Op::TaskDone => {
                    if !q.joinable {
                        return Err(mp_err!(ValueError, "task_done() needs a JoinableQueue, not a Queue"));
                    }
                    if q.unfinished == 0 {
                        return Err(mp_err!(ValueError, "task_done() called too many times"));
                    }
                    q.unfinished -= 1;
                    self.value(conn, ());
                    self.wake(id);
                }
                Op::Join => {
                    if !q.joinable {
                        return Err(mp_err!(ValueError, "join() needs a JoinableQueue, not a Queue"));
                    }
                    if q.unfinished == 0 {
                        self.value(conn, ());
                    } else {
                        self.park(conn, id, Wait::Join, Deadline::NEVER);
                    }
                }
                Op::Repr => {
                    let s = format!(
                        "<{name} qsize={} maxsize={}>",
                        q.items.len(),
                        if q.maxsize == 0 { "unbounded".to_string() } else { q.maxsize.to_string() }
                    );
                    self.value(conn, s);
                }
                op => return Err(none(&op)),
            },
            SyncObj::Lock(_) => match op {
                Op::Acquire(block, t) => {
                    if !self.try_acquire(conn, id)? {
                        if block {
                            self.park(conn, id, Wait::Acquire, timeout_deadline(t, None));
                        } else {
                            self.value(conn, false);
                        }
                    }
                }
                Op::Release => {
                    self.release(conn, id)?;
                    self.value(conn, ());
                }
                Op::OwnerDied => {
                    let died = matches!(self.objects.get(&id), Some(SyncObj::Lock(l)) if l.owner_died);
                    self.value(conn, died);
                }
                Op::Repr => {
                    let s = match &self.objects[&id] {
                        SyncObj::Lock(l) => match l.owner {
                            None => format!("<{name} unlocked>"),
                            Some(o) if l.recursive => format!("<{name} owner={} count={}>", self.who(o), l.level),
                            Some(o) => format!("<{name} owner={}>", self.who(o)),
                        },
                        _ => String::new(),
                    };
                    self.value(conn, s);
                }
                op => return Err(none(&op)),
            },
            SyncObj::Semaphore { value, max } => match op {
                Op::Acquire(block, t) => {
                    if *value > 0 {
                        *value -= 1;
                        self.value(conn, true);
                    } else if block {
                        self.park(conn, id, Wait::Acquire, timeout_deadline(t, None));
                    } else {
                        self.value(conn, false);
                    }
                }
                Op::Release => {
                    if max.is_some_and(|m| *value >= m) {
                        return Err(mp_err!(ValueError, "semaphore or lock released too many times"));
                    }
                    if *value >= crate::semaphore::MAX as u64 {
                        return Err(mp_err!(
                            ValueError,
                            "a semaphore's value cannot go above {}",
                            crate::semaphore::MAX
                        ));
                    }
                    *value += 1;
                    self.value(conn, ());
                    self.wake(id);
                }
                Op::SemValue => {
                    let v = *value as INT;
                    self.value(conn, v);
                }
                Op::Repr => {
                    let s = format!("<{name} value={value}>");
                    self.value(conn, s);
                }
                op => return Err(none(&op)),
            },
            SyncObj::Event(set) => match op {
                Op::Set => {
                    *set = true;
                    self.value(conn, ());
                    self.wake(id);
                }
                Op::Clear => {
                    *set = false;
                    self.value(conn, ());
                }
                Op::IsSet => {
                    let s = *set;
                    self.value(conn, s);
                }
                Op::Wait(t) => {
                    if *set {
                        self.value(conn, true);
                    } else {
                        self.park(conn, id, Wait::Event, timeout_deadline(t, None));
                    }
                }
                Op::Repr => {
                    let s = format!("<Event {}>", if *set { "set" } else { "unset" });
                    self.value(conn, s);
                }
                op => return Err(none(&op)),
            },
            SyncObj::Condition { lock } => {
                let lock = *lock;
                match op {
                    Op::Acquire(..) | Op::Release | Op::OwnerDied => return self.run(conn, lock, op),
                    Op::Wait(t) => {
                        let level = self.owned_level(conn, lock);
                        if level == 0 {
                            return Err(mp_err!(AssertionError, "must acquire() condition before using wait()"));
                        }
                        self.give_up(conn, lock);
                        self.park(conn, id, Wait::Notified { level }, timeout_deadline(t, None));
                    }
                    Op::Notify(n) => {
                        if self.owned_level(conn, lock) == 0 {
                            return Err(mp_err!(AssertionError, "lock is not owned"));
                        }
                        let waiters: Vec<ConnId> =
                            self.waiting.get(&id).map(|q| q.iter().copied().collect()).unwrap_or_default();
                        for w in waiters.into_iter().take(n.map_or(usize::MAX, |n| n.min(usize::MAX as u64) as usize)) {
                            self.reacquire(w, Outcome::Notified);
                        }
                        self.value(conn, ());
                    }
                    Op::Repr => {
                        let waiting = self.waiting.get(&id).map_or(0, |q| q.len());
                        let s = format!("<Condition waiters={waiting}>");
                        self.value(conn, s);
                    }
                    op => return Err(none(&op)),
                }
            }
            SyncObj::Barrier(b) => match op {
                Op::Wait(t) => {
                    let deadline = timeout_deadline(t, b.timeout);
                    if b.acting {
                        self.park(conn, id, Wait::Enter(deadline), Deadline::NEVER);
                    } else {
                        self.arrive(conn, id, deadline)?;
                    }
                }
                Op::Reset => {
                    self.break_barrier(id, None);
                    if let Some(SyncObj::Barrier(b)) = self.objects.get_mut(&id) {
                        b.broken = false;
                    }
                    self.value(conn, ());
                }
                Op::Abort => {
                    self.break_barrier(id, None);
                    self.value(conn, ());
                }
                Op::Parties => {
                    let p = b.parties as INT;
                    self.value(conn, p);
                }
                Op::NWaiting => {
                    let n = if b.acting { 0 } else { b.arrived.len() as INT };
                    self.value(conn, n);
                }
                Op::Broken => {
                    let br = b.broken;
                    self.value(conn, br);
                }
                Op::Repr => {
                    let s = format!(
                        "<Barrier parties={} waiting={}{}>",
                        b.parties,
                        b.arrived.len(),
                        if b.broken { " broken" } else { "" }
                    );
                    self.value(conn, s);
                }
                op => return Err(none(&op)),
            },
        }
        Ok(())
    }

    /// The level at which `conn` holds lock `lock` (0: not at all).
    fn owned_level(&self, conn: ConnId, lock: u64) -> u32 {
        match self.objects.get(&lock) {
            Some(SyncObj::Lock(l)) if l.owner == Some(conn) => l.level,
            _ => 0,
        }
    }

    /// Takes a lock for `conn` if it is free (or `conn`'s own RLock); replies `true` then.
    fn try_acquire(&mut self, conn: ConnId, id: u64) -> MpResult<bool> {
        let Some(SyncObj::Lock(l)) = self.objects.get_mut(&id) else { return Ok(false) };
        if l.owner == Some(conn) && l.recursive {
            l.level += 1;
            self.value(conn, true);
            return Ok(true);
        }
        if l.owner.is_some() {
            return Ok(false);
        }
        let warning = self.take(conn, id, 1);
        self.out.push((
            conn,
            match warning {
                Some(w) => Reply::Warned(true.into(), w),
                None => Reply::Value(true.into()),
            },
        ));
        Ok(true)
    }

    /// Makes `conn` the holder of free lock `id` at `level`; the warning for a dead former
    /// holder, if this is the first to take the lock over.
    fn take(&mut self, conn: ConnId, id: u64, level: u32) -> Option<String> {
        let taker = self.who(conn);
        let Some(SyncObj::Lock(l)) = self.objects.get_mut(&id) else { return None };
        l.owner = Some(conn);
        l.level = level;
        self.held.entry(conn).or_default().push(id);
        l.dead_owner.take().map(|dead| {
            format!(
                "rhai-mp: warning: the process holding a manager's {} ({dead}) died; {taker} has taken it over (owner_died is true until it is released)",
                if l.recursive { "RLock" } else { "Lock" }
            )
        })
    }

    /// Releases lock `id` (one level of an RLock) for `conn`.
    fn release(&mut self, conn: ConnId, id: u64) -> MpResult<()> {
        let Some(SyncObj::Lock(l)) = self.objects.get_mut(&id) else { return Ok(()) };
        if l.recursive {
            if l.owner != Some(conn) {
                return Err(mp_err!(AssertionError, "attempt to release recursive lock not owned by this process"));
            }
            if l.level > 1 {
                l.level -= 1;
                return Ok(());
            }
        } else if l.owner.is_none() {
            return Err(mp_err!(ValueError, "semaphore or lock released too many times"));
        }
        l.owner_died = false;
        if let Some(owner) = l.owner {
            self.give_up(owner, id);
        }
        Ok(())
    }

    /// Frees lock `id`, which `owner` holds, and lets the next waiter have it.
    fn give_up(&mut self, owner: ConnId, id: u64) {
        if let Some(SyncObj::Lock(l)) = self.objects.get_mut(&id) {
            l.owner = None;
            l.level = 0;
        }
        if let Some(h) = self.held.get_mut(&owner) {
            h.retain(|x| *x != id);
        }
        self.wake(id);
    }

    /// Moves a condition's waiter to wait for the lock, ending with `outcome`.
    fn reacquire(&mut self, conn: ConnId, outcome: Outcome) {
        let Some(p) = self.unpark(conn) else { return };
        let (Wait::Notified { level } | Wait::Reacquire { level, .. }) = p.wait else {
            self.parked.insert(conn, p); // not a condition's waiter: unchanged
            return;
        };
        let Some(SyncObj::Condition { lock }) = self.objects.get(&p.obj) else { return };
        let lock = *lock;
        self.park(conn, lock, Wait::Reacquire { level, outcome }, Deadline::NEVER);
        self.wake(lock);
    }

    /// A party arrives at barrier `id`.
    fn arrive(&mut self, conn: ConnId, id: u64, deadline: Deadline) -> MpResult<()> {
        let Some(SyncObj::Barrier(b)) = self.objects.get_mut(&id) else { return Ok(()) };
        if b.broken {
            return Err(broken_barrier());
        }
        let index = b.arrived.len() as u64;
        b.arrived.push((conn, index));
        if index + 1 < b.parties {
            self.park(conn, id, Wait::Released, deadline);
            return Ok(());
        }
        match b.action.clone() {
            Some(action) => {
                b.acting = true;
                let round = b.generation;
                self.acting.insert(conn, (id, round));
                self.out.push((conn, Reply::RunAction(action)));
            }
            None => self.release_barrier(id),
        }
        Ok(())
    }

    /// Lets every party of the round go, each with its index.
    fn release_barrier(&mut self, id: u64) {
        let Some(SyncObj::Barrier(b)) = self.objects.get_mut(&id) else { return };
        let arrived = std::mem::take(&mut b.arrived);
        b.generation += 1;
        b.acting = false;
        for (conn, index) in arrived {
            self.unpark(conn);
            self.value(conn, index as INT);
        }
        self.wake(id);
    }

    /// Breaks barrier `id`: every party waiting gets `BrokenBarrierError` (but `except`,
    /// whose request ends otherwise).
    fn break_barrier(&mut self, id: u64, except: Option<ConnId>) {
        let Some(SyncObj::Barrier(b)) = self.objects.get_mut(&id) else { return };
        b.broken = true;
        b.acting = false;
        b.generation += 1;
        let arrived = std::mem::take(&mut b.arrived);
        for (conn, _) in arrived {
            if Some(conn) == except || self.acting.contains_key(&conn) {
                continue;
            }
            self.unpark(conn);
            self.reply(conn, broken_barrier());
        }
        self.wake(id);
    }

    /// The barrier action `conn` ran has finished.
    pub(crate) fn action_done(&mut self, conn: ConnId, result: Result<(), Dynamic>) {
        let Some((id, round)) = self.acting.remove(&conn) else {
            self.reply(conn, mp_err!(RuntimeError, "no barrier action was running"));
            return;
        };
        let current = matches!(self.objects.get(&id), Some(SyncObj::Barrier(b)) if b.generation == round && !b.broken);
        match result {
            _ if !current => self.reply(conn, broken_barrier()),
            Ok(()) => self.release_barrier(id),
            Err(e) => {
                self.break_barrier(id, Some(conn));
                self.out.push((conn, Reply::Error(e)));
            }
        }
    }

    /// Retries the requests parked on object `id`, first come first served, until none
    /// can go on.
    fn wake(&mut self, id: u64) {
        loop {
            let Some(waiters) = self.waiting.get(&id) else { return };
            let waiters: Vec<ConnId> = waiters.iter().copied().collect();
            let mut progress = false;
            for conn in waiters {
                progress |= self.retry(conn);
            }
            if !progress {
                return;
            }
        }
    }

    /// Retries one parked request; whether it ended.
    fn retry(&mut self, conn: ConnId) -> bool {
        let Some(p) = self.parked.get(&conn) else { return false };
        let id = p.obj;
        let done = match (&p.wait, self.objects.get_mut(&id)) {
            (Wait::Take, Some(SyncObj::Queue(q))) => q.items.pop_front().map(Reply::Value),
            (Wait::Put(_), Some(SyncObj::Queue(q))) if !q.full() => {
                let Some(Parked { wait: Wait::Put(item), .. }) = self
                    .parked
                    .get_mut(&conn)
                    .map(|p| std::mem::replace(p, Parked { obj: id, wait: Wait::Join, deadline: Deadline::NEVER }))
                else {
                    return false;
                };
                if let Some(SyncObj::Queue(q)) = self.objects.get_mut(&id) {
                    q.items.push_back(item);
                    if q.joinable {
                        q.unfinished += 1;
                    }
                }
                Some(Reply::Value(Dynamic::UNIT))
            }
            (Wait::Join, Some(SyncObj::Queue(q))) if q.unfinished == 0 => Some(Reply::Value(Dynamic::UNIT)),
            (Wait::Acquire, Some(SyncObj::Semaphore { value, .. })) if *value > 0 => {
                *value -= 1;
                Some(Reply::Value(true.into()))
            }
            (Wait::Acquire, Some(SyncObj::Lock(l))) if l.owner.is_none() => {
                let warning = self.take(conn, id, 1);
                Some(match warning {
                    Some(w) => Reply::Warned(true.into(), w),
                    None => Reply::Value(true.into()),
                })
            }
            (Wait::Reacquire { level, outcome }, Some(SyncObj::Lock(l))) if l.owner.is_none() => {
                let (level, outcome) = (*level, *outcome);
                let warning = self.take(conn, id, level);
                let result = match outcome {
                    Outcome::Notified => Reply::Value(true.into()),
                    Outcome::TimedOut => Reply::Value(false.into()),
                    Outcome::Cancelled => Reply::Cancelled,
                };
                Some(match (warning, result) {
                    (Some(w), Reply::Value(v)) => Reply::Warned(v, w),
                    (_, r) => r,
                })
            }
            (Wait::Event, Some(SyncObj::Event(true))) => Some(Reply::Value(true.into())),
            (Wait::Enter(deadline), Some(SyncObj::Barrier(b))) if !b.acting || b.broken => {
                let deadline = *deadline;
                self.unpark(conn);
                if let Err(e) = self.arrive(conn, id, deadline) {
                    self.reply(conn, e);
                }
                return true;
            }
            _ => None,
        };
        match done {
            Some(reply) => {
                self.unpark(conn);
                self.out.push((conn, reply));
                true
            }
            None => false,
        }
    }

    /// Ends the parked requests whose deadline passed, with their timeout results.
    pub(crate) fn expire(&mut self) {
        let late: Vec<ConnId> = self.parked.iter().filter(|(_, p)| p.deadline.passed()).map(|(c, _)| *c).collect();
        for conn in late {
            let Some(p) = self.parked.get(&conn) else { continue };
            match p.wait {
                Wait::Notified { .. } => self.reacquire(conn, Outcome::TimedOut),
                Wait::Released => {
                    let id = p.obj;
                    self.break_barrier(id, None);
                }
                _ => {
                    let Some(p) = self.unpark(conn) else { continue };
                    let reply: Reply = match p.wait {
                        Wait::Take => mp_err!(Empty, "the queue is empty").into(),
                        Wait::Put(_) => mp_err!(Full, "the queue is full").into(),
                        _ => Reply::Value(false.into()),
                    };
                    self.out.push((conn, reply));
                }
            }
        }
    }

    /// The client stopped waiting (Ctrl-C): its parked request ends with `Cancelled`
    /// (a condition's wait takes its lock back first, as an interrupted wait does).
    pub(crate) fn cancel(&mut self, conn: ConnId) {
        let Some(p) = self.parked.get_mut(&conn) else { return };
        match &mut p.wait {
            Wait::Notified { .. } => self.reacquire(conn, Outcome::Cancelled),
            Wait::Reacquire { outcome, .. } => *outcome = Outcome::Cancelled,
            Wait::Released => {
                let id = p.obj;
                self.unpark(conn);
                self.break_barrier(id, Some(conn));
                self.out.push((conn, Reply::Cancelled));
            }
            _ => {
                self.unpark(conn);
                self.out.push((conn, Reply::Cancelled));
            }
        }
    }

    /// A connection closed: its parked request goes, it leaves any barrier round, and
    /// every lock it held is freed for the next (who sees `owner_died`).
    pub(crate) fn disconnected(&mut self, conn: ConnId) {
        let who = self.who(conn);
        if let Some(p) = self.unpark(conn) {
            if let (Wait::Released, Some(SyncObj::Barrier(b))) = (&p.wait, self.objects.get_mut(&p.obj)) {
                b.arrived.retain(|(c, _)| *c != conn);
            }
        }
        if let Some((id, _)) = self.acting.remove(&conn) {
            self.break_barrier(id, Some(conn));
        }
        for id in self.held.remove(&conn).unwrap_or_default() {
            if let Some(SyncObj::Lock(l)) = self.objects.get_mut(&id) {
                if l.owner == Some(conn) {
                    l.owner_died = true;
                    l.dead_owner = Some(who.clone());
                    l.owner = None;
                    l.level = 0;
                }
            }
            self.wake(id);
        }
        self.who.remove(&conn);
        self.out.retain(|(c, _)| *c != conn);
    }
}
