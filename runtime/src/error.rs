//! [`Error`]: what the embedding API returns when script code fails — the script-level type
//! (`"ValueError"`, `"NameError"` …), the message, and the report a script's uncaught error
//! would print (its `file:line:col`, the quoted line, and the child process it came from).

use rhai::{Dynamic, EvalAltResult};
use std::fmt;

/// An error from script code run by a [`Runtime`](crate::Runtime): thrown by the script,
/// raised by a primitive, or raised in a child process (a pool worker) and carried back.
///
/// ```
/// # let rt = rhai_mp::Runtime::new();
/// let e = rt.eval::<i64>(r#"throw #{type: "ValueError", message: "nope"}"#).unwrap_err();
/// assert_eq!(e.kind(), "ValueError");
/// assert!(e.message().contains("nope"));
/// ```
#[derive(Debug, Clone)]
pub struct Error {
    kind: String,
    message: String,
    process: Option<(String, i32)>,
    value: Dynamic,
    report: String,
}

impl Error {
    /// The script-level type: one of the reference's error types (`"ValueError"`,
    /// `"WorkerLostError"` …), Rhai's (`"NameError"` for a missing function or variable,
    /// `"TypeError"`, `"SyntaxError"` …), or the `type` of a map the script threw.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The child process (name and pid) the error was raised in, if it came from one.
    pub fn process(&self) -> Option<(&str, i32)> {
        self.process.as_ref().map(|(n, p)| (n.as_str(), *p))
    }

    /// What a script's `catch` would have received: the thrown value, or the error map.
    pub fn value(&self) -> &Dynamic {
        &self.value
    }

    /// An error of `kind` that is not from script code (a value of the wrong type).
    pub(crate) fn new(kind: &str, message: String) -> Error {
        let report = format!("{kind}: {message}");
        Error { kind: kind.to_string(), message, process: None, value: Dynamic::UNIT, report }
    }

    /// The error of a failed evaluation.
    pub(crate) fn from_eval(err: &EvalAltResult) -> Error {
        use rhai_mp_core::base::error::ExitRequest;
        use rhai_mp_core::base::interrupt::HOST_STOP;
        if ExitRequest::of(err) == Some(ExitRequest::Signal(HOST_STOP)) {
            return Error::new("CancelledError", "stopped by the host (its StopHandle)".into());
        }
        let (kind, message) = rhai_mp_core::run::report::type_and_message(innermost(err));
        let report = rhai_mp_core::run::interp::error_report(err);
        let process = report.strip_prefix("Process ").and_then(|rest| {
            let (name, rest) = rest.split_once(" (pid ")?;
            let (pid, _) = rest.split_once("):")?;
            Some((name.to_string(), pid.parse().ok()?))
        });
        let value = match innermost(err) {
            EvalAltResult::ErrorRuntime(v, _) => v.clone(),
            _ => Dynamic::from(message.clone()),
        };
        Error { kind, message, process, value, report: report.trim_end().to_string() }
    }
}

/// The error under the "in function call" wrappers.
fn innermost(err: &EvalAltResult) -> &EvalAltResult {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) | EvalAltResult::ErrorInModule(_, inner, _) => {
            innermost(inner)
        }
        e => e,
    }
}

impl fmt::Display for Error {
    /// As a script's uncaught error is reported: `[Process name (pid N): ]Type: message`,
    /// then `--> file:line:col` and the quoted line where known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.report)
    }
}

impl std::error::Error for Error {}

impl From<Box<EvalAltResult>> for Error {
    fn from(err: Box<EvalAltResult>) -> Error {
        Error::from_eval(&err)
    }
}

impl From<rhai_mp_core::prelude::MpError> for Error {
    fn from(err: rhai_mp_core::prelude::MpError) -> Error {
        let e: Box<EvalAltResult> = err.into();
        Error::from_eval(&e)
    }
}
