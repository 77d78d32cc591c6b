//! Local workers: processes on this machine that take tasks from a shared-memory queue
//! and put results on another. Each worker notes the task it takes in its slot (under the
//! task queue's mutex, see `task.rs`), so a worker killed at any moment leaves its task
//! either queued or named in its slot: [`LocalWorkers::check`] fails that task with
//! `WorkerLostError` and the pool starts a replacement.
//!
//! Tasks the queue cannot take at once go to the feeder thread (`feeder.rs`). Under `fork`,
//! a fork server made with the pool (from the script) forks the workers, since a pool call
//! may run without a script context to fork from.

use super::{Checked, Lost, Message};
use crate::pool::dispatch::PoolConfig;
use crate::pool::feeder::{task_fds, Feeder, Task};
use crate::pool::task::{now_ns, stop_task, Field, PoolSlots, WorkerArgs};
use crate::queue::{Flavour, Queue, QueueCore};
use rhai::{Array, FnPtr, NativeCallContext, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, ErrorKind, MpResult};
use rhai_mp_core::tree::process::Process;
use rhai_mp_core::tree::start::fork::Server as ForkServer;
use rhai_mp_core::tree::start::popen::{EXIT_BOOT_FAILED, EXIT_GUARD};
use rhai_mp_core::tree::state::StartMethod;
use std::rc::Rc;

/// The workers of a local pool, their queues and their slots.
pub(in crate::pool) struct LocalWorkers {
    method: StartMethod,
    tasks: Queue,
    results: Queue,
    slots: PoolSlots,
    workers: Vec<Option<Process>>,
    initializer: Option<FnPtr>,
    initargs: Array,
    maxtasks: INT,
    /// Puts the tasks the queue cannot take at once (see `feeder.rs`); started when needed.
    feeder: Option<Feeder>,
    /// Under `fork`: the server that forks workers (made when the pool was).
    server: Option<ForkServer>,
    max_memory: u64,
    /// Workers asked to stop a cancelled call's item: `(worker, job, when)`.
    stopping: Vec<(usize, u64, u64)>,
    /// Workers this pool killed, with the error their task fails with.
    killed: std::collections::HashMap<usize, rhai_mp_core::prelude::MpError>,
}

/// How long a task past its timeout (or cancelled) may take to stop on its own before its
/// worker is killed.
pub(in crate::pool) const GRACE_NS: u64 = 200_000_000;

fn worker_prefix(method: StartMethod) -> &'static str {
    match method {
        StartMethod::Spawn => "SpawnPoolWorker",
        StartMethod::Fork => "ForkPoolWorker",
        StartMethod::ForkServer => "ForkServerPoolWorker",
        StartMethod::Mpi => "MpiPoolWorker",
    }
}

fn signal_name(n: i32) -> String {
    nix::sys::signal::Signal::try_from(n).map_or_else(|_| format!("signal {n}"), |s| s.as_str().to_string())
}

impl LocalWorkers {
    /// Makes the queues and slots and starts every worker.
    pub(super) fn start(ctx: &NativeCallContext, cfg: &PoolConfig) -> MpResult<LocalWorkers> {
        let mut w = LocalWorkers {
            method: cfg.method,
            tasks: Queue(Rc::new(QueueCore::new(Flavour::Simple, 0)?)),
            results: Queue(Rc::new(QueueCore::new(Flavour::Simple, 0)?)),
            slots: PoolSlots::new()?,
            workers: (0..cfg.processes).map(|_| None).collect(),
            initializer: cfg.initializer.clone(),
            initargs: cfg.initargs.clone(),
            maxtasks: cfg.maxtasks,
            feeder: None,
            server: None,
            max_memory: cfg.max_memory,
            stopping: Vec::new(),
            killed: std::collections::HashMap::new(),
        };
        if w.method == StartMethod::Fork {
            // Checks first what `Process::start` would (a daemon cannot have children …).
            Process::check_startable()?;
            w.server = Some(ForkServer::start(ctx)?);
        }
        for i in 0..w.workers.len() {
            if let Err(e) = w.start_worker(i) {
                w.terminate();
                return Err(e);
            }
        }
        Ok(w)
    }

