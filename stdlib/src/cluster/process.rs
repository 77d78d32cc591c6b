//! `Process(f, args)` under the `"mpi"` start method: the call runs on a free worker rank,
//! and rank 0 holds a [`RankProcess`] (core's `Popen::Remote`). `join`, `exitcode`,
//! `is_alive`, `terminate` and `kill` work as for a local process; the rank lives on after
//! the call (terminate and kill stop the call, not the rank: its exit code is `-15` / `-9`).

use super::head::{with_head, Event, LinkState};
use super::protocol::ToRank;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpResult};
use rhai_mp_core::tree::start::remote::RemoteChild;
use rhai_mp_core::tree::state::ChildInfo;

/// A process running on a worker rank.
#[derive(Debug)]
pub(crate) struct RankProcess {
    owner: u64,
    rank: u32,
    pid: i32,
    host: String,
    status: Option<i32>,
}

/// Starts a call on a free worker rank (the `"mpi"` start method's launcher).
pub(crate) fn launch(info: &ChildInfo, call: Vec<u8>) -> MpResult<Box<dyn RemoteChild>> {
    with_head(|h| {
        h.wait_joined()?;
        let free = h.links.iter().find(|l| l.state == LinkState::Ready && l.process.is_none()).map(|l| l.rank);
        let Some(rank) = free else {
            let n = h.links.len();
            return Err(mp_err!(
                ProcessError,
                "no free worker rank for {}: the job has {n} worker rank(s) and each runs a process or is gone \
                 (start the job with more ranks: mpirun -n {})",
                info.name,
                n + 2
            ));
        };
        let owner = h.new_owner();
        h.send(owner, rank, &ToRank::Run { owner, name: info.name.clone(), call })?;
        let link = h.link(rank);
        link.process = Some(owner);
        let (pid, host) = (link.pid, link.host.clone());
        Ok(Box::new(RankProcess { owner, rank, pid, host, status: None }) as Box<dyn RemoteChild>)
    })
}

impl RankProcess {
    /// Takes the events that came for it.
    fn settle(&mut self) -> MpResult<()> {
        if self.status.is_some() {
            return Ok(());
        }
        let events = with_head(|h| Ok(h.take(self.owner)))?;
        for e in events {
            match e {
                Event::Exited { code } => self.status = Some(code),
                Event::Lost { rank } => {
                    rhai_mp_core::base::output::stderr_line(&format!(
                        "rhai-mp: rank {rank} ({}, pid {}) was lost while it ran a process",
                        self.host, self.pid
                    ));
                    // As a process killed without a word: SIGKILL.
                    self.status = Some(-libc::SIGKILL);
                }
                Event::Done { .. } => {}
            }
        }
        if self.status.is_some() {
            let owner = self.owner;
            with_head(|h| {
                h.release(owner);
                Ok(())
            })?;
        }
        Ok(())
    }
}

impl RemoteChild for RankProcess {
    fn pid(&self) -> i32 {
        self.pid
    }

    fn poll(&mut self) -> MpResult<Option<i32>> {
        if self.status.is_none() {
            with_head(|h| h.pump(Deadline::now()))?;
            self.settle()?;
        }
        Ok(self.status)
    }

    fn wait(&mut self, deadline: Deadline) -> MpResult<Option<i32>> {
        loop {
            if let Some(code) = self.poll()? {
                return Ok(Some(code));
            }
            if deadline.passed() {
                return Ok(None);
            }
            with_head(|h| h.pump(deadline))?;
        }
    }

    fn signal(&mut self, sig: i32) -> MpResult<()> {
        if self.poll()?.is_none() {
            let (owner, rank) = (self.owner, self.rank);
            with_head(|h| h.send(owner, rank, &ToRank::Abort { owner, sig }))?;
        }
        Ok(())
    }
}
