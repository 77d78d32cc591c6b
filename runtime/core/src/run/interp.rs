//! Running a script: compile it, give it `__name__` and `ARGV`, run its top level, turn the
//! outcome into an exit code (reporting an uncaught error), and join children at the end.

use crate::base::error::{innermost, ExitRequest};
use crate::base::interrupt::Interrupted;
use crate::base::sys::{borrow_fd, write_all};
use crate::run::report;
use crate::tree::process;
use crate::tree::state::{self, Script};
use rhai::{Array, Dynamic, Engine, EvalAltResult, Module, Scope, AST};

/// Keeps line numbers but hides a `#!` first line from the parser.
fn strip_shebang(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with("#!") {
        let end = text.find('\n').unwrap_or(text.len());
        format!("{}{}", " ".repeat(end), &text[end..]).into()
    } else {
        text.into()
    }
}

/// Gives an engine the constants `__name__` and `ARGV` (from this process's state). They
/// live in a global module, so functions see them too, as Python functions see module
/// globals; a script's own variable of the same name shadows them.
pub fn set_names(engine: &mut Engine, dunder_name: &str) {
    let argv: Array = state::with(|s| s.argv.iter().map(|a| Dynamic::from(a.clone())).collect());
    let mut names = Module::new();
    names.set_var("__name__", dunder_name.to_string());
    names.set_var("ARGV", argv);
    engine.register_global_module(names.into());
}

/// Compiles `script` with `engine` (a session has nothing to compile).
pub fn compile_ast(engine: &Engine, script: &Script) -> Result<AST, Box<EvalAltResult>> {
    Ok(match script {
        Script::Source { text, .. } => engine.compile(strip_shebang(text))?,
        Script::Session => AST::empty(),
    })
}

/// The exit code after an uncaught Ctrl-C (128 + SIGINT, what a shell expects).
pub const INTERRUPTED: i32 = 130;

/// How script code ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// With this exit code.
    Code(i32),
    /// Because of this signal (SIGTERM, SIGHUP): once cleaned up, the process dies of it.
    Signal(i32),
}

impl Ending {
    /// The exit code (128 + N for signal N).
    pub fn code(self) -> i32 {
        match self {
            Ending::Code(c) => c,
            Ending::Signal(s) => 128 + s,
        }
    }
}

/// The exit code after an uncaught `KeyboardInterrupt`: 130 for a main process (what a
/// shell expects), 1 for a child (as Python's).
fn interrupted_code(who: Option<(&str, i32)>) -> i32 {
    if who.is_some() {
        1
    } else {
        INTERRUPTED
    }
}

/// How script code ended, printing the report of an uncaught error on stderr. `who` names
/// a child process in the report.
pub fn ending(result: Result<Dynamic, Box<EvalAltResult>>, who: Option<(&str, i32)>) -> Ending {
    ending_in(result, who, None)
}

/// [`ending`] of session code: `input` (a REPL statement) is quoted when the error happened
/// in it.
pub fn ending_in(result: Result<Dynamic, Box<EvalAltResult>>, who: Option<(&str, i32)>, input: Option<&str>) -> Ending {
    let Err(e) = result else { return Ending::Code(0) };
    let report = |e: &EvalAltResult| {
        let _ = write_all(borrow_fd(2), error_report_in(e, who, input).as_bytes());
    };
    match ExitRequest::of(&e) {
        Some(ExitRequest::Code(code)) => Ending::Code(code),
        Some(ExitRequest::Signal(sig)) if sig == libc::SIGINT => {
            let stop: Box<EvalAltResult> = Interrupted(sig).into();
            report(&stop);
            Ending::Code(interrupted_code(who))
        }
        Some(ExitRequest::Signal(sig)) => Ending::Signal(sig),
        None => {
            report(&e);
            let (kind, _) = report::type_and_message(innermost(&e));
            Ending::Code(if kind == "KeyboardInterrupt" { interrupted_code(who) } else { 1 })
        }
    }
}

/// [`ending`] as an exit code.
pub fn outcome(result: Result<Dynamic, Box<EvalAltResult>>, who: Option<(&str, i32)>) -> i32 {
    ending(result, who).code()
}

