//! Event: a flag, and the connections waiting for it to be set (all let go at once).

use super::permits::Permits;
use super::{no_method, timeout_deadline, ConnId, Sync, SyncObj, Wait};
use crate::manager::protocol::Op;
use rhai_mp_core::prelude::MpResult;

/// An Event.
#[derive(Default)]
pub(super) struct EventObj {
    set: bool,
    pub(super) waiters: Permits,
}

impl Sync {
    pub(super) fn event_op(&mut self, conn: ConnId, id: u64, op: Op) -> MpResult<()> {
        let Some(SyncObj::Event(e)) = self.objects.get_mut(&id) else { return Ok(()) };
        match op {
            Op::Set => {
                e.set = true;
                let granted = e.waiters.wake_all();
                self.value(conn, ());
                for (waiter, _) in self.take_parked(&granted) {
                    self.value(waiter, true);
                }
            }
            Op::Clear => {
                e.set = false;
                self.value(conn, ());
            }
            Op::IsSet => {
                let s = e.set;
                self.value(conn, s);
            }
            Op::Wait(t) => {
                if e.set {
                    self.value(conn, true);
                } else {
                    e.waiters.enqueue(conn);
                    self.park(conn, id, Wait::Event, timeout_deadline(t, None));
                }
            }
            Op::Repr => {
                let s = format!("<Event {}>", if e.set { "set" } else { "unset" });
                self.value(conn, s);
            }
            op => return Err(no_method("Event", &op)),
        }
        Ok(())
    }
}
