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
        E::ErrorDataTooLarge(..) => "MemoryError",
        _ => "RuntimeError",
    };
    (kind.into(), text(err))
}

/// The source tag of the wrapper `RemoteError::to_eval` (`remote.rs`) puts around an error
/// raised in another process; the report recognizes it to name that process.
pub(crate) const REMOTE_TAG: &str = "rhai-mp-remote";

/// Reads the source tag `RemoteError::to_eval` puts around an error: the pid, and the
/// source of the function it was raised in.
pub(crate) fn parse_remote_tag(src: &str) -> Option<(i32, Option<String>)> {
    let rest = src.strip_prefix(REMOTE_TAG)?.strip_prefix(':')?;
    let (pid, source) = match rest.split_once(':') {
        Some((pid, source)) => (pid, Some(source.to_string())),
        None => (rest, None),
    };
    Some((pid.parse().unwrap_or(0), source))
}

/// Peels off "in function call" wrappers: the error that actually happened, its position,
/// and the functions it happened in (outermost first).
pub(crate) fn innermost(err: &EvalAltResult) -> (&EvalAltResult, Position, Vec<String>) {
    let t = trace(err);
    (t.error, t.pos, t.chain)
}

/// Where an error happened, as a report tells it.
pub(crate) struct Trace<'e> {
    /// The error that actually happened.
    pub(crate) error: &'e EvalAltResult,
    /// Its position.
    pub(crate) pos: Position,
    /// The functions it happened in (outermost first).
    pub(crate) chain: Vec<String>,
    /// The process (name, pid) it was raised in, when it came from another process (see
    /// [`crate::run::remote::RemoteError`]); the chain then starts there.
    pub(crate) remote: Option<(String, i32)>,
    /// The source of the innermost function it happened in (a script, a session unit).
    pub(crate) source: Option<String>,
}

/// Reads an error's wrappers (see [`Trace`]).
pub(crate) fn trace(err: &EvalAltResult) -> Trace<'_> {
    let mut t = Trace { error: err, pos: err.position(), chain: Vec::new(), remote: None, source: None };
    let mut e = err;
    loop {
        match e {
            EvalAltResult::ErrorInFunctionCall(f, src, inner, _) => {
                if let Some((pid, source)) = parse_remote_tag(src) {
                    t.remote = Some((f.clone(), pid));
                    t.chain.clear();
                    t.source = source;
                } else {
                    t.chain.push(if f.starts_with("anon$") { "<closure>".to_string() } else { f.clone() });
                    if !src.is_empty() {
                        t.source = Some(src.clone());
                    }
                }
                e = inner;
            }
            EvalAltResult::ErrorInModule(_, inner, _) => e = inner,
            _ => break,
        }
    }
    t.error = e;
    t.pos = e.position();
    // A function of this process's session (merged into a REPL's program, which keeps no
    // sources of its own): the unit that defines it.
    if t.remote.is_none() {
        if let Some(unit) = t.chain.last().and_then(|f| crate::wire::unit_of_function(f)) {
            t.source = Some(unit);
        }
    }
    t
}

/// The source a report quotes from.
pub(crate) struct Source<'a> {
    pub(crate) name: &'a str,
    pub(crate) text: &'a str,
}

/// Formats the report of an uncaught error. `who` names a child process; `quote` gives the
/// text of a source by name (the script, or a session unit).
pub(crate) fn format(
    err: &EvalAltResult,
    script: Option<Source>,
    who: Option<(&str, i32)>,
    quote: &dyn Fn(&str) -> Option<std::rc::Rc<str>>,
) -> String {
    let t = trace(err);
    let (kind, message) = type_and_message(t.error);
    let mut out = String::new();
    let remote_who = t.remote.as_ref().map(|(n, p)| (n.as_str(), *p));
    if let Some((name, pid)) = remote_who.or(who) {
        out.push_str(&format!("Process {name} (pid {pid}): "));
    }
    out.push_str(&format!("{kind}: {message}\n"));
    // Quote the unit the error happened in when it is session code, else the script.
    let unit = t.source.as_deref().and_then(quote);
    let (file, text) = match (&unit, &script) {
        (Some(u), _) => ("<input>", Some(&**u)),
        (None, Some(s)) if t.remote.is_none() || t.source.is_none() => (s.name, Some(s.text)),
        (None, Some(s)) => (s.name, Some(s.text)),
        (None, None) => ("<script>", None),
    };
    if let (Some(line), col) = (t.pos.line(), t.pos.position().unwrap_or(0)) {
        out.push_str(&format!("  --> {file}:{line}:{col}\n"));
        if let Some(text) = text.and_then(|x| x.lines().nth(line - 1)) {
            let gutter = line.to_string().len();
            let caret: String =
                text.chars().take(col.saturating_sub(1)).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
            out.push_str(&format!("{:gutter$} |\n{line} | {text}\n{:gutter$} | {caret}^\n", "", ""));
            if let Some(hint) = hint(t.error, text.chars().skip(col.saturating_sub(1)).collect::<String>().as_str()) {
                out.push_str(&format!("  = hint: {hint}\n"));
            }
        }
    }
    if !t.chain.is_empty() {
        out.push_str(&format!("  = in {}\n", t.chain.iter().map(|f| format!("'{f}'")).collect::<Vec<_>>().join(" → ")));
    }
    out
}

/// A hint for a syntax error that Python habits cause, given the source from its position
/// on: `globals().x = v` (Rhai assigns only to chains that start at a variable).
fn hint(err: &EvalAltResult, from: &str) -> Option<&'static str> {
    use rhai::ParseErrorType as P;
    match err {
        EvalAltResult::ErrorParsing(P::AssignmentToInvalidLHS(_), _) if from.starts_with("globals(") => Some(
            "Rhai cannot assign to `globals().x`: write `let g = globals(); g.x = v;` or `globals().set(\"x\", v)`",
        ),
        _ => None,
    }
}
