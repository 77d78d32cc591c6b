//! The parent side of a pool: its workers, the task and result queues, the calls in
//! progress, and the loop ([`Pool::pump`]) that moves results to those calls.
//!
//! No thread moves results (a feeder thread only puts tasks the queue cannot take at once,
//! see `feeder.rs`). Every pool call (and every call on one of its results) pumps: it
//! sends more of a lazy `imap`'s input, takes the results that arrived, notices dead
//! workers (failing the task a dead worker held with `WorkerLostError`, and starting a
//! replacement), and runs the callbacks that became due, in completion order. A blocking
//! call pumps until what it waits for is there, sleeping on the result queue in between.
//!
//! Workers start without a script context (a `for` loop has none): spawn and forkserver
//! need none, and under `fork` the pool keeps a fork server, forked from the script when the
//! pool was made, that forks its workers.
//!
//! Caveats: while the script is busy elsewhere, nothing is pumped: workers keep running
//! queued tasks, but callbacks wait for the next call, and a worker that exited is replaced
//! only then. A `for` loop over an `imap` runs no callbacks (it has no context to call
//! them with); they run at the next call.

use super::feeder::{task_fds, Feeder, Task};
use super::job::{ChunkResult, Failure, Job, JobKind, Source};
use super::ranks::RankWorkers;
use super::task::{
    result_head, result_outcome, stop_task, ChunkOutcome, Field, Kind, PoolSlots, TaskHead, WorkerArgs, MAX_WORKERS,
};
use crate::queue::{Flavour, Queue, QueueCore};
use rhai::{Array, Dynamic, FnPtr, NativeCallContext, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, ErrorKind, MpResult, RhaiResult};
use rhai_mp_core::tree::process::Process;
use rhai_mp_core::tree::start::fork::Server as ForkServer;
use rhai_mp_core::tree::start::popen::{EXIT_BOOT_FAILED, EXIT_GUARD};
use rhai_mp_core::tree::state::StartMethod;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a blocked call sleeps on the result queue before it looks at the workers.
const POLL: Duration = Duration::from_millis(50);
/// How often a busy pump looks at the workers.
const CHECK_EVERY: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolState {
    Run,
    Close,
    Terminate,
}

/// What `Pool(..)` was asked for.
pub struct PoolConfig {
    pub processes: usize,
    pub initializer: Option<FnPtr>,
    pub initargs: Array,
    pub maxtasks: INT,
    pub method: StartMethod,
}

pub struct PoolInner {
    pub method: StartMethod,
    pub size: usize,
    tasks: Queue,
    results: Queue,
    slots: PoolSlots,
    workers: Vec<Option<Process>>,
    initializer: Option<FnPtr>,
    initargs: Array,
    maxtasks: INT,
    pub state: PoolState,
    /// Calls whose results are not all in.
    jobs: BTreeMap<u64, Rc<RefCell<Job>>>,
    /// The imap calls that still have input to send (fed a little at each pump).
    lazy: Vec<Rc<RefCell<Job>>>,
    /// The encoded function and task kind of calls that still have input to send.
    funcs: HashMap<u64, FuncDescriptor>,
    next_job: u64,
    callbacks: VecDeque<(FnPtr, Dynamic)>,
    /// Set when the initializer failed: every call fails with its error.
    broken: Option<Failure>,
    /// Puts the tasks the queue cannot take at once (see `feeder.rs`); started when needed.
    feeder: Option<Feeder>,
    /// Under `fork`: the server that forks workers (made when the pool was).
    server: Option<ForkServer>,
    /// Under `mpi`: the worker ranks, which stand for the queues, slots and workers.
    ranks: Option<RankWorkers>,
    last_check: Instant,
}

/// A call's task kind and encoded function (its bytes, and descriptors shared by its tasks).
type FuncDescriptor = (Kind, Vec<u8>, std::sync::Arc<Vec<std::os::fd::OwnedFd>>);

