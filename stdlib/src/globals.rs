//! `globals()` (see the reference, "Globals", and the contract's "Per-process globals"): a
//! map-like handle on this process's own globals, for Python's "an initializer sets a module
//! global that every task reads" (Rhai functions cannot see the script's variables).
//!
//! The store is one [`rhai::Map`] per process (a thread-local of the thread that runs
//! scripts: Rhai values are not `Send`). Each process has its own without doing anything: a
//! fork child (a fork start, a fork pool worker, a forkserver's child) gets a copy of its
//! parent's memory, so of the store as it was at the fork; a spawn child is a fresh program,
//! so it starts empty (then runs the script's top level, as Python re-imports the module).
//! A pool worker runs its initializer and then its tasks in one process, so the tasks see
//! what the initializer wrote; the REPL is one process, so entries see earlier ones'.
//!
//! Syntax: Rhai assigns only to a chain that starts at a variable, so `globals().base = 10`
//! is a syntax error ("Expression cannot be assigned to"; the report adds a hint). Write
//! `let g = globals(); g.base = 10;` (in any function: the handle is the same everywhere),
//! or `globals().set("base", 10)`. Reading needs no variable: `globals().base`,
//! `globals()["base"]`, `"base" in globals()`, `globals().get("base", 0)`.
//!
//! Crossing a process boundary (an argument, a captured value): the handle goes as a copy
//! of the store as a plain object map, as Python pickles a dict (`globals()` passed to a
//! child is the parent's dict, copied); the child's own `globals()` is untouched. A fork
//! child's `Process` arguments are inherited, not sent: there the handle stays a handle,
//! on the child's own globals (a copy of the parent's at the fork), as in Python.

use rhai::plugin::*;
use rhai::{Array, Dynamic, Map, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::MpResult;
use rhai_mp_core::wire::{HandleCodec, Reader, Writer};
use std::any::TypeId;
use std::cell::{Cell, RefCell};

thread_local! {
    /// This process's globals.
    static STORE: RefCell<Map> = const { RefCell::new(Map::new()) };
}

/// The handle `globals()` returns; every copy refers to this process's one store.
#[derive(Debug, Clone, Copy, Default)]
pub struct Globals;

/// A copy of this process's globals (as a plain map).
pub fn snapshot() -> Map {
    STORE.with(|s| s.borrow().clone())
}

/// Sets `key` in this process's globals; returns the value it replaces.
pub fn set(key: &str, value: Dynamic) -> Option<Dynamic> {
    STORE.with(|s| s.borrow_mut().insert(key.into(), value))
}

/// The value of `key` in this process's globals (a copy).
pub fn get(key: &str) -> Option<Dynamic> {
    STORE.with(|s| s.borrow().get(key).cloned())
}

fn remove_key(key: &str) -> Option<Dynamic> {
    STORE.with(|s| s.borrow_mut().remove(key))
}

/// The key as a string, or `TypeError` (a Rhai map's keys are strings).
fn key_of(key: &Dynamic, what: &str) -> Result<String, Box<EvalAltResult>> {
    key.read_lock::<rhai::ImmutableString>()
        .map(|s| s.to_string())
        .or_else(|| key.as_char().ok().map(String::from))
        .ok_or_else(|| mp_err!(TypeError, "{what}: a key of globals() is a string, not {}", key.type_name()).into())
}

fn key_error(key: &str) -> Box<EvalAltResult> {
    mp_err!(KeyError, "{key:?} is not in globals()").with("key", Dynamic::from(key.to_string())).into()
}

/// The codec of the handle: it crosses as a copy of the store, decoded as a plain map.
struct GlobalsCodec;

impl HandleCodec for GlobalsCodec {
    fn kind(&self) -> &'static str {
        "Globals"
    }
    fn type_id(&self) -> TypeId {
        TypeId::of::<Globals>()
    }
    fn encode(&self, _value: &Dynamic, w: &mut Writer) -> MpResult<()> {
        thread_local! {
            /// Set while the store is being encoded: a handle met then is in the store.
            static ENCODING: Cell<bool> = const { Cell::new(false) };
        }
        if ENCODING.with(|e| e.replace(true)) {
            return Err(mp_err!(
                SerializationError,
                "globals() holds a globals() handle (a cycle): use to_map() to send a copy of one"
            ));
        }
        let sent = w.value(&Dynamic::from_map(snapshot()), "globals()");
        ENCODING.with(|e| e.set(false));
        sent
    }
    fn decode(&self, r: &mut Reader) -> MpResult<Dynamic> {
        r.value()
    }
}

/// Registers the handle's codec (once per process, from the registry).
fn register_codec() {
    rhai_mp_core::wire::register_codec(GlobalsCodec);
}

/// The Rhai bindings: `globals()` and the methods of its handle.
#[export_module]
pub mod globals_functions {
    use super::*;

    /// This process's globals: a map-like handle (keys are strings).
    pub type Globals = super::Globals;

