//! Running a script: compile it, give it `__name__` and `ARGV`, run its top level, turn the
//! outcome into an exit code (reporting an uncaught error), and join children at the end.

use crate::process;
use crate::report;
use crate::state::{self, Script};
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

/// Compiles `script` with `engine`. A REPL's entries give their functions only.
pub fn compile_ast(engine: &Engine, script: &Script) -> Result<AST, Box<EvalAltResult>> {
    Ok(match script {
        Script::Source { text, .. } => engine.compile(strip_shebang(text))?,
        Script::Repl { entries } => {
            let mut ast = AST::empty();
            for entry in entries {
                ast += engine.compile(entry)?.clone_functions_only();
            }
            ast
        }
    })
}

/// What `exit(v)` throws: an uncatchable error (`ErrorTerminated`) carrying the exit code.
///
/// Rhai's own `exit` becomes a normal return value at the top level and in function calls,
/// so a script's `exit(3)` could not be told from a last expression `3`; rhai-mp replaces it.
#[derive(Debug, Clone, Copy)]
pub struct ExitRequest(pub i32);

impl ExitRequest {
    /// The error that ends the script with exit code `exit_code(value)`.
    pub fn error(value: &Dynamic) -> Box<EvalAltResult> {
        EvalAltResult::ErrorTerminated(Dynamic::from(ExitRequest(exit_code(value))), rhai::Position::NONE).into()
    }

    /// The exit code an error asks for, if it is an exit request.
    pub fn code_of(err: &EvalAltResult) -> Option<i32> {
        match crate::report::innermost(err).0 {
            EvalAltResult::ErrorTerminated(v, _) => v.read_lock::<ExitRequest>().map(|r| r.0),
            EvalAltResult::Exit(v, _) => Some(exit_code(v)),
            _ => None,
        }
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
        crate::output::stderr_line(&v.to_string());
        1
    }
}

/// Turns the outcome of running script code into an exit code, printing the report of an
/// uncaught error on stderr. `who` names a child process in the report.
pub fn outcome(result: Result<Dynamic, Box<EvalAltResult>>, who: Option<(&str, i32)>) -> i32 {
    match result {
        Ok(_) => 0,
        Err(e) => match ExitRequest::code_of(&e) {
            Some(code) => code,
            None => {
                report_error(&e, who);
                1
            }
        },
    }
}

/// Prints the report of an uncaught error on stderr, quoting this process's script.
pub fn report_error(err: &EvalAltResult, who: Option<(&str, i32)>) {
    let script = state::with(|s| s.script.clone());
    let source = match &script {
        Script::Source { name, text } => Some(report::Source { name, text }),
        Script::Repl { .. } => None,
    };
    let text = report::format(err, source, who);
    let _ = crate::transport::stream::write_all(crate::sys::borrow_fd(2), text.as_bytes());
}

/// Runs a main script (`__name__ == "__main__"`) to the end: reports an uncaught error,
/// then terminates daemon children and joins the others. Returns the exit code.
pub fn run_main(mut engine: Engine, name: &str, text: String) -> i32 {
    let script = Script::Source { name: name.to_string(), text };
    state::with(|s| s.script = script.clone());
    set_names(&mut engine, "__main__");
    let result = compile_ast(&engine, &script).and_then(|ast| {
        crate::wire::set_program(&ast);
        engine.run_ast_with_scope(&mut Scope::new(), &ast)
    });
    let code = outcome(result.map(|_| Dynamic::UNIT), None);
    process::at_exit();
    code
}
