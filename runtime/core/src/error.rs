//! The one place where Rust-side failures become Rhai errors.
//!
//! Every error a script can catch is an object map `#{type: "ValueError", message: "..."}`
//! (see the reference, "Errors"), thrown as [`EvalAltResult::ErrorRuntime`]. Code anywhere in rhai-mp
//! builds an [`MpError`] (usually with [`mp_err!`](crate::mp_err)) and lets `?` turn it into
//! a Rhai error through the `From` impl at the bottom of this file; nothing else constructs
//! error maps.
//!
//! Caveat: extra fields (such as `data` for `BufferTooShort`) are Rhai values, so an
//! `MpError` is not `Send`. Errors that must cross a thread carry plain strings instead.

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
        let name = nix::sys::signal::Signal::try_from(sig).map_or_else(|_| format!("signal {sig}"), |s| s.to_string());
        MpError::new(ErrorKind::SystemExit, format!("terminated by {name}")).with("signal", sig as rhai::INT)
    }

    /// An `OSError` from an OS error, saying which operation failed; `BrokenPipeError` for
    /// a peer that is gone; the signal's error for a wait a signal cut short.
    pub fn os(what: &str, err: impl Into<std::io::Error>) -> Self {
        let err = err.into();
        if err.kind() == std::io::ErrorKind::Interrupted {
            if let Some(sig) = crate::interrupt::take() {
                return crate::interrupt::error_for(sig);
            }
        }
        if matches!(err.raw_os_error(), Some(libc::EPIPE) | Some(libc::ECONNRESET)) {
            return MpError::new(
                ErrorKind::BrokenPipeError,
                format!("[Errno 32] Broken pipe: the other end is closed ({what})"),
            );
        }
        let errno = err.raw_os_error().unwrap_or(0);
        MpError::new(ErrorKind::OSError, format!("{what}: {err}")).with("errno", errno as rhai::INT)
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
            return crate::interp::ExitRequest::Signal(sig.unwrap_or(libc::SIGTERM as rhai::INT) as i32).error();
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

/// Throws again, unchanged, an error value that came from another process (a manager's
/// server): `catch` receives `value`.
pub fn rethrow(value: Dynamic) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(value, Position::NONE).into()
}

/// The source tag of the wrapper [`RemoteError::to_eval`] puts around an error raised in
/// another process; the report recognizes it to name that process.
pub(crate) const REMOTE_TAG: &str = "rhai-mp-remote";

impl RemoteError {
    /// Reads the source tag [`RemoteError::to_eval`] puts around an error: the pid, and the
    /// source of the function it was raised in.
    pub(crate) fn parse_tag(src: &str) -> Option<(i32, Option<String>)> {
        let rest = src.strip_prefix(REMOTE_TAG)?.strip_prefix(':')?;
        let (pid, source) = match rest.split_once(':') {
            Some((pid, source)) => (pid, Some(source.to_string())),
            None => (rest, None),
        };
        Some((pid.parse().unwrap_or(0), source))
    }
}

/// An error raised in another process (a pool worker) on its way back to the caller.
///
/// `value` is what a `catch` in that process would have received: a thrown value unchanged,
/// or, for a Rhai runtime error, Rhai's error map plus `type`, `process` and `pid`. The
/// process and the position travel beside it, so that an uncaught remote error is reported
/// with the worker's name, pid and `file:line:col`, while `catch` still sees only `value`.
#[derive(Debug, Clone)]
pub struct RemoteError {
    /// What `catch` receives.
    pub value: Dynamic,
    /// The name of the process that raised it.
    pub process: String,
    /// Its pid.
    pub pid: i32,
    /// The line in its script (0: unknown).
    pub line: usize,
    /// The column (0: unknown).
    pub column: usize,
    /// The source of the function it was raised in (a session unit's name), if known.
    pub source: Option<String>,
}

impl RemoteError {
    /// Captures `err`, raised in this process (named `process`), for sending.
    pub fn capture(err: &EvalAltResult, process: &str, pid: i32) -> RemoteError {
        let trace = crate::report::trace(err);
        let (inner, pos) = (trace.error, trace.pos);
        let value = match inner {
            EvalAltResult::ErrorRuntime(v, _) => v.clone(),
            other => {
                let (kind, message) = crate::report::type_and_message(other);
                let mut map = Map::new();
                map.insert("message".into(), message.into());
                map.insert("type".into(), kind.into());
                if let Some(line) = pos.line() {
                    map.insert("line".into(), (line as rhai::INT).into());
                    map.insert("position".into(), (pos.position().unwrap_or(0) as rhai::INT).into());
                }
                map.insert("process".into(), process.into());
                map.insert("pid".into(), (pid as rhai::INT).into());
                map.into()
            }
        };
        RemoteError {
            value,
            process: process.to_string(),
            pid,
            line: pos.line().unwrap_or(0),
            column: pos.position().unwrap_or(0),
            source: trace.source,
        }
    }

    /// The Rhai error to throw in the caller: `catch` receives `value`; an uncaught report
    /// names the process and quotes its position.
    pub fn to_eval(&self) -> Box<EvalAltResult> {
        let pos = if self.line > 0 {
            Position::new(self.line.min(u16::MAX as usize) as u16, self.column.min(u16::MAX as usize) as u16)
        } else {
            Position::NONE
        };
        let inner = EvalAltResult::ErrorRuntime(self.value.clone(), pos);
        EvalAltResult::ErrorInFunctionCall(
            self.process.clone(),
            match &self.source {
                Some(src) => format!("{REMOTE_TAG}:{}:{src}", self.pid),
                None => format!("{REMOTE_TAG}:{}", self.pid),
            },
            inner.into(),
            Position::NONE,
        )
        .into()
    }
}

/// The result type of rhai-mp internals.
pub type MpResult<T> = Result<T, MpError>;

/// The result type of functions Rhai calls (`Box<EvalAltResult>` errors).
pub type RhaiResult<T = Dynamic> = Result<T, Box<EvalAltResult>>;

impl crate::wire::Portable for RemoteError {
    fn write(&self, w: &mut crate::wire::Writer) -> MpResult<()> {
        w.value(&self.value, "error")?;
        w.str(&self.process);
        w.i64(self.pid as i64);
        w.u64(self.line as u64);
        w.u64(self.column as u64);
        w.put(&self.source)
    }
    fn read(r: &mut crate::wire::Reader) -> MpResult<Self> {
        Ok(RemoteError {
            value: r.value()?,
            process: r.string()?,
            pid: r.i64()? as i32,
            line: r.u64()? as usize,
            column: r.u64()? as usize,
            source: r.get()?,
        })
    }
}

/// `mp_err!(ValueError, "bad {}", x)` builds an [`MpError`] of that kind.
#[macro_export]
macro_rules! mp_err {
    ($kind:ident, $($fmt:tt)+) => {
        $crate::MpError::new($crate::ErrorKind::$kind, format!($($fmt)+))
    };
}

/// `mp_bail!(ValueError, "bad {}", x)` returns such an error, converted with `?`-style `into()`.
#[macro_export]
macro_rules! mp_bail {
    ($kind:ident, $($fmt:tt)+) => {
        return Err($crate::mp_err!($kind, $($fmt)+).into())
    };
}