    fn start_worker(&mut self, i: usize) -> MpResult<()> {
        let args = WorkerArgs {
            tasks: self.tasks.clone(),
            results: self.results.clone(),
            slots: self.slots.clone(),
            index: i as u64,
            initializer: self.initializer.clone(),
            initargs: self.initargs.clone(),
            maxtasks: self.maxtasks.max(0) as u64,
            max_memory: self.max_memory,
        };
        let payload = rhai_mp_core::wire::encode_message(&args)?;
        let p = Process::native(crate::pool::worker::ENTRY, payload, None, Some(true), Some(self.method));
        p.set_name(p.name().replacen("Process", worker_prefix(self.method), 1));
        self.slots.set(i, Field::Job, 0);
        p.start_detached(self.server.as_ref())?;
        self.workers[i] = Some(p);
        Ok(())
    }

    /// Puts a task on the queue, or hands it to the feeder thread if the queue cannot take
    /// it now (never blocks).
    pub(super) fn send(&mut self, task: Task) -> MpResult<()> {
        if !self.feeder.as_ref().is_some_and(Feeder::busy) {
            match self.tasks.0.put_fds(&[&task.0], &task_fds(&task.1, &task.2), false, Deadline::NEVER) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind == ErrorKind::Full => {}
                Err(e) => return Err(e),
            }
        }
        let feeder = match &mut self.feeder {
            Some(f) => f,
            None => self.feeder.insert(Feeder::start(&self.tasks.0)?),
        };
        feeder.send(task);
        Ok(())
    }

    /// Takes every result already there.
    pub(super) fn drain(&mut self, out: &mut Vec<Message>) -> MpResult<()> {
        loop {
            match self.results.0.get(false, Deadline::NEVER) {
                Ok(m) => out.push(m),
                Err(e) if e.kind == ErrorKind::Empty => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until `deadline` at most for one result.
    pub(super) fn recv(&mut self, deadline: Deadline, out: &mut Vec<Message>) -> MpResult<()> {
        match self.results.0.get(true, deadline) {
            Ok(m) => {
                out.push(m);
                Ok(())
            }
            Err(e) if e.kind == ErrorKind::Empty => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether a worker runs a task of call `job` now.
    pub(super) fn running(&self, job: u64) -> bool {
        (0..self.workers.len()).any(|i| self.workers[i].is_some() && self.slots.get(i, Field::Job) == job)
    }

    /// Kills every worker at once (SIGKILL).
    pub(super) fn kill(&mut self) {
        for p in self.workers.iter().flatten() {
            let _ = p.kill();
        }
    }

    /// A new call got number `job`: its cancel bit is cleared.
    pub(super) fn new_job(&mut self, job: u64) {
        self.slots.uncancel(job);
    }

    /// Cancels call `job`: workers skip its queued tasks; those running one of its items are
    /// signalled to stop it (and killed at a check past the grace if they do not).
    pub(super) fn cancel(&mut self, job: u64) {
        self.slots.cancel(job);
        let now = now_ns();
        for (i, w) in self.workers.iter().enumerate() {
            if let Some(p) = w {
                if self.slots.get(i, Field::Job) == job {
                    if let Ok(Some(pid)) = p.pid() {
                        let _ =
                            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGUSR2);
                    }
                    self.stopping.push((i, job, now));
                }
            }
        }
    }

    /// Kills the workers whose item ran past its timeout, or past a cancel, by more than
    /// the grace (their task fails with the error noted in `killed`). Reads the clock only
    /// when an item with a timeout runs or a cancel is pending.
    fn enforce(&mut self) {
        let timed = (0..self.workers.len()).any(|i| self.slots.get(i, Field::Started) != 0);
        if !timed && self.stopping.is_empty() {
            return;
        }
        let now = now_ns();
        let mut kill = Vec::new();
        for i in 0..self.workers.len() {
            let started = self.slots.get(i, Field::Started);
            let limit = self.slots.get(i, Field::Limit);
            if started != 0 && self.slots.get(i, Field::Job) != 0 && now > started + limit + GRACE_NS {
                let item = self.slots.get(i, Field::Item);
                let t = limit as f64 / 1e9;
                let pid = self.workers[i].as_ref().and_then(|p| p.pid().ok().flatten()).unwrap_or(0);
                let e = mp_err!(
                    TimeoutError,
                    "task {item} ran longer than its timeout of {t} s and did not stop: its worker (pid {pid}) was killed"
                )
                .with("task", item as INT)
                .with("pid", pid as INT)
                .with("timeout", t);
                kill.push((i, e));
            }
        }
        let slots = &self.slots;
        self.stopping.retain(|&(i, job, since)| {
            if slots.get(i, Field::Job) != job {
                return false;
            }
            if now <= since + GRACE_NS {
                return true;
            }
            kill.push((
                i,
                mp_err!(CancelledError, "the call was cancelled").with("task", slots.get(i, Field::Item) as INT),
            ));
            false
        });
        for (i, e) in kill {
            if let Some(p) = &self.workers[i] {
                if let std::collections::hash_map::Entry::Vacant(v) = self.killed.entry(i) {
                    let _ = p.kill();
                    v.insert(e);
                }
            }
        }
    }

    /// Notices workers that ended: the task a dead one held is lost (`WorkerLostError`, or
    /// the error it was killed for).
    pub(super) fn check(&mut self, out: &mut Vec<Message>) -> MpResult<Checked> {
        self.enforce();
        let mut dead = Vec::new();
        for (i, w) in self.workers.iter().enumerate() {
            if let Some(p) = w {
                if let Some(code) = p.exitcode()? {
                    dead.push((i, p.clone(), code));
                }
            }
        }
        let mut checked = Checked::default();
        if dead.is_empty() {
            return Ok(checked);
        }
        // Results a worker put before it died are in the queue: they come first.
        self.drain(out)?;
        // A worker that could not even start (the script's top level failed in it, as it
        // does without the `__main__` guard) would fail again: the pool stops, with one
        // error for all.
        if let Some((_, _, code)) = dead.iter().find(|(_, _, c)| [EXIT_GUARD, EXIT_BOOT_FAILED].contains(c)) {
            checked.broken = Some(if *code == EXIT_GUARD {
                rhai_mp_core::tree::process::guard_error()
            } else {
                mp_err!(
                    RuntimeError,
                    "the pool's workers cannot start: the script's top level fails in them (their error is above)"
                )
            });
            return Ok(checked);
        }
        for (i, p, code) in dead {
            let job = self.slots.get(i, Field::Job);
            let killed = self.killed.remove(&i);
            self.slots.set(i, Field::Started, 0);
            if job != 0 {
                let (chunk, item) = (self.slots.get(i, Field::Chunk), self.slots.get(i, Field::Item));
                let pid = p.pid().ok().flatten().unwrap_or(0);
                let how = if code < 0 {
                    format!("was killed by {}", signal_name(-code))
                } else {
                    format!("exited with code {code}")
                };
                let error = match killed {
                    Some(e) => e,
                    // Past its memory limit, an allocation fails and the worker aborts.
                    None if self.max_memory > 0 && [-libc::SIGABRT, -libc::SIGSEGV, -libc::SIGBUS].contains(&code) => {
                        mp_err!(
                            MemoryError,
                            "task {item} needed more memory than the pool's max_memory ({} bytes): its worker (pid {pid}) {how}",
                            self.max_memory
                        )
                        .with("task", item as INT)
                        .with("pid", pid as INT)
                    }
                    None => mp_err!(
                        WorkerLostError,
                        "pool worker {} (pid {pid}) {how} while running task {item}",
                        p.name()
                    )
                    .with("pid", pid as INT)
                    .with("exitcode", code as INT)
                    .with("task", item as INT),
                };
                checked.lost.push(Lost { job, chunk, item: Some(item), error });
                self.slots.set(i, Field::Job, 0);
            }
            self.workers[i] = None;
            let _ = p.close();
        }
        Ok(checked)
    }

    /// Starts a worker in every empty place.
    pub(super) fn replace(&mut self) -> MpResult<()> {
        for i in 0..self.workers.len() {
            if self.workers[i].is_none() {
                self.start_worker(i)?;
            }
        }
        Ok(())
    }

    /// Tells every worker to exit (after the tasks queued before) and waits for them.
    pub(super) fn join(&mut self) -> MpResult<()> {
        for _ in 0..self.workers.len() {
            self.tasks.0.put(&stop_task(), &[], true, Deadline::NEVER)?;
        }
        let workers: Vec<Process> = self.workers.iter_mut().filter_map(Option::take).collect();
        for w in workers {
            w.join(Deadline::NEVER)?;
            let _ = w.close();
        }
        Ok(())
    }

    /// Ends every worker (SIGTERM, then SIGKILL for one that lingers) and reaps it.
    pub(super) fn terminate(&mut self) {
        self.feeder = None;
        let workers: Vec<Process> = self.workers.iter_mut().filter_map(Option::take).collect();
        for w in &workers {
            let _ = w.terminate();
        }
        for w in workers {
            if w.join(Deadline::after_secs(2.0)).is_err() || matches!(w.exitcode(), Ok(None)) {
                let _ = w.kill();
                let _ = w.join(Deadline::NEVER);
            }
            let _ = w.close();
        }
        self.server = None;
    }
}
