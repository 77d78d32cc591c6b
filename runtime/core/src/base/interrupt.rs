//! Stopping the main process when it is asked to: Ctrl-C (SIGINT), SIGTERM and SIGHUP.
//!
//! The main script and the REPL [`install`] handlers that only note the signal. Every wait
//! in rhai-mp sleeps in slices of at most [`SLICE`] (a signal also cuts a sleep short,
//! since the handlers do not restart system calls) and calls [`check`] between slices; the
//! interpreter checks too, every few hundred operations (a long `while` loop). So a signal
//! stops whatever the script is doing within a slice:
//!
//! - SIGINT throws `KeyboardInterrupt` where the script is (a script ends with exit code
//!   130; the REPL keeps its session);
//! - SIGTERM and SIGHUP end the script as an uncaught error would — children and managers
//!   are cleaned up (non-daemon children get SIGTERM too) — and the process then dies of the
//!   same signal, so its parent sees why.
//!
//! Other processes (children, servers) keep the default actions (or ignore SIGINT, as
//! servers do): [`check`] never fires there.
//!
//! A call can also be stopped without a signal to the process: [`abort_call`] from another
//! thread (an MPI rank whose parent terminated the call; a host's stop handle), or a stop
//! asked for by a timer or another process through [`STOP_SIGNAL`], which only says "look":
//! the hook the runner set with [`watch_stops`] (once per process) decides whether the call that runs now is
//! to stop (its task's time is up, its call was cancelled) and how ([`TIMED_OUT`],
//! [`CANCELLED`]). A stale request (the task it was for has ended) is then dropped. The
//! same checks find every stop, in the interpreter's progress hook and in every wait.
//!
//! This file is only the state: a stop is an [`Interrupted`], which `error.rs` turns into
//! the error a script sees.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::SeqCst};
use std::time::Duration;

/// The longest a wait sleeps before it looks at the signals again.
pub const SLICE: Duration = Duration::from_millis(100);

/// The signal waiting to be acted on (0: none).
static PENDING: AtomicI32 = AtomicI32::new(0);
/// Whether SIGINT was ignored when this process started (then it stays ignored, in the
/// process and in its pool workers, as Python does).
static SIGINT_IGNORED: AtomicBool = AtomicBool::new(false);
/// Whether this process installed the handlers: all three (`install`, a main process), or
/// SIGINT's only (`install_sigint`, a child running script code).
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// A stop another thread asked for (the signal it stands for; 0: none): an MPI rank's
/// call that its parent terminated (see [`abort_call`]).
static ABORT: AtomicI32 = AtomicI32::new(0);

/// The signal a timer or another process sends to ask the running call to stop (its
/// handler only notes that the stop hook is to be asked; see [`watch_stops`]).
pub const STOP_SIGNAL: i32 = libc::SIGUSR2;
/// What a stop stands for when it is no signal: the running task's time ran out.
pub const TIMED_OUT: i32 = -1;
/// What a stop stands for when it is no signal: the running call was cancelled.
pub const CANCELLED: i32 = -2;
/// What a stop stands for when it is no signal: the host stopped the running call.
pub const HOST_STOP: i32 = -3;

/// Set by [`STOP_SIGNAL`]'s handler (or [`request_stop`]): the stop hook is to be asked.
static STOP_ASKED: AtomicBool = AtomicBool::new(false);
/// The stop hook: decides whether the running call is to stop, and as what.
static STOP_HOOK: std::sync::OnceLock<fn() -> Option<i32>> = std::sync::OnceLock::new();

