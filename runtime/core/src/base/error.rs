//! The one place where Rust-side failures become Rhai errors.
//!
//! Every error a script can catch is an object map `#{type: "ValueError", message: "..."}`
//! (see the reference, "Errors"), thrown as [`EvalAltResult::ErrorRuntime`]. Code anywhere in rhai-mp
//! builds an [`MpError`] (usually with [`mp_err!`](crate::mp_err)) and lets `?` turn it into
//! a Rhai error through the `From` impls in this file; nothing else constructs error maps.
//! A stop this process was asked for ([`Interrupted`]: Ctrl-C, SIGTERM) becomes its error
//! here too, and so do the requests that end a script without `catch` seeing them
//! ([`ExitRequest`]: `exit(n)`, a signal).
//!
//! Caveat: extra fields (such as `data` for `BufferTooShort`) are Rhai values, so an
//! `MpError` is not `Send`. Errors that must cross a thread carry plain strings instead.

use crate::base::interrupt::Interrupted;
use rhai::{Dynamic, EvalAltResult, Map, Position};
use std::fmt;

/// The error types a script can see, named as in Python (the reference lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A wait timed out (`AsyncResult.get(t)`, imap `next(t)`).
    TimeoutError,
    /// `get` on an empty queue.
    Empty,
    /// `put` on a full queue.
    Full,
    /// `recv` at the end of a connection.
    EOFError,
    /// The other end is gone (a closed connection, a stopped manager).
    BrokenPipeError,
    /// A message longer than the buffer `recv_bytes_into` was given.
    BufferTooShort,
    /// An argument of the right type but a wrong value.
    ValueError,
    /// An argument of the wrong type.
    TypeError,
    /// An operation on a closed handle, the wrong end of a pipe, or an OS failure.
    OSError,
    /// A missing key.
    KeyError,
    /// An index out of range.
    IndexError,
    /// `next()` past the end.
    StopIteration,
    /// A named shared memory block that does not exist.
    FileNotFoundError,
    /// Creating a named shared memory block that exists.
    FileExistsError,
    /// A call in the wrong state (`start()` twice …).
    AssertionError,
    /// A misuse Python reports as `RuntimeError` (the missing `__main__` guard …).
    RuntimeError,
    /// A process could not be started.
    ProcessError,
    /// A broken, reset or aborted barrier.
    BrokenBarrierError,
    /// A wrong key.
    AuthenticationError,
    /// A value that cannot cross a process boundary, or a malformed message.
    SerializationError,
    /// A pool worker died while running a task.
    WorkerLostError,
    /// A task or future that was cancelled.
    CancelledError,
    /// An executor whose workers were terminated.
    BrokenProcessPool,
    /// Ctrl-C.
    KeyboardInterrupt,
    /// An allocation the machine cannot give.
    MemoryError,
    /// Nothing listens at a manager's address.
    ConnectionRefusedError,
    /// The process was asked to end (SIGTERM, SIGHUP): not catchable, it ends the script
    /// (see `interrupt.rs`).
    SystemExit,
}

impl ErrorKind {
    /// The `type` string scripts compare against.
    pub fn name(self) -> &'static str {
        use ErrorKind::*;
        match self {
            TimeoutError => "TimeoutError",
            Empty => "Empty",
            Full => "Full",
            EOFError => "EOFError",
            BrokenPipeError => "BrokenPipeError",
            BufferTooShort => "BufferTooShort",
            ValueError => "ValueError",
            TypeError => "TypeError",
            OSError => "OSError",
            KeyError => "KeyError",
            IndexError => "IndexError",
            StopIteration => "StopIteration",
            FileNotFoundError => "FileNotFoundError",
            FileExistsError => "FileExistsError",
            AssertionError => "AssertionError",
            RuntimeError => "RuntimeError",
            ProcessError => "ProcessError",
            BrokenBarrierError => "BrokenBarrierError",
            AuthenticationError => "AuthenticationError",
            SerializationError => "SerializationError",
            WorkerLostError => "WorkerLostError",
            CancelledError => "CancelledError",
            BrokenProcessPool => "BrokenProcessPool",
            KeyboardInterrupt => "KeyboardInterrupt",
            MemoryError => "MemoryError",
            ConnectionRefusedError => "ConnectionRefusedError",
            SystemExit => "SystemExit",
        }
    }
}

