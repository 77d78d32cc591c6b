//! The queues and synchronization primitives a TCP manager's server holds for its clients
//! (a local `Manager()` hands out shared-memory ones instead), and the requests that wait
//! on them.
//!
//! Every primitive stands on one mechanism, [`permits::Permits`]: free permits and the
//! connections waiting for one, first come first served. A request that cannot be done at
//! once (a `get` on an empty queue, an `acquire` of a held lock) is *parked*: its
//! connection is in line in one of the object's `Permits` while the server serves everyone
//! else, and the object grants it when it changes. A parked request ends when it is
//! granted, when its deadline passes (the timeout result: `Empty`, `Full`, `false`, a
//! broken barrier), when its client cancels it (Ctrl-C) or when its client disconnects.
//!
//! Ownership is per connection (one per client process): a lock is held by a connection,
//! and a connection that closes — its process exited or was killed — gives up every lock it
//! held; the next holder sees `owner_died`, as with local locks. A barrier party that
//! disconnects while waiting leaves the round; one that disconnects while running the
//! action breaks the barrier. Replies go to [`Sync::out`]; the server sends them.
//!
//! Files (each primitive's operations, on its `Permits`):
//!
//! - `permits.rs` — the mechanism;
//! - `lock.rs` — Lock and RLock;
//! - `semaphore.rs` — Semaphore and BoundedSemaphore;
//! - `event.rs` — Event;
//! - `queue.rs` — Queue and JoinableQueue;
//! - `condition.rs` — Condition (on a lock of the same server);
//! - `barrier.rs` — Barrier (and its action, run by the last party's client).

mod barrier;
mod condition;
mod event;
mod lock;
mod permits;
mod queue;
mod semaphore;

use crate::manager::protocol::{Op, Reply, Timeout};
use crate::manager::Kind;
use rhai::{Array, Dynamic};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, MpResult};
use std::collections::HashMap;

/// A connection, as the server numbers them.
pub(crate) type ConnId = u64;

/// An object of this module.
enum SyncObj {
    Queue(queue::QueueObj),
    Lock(lock::LockObj),
    Semaphore(semaphore::SemaphoreObj),
    Event(event::EventObj),
    Condition(condition::ConditionObj),
    Barrier(barrier::BarrierObj),
}

impl SyncObj {
    fn name(&self) -> &'static str {
        match self {
            SyncObj::Queue(q) if q.joinable => "JoinableQueue",
            SyncObj::Queue(_) => "Queue",
            SyncObj::Lock(l) if l.recursive => "RLock",
            SyncObj::Lock(_) => "Lock",
            SyncObj::Semaphore(s) if s.max.is_some() => "BoundedSemaphore",
            SyncObj::Semaphore(_) => "Semaphore",
            SyncObj::Event(_) => "Event",
            SyncObj::Condition(_) => "Condition",
            SyncObj::Barrier(_) => "Barrier",
        }
    }
}

/// What a parked request waits for (and so which of its object's `Permits` it is in line
/// in).
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
    /// A barrier's release.
    Released,
    /// A barrier that is running its action, to enter the next round.
    Enter(Deadline),
}

