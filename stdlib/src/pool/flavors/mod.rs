//! The pool's back ends ("flavors", as crossbeam-channel calls its channel kinds): where
//! tasks go and where results come from. The dispatch logic (`dispatch.rs`: calls, chunks,
//! callbacks, pumping) talks only to [`Workers`], which has one match per operation:
//!
//! - `local.rs`: worker processes on this machine, taking tasks from a shared-memory queue
//!   and noting what they run in shared slots (with a feeder thread and, under `fork`, a
//!   fork server);
//! - `ranks.rs`: the worker ranks of an MPI job (the `"mpi"` start method).
//!
//! Each file imports only the ones above it in this list (`local.rs` and `ranks.rs` know
//! nothing of each other).

pub(super) mod local;
pub(super) mod ranks;

use self::local::LocalWorkers;
use self::ranks::RankWorkers;
use super::dispatch::PoolConfig;
use super::feeder::Task;
use rhai::{Dynamic, NativeCallContext};
use rhai_mp_core::prelude::{Deadline, MpError, MpResult};
use rhai_mp_core::transport::seqpacket::Payload;
use rhai_mp_core::tree::process::Process;
use rhai_mp_core::tree::state::StartMethod;
use std::os::fd::OwnedFd;

/// A result as it came back: its bytes (read in place when large) and the descriptors that
/// travelled with it.
pub(super) type Message = (Payload, Vec<OwnedFd>);

/// A task that was lost with its worker (or for want of one).
#[derive(Debug)]
pub(super) struct Lost {
    pub job: u64,
    pub chunk: u64,
    /// The item that ran, when known.
    pub item: Option<u64>,
    pub error: MpError,
}

/// What [`Workers::check`] found.
#[derive(Debug, Default)]
pub(super) struct Checked {
    /// Tasks whose worker is gone.
    pub lost: Vec<Lost>,
    /// The workers cannot start at all (the script's top level fails in them): the pool
    /// stops, with this error for every call.
    pub broken: Option<MpError>,
}

/// The back end of a pool (see the module docs).
pub(super) enum Workers {
    Local(LocalWorkers),
    Ranks(RankWorkers),
}

impl Workers {
    /// Starts the workers a pool was asked for.
    pub(super) fn start(ctx: &NativeCallContext, cfg: &PoolConfig) -> MpResult<Workers> {
        if cfg.method != StartMethod::Mpi {
            return LocalWorkers::start(ctx, cfg).map(Workers::Local);
        }
        Process::check_startable()?;
        if !rhai_mp_core::tree::place::mpi_available() {
            return Err(rhai_mp_core::tree::place::unavailable());
        }
        let init = match &cfg.initializer {
            None => None,
            Some(f) => {
                let call = Dynamic::from_array(vec![f.clone().into(), Dynamic::from_array(cfg.initargs.clone())]);
                Some(rhai_mp_core::wire::encode_remote_value(&call, "initializer")?.bytes)
            }
        };
        RankWorkers::start(cfg.processes, init).map(Workers::Ranks)
    }

    /// Whether values go to another machine (then objects of this host's memory cannot).
    pub(super) fn remote(&self) -> bool {
        matches!(self, Workers::Ranks(_))
    }

    /// Encodes a value for the workers (for another machine under `mpi`).
    pub(super) fn encode(&self, v: &Dynamic, root: &str) -> MpResult<rhai_mp_core::wire::Packet> {
        if self.remote() {
            rhai_mp_core::wire::encode_remote_value(v, root)
        } else {
            rhai_mp_core::wire::encode(v, root)
        }
    }

    /// Sends a task (never blocks: what cannot go now waits in the back end).
    pub(super) fn send(&mut self, task: Task) -> MpResult<()> {
        match self {
            Workers::Local(w) => w.send(task),
            Workers::Ranks(r) => r.send(task.0),
        }
    }

    /// Adds every result already there to `out`.
    pub(super) fn drain(&mut self, out: &mut Vec<Message>) -> MpResult<()> {
        match self {
            Workers::Local(w) => w.drain(out),
            Workers::Ranks(r) => {
                out.extend(r.recv(Deadline::now())?.into_iter().map(|b| (Payload::Inline(b), Vec::new())));
                Ok(())
            }
        }
    }

    /// Waits until `deadline` at most for results, adding those that came to `out` (maybe
    /// none).
    pub(super) fn recv(&mut self, deadline: Deadline, out: &mut Vec<Message>) -> MpResult<()> {
        match self {
            Workers::Local(w) => w.recv(deadline, out),
            Workers::Ranks(r) => {
                out.extend(r.recv(deadline)?.into_iter().map(|b| (Payload::Inline(b), Vec::new())));
                Ok(())
            }
        }
    }

    /// Notices workers that are gone. The results they sent before are added to `out`
    /// first (they count before the losses).
    pub(super) fn check(&mut self, out: &mut Vec<Message>) -> MpResult<Checked> {
        match self {
            Workers::Local(w) => w.check(out),
            Workers::Ranks(r) => Ok(Checked {
                lost: r
                    .take_lost()
                    .into_iter()
                    .map(|l| Lost { job: l.held.job, chunk: l.held.chunk, item: None, error: l.error })
                    .collect(),
                broken: None,
            }),
        }
    }

    /// A new call got number `job`: forget an old cancel of the same number.
    pub(super) fn new_job(&mut self, job: u64) {
        if let Workers::Local(w) = self {
            w.new_job(job);
        }
    }

    /// Cancels call `job`: its queued tasks are skipped, its running ones stopped (a local
    /// worker that does not stop within a grace is killed, at a later check).
    pub(super) fn cancel(&mut self, job: u64) {
        match self {
            Workers::Local(w) => w.cancel(job),
            Workers::Ranks(r) => r.cancel(job),
        }
    }

    /// Whether a worker runs a task of call `job` now.
    pub(super) fn running(&self, job: u64) -> bool {
        match self {
            Workers::Local(w) => w.running(job),
            Workers::Ranks(r) => r.running(job),
        }
    }

    /// Kills every local worker at once (SIGKILL; an executor's `kill_workers`).
    pub(super) fn kill(&mut self) {
        if let Workers::Local(w) = self {
            w.kill();
        }
    }

    /// Starts replacements for the workers that are gone (ranks are not replaced).
    pub(super) fn replace(&mut self) -> MpResult<()> {
        match self {
            Workers::Local(w) => w.replace(),
            Workers::Ranks(_) => Ok(()),
        }
    }

    /// The work is done: lets the workers go and waits for them to leave.
    pub(super) fn join(&mut self) -> MpResult<()> {
        match self {
            Workers::Local(w) => w.join(),
            Workers::Ranks(r) => {
                r.release();
                Ok(())
            }
        }
    }

    /// Ends every worker now (local ones: SIGTERM, then SIGKILL for one that lingers; ranks
    /// stop the pool's work and go on serving).
    pub(super) fn terminate(&mut self) {
        match self {
            Workers::Local(w) => w.terminate(),
            Workers::Ranks(r) => r.abort(),
        }
    }
}
