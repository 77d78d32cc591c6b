//! Lock and RLock: one permit, held by a connection (at a level, for an RLock). A lock
//! whose holder disconnected is free, and its next holder sees `owner_died`.

use super::permits::Permits;
use super::{no_method, timeout_deadline, ConnId, Outcome, Parked, Sync, SyncObj, Wait};
use crate::manager::protocol::{Op, Reply};
use crate::manager::Proxy;
use crate::opts;
use rhai::Dynamic;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::MpResult;

/// A Lock or RLock.
pub(super) struct LockObj {
    pub(super) recursive: bool,
    /// Free (1) or held (0), and who waits for it.
    pub(super) permit: Permits,
    owner: Option<ConnId>,
    level: u32,
    /// The last holder died holding it; true until the next release.
    owner_died: bool,
    /// Who that was, for the warning the next holder gets (once).
    dead_owner: Option<String>,
}

impl LockObj {
    pub(super) fn new(recursive: bool) -> LockObj {
        LockObj { recursive, permit: Permits::new(1), owner: None, level: 0, owner_died: false, dead_owner: None }
    }
}

impl Sync {
    pub(super) fn lock_op(&mut self, conn: ConnId, id: u64, name: &str, op: Op) -> MpResult<()> {
        let Some(SyncObj::Lock(l)) = self.objects.get_mut(&id) else { return Ok(()) };
        match op {
            Op::Acquire(block, t) => {
                if l.owner == Some(conn) && l.recursive {
                    l.level += 1;
                    self.value(conn, true);
                } else if l.permit.try_take() {
                    let reply = self.hand_over(conn, id, 1, Reply::Value(true.into()));
                    self.out.push((conn, reply));
                } else if block {
                    l.permit.enqueue(conn);
                    self.park(conn, id, Wait::Acquire, timeout_deadline(t, None));
                } else {
                    self.value(conn, false);
                }
            }
            Op::Release => {
                self.release_lock(conn, id)?;
                self.value(conn, ());
            }
            Op::OwnerDied => {
                let died = l.owner_died;
                self.value(conn, died);
            }
            Op::Repr => {
                let (owner, recursive, level) = (l.owner, l.recursive, l.level);
                let s = match owner {
                    None => format!("<{name} unlocked>"),
                    Some(o) if recursive => format!("<{name} owner={} count={level}>", self.who(o)),
                    Some(o) => format!("<{name} owner={}>", self.who(o)),
                };
                self.value(conn, s);
            }
            op => return Err(no_method(name, &op)),
        }
        Ok(())
    }

    /// The lock of `Condition(lock)`: a Lock or RLock proxy of this server.
    pub(super) fn lock_of(&self, l: &Dynamic) -> MpResult<u64> {
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

    /// The level at which `conn` holds lock `lock` (0: not at all).
    pub(super) fn owned_level(&self, conn: ConnId, lock: u64) -> u32 {
        match self.objects.get(&lock) {
            Some(SyncObj::Lock(l)) if l.owner == Some(conn) => l.level,
            _ => 0,
        }
    }

    /// Makes `conn`, which has just got lock `id`'s permit, its holder at `level`; the
    /// reply `granted` then, with the warning for a dead former holder if this is the first
    /// to take the lock over.
    fn hand_over(&mut self, conn: ConnId, id: u64, level: u32, granted: Reply) -> Reply {
        let taker = self.who(conn);
        let Some(SyncObj::Lock(l)) = self.objects.get_mut(&id) else { return granted };
        l.owner = Some(conn);
        l.level = level;
        self.held.entry(conn).or_default().push(id);
        let warning = l.dead_owner.take().map(|dead| {
            format!(
                "rhai-mp: warning: the process holding a manager's {} ({dead}) died; {taker} has taken it over (owner_died is true until it is released)",
                if l.recursive { "RLock" } else { "Lock" }
            )
        });
        match (warning, granted) {
            (Some(w), Reply::Value(v)) => Reply::Warned(v, w),
            (_, r) => r,
        }
    }

    /// Releases lock `id` (one level of an RLock) for `conn`.
    fn release_lock(&mut self, conn: ConnId, id: u64) -> MpResult<()> {
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

    /// Frees lock `id`, which `owner` holds, and hands it to the first waiter.
    pub(super) fn give_up(&mut self, owner: ConnId, id: u64) {
        let Some(SyncObj::Lock(l)) = self.objects.get_mut(&id) else { return };
        l.owner = None;
        l.level = 0;
        if let Some(h) = self.held.get_mut(&owner) {
            h.retain(|x| *x != id);
        }
        let granted = l.permit.give(1);
        for (conn, p) in self.take_parked(&granted) {
            self.lock_granted(conn, id, p);
        }
    }

    /// A waiter got lock `id`: an `acquire`, or a condition's wait taking its lock back.
    fn lock_granted(&mut self, conn: ConnId, id: u64, p: Parked) {
        let (level, granted) = match p.wait {
            Wait::Reacquire { level, outcome } => (
                level,
                match outcome {
                    Outcome::Notified => Reply::Value(true.into()),
                    Outcome::TimedOut => Reply::Value(false.into()),
                    Outcome::Cancelled => Reply::Cancelled,
                },
            ),
            _ => (1, Reply::Value(true.into())),
        };
        let reply = self.hand_over(conn, id, level, granted);
        self.out.push((conn, reply));
    }

    /// `conn` gets lock `id` back at `level` for a condition's wait, which then ends with
    /// `outcome`: at once if the lock is free, else in line.
    pub(super) fn lock_again(&mut self, conn: ConnId, id: u64, level: u32, outcome: Outcome) {
        let Some(SyncObj::Lock(l)) = self.objects.get_mut(&id) else { return };
        let parked = Parked { obj: id, wait: Wait::Reacquire { level, outcome }, deadline: Default::default() };
        if l.permit.try_take() {
            self.lock_granted(conn, id, parked);
        } else {
            l.permit.enqueue(conn);
            self.parked.insert(conn, parked);
        }
    }

    /// The holder of lock `id` (`who`, connection `conn`) went away: the lock is free, and
    /// its next holder sees `owner_died`.
    pub(super) fn owner_gone(&mut self, conn: ConnId, id: u64, who: &str) {
        let Some(SyncObj::Lock(l)) = self.objects.get_mut(&id) else { return };
        if l.owner == Some(conn) {
            l.owner_died = true;
            l.dead_owner = Some(who.to_string());
            self.give_up(conn, id);
        }
    }
}
