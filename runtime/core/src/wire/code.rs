//! The functions a decoded function pointer refers to.
//!
//! A named function crosses as its name and is looked up when it is called, as any
//! `Fn("name")` is. A closure (`anon$<hash>`) has no name a script could write, so the
//! decoder takes its definition from the program this process runs: the script it was
//! started with, or the entries typed at the REPL so far. [`set_program`] and
//! [`add_program`] record those functions as the process compiles them.

use super::serr;
use crate::error::MpResult;
use rhai::{FnPtr, AST};
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    /// The closures of this process's program, by name.
    static CLOSURES: RefCell<HashMap<String, FnPtr>> = RefCell::new(HashMap::new());
}

/// Records the closures of the program this process runs (replacing any recorded before).
pub fn set_program(ast: &AST) {
    CLOSURES.with(|c| c.borrow_mut().clear());
    add_program(ast);
}

/// Adds the closures of more code (a REPL entry) to this process's program.
pub fn add_program(ast: &AST) {
    CLOSURES.with(|c| {
        let mut c = c.borrow_mut();
        for f in ast.iter_fn_def().filter(|f| f.name.starts_with("anon$")) {
            c.insert(f.name.to_string(), FnPtr::from(f.clone()));
        }
    });
}

/// The function pointer a received name stands for.
pub(crate) fn resolve(name: &str) -> MpResult<FnPtr> {
    if name.starts_with("anon$") {
        return CLOSURES.with(|c| c.borrow().get(name).cloned()).ok_or_else(|| {
            serr(format!(
                "closure '{name}' is not defined in this process (was the script changed after the parent started?)"
            ))
        });
    }
    FnPtr::new(name).map_err(|_| serr(format!("'{name}' is not a valid function name")))
}