/// How a condition's wait ends once it has its lock back.
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
    pub(crate) fn create(&mut self, id: u64, p: Kind, args: Array) -> MpResult<()> {
        let max = match p {
            Kind::Lock | Kind::RLock | Kind::Event => 0,
            Kind::Barrier => 2,
            _ => 1,
        };
        if args.len() > max {
            return Err(mp_err!(TypeError, "{}() takes at most {max} arguments, not {}", p.object(), args.len()));
        }
        let arg = |i: usize| args.get(i).cloned();
        let obj = match p {
            Kind::Lock | Kind::RLock => SyncObj::Lock(lock::LockObj::new(p == Kind::RLock)),
            Kind::Semaphore | Kind::BoundedSemaphore => {
                SyncObj::Semaphore(semaphore::SemaphoreObj::new(arg(0), p == Kind::BoundedSemaphore, p.object())?)
            }
            Kind::Event => SyncObj::Event(event::EventObj::default()),
            Kind::Condition => {
                let lock = match arg(0) {
                    None => {
                        let lock = id + (1 << 62);
                        self.create(lock, Kind::RLock, Array::new())?;
                        lock
                    }
                    Some(l) => self.lock_of(&l)?,
                };
                SyncObj::Condition(condition::ConditionObj::new(lock))
            }
            Kind::Barrier => SyncObj::Barrier(barrier::BarrierObj::new(arg(0), arg(1))?),
            Kind::Queue | Kind::JoinableQueue => {
                SyncObj::Queue(queue::QueueObj::new(arg(0), p == Kind::JoinableQueue, p.object())?)
            }
            Kind::Dict | Kind::List | Kind::Namespace | Kind::Value | Kind::Array => {
                return Err(mp_err!(RuntimeError, "a {} is data, not a primitive", p.object()))
            }
        };
        self.objects.insert(id, obj);
        Ok(())
    }

    /// Runs `op` on object `id` for connection `conn`: replies, or parks the request.
    pub(crate) fn call(&mut self, conn: ConnId, id: u64, op: Op) {
        if let Err(e) = self.run(conn, id, op) {
            self.reply(conn, e);
        }
    }

    fn run(&mut self, conn: ConnId, id: u64, op: Op) -> MpResult<()> {
        let obj = self.objects.get(&id).ok_or_else(|| mp_err!(KeyError, "the manager has no object {id}"))?;
        let name = obj.name();
        match obj {
            SyncObj::Queue(_) => self.queue_op(conn, id, name, op),
            SyncObj::Lock(_) => self.lock_op(conn, id, name, op),
            SyncObj::Semaphore(_) => self.semaphore_op(conn, id, name, op),
            SyncObj::Event(_) => self.event_op(conn, id, op),
            SyncObj::Condition(_) => self.condition_op(conn, id, op),
            SyncObj::Barrier(_) => self.barrier_op(conn, id, op),
        }
    }

    /// Parks `conn`'s request on object `id` (it is already in line in the object's
    /// `Permits`).
    fn park(&mut self, conn: ConnId, obj: u64, wait: Wait, deadline: Deadline) {
        self.parked.insert(conn, Parked { obj, wait, deadline });
    }

    /// The `Permits` a parked request is in line in.
    fn line(&mut self, obj: u64, wait: &Wait) -> Option<&mut permits::Permits> {
        Some(match (self.objects.get_mut(&obj)?, wait) {
            (SyncObj::Queue(q), Wait::Take) => &mut q.items,
            (SyncObj::Queue(q), Wait::Put(_)) => &mut q.room,
            (SyncObj::Queue(q), Wait::Join) => &mut q.idle,
            (SyncObj::Lock(l), Wait::Acquire | Wait::Reacquire { .. }) => &mut l.permit,
            (SyncObj::Semaphore(s), Wait::Acquire) => &mut s.permits,
            (SyncObj::Event(e), Wait::Event) => &mut e.waiters,
            (SyncObj::Condition(c), Wait::Notified { .. }) => &mut c.waiters,
            (SyncObj::Barrier(b), Wait::Released) => &mut b.waiters,
            (SyncObj::Barrier(b), Wait::Enter(_)) => &mut b.entering,
            _ => return None,
        })
    }

    /// Ends `conn`'s parked request without granting it: out of its line, and forgotten.
    fn unpark(&mut self, conn: ConnId) -> Option<Parked> {
        let p = self.parked.remove(&conn)?;
        if let Some(line) = self.line(p.obj, &p.wait) {
            line.forget(conn);
        }
        Some(p)
    }

    /// Takes the parked requests of `granted` (which their line let go) out of `parked`.
    fn take_parked(&mut self, granted: &[ConnId]) -> Vec<(ConnId, Parked)> {
        granted.iter().filter_map(|c| self.parked.remove(c).map(|p| (*c, p))).collect()
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
            self.owner_gone(conn, id, &who);
        }
        self.who.remove(&conn);
        self.out.retain(|(c, _)| *c != conn);
    }
}

/// The error for an operation a primitive does not have.
fn no_method(name: &str, op: &Op) -> MpError {
    mp_err!(TypeError, "a {name} proxy has no method '{}'", super::objects::method(op))
}
