//! Errors from other processes: an error raised in a pool worker, a child or a rank, on its
//! way back to the process that waits for it ([`RemoteError`]), so that `catch` there sees
//! what a `catch` in the other process would have seen, and an uncaught one is reported
//! with the other process's name, pid and position.

use crate::base::error::MpResult;
use crate::run::report::{trace, type_and_message, REMOTE_TAG};
use crate::wire::{Portable, Reader, Writer};
use rhai::{Dynamic, EvalAltResult, Map, Position};

/// An error raised in another process (a pool worker) on its way back to the caller.
///
/// `value` is what a `catch` in that process would have received: a thrown value unchanged,
/// or, for a Rhai runtime error, Rhai's error map (`error`, `message`, `line`, `position`
/// and the error's own fields, such as `index` and `length`) plus `type` (Python's name
/// for it), `process` and `pid`. The
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
        let trace = trace(err);
        let (inner, pos) = (trace.error, trace.pos);
        let value = match inner {
            EvalAltResult::ErrorRuntime(v, _) => v.clone(),
            other => {
                let (kind, message) = type_and_message(other);
                let mut map = Map::new();
                map.insert("message".into(), message.into());
                map.insert("type".into(), kind.into());
                if let Some(line) = pos.line() {
                    map.insert("line".into(), (line as rhai::INT).into());
                    map.insert("position".into(), (pos.position().unwrap_or(0) as rhai::INT).into());
                }
                // Every field a `catch` there would have seen (where one of them is `type`,
                // the type of data it names, it wins over the Python-style one).
                catch_fields(other, &mut map);
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

/// The fields Rhai's `catch` adds to the map of a runtime error `err` (its variant's name
/// as `error`, and the variant's own fields), as `EvalAltResult::dump_fields` (private to
/// Rhai) does.
fn catch_fields(err: &EvalAltResult, map: &mut Map) {
    use EvalAltResult as E;
    let debug = format!("{err:?}");
    map.insert("error".into(), debug.split('(').next().unwrap_or_default().into());
    let mut put = |k: &str, v: Dynamic| {
        map.insert(k.into(), v);
    };
    match err {
        E::ErrorFunctionNotFound(f, ..) | E::ErrorNonPureMethodCallOnConstant(f, ..) => put("function", f.into()),
        E::ErrorInFunctionCall(f, s, ..) => {
            put("function", f.into());
            put("source", s.into());
        }
        E::ErrorMismatchDataType(r, a, ..) | E::ErrorMismatchOutputType(r, a, ..) => {
            put("requested", r.into());
            put("actual", a.into());
        }
        E::ErrorArrayBounds(n, i, ..) | E::ErrorStringBounds(n, i, ..) | E::ErrorBitFieldBounds(n, i, ..) => {
            put("length", (*n as rhai::INT).into());
            put("index", (*i).into());
        }
        E::ErrorVariableExists(v, ..)
        | E::ErrorForbiddenVariable(v, ..)
        | E::ErrorVariableNotFound(v, ..)
        | E::ErrorPropertyNotFound(v, ..)
        | E::ErrorDataRace(v, ..)
        | E::ErrorAssignmentToConstant(v, ..) => put("variable", v.into()),
        E::ErrorIndexNotFound(v, ..) => put("index", v.clone()),
        E::ErrorInModule(m, ..) | E::ErrorModuleNotFound(m, ..) => put("module", m.into()),
        E::ErrorDotExpr(p, ..) => put("property", p.into()),
        E::ErrorIndexingType(t, ..) | E::ErrorDataTooLarge(t, ..) => put("type", t.into()),
        E::ErrorTerminated(t, ..) => put("token", t.clone()),
        E::ErrorCustomSyntax(_, tokens, _) => {
            put("tokens", Dynamic::from_array(tokens.iter().map(|t| t.into()).collect()))
        }
        _ => {}
    }
}

impl Portable for RemoteError {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.value(&self.value, "error")?;
        w.str(&self.process);
        w.i64(self.pid as i64);
        w.u64(self.line as u64);
        w.u64(self.column as u64);
        w.put(&self.source)
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
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