/// A pool handle; copies share the pool. The last copy to go terminates it.
#[derive(Clone)]
pub struct Pool(pub Rc<RefCell<PoolInner>>);

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

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

impl Pool {
    /// Starts a pool's workers.
    pub fn new(ctx: &NativeCallContext, cfg: PoolConfig) -> RhaiResult<Pool> {
        if cfg.processes == 0 && cfg.method == StartMethod::Mpi && rhai_mp_core::tree::place::mpi_available() {
            return Err(mp_err!(
                ValueError,
                "this MPI job has no worker ranks for a pool: start it with more than one rank (mpirun -n 3 ..)"
            )
            .into());
        }
        if cfg.processes == 0 {
            return Err(mp_err!(ValueError, "Number of processes must be at least 1").into());
        }
        if cfg.processes > MAX_WORKERS {
            return Err(
                mp_err!(ValueError, "a pool can have at most {MAX_WORKERS} processes, not {}", cfg.processes).into()
            );
        }
        let inner = PoolInner {
            method: cfg.method,
            size: cfg.processes,
            tasks: Queue(Rc::new(QueueCore::new(Flavour::Simple, 0)?)),
            results: Queue(Rc::new(QueueCore::new(Flavour::Simple, 0)?)),
            slots: PoolSlots::new()?,
            workers: (0..cfg.processes).map(|_| None).collect(),
            initializer: cfg.initializer,
            initargs: cfg.initargs,
            maxtasks: cfg.maxtasks,
            state: PoolState::Run,
            jobs: BTreeMap::new(),
            lazy: Vec::new(),
            funcs: HashMap::new(),
            next_job: 1,
            callbacks: VecDeque::new(),
            broken: None,
            feeder: None,
            server: None,
            ranks: None,
            last_check: Instant::now(),
        };
        let pool = Pool(Rc::new(RefCell::new(inner)));
        {
            let mut p = pool.0.borrow_mut();
            if p.method == StartMethod::Fork {
                // Checks first what `Process::start` would (a daemon cannot have children …).
                Process::check_startable()?;
                p.server = Some(ForkServer::start(ctx)?);
            }
            if p.method == StartMethod::Mpi {
                Process::check_startable()?;
                if !rhai_mp_core::tree::place::mpi_available() {
                    return Err(rhai_mp_core::tree::place::unavailable().into());
                }
                let init = match &p.initializer {
                    None => None,
                    Some(f) => {
                        let call = Dynamic::from_array(vec![f.clone().into(), Dynamic::from_array(p.initargs.clone())]);
                        Some(rhai_mp_core::wire::encode_remote_value(&call, "initializer")?.bytes)
                    }
                };
                p.ranks = Some(RankWorkers::start(p.size, init)?);
                return Ok(pool.clone());
            }
            for i in 0..p.size {
                if let Err(e) = p.start_worker(i) {
                    p.terminate();
                    return Err(e.into());
                }
            }
        }
        Ok(pool)
    }

    /// `<Pool state=RUN pool_size=2>`.
    pub fn describe(&self) -> String {
        match self.0.try_borrow() {
            Ok(p) => {
                let state = match p.state {
                    PoolState::Run => "RUN",
                    PoolState::Close => "CLOSE",
                    PoolState::Terminate => "TERMINATE",
                };
                format!("<Pool state={state} pool_size={}>", p.size)
            }
            Err(_) => "<Pool>".to_string(),
        }
    }