/// Prints the report of an uncaught error on stderr, quoting this process's script.
pub fn report_error(err: &EvalAltResult, who: Option<(&str, i32)>) {
    let _ = write_all(borrow_fd(2), error_report_in(err, who, None).as_bytes());
}

/// Runs a main script (`__name__ == "__main__"`) to the end: reports an uncaught error,
/// then terminates daemon children and joins the others. Returns the exit code.
pub fn run_main(mut engine: Engine, name: &str, text: String) -> i32 {
    watch_signals(&mut engine);
    let result = run_script(engine, name, text);
    finish_main(ending(result, None))
}

/// Runs a script as this process's main script (`__name__ == "__main__"`, compiled by its
/// spawn children too) and returns its outcome, reporting nothing and cleaning nothing up
/// (see [`run_main`] for both).
pub fn run_script(mut engine: Engine, name: &str, text: String) -> Result<Dynamic, Box<EvalAltResult>> {
    let script = Script::Source { name: name.to_string(), text };
    state::with(|s| s.script = script.clone());
    set_names(&mut engine, "__main__");
    let ast = compile_ast(&engine, &script)?;
    crate::wire::set_program(&ast);
    crate::base::vm::run(&engine, &mut Scope::new(), &ast).map(|_| Dynamic::UNIT)
}

/// The report of an uncaught error, as [`report_error`] prints it (type, message,
/// `file:line:col`, the quoted line, the process it came from).
pub fn error_report(err: &EvalAltResult) -> String {
    error_report_in(err, None, None)
}

/// The report of an uncaught error: `who` names a child process; in a session (the REPL, a
/// host's `eval`), `input` is the code that ran, quoted when the error happened in it.
pub fn error_report_in(err: &EvalAltResult, who: Option<(&str, i32)>, input: Option<&str>) -> String {
    let script = state::with(|s| s.script.clone());
    let source = match (&script, input) {
        (Script::Source { name, text }, _) => Some(report::Source { name, text }),
        (Script::Session, Some(text)) => Some(report::Source { name: "<input>", text }),
        (Script::Session, None) => None,
    };
    report::format(err, source, who, &crate::wire::unit_text)
}

/// The end of a main process (a script or the REPL): children and managers are cleaned up,
/// then the exit code is returned — or, after SIGTERM or SIGHUP, the process dies of it.
pub fn finish_main(end: Ending) -> i32 {
    match end {
        Ending::Code(code) => {
            process::at_exit();
            code
        }
        Ending::Signal(sig) => {
            process::at_exit_signalled();
            crate::base::sys::die_of(sig)
        }
    }
}

/// Makes the interpreter notice signals (see `interrupt.rs`) in a main process's engine:
/// a long loop stops within a few hundred operations.
pub fn watch_signals(engine: &mut Engine) {
    crate::base::interrupt::install();
    notice_signals(engine);
}

/// Makes the interpreter notice Ctrl-C in a child that runs script code (SIGINT only, see
/// `interrupt::install_sigint`): a wait throws `KeyboardInterrupt`, a long loop stops.
pub fn watch_sigint(engine: &mut Engine) {
    crate::base::interrupt::install_sigint();
    notice_signals(engine);
}

/// The progress hook that stops a running script when a signal this process notes came
/// (it does nothing where no handler was installed).
pub fn notice_signals(engine: &mut Engine) {
    engine.on_progress(progress);
}

/// The progress hook every rhai-mp engine runs: every 256 operations on the AST, every 64
/// on the VM (which counts about a fifth as many, see [`crate::base::vm::progress_mask`]),
/// it looks for a stop (a signal, a cancelled or timed-out task, a host's stop) and, if
/// there is one, ends the running call (uncatchably). A host that sets its own
/// `on_progress` calls this from it.
pub fn progress(ops: u64) -> Option<Dynamic> {
    if ops & crate::base::vm::progress_mask() == 0 {
        crate::base::interrupt::take().map(|sig| Dynamic::from(ExitRequest::Signal(sig)))
    } else {
        None
    }
}
