//! Queue and JoinableQueue: items, and two counts of permits — items to take and room to
//! put one in — with the connections waiting for either; a JoinableQueue also counts the
//! unfinished tasks and lets its `join`s go when none is left.

use super::permits::Permits;
use super::{no_method, timeout_deadline, ConnId, Sync, SyncObj, Wait};
use crate::manager::protocol::Op;
use rhai::{Dynamic, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpResult};
use std::collections::VecDeque;

/// A Queue or JoinableQueue.
pub(super) struct QueueObj {
    buf: VecDeque<Dynamic>,
    /// 0: no limit.
    maxsize: u64,
    pub(super) joinable: bool,
    unfinished: u64,
    /// One permit per item in `buf`, and the `get`s waiting for one.
    pub(super) items: Permits,
    /// One permit per free place, and the `put`s waiting for one.
    pub(super) room: Permits,
    /// The `join`s waiting for no unfinished task.
    pub(super) idle: Permits,
}

/// What moves next through a queue (see [`Sync::queue_move`]).
enum Move {
    /// This item goes in (its room is taken).
    In(Dynamic),
    /// An item went out: its place is free.
    Out,
}

impl QueueObj {
    /// `Queue(maxsize)` (no limit when not given, or 0).
    pub(super) fn new(maxsize: Option<Dynamic>, joinable: bool, func: &str) -> MpResult<QueueObj> {
        let maxsize = match maxsize {
            Some(n) => crate::queue::maxsize(&n, func)?,
            None => 0,
        };
        Ok(QueueObj {
            buf: VecDeque::new(),
            maxsize,
            joinable,
            unfinished: 0,
            items: Permits::new(0),
            room: Permits::new(if maxsize == 0 { u64::MAX } else { maxsize }),
            idle: Permits::new(0),
        })
    }

    fn full(&self) -> bool {
        self.maxsize > 0 && self.buf.len() as u64 >= self.maxsize
    }
}

impl Sync {
    pub(super) fn queue_op(&mut self, conn: ConnId, id: u64, name: &str, op: Op) -> MpResult<()> {
        let Some(SyncObj::Queue(q)) = self.objects.get_mut(&id) else { return Ok(()) };
        match op {
            Op::Put(item, block, t) => {
                if q.room.try_take() {
                    self.value(conn, ());
                    self.queue_move(id, Move::In(item));
                } else if !block {
                    return Err(mp_err!(Full, "the queue is full"));
                } else {
                    q.room.enqueue(conn);
                    self.park(conn, id, Wait::Put(item), timeout_deadline(t, None));
                }
            }
            Op::Take(block, t) => {
                if q.items.try_take() {
                    let item = q.buf.pop_front().unwrap_or_default();
                    self.value(conn, item);
                    self.queue_move(id, Move::Out);
                } else if !block {
                    return Err(mp_err!(Empty, "the queue is empty"));
                } else {
                    q.items.enqueue(conn);
                    self.park(conn, id, Wait::Take, timeout_deadline(t, None));
                }
            }
            Op::QSize => {
                let n = q.buf.len() as INT;
                self.value(conn, n);
            }
            Op::IsEmpty => {
                let e = q.buf.is_empty();
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
                let granted = if q.unfinished == 0 { q.idle.wake_all() } else { Vec::new() };
                self.value(conn, ());
                for (waiter, _) in self.take_parked(&granted) {
                    self.value(waiter, ());
                }
            }
            Op::Join => {
                if !q.joinable {
                    return Err(mp_err!(ValueError, "join() needs a JoinableQueue, not a Queue"));
                }
                if q.unfinished == 0 {
                    self.value(conn, ());
                } else {
                    q.idle.enqueue(conn);
                    self.park(conn, id, Wait::Join, Deadline::NEVER);
                }
            }
            Op::Repr => {
                let s = format!(
                    "<{name} qsize={} maxsize={}>",
                    q.buf.len(),
                    if q.maxsize == 0 { "unbounded".to_string() } else { q.maxsize.to_string() }
                );
                self.value(conn, s);
            }
            op => return Err(no_method(name, &op)),
        }
        Ok(())
    }

    /// Moves items through queue `id` until nothing more can move: an item that goes in
    /// goes to the first waiting `get` (or stays); the place an item leaves free goes to
    /// the first waiting `put`, whose item then goes in.
    fn queue_move(&mut self, id: u64, first: Move) {
        let mut next = Some(first);
        while let Some(m) = next.take() {
            let Some(SyncObj::Queue(q)) = self.objects.get_mut(&id) else { return };
            let granted = match m {
                Move::In(item) => {
                    q.buf.push_back(item);
                    if q.joinable {
                        q.unfinished += 1;
                    }
                    q.items.give(1)
                }
                Move::Out => q.room.give(1),
            };
            for (conn, p) in self.take_parked(&granted) {
                let Some(SyncObj::Queue(q)) = self.objects.get_mut(&id) else { return };
                match p.wait {
                    Wait::Take => {
                        let item = q.buf.pop_front().unwrap_or_default();
                        self.value(conn, item);
                        next = Some(Move::Out);
                    }
                    Wait::Put(item) => {
                        self.value(conn, ());
                        next = Some(Move::In(item));
                    }
                    _ => {}
                }
            }
        }
    }
}