/// A typed rhai-mp error: a kind, a message that says what was wrong and where, and
/// optional extra fields for the error map.
#[derive(Debug, Clone)]
pub struct MpError {
    /// The type scripts see.
    pub kind: ErrorKind,
    /// What was wrong and where.
    pub message: String,
    /// Extra fields of the error map (`data`, `pid` …).
    pub fields: Vec<(&'static str, Dynamic)>,
}

impl MpError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), fields: Vec::new() }
    }

    /// Adds a field to the error map (`data`, `pid`, `exitcode`, …).
    pub fn with(mut self, key: &'static str, value: impl Into<Dynamic>) -> Self {
        self.fields.push((key, value.into()));
        self
    }

    /// Builds the object map a script's `catch` receives.
    pub fn to_map(&self) -> Map {
        let mut map = Map::new();
        map.insert("type".into(), self.kind.name().into());
        map.insert("message".into(), self.message.clone().into());
        for (k, v) in &self.fields {
            map.insert((*k).into(), v.clone());
        }
        map
    }

    /// The end of the script because the process got signal `sig` (SIGTERM, SIGHUP):
    /// thrown as an uncatchable error.
    pub fn terminated(sig: i32) -> Self {
        use crate::base::interrupt::{CANCELLED, HOST_STOP, TIMED_OUT};
        let why = match sig {
            TIMED_OUT => "stopped: the task ran past its timeout".to_string(),
            CANCELLED => "stopped: the call was cancelled".to_string(),
            HOST_STOP => "stopped by the host (its stop handle)".to_string(),
            _ => {
                let name =
                    nix::sys::signal::Signal::try_from(sig).map_or_else(|_| format!("signal {sig}"), |s| s.to_string());
                format!("terminated by {name}")
            }
        };
        MpError::new(ErrorKind::SystemExit, why).with("signal", sig as rhai::INT)
    }

    /// An `OSError` from an OS error, saying which operation failed; `BrokenPipeError` for
    /// a peer that is gone; the signal's error for a wait a signal cut short.
    pub fn os(what: &str, err: impl Into<std::io::Error>) -> Self {
        let err = err.into();
        if err.kind() == std::io::ErrorKind::Interrupted {
            if let Some(sig) = crate::base::interrupt::take() {
                return Interrupted(sig).into();
            }
        }
        if matches!(err.raw_os_error(), Some(libc::EPIPE) | Some(libc::ECONNRESET)) {
            return MpError::new(
                ErrorKind::BrokenPipeError,
                format!("[Errno 32] Broken pipe: the other end is closed ({what})"),
            );
        }
        let errno = err.raw_os_error().unwrap_or(0);
        if let Some(hint) = limit_hint(errno, false) {
            return MpError::new(ErrorKind::OSError, format!("{what}: {}", hinted(errno, &err, &hint)))
                .with("errno", errno as rhai::INT);
        }
        MpError::new(ErrorKind::OSError, format!("{what}: {err}")).with("errno", errno as rhai::INT)
    }

    /// [`MpError::os`] for a failure to create a process (`fork`, `clone`, `posix_spawn`),
    /// where `EAGAIN` means the limit on processes was reached and `ENOMEM` the address
    /// space: the message names the limit to raise.
    pub fn no_process(what: &str, err: impl Into<std::io::Error>) -> Self {
        let err = err.into();
        let errno = err.raw_os_error().unwrap_or(0);
        match limit_hint(errno, true) {
            Some(hint) => MpError::new(ErrorKind::OSError, format!("{what}: {}", hinted(errno, &err, &hint)))
                .with("errno", errno as rhai::INT),
            _ => MpError::os(what, err),
        }
    }

    /// The errno of an `OSError` (`None` for other errors).
    pub fn errno(&self) -> Option<i32> {
        let (_, v) = self.fields.iter().find(|(k, _)| *k == "errno")?;
        v.as_int().ok().map(|e| e as i32)
    }
}

/// `[Errno 24] EMFILE: Too many open files (hint)`.
fn hinted(errno: i32, err: &std::io::Error, hint: &str) -> String {
    let text = err.to_string();
    let text = text.strip_suffix(&format!(" (os error {errno})")).unwrap_or(&text);
    let name = match errno {
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        _ => "",
    };
    format!("[Errno {errno}] {name}: {text} ({hint})")
}

/// What to raise when `errno` says a limit was reached (`EAGAIN` only when `process`: a
/// process could not be created), with the limit's current value.
fn limit_hint(errno: i32, process: bool) -> Option<String> {
    use nix::sys::resource::{getrlimit, Resource};
    let soft = |r: Resource| match getrlimit(r) {
        Ok((soft, _)) if soft != libc::RLIM_INFINITY => soft.to_string(),
        _ => "unlimited".to_string(),
    };
    match errno {
        libc::EMFILE => Some(format!(
            "out of file descriptors: raise the limit on open files, `ulimit -n`, now {}",
            soft(Resource::RLIMIT_NOFILE)
        )),
        libc::ENFILE => Some("the system has no file descriptor left: raise fs.file-max".to_string()),
        libc::EAGAIN if process => Some(format!(
            "no process can be created now: raise the limit on processes, `ulimit -u`, now {}, or the cgroup's pids.max",
            soft(Resource::RLIMIT_NPROC)
        )),
        libc::ENOMEM if process => Some(format!(
            "out of memory or address space: raise the limit on address space, `ulimit -v`, now {} KiB, or free memory",
            match getrlimit(Resource::RLIMIT_AS) {
                Ok((soft, _)) if soft != libc::RLIM_INFINITY => (soft / 1024).to_string(),
                _ => "unlimited".to_string(),
            }
        )),
        _ => None,
    }
}

