//! The code a function pointer needs, and how it travels.
//!
//! A script run from a file is compiled by every process of its tree (a spawn child re-runs
//! it, a fork child is a copy), so its functions and closures cross by name: a named
//! function is looked up when it is called, as any `Fn("name")` is, and a closure
//! (`anon$<hash>`, the same name in every process) is found among the functions of the
//! program this process runs ([`set_program`]).
//!
//! Code typed at the REPL or evaluated by a host is a *session*: a list of units (each a
//! piece of source that defines functions, [`add_unit`]) that no child has seen. When a
//! process whose session has units sends a function pointer, the pointer carries the whole
//! list — each unit's content hash, and its text the first time the message names it — so
//! the receiver compiles what it lacks (once: units are cached by hash) and runs the
//! function as the sender sees it at the moment of sending (later units redefine earlier
//! ones, as at the REPL). There the pointer becomes a native wrapper (Rhai's function
//! pointers cannot carry their definitions) that calls the function with the units' functions
//! in scope, and that crosses again with the same units.

use super::serr;
use crate::base::error::MpResult;
use rhai::{Dynamic, Engine, FnPtr, NativeCallContext, Position, AST};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// A piece of session source: its content hash and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    /// FNV-1a of the text.
    pub(crate) hash: u64,
    /// The source.
    pub(crate) text: Rc<str>,
}

/// The units of a session, compiled into one library of functions (later units win).
pub(crate) struct Loaded {
    /// The units, in order.
    pub(crate) units: Rc<[Unit]>,
    /// The functions as libraries to push (see [`crate::base::vm::library`]).
    lib: Vec<rhai::Shared<rhai::Module>>,
    /// The functions, for closures (which have no callable name).
    ast: AST,
}

/// The wrappers' names start with this (a name no script writes).
const WRAPPER: &str = "__rhai_mp_sent_";

