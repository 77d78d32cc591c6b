//! Reports of uncaught errors, as printed on stderr: the error type, the message,
//! `file:line:col`, the source line with a caret under the position, and the chain of
//! function calls it happened in. A child's report also names the child (name, pid).

use rhai::{EvalAltResult, Map, Position};

/// The `type` and message of a Rhai error, as a script's `catch` would see them.
pub fn type_and_message(err: &EvalAltResult) -> (String, String) {
    use EvalAltResult as E;
    let text = |e: &EvalAltResult| {
        let s = e.to_string();
        let suffix = format!(" ({})", e.position());
        s.strip_suffix(&suffix).map_or(s.clone(), str::to_string)
    };
    let kind = match err {
        E::ErrorRuntime(v, _) => {
            if let Some(m) = v.read_lock::<Map>() {
                if let Some(t) = m.get("type") {
                    let msg = m.get("message").map(|x| x.to_string()).unwrap_or_default();
                    return (t.to_string(), msg);
                }
            }
            return ("RuntimeError".into(), if v.is_string() { v.to_string() } else { format!("{v:?}") });
        }
        E::ErrorParsing(..) => "SyntaxError",
        E::ErrorVariableNotFound(..) | E::ErrorFunctionNotFound(..) | E::ErrorModuleNotFound(..) => "NameError",
        E::ErrorMismatchDataType(..) | E::ErrorMismatchOutputType(..) | E::ErrorIndexingType(..) | E::ErrorFor(..) => {
            "TypeError"
        }
        E::ErrorArrayBounds(..) | E::ErrorStringBounds(..) | E::ErrorBitFieldBounds(..) => "IndexError",
        E::ErrorIndexNotFound(..) | E::ErrorPropertyNotFound(..) => "KeyError",
        E::ErrorArithmetic(..) => "ArithmeticError",
        E::ErrorStackOverflow(..) => "RecursionError",
        _ => "RuntimeError",
    };
    (kind.into(), text(err))
}

/// Peels off "in function call" wrappers: the error that actually happened, its position,
/// and the functions it happened in (outermost first).
pub(crate) fn innermost(err: &EvalAltResult) -> (&EvalAltResult, Position, Vec<String>) {
    let (e, pos, chain, _) = innermost_remote(err);
    (e, pos, chain)
}

/// As [`innermost`], plus the process (name, pid) the error was raised in when it came from
/// another process (see [`crate::error::RemoteError`]); the chain then starts there.
pub(crate) fn innermost_remote(err: &EvalAltResult) -> (&EvalAltResult, Position, Vec<String>, Option<(String, i32)>) {
    let mut chain = Vec::new();
    let mut remote = None;
    let mut e = err;
    loop {
        match e {
            EvalAltResult::ErrorInFunctionCall(f, src, inner, _)
                if src.strip_prefix(crate::error::REMOTE_TAG).is_some_and(|r| r.starts_with(':')) =>
            {
                let pid = src[crate::error::REMOTE_TAG.len() + 1..].parse().unwrap_or(0);
                remote = Some((f.clone(), pid));
                chain.clear();
                e = inner;
            }
            EvalAltResult::ErrorInFunctionCall(f, _, inner, _) => {
                chain.push(if f.starts_with("anon$") { "<closure>".to_string() } else { f.clone() });
                e = inner;
            }
            EvalAltResult::ErrorInModule(_, inner, _) => e = inner,
            _ => break,
        }
    }
    (e, e.position(), chain, remote)
}

/// The source a report quotes from.
pub(crate) struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

/// Formats the report of an uncaught error. `who` names a child process.
pub(crate) fn format(err: &EvalAltResult, source: Option<Source>, who: Option<(&str, i32)>) -> String {
    let (inner, pos, chain, remote) = innermost_remote(err);
    let (kind, message) = type_and_message(inner);
    let mut out = String::new();
    let remote_who = remote.as_ref().map(|(n, p)| (n.as_str(), *p));
    if let Some((name, pid)) = remote_who.or(who) {
        out.push_str(&format!("Process {name} (pid {pid}): "));
    }
    out.push_str(&format!("{kind}: {message}\n"));
    let file = source.as_ref().map_or("<script>", |s| s.name);
    if let (Some(line), col) = (pos.line(), pos.position().unwrap_or(0)) {
        out.push_str(&format!("  --> {file}:{line}:{col}\n"));
        if let Some(text) = source.as_ref().and_then(|s| s.text.lines().nth(line - 1)) {
            let gutter = line.to_string().len();
            let caret: String =
                text.chars().take(col.saturating_sub(1)).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
            out.push_str(&format!("{:gutter$} |\n{line} | {text}\n{:gutter$} | {caret}^\n", "", ""));
        }
    }
    if !chain.is_empty() {
        out.push_str(&format!("  = in {}\n", chain.iter().map(|f| format!("'{f}'")).collect::<Vec<_>>().join(" → ")));
    }
    out
}