thread_local! {
    /// Whether this thread acts on signals (the script's thread; not a helper thread).
    static WATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

extern "C" fn note(sig: libc::c_int) {
    PENDING.store(sig, SeqCst);
}

extern "C" fn note_stop(_: libc::c_int) {
    STOP_ASKED.store(true, SeqCst);
}

/// Makes this thread (the one that runs script code: a pool worker's, a rank's) act on
/// stops, and sets the hook that decides them: it returns the stop the running call is
/// to take ([`TIMED_OUT`], [`CANCELLED`]) or `None` for a stale request. Installs the
/// handler of [`STOP_SIGNAL`] (which only notes the request, and cuts a wait short).
pub fn watch_stops(hook: fn() -> Option<i32>) {
    let _ = STOP_HOOK.set(hook);
    WATCHING.with(|w| w.set(true));
    crate::base::sys::set_handler(STOP_SIGNAL, note_stop);
}

/// Asks the stop hook to look at the running call at the next check (from any thread).
pub fn request_stop() {
    STOP_ASKED.store(true, SeqCst);
}

/// Makes the calling thread act on stops (and on the signals, if [`install`]ed) while `on`:
/// a host's session thread, for the evaluations its stop handle may stop.
pub fn watch_thread(on: bool) -> bool {
    WATCHING.with(|w| w.replace(on))
}

/// On the watching thread: asks the stop hook about a request, and makes its answer the
/// stop waiting ([`abort_call`]).
fn resolve() {
    if !WATCHING.with(|w| w.get()) || !STOP_ASKED.swap(false, SeqCst) {
        return;
    }
    if let Some(code) = STOP_HOOK.get().and_then(|hook| hook()) {
        ABORT.store(code, SeqCst);
    }
}

/// Records how this process started (call first thing, before any signal is changed).
pub(crate) fn record_start() {
    SIGINT_IGNORED.store(crate::base::sys::signal_is_ignored(libc::SIGINT), SeqCst);
}

/// Whether SIGINT was ignored when this process started.
pub fn sigint_ignored_at_start() -> bool {
    SIGINT_IGNORED.load(SeqCst)
}

/// Notes SIGINT (unless ignored at start), SIGTERM and SIGHUP from now on (main process).
pub fn install() {
    INSTALLED.store(true, SeqCst);
    WATCHING.with(|w| w.set(true));
    if !sigint_ignored_at_start() {
        crate::base::sys::set_handler(libc::SIGINT, note);
    }
    crate::base::sys::set_handler(libc::SIGTERM, note);
    crate::base::sys::set_handler(libc::SIGHUP, note);
}

/// Notes SIGINT (unless ignored at start) from now on, leaving SIGTERM and SIGHUP their
/// default actions: a child process that runs script code, where Ctrl-C (or its parent's
/// `interrupt()`) throws `KeyboardInterrupt` as in Python. Pool workers and servers do not
/// call it: they ignore SIGINT.
pub fn install_sigint() {
    INSTALLED.store(true, SeqCst);
    WATCHING.with(|w| w.set(true));
    if !sigint_ignored_at_start() {
        crate::base::sys::set_handler(libc::SIGINT, note);
    }
}

/// Gives every signal back its action at start (in a child forked from the main process):
/// children keep Python's defaults — SIGTERM ends them, as SIGINT does unless it was
/// ignored — until they [`install_sigint`].
pub fn forget() {
    if INSTALLED.swap(false, SeqCst) {
        WATCHING.with(|w| w.set(false));
        crate::base::sys::default_signal(libc::SIGTERM);
        crate::base::sys::default_signal(libc::SIGHUP);
        restore_sigint();
        // A signal that came between the fork and now was meant for this child (or for the
        // whole group): it ends the child, as it would have without the handlers.
        if let Some(sig) = Some(PENDING.swap(0, SeqCst)).filter(|&s| s != 0) {
            if sig != libc::SIGINT || !sigint_ignored_at_start() {
                crate::base::sys::die_of(sig);
            }
        }
    }
}

/// Whether this process notes signals: all three (a main script, the REPL, a host that
/// asked) or SIGINT's (a child running script code).
pub fn installed() -> bool {
    INSTALLED.load(SeqCst)
}

/// Gives SIGINT back the action this process started with (a child forked from a process
/// that caught or ignored it: a pool worker, a forkserver's child).
pub fn restore_sigint() {
    if sigint_ignored_at_start() {
        crate::base::sys::ignore_signal(libc::SIGINT);
    } else {
        crate::base::sys::default_signal(libc::SIGINT);
    }
}

/// Whether a signal (or an [`abort_call`], or a stop the hook confirms) is waiting.
pub fn pending() -> bool {
    resolve();
    PENDING.load(SeqCst) != 0 || ABORT.load(SeqCst) != 0
}

/// Asks the script's thread, from another thread, to stop what it runs as signal `sig`
/// would (but without a signal: the process itself was not asked to end), or as one of
/// the stops that are no signal ([`TIMED_OUT`], [`CANCELLED`], [`HOST_STOP`]). An MPI rank
/// uses it when its parent terminates the call it runs; the stop hook's answer and a
/// host's stop handle end up here too.
pub fn abort_call(sig: i32) {
    ABORT.store(sig, SeqCst);
}

/// Forgets an [`abort_call`] (and a stop request) that came after its call ended.
pub fn clear_abort() {
    ABORT.store(0, SeqCst);
    STOP_ASKED.store(false, SeqCst);
}

/// Takes the signal waiting, if any (on the script's thread only: a helper thread leaves it
/// for the script).
pub fn take() -> Option<i32> {
    if !WATCHING.with(|w| w.get()) {
        return None;
    }
    resolve();
    Some(PENDING.swap(0, SeqCst)).filter(|&s| s != 0).or_else(|| Some(ABORT.swap(0, SeqCst)).filter(|&s| s != 0))
}

/// A stop this process was asked for, by the signal it stands for: SIGINT is
/// `KeyboardInterrupt`, SIGTERM and SIGHUP the end of the script (see `error.rs`); or a
/// stop that is no signal ([`TIMED_OUT`], [`CANCELLED`], [`HOST_STOP`]), which ends the
/// running call as SIGTERM would end the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted(pub i32);

/// Sleeps `d` at most; a signal (a stop request) cuts the sleep short.
pub fn sleep(d: Duration) {
    let ts = nix::sys::time::TimeSpec::from_duration(d);
    let _ =
        nix::time::clock_nanosleep(nix::time::ClockId::CLOCK_MONOTONIC, nix::time::ClockNanosleepFlags::empty(), &ts);
}

/// For I/O waits: an `Interrupted` error if a signal is waiting (without taking it; the
/// conversion of that error into an [`MpError`] does, see `error.rs`).
pub fn io_check() -> std::io::Result<()> {
    if WATCHING.with(|w| w.get()) && pending() {
        return Err(std::io::ErrorKind::Interrupted.into());
    }
    Ok(())
}

/// Runs `f` without acting on signals (they stay noted, for the next check): for the short,
/// bounded waits that clean up after a wait a signal stopped.
pub fn masked<T>(f: impl FnOnce() -> T) -> T {
    let was = WATCHING.with(|w| w.replace(false));
    let out = f();
    WATCHING.with(|w| w.set(was));
    out
}

/// Fails if a signal asked this process to stop (see the module docs); waits call it
/// between slices (`?` turns the stop into the script's error).
pub fn check() -> Result<(), Interrupted> {
    match take() {
        None => Ok(()),
        Some(sig) => Err(Interrupted(sig)),
    }
}