    /// This process's own globals, a map-like handle that every function sees: what an
    /// initializer sets (`let g = globals(); g.base = b;`) each task reads as
    /// `globals().base`. A spawn child's globals start empty (its run of the script's top
    /// level may set some, as Python re-imports the module), a fork child's are a copy of its
    /// parent's at the fork; they never cross to another process by themselves (passed as an
    /// argument, the handle arrives as a copy: a plain object map; a fork child's `Process`
    /// arguments are inherited, so there it is the child's own `globals()`). Rhai cannot
    /// assign to `globals().base`: assign through a variable, or use `set`.
    ///
    /// ```rhai
    /// fn init(b) { let g = globals(); g.base = b; }
    /// fn task(x) { globals().base + x }
    /// if __name__ == "__main__" {
    ///     let p = Pool(2, init, [10]);
    ///     print(p.map(task, [1, 2]));   // [11, 12]
    /// }
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(name = "globals")]
    pub fn globals() -> Globals {
        super::Globals
    }

    /// The value of global `key`; also `g.key` (`globals().base`).
    ///
    /// ```rhai
    /// globals().set("base", 10);
    /// print(globals()["base"]);   // 10
    /// print(globals().base);      // 10
    /// ```
    ///
    /// Throws when: there is no such key (`KeyError`, naming it, with field `key`); the key
    /// is not a string (`TypeError`).
    #[rhai_fn(global, index_get, pure, return_raw)]
    pub fn get_item(_g: &mut Globals, key: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        let key = key_of(&key, "globals()[key]")?;
        super::get(&key).ok_or_else(|| key_error(&key))
    }

    /// Sets global `key` of this process; also `g.key = value` (`g` a variable: `let g =
    /// globals();`, as Rhai assigns only through variables).
    ///
    /// ```rhai
    /// let g = globals();
    /// g["base"] = 1;
    /// g.base += 1;
    /// ```
    ///
    /// Throws when: the key is not a string (`TypeError`).
    #[rhai_fn(global, index_set, pure, return_raw)]
    pub fn set_item(_g: &mut Globals, key: Dynamic, value: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let key = key_of(&key, "globals()[key] = value")?;
        // The old value is dropped after the store is released.
        drop(super::set(&key, value));
        Ok(())
    }

    /// Sets global `key` to `value`: the one-statement form of `g.key = value` (Rhai
    /// cannot assign to `globals().key`, a chain that does not start at a variable).
    ///
    /// ```rhai
    /// fn init(b) { globals().set("base", b) }
    /// ```
    ///
    /// Throws when: the key is not a string (`TypeError`).
    #[rhai_fn(global, name = "set", pure, return_raw)]
    pub fn set_key(_g: &mut Globals, key: Dynamic, value: Dynamic) -> Result<(), Box<EvalAltResult>> {
        set_item(_g, key, value)
    }

    /// Sets every key of `map` as a global, as Python's `dict.update`.
    ///
    /// ```rhai
    /// globals().update(#{base: 10, scale: 2});
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, pure)]
    pub fn update(_g: &mut Globals, map: Map) {
        let old: Vec<Option<Dynamic>> = map.into_iter().map(|(k, v)| super::set(&k, v)).collect();
        drop(old);
    }

    /// Whether a global `key` exists; also `key in globals()`.
    ///
    /// ```rhai
    /// if "base" in globals() { print(globals().base) }
    /// ```
    ///
    /// Throws when: never (a key that is not a string is never in it).
    #[rhai_fn(global, pure)]
    pub fn contains(_g: &mut Globals, key: Dynamic) -> bool {
        key_of(&key, "").is_ok_and(|k| STORE.with(|s| s.borrow().contains_key(k.as_str())))
    }

    /// The value of global `key`, or `()` when there is none.
    ///
    /// ```rhai
    /// let b = globals().get("base");
    /// ```
    ///
    /// Throws when: the key is not a string (`TypeError`).
    #[rhai_fn(global, name = "get", pure, return_raw)]
    pub fn get_or_unit(_g: &mut Globals, key: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(super::get(&key_of(&key, "get")?).unwrap_or(Dynamic::UNIT))
    }

    /// The value of global `key`, or `default` when there is none.
    ///
    /// ```rhai
    /// let b = globals().get("base", 0);
    /// ```
    ///
    /// Throws when: the key is not a string (`TypeError`).
    #[rhai_fn(global, name = "get", pure, return_raw)]
    pub fn get_or(_g: &mut Globals, key: Dynamic, default: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(super::get(&key_of(&key, "get")?).unwrap_or(default))
    }

    /// The names of the globals, sorted (Rhai maps keep keys in order).
    ///
    /// ```rhai
    /// for k in globals().keys() { print(k) }
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, pure)]
    pub fn keys(_g: &mut Globals) -> Array {
        STORE.with(|s| s.borrow().keys().map(|k| Dynamic::from(k.to_string())).collect())
    }

    /// The values of the globals, in the order of `keys()`.
    ///
    /// ```rhai
    /// print(globals().values());
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, pure)]
    pub fn values(_g: &mut Globals) -> Array {
        STORE.with(|s| s.borrow().values().cloned().collect())
    }

    /// The number of globals.
    ///
    /// ```rhai
    /// print(globals().len());
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, pure)]
    pub fn len(_g: &mut Globals) -> INT {
        STORE.with(|s| s.borrow().len()) as INT
    }

    /// Removes global `key`; returns its value, or `()` when there was none (as a Rhai
    /// map's `remove`).
    ///
    /// ```rhai
    /// globals().remove("base");
    /// ```
    ///
    /// Throws when: the key is not a string (`TypeError`).
    #[rhai_fn(global, pure, return_raw)]
    pub fn remove(_g: &mut Globals, key: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(remove_key(&key_of(&key, "remove")?).unwrap_or(Dynamic::UNIT))
    }

    /// Removes global `key` and returns its value, as Python's `dict.pop(key)`.
    ///
    /// ```rhai
    /// let b = globals().pop("base");
    /// ```
    ///
    /// Throws when: there is no such key (`KeyError`, naming it); the key is not a string
    /// (`TypeError`).
    #[rhai_fn(global, name = "pop", pure, return_raw)]
    pub fn pop(_g: &mut Globals, key: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        let key = key_of(&key, "pop")?;
        remove_key(&key).ok_or_else(|| key_error(&key))
    }

    /// Removes global `key` and returns its value, or `default` when there was none.
    ///
    /// ```rhai
    /// let b = globals().pop("base", 0);
    /// ```
    ///
    /// Throws when: the key is not a string (`TypeError`).
    #[rhai_fn(global, name = "pop", pure, return_raw)]
    pub fn pop_or(_g: &mut Globals, key: Dynamic, default: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(remove_key(&key_of(&key, "pop")?).unwrap_or(default))
    }

    /// Removes every global of this process.
    ///
    /// ```rhai
    /// globals().clear();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, pure)]
    pub fn clear(_g: &mut Globals) {
        let old = STORE.with(|s| std::mem::take(&mut *s.borrow_mut()));
        drop(old);
    }

    /// A copy of the globals as a plain object map (later changes to either are not seen
    /// by the other), as Python's `dict(globals())`.
    ///
    /// ```rhai
    /// let m = globals().to_map();
    /// print(m.keys());
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, pure)]
    pub fn to_map(_g: &mut Globals) -> Map {
        snapshot()
    }

    /// The globals as an object map literal (`#{"base": 10}`).
    ///
    /// ```rhai
    /// print(globals());
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(_g: &mut Globals) -> String {
        format!("{:?}", Dynamic::from_map(snapshot()))
    }
}

