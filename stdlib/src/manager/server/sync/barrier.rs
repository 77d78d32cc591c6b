//! Barrier: the parties of the current round, in arrival order, waiting in line to be let
//! go together; the last to arrive runs the action first (its client runs it and says when
//! it is done), and parties that come meanwhile wait in a second line to enter the next
//! round.

use super::permits::Permits;
use super::{no_method, timeout_deadline, ConnId, Sync, SyncObj, Wait};
use crate::manager::protocol::{Op, Reply};
use rhai::{Dynamic, Map, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, MpResult};

/// A barrier.
pub(super) struct BarrierObj {
    parties: u64,
    timeout: Option<f64>,
    action: Option<Dynamic>,
    broken: bool,
    generation: u64,
    /// The parties of this round, in arrival order, with their indexes.
    pub(super) arrived: Vec<(ConnId, u64)>,
    /// The last arrival is running the action: others wait to enter.
    acting: bool,
    /// The parties of this round waiting to be let go.
    pub(super) waiters: Permits,
    /// The parties waiting to enter the next round while the action runs.
    pub(super) entering: Permits,
}

fn broken_barrier() -> MpError {
    mp_err!(BrokenBarrierError, "the barrier is broken")
}

impl BarrierObj {
    /// `Barrier(parties)`, `Barrier(parties, #{action, timeout})`.
    pub(super) fn new(parties: Option<Dynamic>, options: Option<Dynamic>) -> MpResult<BarrierObj> {
        let options = match options {
            None => Map::new(),
            Some(o) => o
                .try_cast::<Map>()
                .ok_or_else(|| mp_err!(TypeError, "Barrier() takes an object map of options (#{{action, timeout}})"))?,
        };
        let (parties, action, timeout) = crate::barrier::arguments(&parties.unwrap_or_default(), options)?;
        Ok(BarrierObj {
            parties: parties as u64,
            timeout,
            action: action.map(Dynamic::from),
            broken: false,
            generation: 0,
            arrived: Vec::new(),
            acting: false,
            waiters: Permits::new(0),
            entering: Permits::new(0),
        })
    }
}

impl Sync {
    pub(super) fn barrier_op(&mut self, conn: ConnId, id: u64, op: Op) -> MpResult<()> {
        let Some(SyncObj::Barrier(b)) = self.objects.get_mut(&id) else { return Ok(()) };
        match op {
            Op::Wait(t) => {
                let deadline = timeout_deadline(t, b.timeout);
                if b.acting {
                    b.entering.enqueue(conn);
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
            op => return Err(no_method("Barrier", &op)),
        }
        Ok(())
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
            b.waiters.enqueue(conn);
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

    /// Lets every party of the round go, each with its index, and lets those waiting to
    /// enter arrive in the next.
    fn release_barrier(&mut self, id: u64) {
        let Some(SyncObj::Barrier(b)) = self.objects.get_mut(&id) else { return };
        let arrived = std::mem::take(&mut b.arrived);
        b.generation += 1;
        b.acting = false;
        for (conn, index) in arrived {
            self.unpark(conn);
            self.value(conn, index as INT);
        }
        self.enter(id);
    }

    /// The parties waiting to enter barrier `id` arrive (or learn it is broken).
    fn enter(&mut self, id: u64) {
        let Some(SyncObj::Barrier(b)) = self.objects.get_mut(&id) else { return };
        let granted = b.entering.wake_all();
        for (conn, p) in self.take_parked(&granted) {
            if let Wait::Enter(deadline) = p.wait {
                if let Err(e) = self.arrive(conn, id, deadline) {
                    self.reply(conn, e);
                }
            }
        }
    }

    /// Breaks barrier `id`: every party waiting gets `BrokenBarrierError` (but `except`,
    /// whose request ends otherwise).
    pub(super) fn break_barrier(&mut self, id: u64, except: Option<ConnId>) {
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
        self.enter(id);
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
}