    /// Starts a call: sends its input (all of it, or for `lazy` calls the first chunks).
    #[allow(clippy::too_many_arguments)]
    pub fn submit(
        &self,
        kind: JobKind,
        task: Kind,
        func: FnPtr,
        source: Source,
        chunksize: u64,
        callback: Option<FnPtr>,
        error_callback: Option<FnPtr>,
    ) -> RhaiResult<Rc<RefCell<Job>>> {
        let mut p = self.0.borrow_mut();
        p.check_running()?;
        let packet = p.encode(&Dynamic::from(func), "func")?;
        let id = p.next_job;
        p.next_job += 1;
        let mut job = Job::new(id, kind);
        job.chunksize = chunksize.max(1);
        job.total = Some(source.len());
        job.source = Some(source);
        job.callback = callback;
        job.error_callback = error_callback;
        let job = Rc::new(RefCell::new(job));
        p.jobs.insert(id, job.clone());
        p.funcs.insert(id, (task, packet.bytes, std::sync::Arc::new(packet.fds)));
        let limit = if matches!(kind, JobKind::Imap { .. }) { p.in_flight_limit() } else { u64::MAX };
        if let Err(e) = p.send_chunks(&job, limit, true) {
            p.jobs.remove(&id);
            p.funcs.remove(&id);
            return Err(e.into());
        }
        p.settle(&job);
        if !job.borrow().all_sent {
            p.lazy.push(job.clone());
        }
        Ok(job)
    }

