//! Semaphore and BoundedSemaphore: `n` permits, taken and given by any connection (a
//! semaphore has no owner, so a dead process's permit is not returned).

use super::permits::Permits;
use super::{no_method, timeout_deadline, ConnId, Sync, SyncObj, Wait};
use crate::manager::protocol::Op;
use rhai::{Dynamic, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::MpResult;

/// A Semaphore or BoundedSemaphore.
pub(super) struct SemaphoreObj {
    pub(super) permits: Permits,
    /// A bounded one's initial value.
    pub(super) max: Option<u64>,
}

impl SemaphoreObj {
    /// `Semaphore(n)` (`n`: 1 when not given).
    pub(super) fn new(n: Option<Dynamic>, bounded: bool, func: &str) -> MpResult<SemaphoreObj> {
        let value = match n {
            Some(n) => crate::semaphore::initial(&n, func)? as u64,
            None => 1,
        };
        Ok(SemaphoreObj { permits: Permits::new(value), max: bounded.then_some(value) })
    }
}

impl Sync {
    pub(super) fn semaphore_op(&mut self, conn: ConnId, id: u64, name: &str, op: Op) -> MpResult<()> {
        let Some(SyncObj::Semaphore(s)) = self.objects.get_mut(&id) else { return Ok(()) };
        match op {
            Op::Acquire(block, t) => {
                if s.permits.try_take() {
                    self.value(conn, true);
                } else if block {
                    s.permits.enqueue(conn);
                    self.park(conn, id, Wait::Acquire, timeout_deadline(t, None));
                } else {
                    self.value(conn, false);
                }
            }
            Op::Release => {
                let value = s.permits.available();
                if s.max.is_some_and(|m| value >= m) {
                    return Err(mp_err!(ValueError, "semaphore or lock released too many times"));
                }
                if value >= crate::semaphore::MAX as u64 {
                    return Err(mp_err!(ValueError, "a semaphore's value cannot go above {}", crate::semaphore::MAX));
                }
                let granted = s.permits.give(1);
                self.value(conn, ());
                for (waiter, _) in self.take_parked(&granted) {
                    self.value(waiter, true);
                }
            }
            Op::SemValue => {
                let v = s.permits.available() as INT;
                self.value(conn, v);
            }
            Op::Repr => {
                let s = format!("<{name} value={}>", s.permits.available());
                self.value(conn, s);
            }
            op => return Err(no_method(name, &op)),
        }
        Ok(())
    }
}
