//! A pool whose workers are the worker ranks of an MPI job (the `"mpi"` start method):
//! the parent's side. It stands where a local pool has its task queue, result queue and
//! worker slots (`local.rs`), behind the same operations (see `mod.rs`):
//!
//! - tasks wait here and go to a rank while it holds fewer than its limit: at least
//!   [`MIN_IN_FLIGHT`] (one runs, one waits at the rank, so a rank never idles between
//!   tasks), up to [`MAX_IN_FLIGHT`] while its tasks come back quickly (short tasks then
//!   pipeline instead of waiting for round trips; long ones stay spread over the ranks); the
//!   rest wait here, so a rank that is lost takes at most its limit of tasks with it;
//! - results come back on the rank's connection (see `cluster/head.rs`), in the order the
//!   rank got the tasks;
//! - a rank that is lost fails the tasks it held with `WorkerLostError` (with its `pid`,
//!   `rank` and `host`); the others go on, and with no rank left every waiting task fails.
//!
//! Ranks are not replaced, and `maxtasksperchild` does not apply (a rank serves the whole
//! job). Values cross encoded for another machine: an object of this host's memory in a
//! task or a result is a `SerializationError`.

use crate::cluster::head::{with_head, Event, LinkState};
use crate::cluster::protocol::ToRank;
use crate::pool::task::TaskHead;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, MpResult};
use std::collections::{HashMap, VecDeque};

/// How many tasks a rank holds at least (when it has work).
const MIN_IN_FLIGHT: usize = 2;
/// How many tasks a rank holds at most (while they come back quickly).
const MAX_IN_FLIGHT: usize = 8;
/// A task back within this time since it was sent counts as quick.
const QUICK: std::time::Duration = std::time::Duration::from_millis(2);

/// A task a rank holds: what a loss fails.
#[derive(Debug, Clone, Copy)]
pub(super) struct Held {
    pub job: u64,
    pub chunk: u64,
    pub first: u64,
    /// When it was sent (`None` for a task that never was).
    pub sent: Option<std::time::Instant>,
}

/// A task that was lost with its rank (or for want of one).
#[derive(Debug)]
pub(super) struct Lost {
    pub held: Held,
    pub error: MpError,
}

/// The pool's ranks (see the module docs).
#[derive(Debug)]
pub(in crate::pool) struct RankWorkers {
    owner: u64,
    ranks: Vec<u32>,
    held: HashMap<u32, VecDeque<Held>>,
    /// How many tasks each rank may hold now (see the module docs).
    limit: HashMap<u32, usize>,
    waiting: VecDeque<Vec<u8>>,
    lost: Vec<Lost>,
}

impl RankWorkers {
    /// Takes `n` worker ranks (the least busy) and sends them the initializer, if any (an
    /// encoded `[function, args]`).
    pub(super) fn start(n: usize, init: Option<Vec<u8>>) -> MpResult<RankWorkers> {
        with_head(|h| {
            h.wait_joined()?;
            if let Some(e) = h.boot_failure() {
                return Err(e);
            }
            let total = h.links.len();
            if n > total {
                return Err(mp_err!(
                    ValueError,
                    "Pool({n}) needs {n} worker ranks, but this MPI job has {total} (start it with mpirun -n {})",
                    n + 1
                ));
            }
            let mut ready: Vec<(usize, u32)> = h
                .links
                .iter()
                .filter(|l| l.state == LinkState::Ready)
                .map(|l| (l.process.is_some() as usize, l.rank))
                .collect();
            if ready.len() < n {
                return Err(mp_err!(
                    ValueError,
                    "Pool({n}) needs {n} worker ranks, but only {} of this job's {total} are still there",
                    ready.len()
                ));
            }
            ready.sort();
            let ranks: Vec<u32> = ready.into_iter().take(n).map(|(_, r)| r).collect();
            let owner = h.new_owner();
            if let Some(call) = init {
                for &r in &ranks {
                    h.send(owner, r, &ToRank::Init { owner, call: call.clone() })?;
                }
            }
            Ok(RankWorkers {
                owner,
                held: ranks.iter().map(|&r| (r, VecDeque::new())).collect(),
                limit: ranks.iter().map(|&r| (r, MIN_IN_FLIGHT)).collect(),
                ranks,
                waiting: VecDeque::new(),
                lost: Vec::new(),
            })
        })
    }

    /// Queues a task and sends what the ranks can take.
    pub(super) fn send(&mut self, task: Vec<u8>) -> MpResult<()> {
        self.waiting.push_back(task);
        self.flush()
    }