thread_local! {
    /// The closures of this process's program, by name.
    static CLOSURES: RefCell<HashMap<String, FnPtr>> = RefCell::new(HashMap::new());
    /// This process's session: units recorded here or received.
    static SESSION: RefCell<Vec<Unit>> = const { RefCell::new(Vec::new()) };
    /// The session as a shared list, rebuilt when a unit is added.
    static SESSION_LIST: RefCell<Option<Rc<[Unit]>>> = const { RefCell::new(None) };
    /// The unit that last defined each function of this process's session (for reports).
    static DEFINED_IN: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
    /// Units compiled here, by hash.
    static COMPILED: RefCell<HashMap<u64, AST>> = RefCell::new(HashMap::new());
    /// Unit lists compiled into libraries, by the hash of the list.
    static LOADED: RefCell<HashMap<u64, Rc<Loaded>>> = RefCell::new(HashMap::new());
    /// Wrappers made here: wrapper name → (function name, its code).
    static WRAPPERS: RefCell<HashMap<String, (String, Rc<Loaded>)>> = RefCell::new(HashMap::new());
    /// Wrappers by (function name, list hash), so that each is made once.
    static WRAPPER_FNS: RefCell<HashMap<(String, u64), FnPtr>> = RefCell::new(HashMap::new());
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// The hash of a list of units.
fn list_hash(units: &[Unit]) -> u64 {
    units.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, u| (h ^ u.hash).wrapping_mul(0x0100_0000_01b3).rotate_left(7))
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

/// The source name of a unit's functions (errors in them name it, see `report.rs`).
pub fn unit_source(hash: u64) -> String {
    format!("<input {hash:016x}>")
}

/// The text of the unit a source name names, if this process knows it.
pub fn unit_text(source: &str) -> Option<Rc<str>> {
    let hash = u64::from_str_radix(source.strip_prefix("<input ")?.strip_suffix('>')?, 16).ok()?;
    SESSION.with(|s| s.borrow().iter().find(|u| u.hash == hash).map(|u| u.text.clone()))
}

/// The source name of the session unit that defines function `name` here, if one does.
pub fn unit_of_function(name: &str) -> Option<String> {
    DEFINED_IN.with(|d| d.borrow().get(name).map(|&h| unit_source(h)))
}

/// Compiles a unit of session source (a REPL entry) in `scope`, naming it so that errors
/// in its functions can quote it, here and in the processes it is sent to.
pub fn compile_unit(engine: &Engine, scope: &rhai::Scope, text: &str) -> Result<AST, Box<rhai::EvalAltResult>> {
    let mut ast = engine.compile_with_scope(scope, text)?;
    ast.set_source(unit_source(fnv(text.as_bytes())));
    Ok(ast)
}

/// Records a unit of session source that defines functions (a REPL entry, code a host
/// evaluates; `ast` is what it compiled to): from now on every function pointer this
/// process sends carries the session.
pub fn add_unit(text: &str, ast: &AST) {
    let unit = Unit { hash: fnv(text.as_bytes()), text: text.into() };
    DEFINED_IN.with(|d| {
        let mut d = d.borrow_mut();
        for f in ast.iter_fn_def() {
            d.insert(f.name.to_string(), unit.hash);
        }
    });
    SESSION.with(|s| {
        let mut s = s.borrow_mut();
        if s.last() != Some(&unit) {
            s.push(unit);
            SESSION_LIST.with(|l| *l.borrow_mut() = None);
        }
    });
}

/// The session's units (`None` when there are none: code crosses by name).
pub(crate) fn session() -> Option<Rc<[Unit]>> {
    SESSION_LIST.with(|l| {
        let mut l = l.borrow_mut();
        if l.is_none() {
            let units = SESSION.with(|s| s.borrow().clone());
            if units.is_empty() {
                return None;
            }
            *l = Some(units.into());
        }
        l.clone()
    })
}

/// The function pointer a received name stands for (no code came with it).
pub(crate) fn resolve(name: &str) -> MpResult<FnPtr> {
    if name.starts_with("anon$") {
        return CLOSURES.with(|c| c.borrow().get(name).cloned()).ok_or_else(|| {
            serr(format!(
                "closure '{name}' is not defined in this process (the script it was sent by is not the one this process runs)"
            ))
        });
    }
    FnPtr::new(name).map_err(|_| serr(format!("'{name}' is not a valid function name")))
}

/// What a wrapper stands for, if `name` is one: the function's name and its code.
pub(crate) fn wrapped(name: &str) -> Option<(String, Rc<[Unit]>)> {
    if !name.starts_with(WRAPPER) {
        return None;
    }
    WRAPPERS.with(|w| w.borrow().get(name).map(|(f, l)| (f.clone(), l.units.clone())))
}

/// Compiles (or finds) the library of a unit list. Units whose text did not come are taken
/// from the cache; one that is in neither is an error.
pub(crate) fn load(units: Vec<(u64, Option<String>)>) -> MpResult<Rc<Loaded>> {
    let mut list = Vec::with_capacity(units.len());
    for (hash, text) in units {
        let text: Rc<str> = match text {
            Some(t) => t.into(),
            None => SESSION
                .with(|s| s.borrow().iter().find(|u| u.hash == hash).map(|u| u.text.clone()))
                .or_else(|| {
                    LOADED.with(|l| {
                        l.borrow()
                            .values()
                            .flat_map(|x| x.units.iter())
                            .find(|u| u.hash == hash)
                            .map(|u| u.text.clone())
                    })
                })
                .ok_or_else(|| serr(format!("malformed message: code unit {hash:x} was named but not sent")))?,
        };
        list.push(Unit { hash, text });
    }
    let key = list_hash(&list);
    if let Some(l) = LOADED.with(|l| l.borrow().get(&key).cloned()) {
        return Ok(l);
    }
    let mut ast = AST::empty();
    for unit in &list {
        ast = ast.merge(&compiled(unit)?);
    }
    let lib = crate::base::vm::library(&ast)
        .map_err(|e| serr(format!("code sent with a function does not compile here: {e}")))?;
    let loaded = Rc::new(Loaded { units: list.into(), lib, ast });
    remember(&loaded.units);
    LOADED.with(|l| l.borrow_mut().insert(key, loaded.clone()));
    Ok(loaded)
}

/// A received session becomes this process's too: what it sends on carries it.
fn remember(units: &[Unit]) {
    SESSION.with(|s| {
        let mut s = s.borrow_mut();
        let mut added = false;
        for u in units {
            if !s.contains(u) {
                s.push(u.clone());
                added = true;
            }
        }
        if added {
            SESSION_LIST.with(|l| *l.borrow_mut() = None);
        }
    });
}

/// A unit's functions, compiled once per process.
fn compiled(unit: &Unit) -> MpResult<AST> {
    if let Some(ast) = COMPILED.with(|c| c.borrow().get(&unit.hash).cloned()) {
        return Ok(ast);
    }
    thread_local! {
        static COMPILER: Engine = const { Engine::new_raw() };
    }
    let mut ast = COMPILER
        .with(|e| e.compile(&*unit.text))
        .map_err(|e| serr(format!("code sent with a function does not compile here: {e}")))?
        .clone_functions_only();
    ast.set_source(unit_source(unit.hash));
    COMPILED.with(|c| c.borrow_mut().insert(unit.hash, ast.clone()));
    Ok(ast)
}

/// The function pointer for `name` in `loaded`: a native wrapper that calls it with the
/// loaded functions in scope (made once per function and code).
pub(crate) fn wrap(name: &str, loaded: &Rc<Loaded>) -> MpResult<FnPtr> {
    let key = (name.to_string(), list_hash(&loaded.units));
    if let Some(f) = WRAPPER_FNS.with(|n| n.borrow().get(&key).cloned()) {
        return Ok(f);
    }
    let inner = if name.starts_with("anon$") {
        loaded.ast.iter_fn_def().find(|f| f.name == name).map(|f| FnPtr::from(f.clone())).ok_or_else(|| {
            serr(format!("closure '{name}' is not in the code sent with it (code from another session?)"))
        })?
    } else {
        FnPtr::new(name).map_err(|_| serr(format!("'{name}' is not a valid function name")))?
    };
    let wrapper = format!("{WRAPPER}{}", WRAPPERS.with(|w| w.borrow().len()));
    let lib = loaded.lib.clone();
    let target = name.to_string();
    #[allow(deprecated)] // FnPtr::from_fn is stable in practice, marked volatile by Rhai
    let f = FnPtr::from_fn(wrapper.clone(), move |ctx: NativeCallContext, args: &mut [&mut Dynamic]| {
        call_with(&ctx, &lib, &target, &inner, args)
    })
    .map_err(|e| serr(format!("cannot make a function pointer for '{name}': {e}")))?;
    WRAPPERS.with(|w| w.borrow_mut().insert(wrapper, (name.to_string(), loaded.clone())));
    WRAPPER_FNS.with(|n| n.borrow_mut().insert(key, f.clone()));
    Ok(f)
}

/// Calls `inner` (the function `name`) with `lib`'s functions in scope, from where the
/// wrapper was called (its global constants and the program's own functions stay visible;
/// the sent ones win over the program's, as the sender's view is the one that counts).
fn call_with(
    ctx: &NativeCallContext,
    lib: &[rhai::Shared<rhai::Module>],
    name: &str,
    inner: &FnPtr,
    args: &mut [&mut Dynamic],
) -> Result<Dynamic, Box<rhai::EvalAltResult>> {
    let mut global = ctx.global_runtime_state().clone();
    global.lib.extend(lib.iter().cloned());
    let pos = if ctx.call_position().is_none() { Position::NONE } else { ctx.call_position() };
    let ctx2: NativeCallContext = (ctx.engine(), name, None, &global, pos).into();
    let values: Vec<Dynamic> = args.iter_mut().map(|a| std::mem::take(&mut **a)).collect();
    inner.call_raw(&ctx2, None, values)
}

/// The units and their texts as they go into a message: the text only where `sent` has
/// not seen the unit yet.
pub(crate) fn outgoing(units: &[Unit], sent: &mut Vec<u64>) -> Vec<(u64, Option<String>)> {
    units
        .iter()
        .map(|u| {
            let text = (!sent.contains(&u.hash)).then(|| u.text.to_string());
            sent.push(u.hash);
            (u.hash, text)
        })
        .collect()
}
