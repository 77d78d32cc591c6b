//! A worker rank's side of an MPI job: once the script's top level has run (as
//! `__mp_main__`), the native entry [`ENTRY`] connects to rank 0, proves it belongs to the
//! job, and serves until rank 0 says the job is over or goes away.
//!
//! A reader thread takes rank 0's messages as they come, so that "stop that" reaches a
//! call while it runs: it stops the call where the script is (as a signal would, through
//! `interrupt::abort_call`) and drops the owner's queued tasks. The script's thread runs the
//! requests in order: pool tasks and initializers (`pool/worker.rs`) and process calls.
//! A real signal (the launcher ending the job, Ctrl-C) ends the rank.

use super::head::read_frame;
use super::protocol::{frame, FromRank, ToRank};
use crate::manager::auth::{Hello, Verdict};
use rhai::{Dynamic, NativeCallContext};
use rhai_mp_core::base::error::ExitRequest;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, MpResult, RhaiResult};
use rhai_mp_core::transport::tcp::{self, FrameReader, Read};
use rhai_mp_core::wire::{decode_message, encode_remote, Packet, Portable, Reader, Writer};
use std::collections::HashSet;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The name of the worker ranks' native entry point.
pub(crate) const ENTRY: &str = "mpi-rank";

/// What a worker rank is started with: rank 0's addresses, the job's key, its rank.
#[derive(Debug, Clone)]
pub struct RankArgs {
    /// Rank 0's addresses (`ip:port`), tried in order.
    pub addresses: Vec<String>,
    /// The job's key.
    pub key: Vec<u8>,
    /// This rank.
    pub rank: u32,
}

impl Portable for RankArgs {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.put(&self.addresses)?;
        w.bytes(&self.key);
        w.u32(self.rank);
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(RankArgs { addresses: r.get()?, key: r.bytes()?.to_vec(), rank: r.u32()? })
    }
}

fn io(e: std::io::Error) -> MpError {
    MpError::os("the connection to rank 0", e)
}