/// globals' entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::{section, HandleType};
    crate::registry::Primitive {
        name: "globals",
        group: "Globals",
        sections: &[section("", &[("Globals", "g")], &["globals"], &["globals("])],
        functions,
        module: None,
        handles: &[HandleType { kind: "Globals", register: register_codec }],
        machinery: None,
        mirrors: &[],
        managed: &[],
    }
};

/// Registers globals' Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "globals", globals_functions);
}

#[cfg(test)]
mod tests {
    use super::*;
    fn engine() -> rhai::Engine {
        let mut e = rhai::Engine::new();
        let mut lib = rhai::Module::new();
        functions(&mut lib);
        e.register_global_module(lib.into());
        e
    }

    #[test]
    fn globals_is_a_map_every_function_sees() {
        let e = engine();
        let script = r#"
            fn init(b) { let g = globals(); g.base = b; g["other"] = 2; g.base += 1 }
            fn read(x) { globals().base + x }
            init(10);
            let g = globals();
            [read(1), g["other"], "base" in globals(), "nope" in globals(), 3 in g,
             globals().get("nope", 7), globals().get("nope"), g.len(), g.keys()]
        "#;
        let r: Array = e.eval(script).unwrap();
        let shown: Vec<String> = r.iter().map(|v| v.to_string()).collect();
        assert_eq!(shown, ["12", "2", "true", "false", "false", "7", "", "2", "[\"base\", \"other\"]"]);
        let err = e.eval::<Dynamic>(r#"globals()["missing"]"#).unwrap_err();
        assert!(err.to_string().contains("KeyError") || format!("{err:?}").contains("KeyError"), "{err:?}");
        let err = e.eval::<Dynamic>("globals().missing").unwrap_err();
        assert!(format!("{err:?}").contains("missing"), "{err:?}");
        assert_eq!(e.eval::<INT>(r#"globals().pop("other")"#).unwrap(), 2);
        assert_eq!(e.eval::<INT>(r#"globals().pop("other", 5)"#).unwrap(), 5);
        e.run("globals().clear()").unwrap();
        assert_eq!(e.eval::<INT>("globals().len()").unwrap(), 0);
    }
}