impl fmt::Display for MpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for MpError {}

impl From<MpError> for Box<EvalAltResult> {
    fn from(err: MpError) -> Self {
        if err.kind == ErrorKind::SystemExit {
            let sig = err.fields.iter().find(|(k, _)| *k == "signal").and_then(|(_, v)| v.as_int().ok());
            return ExitRequest::Signal(sig.unwrap_or(libc::SIGTERM as rhai::INT) as i32).error();
        }
        EvalAltResult::ErrorRuntime(err.to_map().into(), Position::NONE).into()
    }
}

impl From<nix::Error> for MpError {
    fn from(err: nix::Error) -> Self {
        MpError::os("system call failed", std::io::Error::from_raw_os_error(err as i32))
    }
}

impl From<std::io::Error> for MpError {
    fn from(err: std::io::Error) -> Self {
        MpError::os("I/O failed", err)
    }
}

impl From<Interrupted> for MpError {
    /// `KeyboardInterrupt` for SIGINT, the uncatchable end of the script for the others.
    fn from(Interrupted(sig): Interrupted) -> Self {
        if sig == libc::SIGINT {
            MpError::new(ErrorKind::KeyboardInterrupt, "interrupted (Ctrl-C)")
        } else {
            MpError::terminated(sig)
        }
    }
}

impl From<Interrupted> for Box<EvalAltResult> {
    fn from(stop: Interrupted) -> Self {
        MpError::from(stop).into()
    }
}

/// What ends a script without `catch` seeing it: `exit(v)`, or a signal (see
/// `interrupt.rs`). Thrown as Rhai's uncatchable `ErrorTerminated`.
///
/// Rhai's own `exit` becomes a normal return value at the top level and in function calls,
/// so a script's `exit(3)` could not be told from a last expression `3`; rhai-mp replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitRequest {
    /// `exit(n)`: the exit code.
    Code(i32),
    /// A signal: SIGINT (the interpreter noticed Ctrl-C), SIGTERM or SIGHUP.
    Signal(i32),
}

impl ExitRequest {
    /// The error that ends the script with exit code `exit_code(value)`.
    pub fn exit(value: &Dynamic) -> Box<EvalAltResult> {
        ExitRequest::Code(exit_code(value)).error()
    }

    /// This request as the error that carries it.
    pub fn error(self) -> Box<EvalAltResult> {
        EvalAltResult::ErrorTerminated(Dynamic::from(self), Position::NONE).into()
    }

    /// The request an error carries, if it is one.
    pub fn of(err: &EvalAltResult) -> Option<ExitRequest> {
        match innermost(err) {
            EvalAltResult::ErrorTerminated(v, _) => v.read_lock::<ExitRequest>().map(|r| *r),
            EvalAltResult::Exit(v, _) => Some(ExitRequest::Code(exit_code(v))),
            _ => None,
        }
    }

    /// The exit code an error asks for, if it is an `exit(n)` request.
    pub fn code_of(err: &EvalAltResult) -> Option<i32> {
        match Self::of(err) {
            Some(ExitRequest::Code(c)) => Some(c),
            _ => None,
        }
    }
}

/// The error that actually happened, inside the "in function call" wrappers around it.
pub fn innermost(err: &EvalAltResult) -> &EvalAltResult {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) | EvalAltResult::ErrorInModule(_, inner, _) => {
            innermost(inner)
        }
        e => e,
    }
}

/// The exit code `exit(v)` asks for: an int (taken modulo 256), `()` for 0; anything else
/// is printed and gives 1, as Python's `sys.exit("message")`.
pub fn exit_code(v: &Dynamic) -> i32 {
    if v.is_unit() {
        0
    } else if let Ok(i) = v.as_int() {
        (i & 0xff) as i32
    } else {
        crate::base::output::stderr_line(&v.to_string());
        1
    }
}

/// Throws again, unchanged, an error value that came from another process (a manager's
/// server): `catch` receives `value`.
pub fn rethrow(value: Dynamic) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(value, Position::NONE).into()
}

/// The result type of rhai-mp internals.
pub type MpResult<T> = Result<T, MpError>;

/// The result type of functions Rhai calls (`Box<EvalAltResult>` errors).
pub type RhaiResult<T = Dynamic> = Result<T, Box<EvalAltResult>>;

/// `mp_err!(ValueError, "bad {}", x)` builds an [`MpError`] of that kind.
#[macro_export]
macro_rules! mp_err {
    ($kind:ident, $($fmt:tt)+) => {
        $crate::base::error::MpError::new($crate::base::error::ErrorKind::$kind, format!($($fmt)+))
    };
}

/// `mp_bail!(ValueError, "bad {}", x)` returns such an error, converted with `?`-style `into()`.
#[macro_export]
macro_rules! mp_bail {
    ($kind:ident, $($fmt:tt)+) => {
        return Err($crate::mp_err!($kind, $($fmt)+).into())
    };
}