/// This host's name (`os::hostname()`).
pub fn hostname() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Connects to rank 0 (the first address that answers), authenticates, and says which
/// rank this is and how its top level ended (`code`).
pub(crate) fn join(args: &RankArgs, code: i32) -> MpResult<OwnedFd> {
    let mut last = None;
    let mut conn = None;
    for a in &args.addresses {
        match tcp::connect(a, Duration::from_secs(5)) {
            Ok(c) => {
                conn = Some(c);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let conn = match conn {
        Some(c) => c,
        None => {
            let why = last.map_or_else(|| "no address".to_string(), |e| e.message);
            return Err(mp_err!(
                OSError,
                "rank {} could not reach rank 0 at {}: {why}",
                args.rank,
                args.addresses.join(", ")
            ));
        }
    };
    let deadline = Deadline::after_secs(10.0);
    let mut reader = FrameReader::new(4096);
    let hello: Hello = decode_message(&read_frame(&conn, &mut reader, deadline)?, Vec::new())?;
    let answer = hello.answer(&args.key)?;
    tcp::write_all(conn.as_fd(), &tcp::frame(&encode_remote(&answer)?).map_err(io)?).map_err(io)?;
    let verdict: Verdict = decode_message(&read_frame(&conn, &mut reader, deadline)?, Vec::new())?;
    if !verdict.proves(&args.key, &answer) {
        return Err(mp_err!(AuthenticationError, "rank 0 refused rank {}'s key (or did not prove its own)", args.rank));
    }
    tcp::write_all(conn.as_fd(), &frame(&FromRank::Joined { rank: args.rank, code })?).map_err(io)?;
    Ok(conn)
}

/// A rank whose top level failed: it tells rank 0 (which reports it once) and waits for
/// the end of the job.
pub fn report_failed_boot(args: &RankArgs, code: i32) {
    let Ok(conn) = join(args, code) else { return };
    let mut reader = FrameReader::new(1 << 20);
    loop {
        match reader.read_from(conn.as_fd()) {
            Ok(Read::Pending) => {
                let _ = rhai_mp_core::transport::poll::wait_readable(conn.as_fd(), Deadline::after_secs(1.0));
                if rhai_mp_core::base::interrupt::pending() {
                    return;
                }
            }
            Ok(Read::Frame(_)) | Ok(Read::Closed) | Err(_) => return,
        }
    }
}

/// What the script's thread is running, shared with the reader thread.
#[derive(Default)]
struct Running {
    /// The owner of the running request (0: none).
    owner: u64,
    /// The signal its stop stands for, once rank 0 stopped it.
    aborted: Option<i32>,
    /// Owners whose work was stopped: their queued requests are dropped.
    cancelled: HashSet<u64>,
}

/// What the reader thread hands the script's thread.
enum Inbox {
    Request(ToRank),
    /// Rank 0 ended the job, or went away.
    End,
}

/// The reader thread: rank 0's messages, as they come.
fn read_loop(conn: OwnedFd, running: Arc<Mutex<Running>>, tx: mpsc::Sender<Inbox>, main: nix::sys::pthread::Pthread) {
    let mut reader = FrameReader::new(1 << 31);
    loop {
        let msg = match reader.read_from(conn.as_fd()) {
            Ok(Read::Pending) => {
                let _ = rhai_mp_core::transport::poll::wait_readable(conn.as_fd(), Deadline::NEVER);
                continue;
            }
            Ok(Read::Frame(bytes)) => decode_message::<ToRank>(&bytes, Vec::new()).ok(),
            Ok(Read::Closed) | Err(_) => None,
        };
        match msg {
            None | Some(ToRank::Shutdown { .. }) => {
                // Rank 0 said a rank was lost, or rank 0 itself went away without a word.
                if !matches!(msg, Some(ToRank::Shutdown { finalize: true })) {
                    PEERS_LOST.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                let _ = tx.send(Inbox::End);
                return;
            }
            Some(ToRank::Cancel { owner, job }) => {
                crate::pool::cancel_on_rank(owner, job);
                // Wakes the script's thread from a wait (the stop hook then decides).
                let _ = nix::sys::pthread::pthread_kill(main, nix::sys::signal::Signal::SIGUSR2);
            }
            Some(ToRank::Abort { owner, sig }) => {
                let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
                r.cancelled.insert(owner);
                if r.owner == owner && r.aborted.is_none() {
                    r.aborted = Some(sig);
                    rhai_mp_core::base::interrupt::abort_call(sig);
                }
            }
            Some(m) => {
                if tx.send(Inbox::Request(m)).is_err() {
                    return;
                }
            }
        }
    }
}

/// Rank 0 said a rank was lost during the job, or itself went away (so `MPI_Finalize`
/// would wait for a rank that is gone).
pub(crate) static PEERS_LOST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set once the entry runs (see `cluster::rank_served`).
pub(crate) static SERVED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The native entry of a worker rank.
pub(crate) fn entry(ctx: &NativeCallContext, payload: Packet) -> RhaiResult<()> {
    SERVED.store(true, std::sync::atomic::Ordering::SeqCst);
    let args: RankArgs = rhai_mp_core::wire::decode_message(&payload.bytes, payload.fds)?;
    let host = hostname();
    rhai_mp_core::tree::state::with(|s| s.name = format!("Rank-{}@{host}", args.rank));
    let conn = join(&args, 0)?;
    let theirs = nix::unistd::dup(&conn).map_err(MpError::from)?;
    let running = Arc::new(Mutex::new(Running::default()));
    let (tx, rx) = mpsc::channel();
    let r2 = running.clone();
    let main = nix::sys::pthread::pthread_self();
    std::thread::Builder::new()
        .name("rank-reader".into())
        .spawn(move || read_loop(theirs, r2, tx, main))
        .map_err(|e| MpError::os("a thread", e))?;
    let serve = Serve { ctx, conn, running, rank: args.rank, host };
    loop {
        let msg = match rx.recv_timeout(rhai_mp_core::base::interrupt::SLICE) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                rhai_mp_core::base::interrupt::check()?;
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) | Ok(Inbox::End) => return Ok(()),
            Ok(Inbox::Request(m)) => m,
        };
        serve.handle(msg)?;
    }
}

struct Serve<'a, 'b> {
    ctx: &'a NativeCallContext<'b>,
    conn: OwnedFd,
    running: Arc<Mutex<Running>>,
    rank: u32,
    host: String,
}

impl Serve<'_, '_> {
    fn send(&self, msg: &FromRank) -> RhaiResult<()> {
        // Rank 0 gone: the reader thread ends the loop.
        let _ = tcp::write_all(self.conn.as_fd(), &frame(msg)?);
        Ok(())
    }

    /// Marks `owner`'s request as running; false if its owner was stopped.
    fn begin(&self, owner: u64) -> bool {
        let mut r = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if r.cancelled.contains(&owner) {
            return false;
        }
        r.owner = owner;
        r.aborted = None;
        true
    }

    /// Ends the running request: the signal it was stopped as, if it was.
    fn end(&self) -> Option<i32> {
        let mut r = self.running.lock().unwrap_or_else(|e| e.into_inner());
        r.owner = 0;
        rhai_mp_core::base::interrupt::clear_abort();
        r.aborted.take()
    }

    fn handle(&self, msg: ToRank) -> RhaiResult<()> {
        match msg {
            ToRank::Task { owner, task } => {
                if !self.begin(owner) {
                    return Ok(());
                }
                let result = crate::pool::run_rank_task(self.ctx, owner, &task);
                if self.end().is_none() {
                    self.send(&FromRank::Done { owner, result })?;
                }
            }
            ToRank::Init { owner, call } => {
                if !self.begin(owner) {
                    return Ok(());
                }
                let failed = crate::pool::run_rank_init(self.ctx, &call, self.rank);
                if self.end().is_none() {
                    if let Some(result) = failed {
                        self.send(&FromRank::Done { owner, result })?;
                    }
                }
            }
            ToRank::Run { owner, name, call } => {
                if !self.begin(owner) {
                    self.send(&FromRank::Exited { owner, code: -libc::SIGTERM })?;
                    return Ok(());
                }
                let saved = rhai_mp_core::tree::state::with(|s| std::mem::replace(&mut s.name, name.clone()));
                let result = rhai_mp_core::run::child::run_remote_call(self.ctx, &call);
                let stopped = self.end();
                rhai_mp_core::tree::state::with(|s| s.name = saved);
                let code = match (stopped, result) {
                    (Some(sig), _) => -sig,
                    (None, Err(e)) if matches!(ExitRequest::of(&e), Some(ExitRequest::Signal(_))) => return Err(e),
                    (None, r) => {
                        let who = format!("{name} [rank {} on {}]", self.rank, self.host);
                        rhai_mp_core::run::interp::outcome(
                            r.map(|_| Dynamic::UNIT),
                            Some((&who, rhai_mp_core::base::sys::pid() as i32)),
                        )
                    }
                };
                // Its children are joined (daemon ones terminated), as at a child's end.
                rhai_mp_core::tree::process::at_exit();
                self.send(&FromRank::Exited { owner, code })?;
            }
            ToRank::Abort { .. } | ToRank::Shutdown { .. } | ToRank::Cancel { .. } => {}
        }
        Ok(())
    }
}
