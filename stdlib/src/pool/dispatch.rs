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

use super::flavors::{Message, Workers};
use super::job::{ChunkResult, Failure, Job, JobKind, Source};
use super::task::{result_head, result_outcome, ChunkOutcome, Kind, TaskHead, MAX_WORKERS, STREAM};
use rhai::{Array, Dynamic, FnPtr, NativeCallContext, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, ErrorKind, MpResult, RhaiResult};
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
    /// Each task's time limit in nanoseconds (0: none), unless a call sets its own.
    pub task_timeout_ns: u64,
    /// Each worker's memory limit in bytes (0: none).
    pub max_memory: u64,
}

/// How a call is bounded (see [`Pool::submit`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CallBounds {
    /// Each item's time limit in nanoseconds (`None`: the pool's `task_timeout`; 0: none).
    pub timeout_ns: Option<u64>,
    /// How many chunks of an imap may go ahead of the results read (`None`: the pool's).
    pub ahead: Option<u64>,
}

pub struct PoolInner {
    pub method: StartMethod,
    pub size: usize,
    /// Where tasks go and results come from (see `flavors/`).
    workers: Workers,
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
    last_check: Instant,
    /// The pool's `task_timeout` (ns, 0: none) and `max_memory` (bytes, 0: none).
    task_timeout_ns: u64,
    max_memory: u64,
    /// This pool (for the futures its done callbacks get).
    me: std::rc::Weak<RefCell<PoolInner>>,
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
        let workers = Workers::start(ctx, &cfg)?;
        let inner = PoolInner {
            method: cfg.method,
            size: cfg.processes,
            workers,
            state: PoolState::Run,
            jobs: BTreeMap::new(),
            lazy: Vec::new(),
            funcs: HashMap::new(),
            next_job: 1,
            callbacks: VecDeque::new(),
            broken: None,
            last_check: Instant::now(),
            task_timeout_ns: cfg.task_timeout_ns,
            max_memory: cfg.max_memory,
            me: std::rc::Weak::new(),
        };
        let pool = Pool(Rc::new(RefCell::new(inner)));
        pool.0.borrow_mut().me = Rc::downgrade(&pool.0);
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
        bounds: CallBounds,
    ) -> RhaiResult<Rc<RefCell<Job>>> {
        let mut p = self.0.borrow_mut();
        p.check_running()?;
        let packet = p.encode(&Dynamic::from(func), "func")?;
        let id = p.next_job;
        p.next_job += 1;
        p.workers.new_job(id);
        let mut job = Job::new(id, kind);
        job.timeout_ns = bounds.timeout_ns.unwrap_or(p.task_timeout_ns);
        job.stream = (job.timeout_ns > 0 || p.max_memory > 0) && !p.workers.remote();
        job.ahead_limit = bounds.ahead;
        job.chunksize = chunksize.max(1);
        job.total = Some(source.len());
        job.source = Some(source);
        job.callback = callback;
        job.error_callback = error_callback;
        let job = Rc::new(RefCell::new(job));
        p.jobs.insert(id, job.clone());
        p.funcs.insert(id, (task, packet.bytes, std::sync::Arc::new(packet.fds)));
        let limit = match kind {
            JobKind::Imap { .. } => bounds.ahead.unwrap_or(p.in_flight_limit()),
            _ => u64::MAX,
        };
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
            if self.0.borrow().state == PoolState::Terminate {
                // Nothing more will come (terminate failed every call).
                return Ok(done());
            }
            let mut got = Vec::new();
            let waited = self.0.borrow_mut().workers.recv(Deadline::after(wait), &mut got);
            match waited {
                Ok(()) => {
                    idle = got.is_empty();
                    for (bytes, fds) in got {
                        self.0.borrow_mut().take_result(&bytes, fds)?;
                    }
                }
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
        self.0.borrow_mut().workers.join()?;
        Ok(())
    }

    /// Cancels a call: its tasks not started never run, its running ones are stopped (the
    /// worker killed and replaced if they do not stop at once); its outcome (and imap's
    /// items not yet read) is `CancelledError`. `false` when it was done already.
    pub fn cancel(&self, job: &Rc<RefCell<Job>>) -> bool {
        self.0.borrow_mut().cancel(job)
    }

    /// Cancels every call no worker has started (an executor's `cancel_futures`).
    pub fn cancel_pending(&self) {
        let jobs: Vec<Rc<RefCell<Job>>> = self.0.borrow().jobs.values().cloned().collect();
        for j in jobs {
            let id = j.borrow().id;
            if !self.0.borrow().workers.running(id) {
                self.cancel(&j);
            }
        }
    }

    /// Whether a worker runs one of the call's tasks now.
    pub fn running(&self, job: &Rc<RefCell<Job>>) -> bool {
        let id = job.borrow().id;
        self.0.try_borrow().is_ok_and(|p| p.workers.running(id))
    }

    /// An executor's `shutdown`: no more calls; with `wait`, waits for every call and for
    /// the workers to exit.
    pub fn shutdown(&self, ctx: Option<&NativeCallContext>, wait: bool) -> RhaiResult<()> {
        {
            let mut p = self.0.borrow_mut();
            if p.state == PoolState::Run {
                p.state = PoolState::Close;
            }
            if !wait || p.state == PoolState::Terminate {
                return Ok(());
            }
        }
        let inner = self.0.clone();
        self.pump(ctx, Deadline::NEVER, &|| inner.borrow().jobs.is_empty())?;
        if self.0.borrow().state == PoolState::Close {
            self.0.borrow_mut().workers.join()?;
            self.0.borrow_mut().state = PoolState::Terminate;
        }
        Ok(())
    }

    /// An executor's `terminate_workers` / `kill_workers`: the workers end now, and the
    /// calls still running fail with `BrokenProcessPool`.
    pub fn break_off(&self, kill: bool) {
        let f = Failure::Local(mp_err!(
            BrokenProcessPool,
            "A process in the process pool was terminated abruptly while the future was running or pending"
        ));
        let mut p = self.0.borrow_mut();
        for (_, job) in std::mem::take(&mut p.jobs) {
            let cb = job.borrow_mut().fail_all(&f);
            if let Some(cb) = cb {
                p.callbacks.push_back(cb);
            }
            p.fire_done(&job);
        }
        if kill {
            p.workers.kill();
        }
        p.terminate();
    }

    /// [`Pool::wait_job`] without a context (no callbacks run).
    pub fn wait_job_opt(
        &self,
        ctx: Option<&NativeCallContext>,
        job: &Rc<RefCell<Job>>,
        deadline: Deadline,
    ) -> RhaiResult<bool> {
        self.pump(ctx, deadline, &|| job.borrow().outcome.is_some())
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
        self.workers.encode(v, root)
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
                if !j.stream {
                    self.funcs.remove(&j.id);
                }
                return Ok(());
            };
            let stream = j.stream && n > 1;
            if stream {
                let chunk = j.sent;
                j.keep.insert(chunk, (kind, payload.clone()));
            }
            let root = if task == Kind::Apply { "args" } else { "iterable" };
            let packet = match self.encode(&payload, root) {
                Ok(p) => p,
                Err(e) => {
                    let e = if task == Kind::Apply { e } else { locate(&payload, start, e, self.workers.remote()) };
                    if first && j.sent == 0 {
                        return Err(e);
                    }
                    // Mid-stream (imap): that chunk fails, the others go on.
                    let chunk = j.sent;
                    j.keep.remove(&chunk);
                    j.sent += 1;
                    j.lens.push(n);
                    j.firsts.push(start);
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
                offset: 0,
                timeout_ns: j.timeout_ns,
                flags: if stream { STREAM } else { 0 },
            };
            let bytes = head.frame(&func, &packet.bytes);
            self.enqueue((bytes, func_fds, packet.fds))?;
            j.sent += 1;
            j.lens.push(n);
            j.firsts.push(start);
            j.next_item += n;
            if j.source.as_ref().is_some_and(|s| s.len() == 0) {
                j.all_sent = true;
                j.source = None;
                if !j.stream {
                    self.funcs.remove(&j.id);
                }
            }
        }
    }

    /// Hands a task to the workers (never blocks).
    fn enqueue(&mut self, task: super::feeder::Task) -> MpResult<()> {
        self.workers.send(task)
    }

    /// Queues a done future's callbacks (each gets the future).
    fn fire_done(&mut self, job: &Rc<RefCell<Job>>) {
        let cbs = {
            let mut j = job.borrow_mut();
            if j.outcome.is_none() || j.done_callbacks.is_empty() {
                return;
            }
            std::mem::take(&mut j.done_callbacks)
        };
        let Some(me) = self.me.upgrade() else { return };
        let fut = Dynamic::from(super::executor::Future { pool: Pool(me), job: job.clone() });
        for cb in cbs {
            self.callbacks.push_back((cb, fut.clone()));
        }
    }

    /// Records a finished call (an empty map is finished at once).
    fn settle(&mut self, job: &Rc<RefCell<Job>>) {
        self.fire_done(job);
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
                let limit = job.borrow().ahead_limit.unwrap_or(limit);
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
        let mut got = Vec::new();
        self.workers.drain(&mut got)?;
        self.take_results(got)
    }

    fn take_results(&mut self, got: Vec<Message>) -> RhaiResult<()> {
        for (bytes, fds) in got {
            self.take_result(&bytes, fds)?;
        }
        Ok(())
    }

    fn take_result(&mut self, bytes: &[u8], fds: Vec<std::os::fd::OwnedFd>) -> RhaiResult<()> {
        let (id, chunk, offset) = result_head(bytes)?;
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
        let cb = {
            let mut j = job.borrow_mut();
            let whole = offset == 0
                && result
                    .as_ref()
                    .is_ok_and(|r| r.values.len() as u64 == j.lens.get(chunk as usize).copied().unwrap_or(0));
            if j.stream && !whole {
                j.part(chunk, offset, result)
            } else {
                j.chunk_back(chunk, result)
            }
        };
        if let Some(cb) = cb {
            self.callbacks.push_back(cb);
        }
        self.settle(&job);
        Ok(())
    }

    /// A task was lost with its worker (killed for its timeout, a cancel, its memory, or
    /// dead). A streamed chunk keeps the items that came back: the item that ran fails, and
    /// the rest of the chunk is sent again; any other chunk fails whole.
    fn lose(&mut self, lost: super::flavors::Lost) -> MpResult<()> {
        let Some(job) = self.jobs.get(&lost.job).cloned() else { return Ok(()) };
        let (cb, rest) = {
            let mut j = job.borrow_mut();
            let c = lost.chunk as usize;
            let len = j.lens.get(c).copied().unwrap_or(1);
            let first = j.firsts.get(c).copied().unwrap_or(0);
            match lost.item {
                Some(item) if j.keep.contains_key(&lost.chunk) && len > 1 => {
                    let k = item.saturating_sub(first).min(len - 1);
                    let failed =
                        ChunkResult { values: vec![Dynamic::UNIT], errors: vec![(0, Failure::Local(lost.error))] };
                    let cb = j.part(lost.chunk, k, Ok(failed));
                    (cb, j.first_missing(lost.chunk))
                }
                _ => (j.chunk_back(lost.chunk, Err(Failure::Local(lost.error))), None),
            }
        };
        if let Some(cb) = cb {
            self.callbacks.push_back(cb);
        }
        if let Some(m) = rest {
            self.resend(&job, lost.chunk, m)?;
        }
        self.settle(&job);
        Ok(())
    }

    /// Sends a streamed chunk again from its item `from` on (the rest of a chunk whose
    /// worker was killed).
    fn resend(&mut self, job: &Rc<RefCell<Job>>, chunk: u64, from: u64) -> MpResult<()> {
        let j = job.borrow();
        let (Some((kind, payload)), Some((_, func, func_fds))) = (j.keep.get(&chunk), self.funcs.get(&j.id)) else {
            return Ok(());
        };
        let first = j.firsts.get(chunk as usize).copied().unwrap_or(0);
        let (kind, rest) = match *kind {
            Kind::MapRange => {
                let b =
                    payload.read_lock::<Array>().map(|a| a.iter().filter_map(|x| x.as_int().ok()).collect::<Vec<_>>());
                match b.as_deref() {
                    Some([a, b]) => (Kind::MapRange, Dynamic::from_array(vec![(a + from as INT).into(), (*b).into()])),
                    _ => return Ok(()),
                }
            }
            k => {
                let items =
                    payload.read_lock::<Array>().map(|a| a.iter().skip(from as usize).cloned().collect::<Array>());
                (k, Dynamic::from_array(items.unwrap_or_default()))
            }
        };
        let packet = self.workers.encode(&rest, "iterable")?;
        let head = TaskHead {
            job: j.id,
            chunk,
            first: first + from,
            kind,
            func_len: func.len(),
            func_fds: func_fds.len(),
            offset: from,
            timeout_ns: j.timeout_ns,
            flags: STREAM,
        };
        let bytes = head.frame(func, &packet.bytes);
        let func_fds = func_fds.clone();
        drop(j);
        self.enqueue((bytes, func_fds, packet.fds))
    }

    /// Cancels a call (see [`Pool::cancel`]).
    fn cancel(&mut self, job: &Rc<RefCell<Job>>) -> bool {
        let id = {
            let mut j = job.borrow_mut();
            let done = match j.kind {
                JobKind::Imap { .. } => j.complete() && j.out.is_empty(),
                _ => j.outcome.is_some(),
            };
            if done || j.cancelled {
                return j.cancelled;
            }
            j.cancelled = true;
            j.out.clear();
            let f = Failure::Local(mp_err!(CancelledError, "the call was cancelled"));
            if let Some(cb) = j.fail_all(&f) {
                self.callbacks.push_back(cb);
            }
            j.id
        };
        self.jobs.remove(&id);
        self.funcs.remove(&id);
        self.lazy.retain(|l| !Rc::ptr_eq(l, job));
        self.workers.cancel(id);
        self.fire_done(job);
        true
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
        let mut got = Vec::new();
        let checked = self.workers.check(&mut got)?;
        // Results a worker put before it died count first.
        self.take_results(got)?;
        if let Some(e) = checked.broken {
            self.break_pool(Failure::Local(e));
            self.terminate();
            return Ok(());
        }
        for lost in checked.lost {
            self.lose(lost)?;
        }
        let wanted = self.broken.is_none()
            && (self.state == PoolState::Run || (self.state == PoolState::Close && !self.jobs.is_empty()));
        if wanted {
            self.workers.replace()?;
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
        self.workers.terminate();
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
