//! The interactive REPL: line editing and history (rustyline), multi-line input while
//! braces, brackets or parentheses are open, `:help` (and `:help TOPIC`, see `crate::help`),
//! `:quit`, and non-unit results printed.
//!
//! The REPL is a `__main__`: every entry that defines functions or closures is remembered,
//! and a spawn or forkserver child compiles those entries (functions only, no statement runs
//! again), so processes started here can call anything defined so far.

use crate::Runtime;
use rhai::{Dynamic, AST};
use rhai_mp_core::base::error::ExitRequest;
use rhai_mp_core::run::interp::Ending;
use rhai_mp_core::tree::state::Script;
use rustyline::error::ReadlineError;

const HELP: &str = "rhai-mp REPL — Rhai with Python's multiprocessing.
  :help          this text
  :help TOPIC    the functions of a group, a type or a name (:help Pool, :help Queue, :help get)
  :quit          leave (also Ctrl-D)
Every function, with its errors and an example script, is in the script reference:
stdlib/REFERENCE.md in the rhai-mp source tree.
Input continues on the next line while braces, brackets or parentheses are open.
Functions and closures defined here work in processes started here (any start method):
  fn square(x) { print(x * x) }
  let p = Process(square, [7]); p.start(); p.join();";

/// Whether every `{`, `[` and `(` of `code` is closed (outside strings and comments).
pub(crate) fn balanced(code: &str) -> bool {
    let mut depth: i64 = 0;
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '`' | '\'' => {
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
            }
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' => depth -= 1,
            _ => {}
        }
    }
    depth <= 0
}

fn history_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("RHAI_MP_HISTORY") {
        return Some(p.into());
    }
    std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".rhai_mp_history"))
}

/// Runs the REPL until `:quit` or end of input; returns the exit code.
pub(crate) fn run(runtime: &Runtime) -> i32 {
    let mut engine = runtime.engine();
    rhai_mp_core::tree::state::with(|s| s.script = Script::Session);
    rhai_mp_core::run::interp::set_names(&mut engine, "__main__");
    // Ctrl-C stops the statement that runs (see rhai_mp_core::base::interrupt), not the session.
    rhai_mp_core::run::interp::watch_signals(&mut engine);
    let mut scope = rhai::Scope::new();
    let mut program = AST::empty();
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("rhai-mp: cannot start the REPL: {e}");
            return 1;
        }
    };
    // rustyline catches SIGINT itself while an editor exists (to redraw on a terminal): give
    // it back to rhai-mp, so that Ctrl-C while a statement runs stops the statement. While a
    // line is read, the terminal is raw and Ctrl-C arrives as a key (`Interrupted`).
    rhai_mp_core::base::interrupt::install();
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        println!("rhai-mp {} — :help for help, :quit to leave", env!("CARGO_PKG_VERSION"));
    }
    let mut buffer = String::new();
    let mut code = Ending::Code(0);
    // Whether the last key was Ctrl-C at an empty prompt (a second one leaves).
    let mut ctrl_c = false;
    loop {
        let prompt = if buffer.is_empty() { ">> " } else { ".. " };
        let read = editor.readline(prompt);
        let was_ctrl_c = std::mem::replace(&mut ctrl_c, false);
        let line = match read {
            Ok(line) => line,
            // Ctrl-C drops what was typed; at an empty prompt it says how to leave, and a
            // second one leaves (as Node's and IPython's REPLs do).
            Err(ReadlineError::Interrupted) if buffer.is_empty() && was_ctrl_c => break,
            Err(ReadlineError::Interrupted) => {
                if buffer.is_empty() {
                    println!("(To leave, press Ctrl-C again, Ctrl-D, or type :quit)");
                    ctrl_c = true;
                }
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("rhai-mp: {e}");
                code = Ending::Code(1);
                break;
            }
        };
        if buffer.is_empty() {
            match line.trim() {
                "" => continue,
                ":quit" | ":q" | ":exit" => break,
                ":help" | ":h" => {
                    println!("{HELP}");
                    continue;
                }
                l if l.starts_with(":help ") || l.starts_with(":h ") => {
                    println!("{}", crate::help::topic(l.split_once(' ').map_or("", |(_, t)| t)));
                    continue;
                }
                _ => {}
            }
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !balanced(&buffer) {
            continue;
        }
        let ast = match rhai_mp_core::wire::compile_unit(&engine, &scope, &buffer) {
            Ok(ast) => ast,
            // `let x =` then Enter: the statement goes on on the next line (an empty line
            // ends it, with the error).
            Err(e) if incomplete(&e) && !line.trim().is_empty() => continue,
            Err(e) => {
                let input = std::mem::take(&mut buffer);
                let _ = editor.add_history_entry(input.trim_end());
                rhai_mp_core::run::interp::ending_in(Err(e), None, Some(&input));
                continue;
            }
        };
        let input = std::mem::take(&mut buffer);
        let _ = editor.add_history_entry(input.trim_end());
        rhai_mp_core::wire::add_program(&ast);
        if ast.iter_functions().next().is_some() {
            rhai_mp_core::wire::add_unit(&input, &ast);
        }
        program = program.merge(&ast);
        // A Ctrl-C that came while the line was typed is not for this statement.
        let _ = rhai_mp_core::base::interrupt::take();
        let result = rhai_mp_core::base::vm::eval(&engine, &mut scope, &program);
        program.clear_statements();
        match result {
            Ok(v) if v.is_unit() => {}
            Ok(v) => println!("{}", show(&engine, v)),
            Err(e) => match rhai_mp_core::base::error::ExitRequest::of(&e) {
                Some(ExitRequest::Code(c)) => {
                    code = Ending::Code(c);
                    break;
                }
                Some(ExitRequest::Signal(sig)) if sig != libc::SIGINT => {
                    code = Ending::Signal(sig);
                    break;
                }
                // Ctrl-C or an error: reported (quoting the statement), and the session goes on.
                _ => {
                    rhai_mp_core::run::interp::ending_in(Err(e), None, Some(&input));
                }
            },
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    rhai_mp_core::run::interp::finish_main(code)
}

/// Whether a compile error only says the input stopped too early.
fn incomplete(e: &rhai::EvalAltResult) -> bool {
    matches!(e, rhai::EvalAltResult::ErrorParsing(rhai::ParseErrorType::UnexpectedEOF, _))
}

/// A value as the REPL shows it: what `to_debug` gives (`<Pool state=RUN pool_size=2>`,
/// `"text"`, `[1, 2]`).
fn show(engine: &rhai::Engine, v: Dynamic) -> String {
    let mut scope = rhai::Scope::new();
    scope.push("__repl_value", v.clone());
    engine.eval_with_scope::<String>(&mut scope, "to_debug(__repl_value)").unwrap_or_else(|_| format!("{v:?}"))
}

#[cfg(test)]
mod tests {
    use super::balanced;

    #[test]
    fn balance_ignores_strings_and_comments() {
        assert!(balanced("fn f(x) { x }"));
        assert!(!balanced("fn f(x) {"));
        assert!(balanced("let s = \"{\"; // {\n"));
        assert!(!balanced("let a = [1,\n"));
        assert!(balanced("/* { */ let c = '{';"));
    }
}