    /// Moves results until `done()` or the deadline; `Ok(false)` if the deadline came first.
    /// Runs due callbacks (when there is a context to run them with). Ctrl-C while waiting
    /// terminates the pool and throws `KeyboardInterrupt`.
    pub fn pump(
        &self,
        ctx: Option<&NativeCallContext>,
        deadline: Deadline,
        done: &dyn Fn() -> bool,
    ) -> RhaiResult<bool> {
        let mut idle = false;
        loop {
            self.0.borrow_mut().step(idle)?;
            // A signal goes first: the workers died of it too (Ctrl-C reaches the whole
            // group), and their deaths are not the story.
            if let Some(sig) = rhai_mp_core::base::interrupt::take() {
                if sig != libc::SIGINT {
                    return Err(rhai_mp_core::base::interrupt::Interrupted(sig).into());
                }
                return Err(self.interrupted());
            }
            self.run_callbacks(ctx)?;
            if done() {
                return Ok(true);
            }
            if deadline.passed() {
                return Ok(false);
            }
            let wait = deadline.slice(POLL);
            let (results, state) = {
                let p = self.0.borrow();
                (p.results.clone(), p.state)
            };
            if state == PoolState::Terminate {
                // Nothing more will come (terminate failed every call).
                return Ok(done());
            }
            if self.0.borrow().ranks.is_some() {
                let got = {
                    let mut p = self.0.borrow_mut();
                    p.ranks.as_mut().map_or(Ok(Vec::new()), |r| r.recv(Deadline::after(wait)))
                };
                match got {
                    Ok(got) => {
                        idle = got.is_empty();
                        for bytes in got {
                            self.0.borrow_mut().take_result(&bytes, Vec::new())?;
                        }
                    }
                    Err(e) if e.kind == ErrorKind::KeyboardInterrupt => return Err(self.interrupted()),
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            match results.0.get(true, Deadline::after(wait)) {
                Ok((bytes, fds)) => {
                    idle = false;
                    self.0.borrow_mut().take_result(&bytes, fds)?;
                }
                Err(e) if e.kind == ErrorKind::Empty => idle = true,
                Err(e) if e.kind == ErrorKind::KeyboardInterrupt => return Err(self.interrupted()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Ctrl-C while a call waits: the pool is terminated and the call throws.
    fn interrupted(&self) -> Box<rhai::EvalAltResult> {
        self.0.borrow_mut().terminate();
        mp_err!(KeyboardInterrupt, "interrupted (Ctrl-C) while waiting for the pool; its workers were terminated")
            .into()
    }

    fn run_callbacks(&self, ctx: Option<&NativeCallContext>) -> RhaiResult<()> {
        let Some(ctx) = ctx else { return Ok(()) };
        loop {
            let next = self.0.borrow_mut().callbacks.pop_front();
            match next {
                None => return Ok(()),
                Some((f, v)) => {
                    let _ = f.call_raw(ctx, None, [v])?;
                }
            }
        }
    }

    /// Stops taking calls (the workers exit once the calls made so far are done).
    pub fn close(&self, ctx: &NativeCallContext) -> RhaiResult<()> {
        self.pump(Some(ctx), Deadline::now(), &|| true)?;
        let mut p = self.0.borrow_mut();
        if p.state == PoolState::Run {
            p.state = PoolState::Close;
        }
        Ok(())
    }

    /// Ends every worker now; calls still running fail.
    pub fn terminate(&self) {
        self.0.borrow_mut().terminate();
    }

    /// Waits for every call to finish and every worker to exit (after `close()`).
    pub fn join(&self, ctx: &NativeCallContext) -> RhaiResult<()> {
        match self.0.borrow().state {
            PoolState::Run => {
                return Err(
                    mp_err!(ValueError, "Pool is still running (call close() or terminate() before join())").into()
                )
            }
            PoolState::Terminate => return Ok(()),
            PoolState::Close => {}
        }
        let inner = self.0.clone();
        self.pump(Some(ctx), Deadline::NEVER, &|| inner.borrow().jobs.is_empty())?;
        if let Some(r) = self.0.borrow_mut().ranks.as_mut() {
            r.release();
            return Ok(());
        }
        let workers: Vec<Process> = {
            let mut p = self.0.borrow_mut();
            for _ in 0..p.size {
                p.tasks.0.put(&stop_task(), &[], true, Deadline::NEVER)?;
            }
            p.workers.iter_mut().filter_map(Option::take).collect()
        };
        for w in workers {
            w.join(Deadline::NEVER)?;
            let _ = w.close();
        }
        Ok(())
    }

    /// Waits for a call's outcome, until `deadline` at most; whether it came.
    pub fn wait_job(&self, ctx: &NativeCallContext, job: &Rc<RefCell<Job>>, deadline: Deadline) -> RhaiResult<bool> {
        self.pump(Some(ctx), deadline, &|| job.borrow().outcome.is_some())
    }

    /// Waits for an imap's next item; `None` past the end, `Err(TimeoutError)` on timeout.
    pub fn next_item(
        &self,
        ctx: Option<&NativeCallContext>,
        job: &Rc<RefCell<Job>>,
        deadline: Deadline,
    ) -> RhaiResult<Option<Dynamic>> {
        let ready = || {
            let j = job.borrow();
            !j.out.is_empty() || j.complete()
        };
        if !ready() && !self.pump(ctx, deadline, &ready)? {
            return Err(mp_err!(TimeoutError, "no result arrived within the timeout").into());
        }
        // Keep the workers busy with the next chunks.
        self.0.borrow_mut().step(false)?;
        let mut j = job.borrow_mut();
        match j.out.pop_front() {
            None => j.tail.take().map_or(Ok(None), Err),
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(f)) => Err(f.to_eval()),
        }
    }
}

impl PoolInner {
    /// Encodes a value for the workers (for another machine under `mpi`).
    fn encode(&self, v: &Dynamic, root: &str) -> MpResult<rhai_mp_core::wire::Packet> {
        if self.ranks.is_some() {
            rhai_mp_core::wire::encode_remote_value(v, root)
        } else {
            rhai_mp_core::wire::encode(v, root)
        }
    }

    fn check_running(&self) -> RhaiResult<()> {
        if let Some(f) = &self.broken {
            return Err(f.to_eval());
        }
        if self.state != PoolState::Run {
            return Err(mp_err!(ValueError, "Pool not running (it was closed or terminated)").into());
        }
        Ok(())
    }

    fn in_flight_limit(&self) -> u64 {
        (4 * self.size as u64).max(16)
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
        };
        let payload = rhai_mp_core::wire::encode_message(&args)?;
        let p = Process::native(super::worker::ENTRY, payload, None, Some(true), Some(self.method));
        p.set_name(p.name().replacen("Process", worker_prefix(self.method), 1));
        self.slots.set(i, Field::Job, 0);
        p.start_detached(self.server.as_ref())?;
        self.workers[i] = Some(p);
        Ok(())
    }

    /// Sends chunks of a call's input until `limit` are in flight or the input is used up.
    /// With `first`, an input item that cannot be sent fails the whole call at once.
    fn send_chunks(&mut self, job: &Rc<RefCell<Job>>, limit: u64, first: bool) -> MpResult<()> {
        loop {
            let mut j = job.borrow_mut();
            if j.all_sent || j.ahead() >= limit {
                return Ok(());
            }
            let Some((task, func, func_fds)) = self.funcs.get(&j.id) else {
                j.all_sent = true;
                return Ok(());
            };
            let (task, chunksize, start) = (*task, j.chunksize, j.next_item);
            let (func, func_fds) = (func.clone(), func_fds.clone());
            let (kind, payload, n) = match j.source.as_mut() {
                None => (task, None, 0),
                Some(Source::Range { next, end }) if task == Kind::Map => {
                    if *next >= *end {
                        (task, None, 0)
                    } else {
                        let b = next.saturating_add(chunksize as INT).min(*end);
                        let payload = Dynamic::from_array(vec![(*next).into(), b.into()]);
                        let n = (b - *next) as u64;
                        *next = b;
                        (Kind::MapRange, Some(payload), n)
                    }
                }
                Some(Source::Range { next, end }) => {
                    let b = next.saturating_add(chunksize as INT).min(*end);
                    let items: Array = (*next..b).map(Dynamic::from).collect();
                    *next = b;
                    let n = items.len() as u64;
                    (task, (n > 0).then(|| Dynamic::from_array(items)), n)
                }
                Some(Source::Items(it)) => {
                    let mut items: Array = it.by_ref().take(chunksize as usize).collect();
                    let n = items.len() as u64;
                    let payload = match task {
                        Kind::Apply => items.pop(),
                        _ => (n > 0).then(|| Dynamic::from_array(items)),
                    };
                    (task, payload, n)
                }
            };
            let Some(payload) = payload else {
                j.all_sent = true;
                j.source = None;
                self.funcs.remove(&j.id);
                return Ok(());
            };
            let root = if task == Kind::Apply { "args" } else { "iterable" };
            let packet = match self.encode(&payload, root) {
                Ok(p) => p,
                Err(e) => {
                    let e = if task == Kind::Apply { e } else { locate(&payload, start, e, self.ranks.is_some()) };
                    if first && j.sent == 0 {
                        return Err(e);
                    }
                    // Mid-stream (imap): that chunk fails, the others go on.
                    let chunk = j.sent;
                    j.sent += 1;
                    j.lens.push(n);
                    j.next_item += n;
                    if let Some(cb) = j.chunk_back(chunk, Err(Failure::Local(e))) {
                        self.callbacks.push_back(cb);
                    }
                    continue;
                }
            };
            let head = TaskHead {
                job: j.id,
                chunk: j.sent,
                first: start,
                kind,
                func_len: func.len(),
                func_fds: func_fds.len(),
            };
            let bytes = head.frame(&func, &packet.bytes);
            self.enqueue((bytes, func_fds, packet.fds))?;
            j.sent += 1;
            j.lens.push(n);
            j.next_item += n;
            if j.source.as_ref().is_some_and(|s| s.len() == 0) {
                j.all_sent = true;
                j.source = None;
                self.funcs.remove(&j.id);
            }
        }
    }

    /// Puts a task on the queue, or hands it to the feeder thread if the queue cannot take
    /// it now (never blocks).
    fn enqueue(&mut self, task: Task) -> MpResult<()> {
        if let Some(r) = &mut self.ranks {
            return r.send(task.0);
        }
        if !self.feeder.as_ref().is_some_and(Feeder::busy) {
            match self.tasks.0.put_fds(&[&task.0], &task_fds(&task.1, &task.2), false, Deadline::NEVER) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind == ErrorKind::Full => {}
                Err(e) => return Err(e),
            }
        }
        if self.feeder.is_none() {
            self.feeder = Some(Feeder::start(&self.tasks.0)?);
        }
        self.feeder.as_ref().unwrap().send(task);
        Ok(())
    }

    /// Records a finished call (an empty map is finished at once).
    fn settle(&mut self, job: &Rc<RefCell<Job>>) {
        let mut j = job.borrow_mut();
        if j.all_sent && j.sent == 0 && j.kind == JobKind::Map {
            if let Some(cb) = j.finish(Ok(Dynamic::from_array(Vec::new()))) {
                self.callbacks.push_back(cb);
            }
        }
        if j.complete() {
            self.jobs.remove(&j.id);
            self.funcs.remove(&j.id);
        }
    }

    /// One round of the pump without blocking.
    fn step(&mut self, force_check: bool) -> RhaiResult<()> {
        let limit = self.in_flight_limit();
        for job in std::mem::take(&mut self.lazy) {
            // Only the pool holds it (here and in `jobs`): every copy of the iterator is
            // gone, stop sending.
            if Rc::strong_count(&job) == 2 {
                job.borrow_mut().abandon();
                self.funcs.remove(&job.borrow().id);
            } else {
                self.send_chunks(&job, limit, false)?;
            }
            self.settle(&job);
            if !job.borrow().all_sent {
                self.lazy.push(job);
            }
        }
        self.drain()?;
        if force_check || self.last_check.elapsed() >= CHECK_EVERY {
            self.check_workers()?;
        }
        Ok(())
    }

    /// Takes every result already there.
    fn drain(&mut self) -> RhaiResult<()> {
        if let Some(r) = &mut self.ranks {
            for bytes in r.recv(Deadline::now())? {
                self.take_result(&bytes, Vec::new())?;
            }
            return Ok(());
        }
        loop {
            match self.results.0.get(false, Deadline::NEVER) {
                Ok((bytes, fds)) => self.take_result(&bytes, fds)?,
                Err(e) if e.kind == ErrorKind::Empty => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn take_result(&mut self, bytes: &[u8], fds: Vec<std::os::fd::OwnedFd>) -> RhaiResult<()> {
        let (id, chunk) = result_head(bytes)?;
        let job = if id == 0 { None } else { self.jobs.get(&id).cloned() };
        if id != 0 && job.is_none() {
            return Ok(()); // a call already settled (failed early, or a duplicate)
        }
        let result = match result_outcome(bytes, fds) {
            Ok(ChunkOutcome::Ran { values, errors }) => Ok(ChunkResult {
                values,
                errors: errors.into_iter().map(|(i, e)| (i as usize, Failure::Remote(e))).collect(),
            }),
            Ok(ChunkOutcome::Failed(e)) => Err(Failure::Remote(e)),
            Err(e) => Err(Failure::Local(e)),
        };
        let Some(job) = job else {
            // The initializer failed in worker `chunk`: every call fails with its error.
            let f = match result {
                Err(f) => f,
                Ok(_) => Failure::Local(mp_err!(RuntimeError, "the pool's initializer failed")),
            };
            self.break_pool(f);
            return Ok(());
        };
        let cb = job.borrow_mut().chunk_back(chunk, result);
        if let Some(cb) = cb {
            self.callbacks.push_back(cb);
        }
        self.settle(&job);
        Ok(())
    }

    fn break_pool(&mut self, f: Failure) {
        if self.broken.is_some() {
            return;
        }
        self.broken = Some(f.clone());
        self.lazy.clear();
        for (_, job) in std::mem::take(&mut self.jobs) {
            if let Some(cb) = job.borrow_mut().fail_all(&f) {
                self.callbacks.push_back(cb);
            }
        }
        self.funcs.clear();
    }

    /// Notices workers that ended: fails the task a dead one held, and starts replacements
    /// while there is work.
    fn check_workers(&mut self) -> RhaiResult<()> {
        self.last_check = Instant::now();
        if let Some(r) = &mut self.ranks {
            for lost in r.take_lost() {
                if let Some(j) = self.jobs.get(&lost.held.job).cloned() {
                    let cb = j.borrow_mut().chunk_back(lost.held.chunk, Err(Failure::Local(lost.error)));
                    if let Some(cb) = cb {
                        self.callbacks.push_back(cb);
                    }
                    self.settle(&j);
                }
            }
            return Ok(());
        }
        let mut dead = Vec::new();
        for (i, w) in self.workers.iter().enumerate() {
            if let Some(p) = w {
                if let Some(code) = p.exitcode()? {
                    dead.push((i, p.clone(), code));
                }
            }
        }
        if !dead.is_empty() {
            // Results a worker put before it died are in the queue: take them first.
            self.drain()?;
        }
        // A worker that could not even start (the script's top level failed in it, as it
        // does without the `__main__` guard) would fail again: the pool stops, with one
        // error for all.
        if let Some((_, _, code)) = dead.iter().find(|(_, _, c)| [EXIT_GUARD, EXIT_BOOT_FAILED].contains(c)) {
            let e = if *code == EXIT_GUARD {
                rhai_mp_core::tree::process::guard_error()
            } else {
                mp_err!(
                    RuntimeError,
                    "the pool's workers cannot start: the script's top level fails in them (their error is above)"
                )
            };
            self.break_pool(Failure::Local(e));
            self.terminate();
            return Ok(());
        }
        for (i, p, code) in dead {
            let job = self.slots.get(i, Field::Job);
            if job != 0 {
                let (chunk, item) = (self.slots.get(i, Field::Chunk), self.slots.get(i, Field::Item));
                let pid = p.pid().ok().flatten().unwrap_or(0);
                let how = if code < 0 {
                    format!("was killed by {}", signal_name(-code))
                } else {
                    format!("exited with code {code}")
                };
                let e =
                    mp_err!(WorkerLostError, "pool worker {} (pid {pid}) {how} while running task {item}", p.name())
                        .with("pid", pid as INT)
                        .with("exitcode", code as INT)
                        .with("task", item as INT);
                if let Some(j) = self.jobs.get(&job).cloned() {
                    let cb = j.borrow_mut().chunk_back(chunk, Err(Failure::Local(e)));
                    if let Some(cb) = cb {
                        self.callbacks.push_back(cb);
                    }
                    self.settle(&j);
                }
                self.slots.set(i, Field::Job, 0);
            }
            self.workers[i] = None;
            let _ = p.close();
        }
        let wanted = self.broken.is_none()
            && (self.state == PoolState::Run || (self.state == PoolState::Close && !self.jobs.is_empty()));
        if wanted {
            for i in 0..self.size {
                if self.workers[i].is_none() {
                    self.start_worker(i)?;
                }
            }
        }
        Ok(())
    }

    /// Ends every worker (SIGTERM, then SIGKILL for one that lingers) and reaps it; calls
    /// still running fail.
    pub fn terminate(&mut self) {
        if self.state == PoolState::Terminate {
            return;
        }
        self.state = PoolState::Terminate;
        let f = Failure::Local(mp_err!(RuntimeError, "the pool was terminated before this call finished"));
        self.lazy.clear();
        for (_, job) in std::mem::take(&mut self.jobs) {
            let _ = job.borrow_mut().fail_all(&f);
        }
        self.funcs.clear();
        self.feeder = None;
        if let Some(r) = &mut self.ranks {
            r.abort();
        }
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

/// Names the item of a chunk that could not be sent: `iterable[12]`.
fn locate(
    payload: &Dynamic,
    first: u64,
    err: rhai_mp_core::prelude::MpError,
    remote: bool,
) -> rhai_mp_core::prelude::MpError {
    if let Some(items) = payload.read_lock::<Array>() {
        for (i, x) in items.iter().enumerate() {
            let root = format!("iterable[{}]", first + i as u64);
            let r = if remote {
                rhai_mp_core::wire::encode_remote_value(x, &root)
            } else {
                rhai_mp_core::wire::encode(x, &root)
            };
            if let Err(e) = r {
                return e;
            }
        }
    }
    err
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        self.terminate();
    }
}