    /// Sends waiting tasks to the ranks that hold fewer than their limit.
    fn flush(&mut self) -> MpResult<()> {
        if self.waiting.is_empty() {
            return Ok(());
        }
        let owner = self.owner;
        with_head(|h| {
            // Each task to the rank that holds the fewest (below its limit): the ranks share
            // the work. A rank's tasks go in one write.
            let mut out: HashMap<u32, Vec<ToRank>> = HashMap::new();
            while !self.waiting.is_empty() {
                let pick = self
                    .ranks
                    .iter()
                    .filter_map(|r| Some((self.held.get(r)?.len(), *r)))
                    .filter(|(n, r)| *n < self.limit.get(r).copied().unwrap_or(MIN_IN_FLIGHT))
                    .min();
                let Some((_, r)) = pick else { break };
                let Some(task) = self.waiting.pop_front() else { break };
                if let (Some(t), Some(held)) = (TaskHead::read(&task), self.held.get_mut(&r)) {
                    let sent = Some(std::time::Instant::now());
                    held.push_back(Held { job: t.job, chunk: t.chunk, first: t.first, sent });
                }
                out.entry(r).or_default().push(ToRank::Task { owner, task });
            }
            for (r, msgs) in out {
                h.send_all(owner, r, &msgs)?;
            }
            Ok(())
        })
    }

    /// Takes the events that came: results (returned), lost ranks (their tasks go to
    /// [`RankWorkers::take_lost`]).
    fn settle(&mut self) -> MpResult<Vec<Vec<u8>>> {
        let owner = self.owner;
        let events = with_head(|h| Ok(h.take(owner)))?;
        let mut out = Vec::new();
        for e in events {
            match e {
                Event::Done { rank, result, task } => {
                    if task {
                        let back = self.held.get_mut(&rank).and_then(VecDeque::pop_front);
                        if let (Some(t), Some(limit)) = (back.and_then(|h| h.sent), self.limit.get_mut(&rank)) {
                            *limit = if t.elapsed() < QUICK {
                                (*limit + 1).min(MAX_IN_FLIGHT)
                            } else {
                                (*limit - 1).max(MIN_IN_FLIGHT)
                            };
                        }
                    }
                    out.push(result);
                }
                Event::Lost { rank } => {
                    let Some(held) = self.held.remove(&rank) else { continue };
                    let (pid, host) = with_head(|h| Ok((h.link(rank).pid, h.link(rank).host.clone())))?;
                    for t in held {
                        let e = mp_err!(
                            WorkerLostError,
                            "worker rank {rank} (pid {pid} on {host}) was lost while it held task {}",
                            t.first
                        )
                        .with("pid", pid as rhai::INT)
                        .with("rank", rank as rhai::INT)
                        .with("host", host.clone())
                        .with("task", t.first as rhai::INT);
                        self.lost.push(Lost { held: t, error: e });
                    }
                }
                Event::Exited { .. } => {}
            }
        }
        if self.held.is_empty() {
            // No rank left: nothing that waits here will run.
            while let Some(task) = self.waiting.pop_front() {
                if let Some(t) = TaskHead::read(&task) {
                    let e =
                        mp_err!(WorkerLostError, "every worker rank of the pool was lost; task {} cannot run", t.first)
                            .with("task", t.first as rhai::INT);
                    self.lost
                        .push(Lost { held: Held { job: t.job, chunk: t.chunk, first: t.first, sent: None }, error: e });
                }
            }
        }
        Ok(out)
    }

    /// Waits until `deadline` at most for results; those that came (maybe none).
    pub(super) fn recv(&mut self, deadline: Deadline) -> MpResult<Vec<Vec<u8>>> {
        let mut out = self.settle()?;
        if out.is_empty() && self.lost.is_empty() {
            with_head(|h| h.pump(deadline))?;
            out = self.settle()?;
        }
        self.flush()?;
        Ok(out)
    }

    /// The tasks lost since the last call.
    pub(super) fn take_lost(&mut self) -> Vec<Lost> {
        std::mem::take(&mut self.lost)
    }

    /// Stops the pool's work on its ranks (queued tasks dropped, running ones stopped) and
    /// lets the ranks go.
    pub(super) fn abort(&mut self) {
        let owner = self.owner;
        let ranks: Vec<u32> = self.held.keys().copied().collect();
        let _ = with_head(|h| {
            for r in ranks {
                h.send(owner, r, &ToRank::Abort { owner, sig: libc::SIGTERM })?;
            }
            h.release(owner);
            Ok(())
        });
        self.held.clear();
        self.waiting.clear();
    }

    /// Cancels call `job`: its tasks waiting here are dropped; the ranks that hold some are
    /// told (they skip the queued ones and stop the running one; each still answers, so
    /// that the count of tasks a rank holds stays right).
    pub(super) fn cancel(&mut self, job: u64) {
        self.waiting.retain(|t| TaskHead::read(t).is_none_or(|h| h.job != job));
        let owner = self.owner;
        let ranks: Vec<u32> =
            self.held.iter().filter(|(_, held)| held.iter().any(|h| h.job == job)).map(|(r, _)| *r).collect();
        let _ = with_head(|h| {
            for r in ranks {
                h.send(owner, r, &ToRank::Cancel { owner, job })?;
            }
            Ok(())
        });
    }

    /// Whether a rank runs a task of call `job` now (the first it holds).
    pub(super) fn running(&self, job: u64) -> bool {
        self.held.values().any(|h| h.front().is_some_and(|t| t.job == job))
    }

    /// Lets the ranks go (the pool's work is done).
    pub(super) fn release(&mut self) {
        let owner = self.owner;
        let _ = with_head(|h| {
            h.release(owner);
            Ok(())
        });
    }
}
