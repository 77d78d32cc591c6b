//! Condition: the connections waiting for a notify, on a lock of the same server. A wait
//! gives the lock up, waits in line, and takes the lock back (at the level it held it)
//! before it ends, whether notified, timed out or cancelled.

use super::permits::Permits;
use super::{no_method, timeout_deadline, ConnId, Outcome, Parked, Sync, SyncObj, Wait};
use crate::manager::protocol::Op;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::MpResult;

/// A Condition.
pub(super) struct ConditionObj {
    /// Its lock (an object of this server).
    lock: u64,
    /// The `wait`s waiting for a notify.
    pub(super) waiters: Permits,
}

impl ConditionObj {
    pub(super) fn new(lock: u64) -> ConditionObj {
        ConditionObj { lock, waiters: Permits::new(0) }
    }
}

impl Sync {
    pub(super) fn condition_op(&mut self, conn: ConnId, id: u64, op: Op) -> MpResult<()> {
        let Some(SyncObj::Condition(c)) = self.objects.get(&id) else { return Ok(()) };
        let lock = c.lock;
        match op {
            Op::Acquire(..) | Op::Release | Op::OwnerDied => return self.run(conn, lock, op),
            Op::Wait(t) => {
                let level = self.owned_level(conn, lock);
                if level == 0 {
                    return Err(mp_err!(AssertionError, "must acquire() condition before using wait()"));
                }
                self.give_up(conn, lock);
                if let Some(SyncObj::Condition(c)) = self.objects.get_mut(&id) {
                    c.waiters.enqueue(conn);
                }
                self.park(conn, id, Wait::Notified { level }, timeout_deadline(t, None));
            }
            Op::Notify(n) => {
                if self.owned_level(conn, lock) == 0 {
                    return Err(mp_err!(AssertionError, "lock is not owned"));
                }
                let granted = match self.objects.get_mut(&id) {
                    Some(SyncObj::Condition(c)) => c.waiters.wake(n.unwrap_or(u64::MAX)),
                    _ => Vec::new(),
                };
                for (waiter, p) in self.take_parked(&granted) {
                    if let Wait::Notified { level } = p.wait {
                        self.lock_again(waiter, lock, level, Outcome::Notified);
                    }
                }
                self.value(conn, ());
            }
            Op::Repr => {
                let s = format!("<Condition waiters={}>", c.waiters.waiting());
                self.value(conn, s);
            }
            op => return Err(no_method("Condition", &op)),
        }
        Ok(())
    }

    /// Ends a condition's wait (a timeout, a cancel) without a notify: it takes its lock
    /// back, and then ends with `outcome`.
    pub(super) fn reacquire(&mut self, conn: ConnId, outcome: Outcome) {
        let Some(Parked { wait: Wait::Notified { level }, obj, .. }) = self.parked.get(&conn) else { return };
        let (level, obj) = (*level, *obj);
        let Some(SyncObj::Condition(c)) = self.objects.get(&obj) else { return };
        let lock = c.lock;
        self.unpark(conn);
        self.lock_again(conn, lock, level, outcome);
    }
}
