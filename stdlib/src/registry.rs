//! The one list of the package's primitives ([`PRIMITIVES`]), as ripgrep keeps every flag
//! in one `defs.rs`: each primitive declares itself once, in its own file, as a
//! [`Primitive`] — its Rhai functions, the codecs that let its handles cross processes, its
//! native entry points, the globals a `get_context(..)` context mirrors, its manager twins
//! (`m.Queue()`), and where the reference documents it. The package (`lib.rs`), the context
//! mirrors (`context.rs`) and the script reference (the runtime's `reference` module) are
//! built from this list; a test fails when a primitive lacks a part.
//!
//! Adding a primitive is a new file that declares its `PRIMITIVE`, and one line here.

pub use crate::manager::Kind;
use rhai::Module;
use rhai_mp_core::wire::Handle;

/// A section of the script reference (a `###` heading; none when `title` is empty).
#[derive(Debug)]
pub struct Section {
    /// The heading (empty: the group's only section, without a heading of its own).
    pub title: &'static str,
    /// Receiver types whose methods, properties and indexers belong here, each with the
    /// variable name signatures use for it (`("Queue", "q")` gives `q.get()`).
    pub types: &'static [(&'static str, &'static str)],
    /// Functions (and methods of other types, such as a blob's `recv_bytes_into`) that
    /// belong here by name.
    pub names: &'static [&'static str],
    /// The static module whose functions belong here.
    pub module: Option<&'static str>,
    /// Calls that make a value of the types (`Queue(`, `.apply_async(`): an example script
    /// for a method must contain one of them.
    pub hints: &'static [&'static str],
}

/// A section that takes the methods of `types` and the functions `names`.
pub const fn section(
    title: &'static str,
    types: &'static [(&'static str, &'static str)],
    names: &'static [&'static str],
    hints: &'static [&'static str],
) -> Section {
    Section { title, types, names, module: None, hints }
}

/// The section of a static module's functions (`os::`).
pub const fn module_section(name: &'static str) -> Section {
    Section { title: "", types: &[], names: &[], module: Some(name), hints: &[] }
}

/// A handle type that crosses process boundaries: its kind on the wire and how its codec
/// is registered.
#[derive(Debug, Clone, Copy)]
pub struct HandleType {
    /// Its kind (`Handle::KIND`: `"Queue"`).
    pub kind: &'static str,
    /// Registers its codec.
    pub register: fn(),
}

/// The [`HandleType`] of `T`.
pub const fn handle<T: Handle>() -> HandleType {
    HandleType { kind: T::KIND, register: rhai_mp_core::wire::register_handle::<T> }
}

/// A global that a start-method context mirrors as a method (`ctx.Queue(maxsize)` is
/// `Queue(maxsize)`), with the numbers of arguments it takes.
#[derive(Debug, Clone, Copy)]
pub struct Mirror {
    /// The global's name.
    pub name: &'static str,
    /// The numbers of arguments of its forms.
    pub arities: &'static [usize],
}

/// `Mirror { name, arities }`.
pub const fn mirror(name: &'static str, arities: &'static [usize]) -> Mirror {
    Mirror { name, arities }
}

/// One primitive of the package (see the module doc).
#[derive(Debug)]
pub struct Primitive {
    /// Its name (the name of its file).
    pub name: &'static str,
    /// The reference group (a `##` heading) it is documented in; primitives next to each
    /// other in [`PRIMITIVES`] with the same group share it.
    pub group: &'static str,
    /// Its sections in that group.
    pub sections: &'static [Section],
    /// Registers its Rhai functions into the package's module.
    pub functions: fn(&mut Module),
    /// Its static module (`os::`), registered under its section's module name.
    pub module: Option<fn() -> Module>,
    /// Its handle types: what of it crosses a process boundary.
    pub handles: &'static [HandleType],
    /// Registers what else a process needs of it (native entry points, fork hooks); once
    /// per process.
    pub machinery: Option<fn()>,
    /// The globals of it that contexts mirror.
    pub mirrors: &'static [Mirror],
    /// The manager's twins of its constructors (`m.Queue()` of `Queue()`).
    pub managed: &'static [Kind],
}

/// Every primitive, in the order of the reference.
pub static PRIMITIVES: &[Primitive] = &[
    crate::process::PRIMITIVE,
    crate::context::PRIMITIVE,
    crate::connection::PRIMITIVE,
    crate::listener::PRIMITIVE,
    crate::queue::PRIMITIVE,
    crate::wait::PRIMITIVE,
    crate::lock::PRIMITIVE,
    crate::semaphore::PRIMITIVE,
    crate::event::PRIMITIVE,
    crate::condition::PRIMITIVE,
    crate::barrier::PRIMITIVE,
    crate::hold::PRIMITIVE,
    crate::value::PRIMITIVE,
    crate::array::PRIMITIVE,
    crate::shared_memory::PRIMITIVE,
    crate::pool::PRIMITIVE,
    crate::pool::EXECUTOR,
    crate::globals::PRIMITIVE,
    crate::manager::PRIMITIVE,
    crate::os::PRIMITIVE,
    crate::time::PRIMITIVE,
    crate::cluster::PRIMITIVE,
    crate::memory::PRIMITIVE,
];

/// Registers, once per process, what crosses process boundaries and the native entry
/// points of every primitive.
pub(crate) fn register_machinery() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for p in PRIMITIVES {
            for h in p.handles {
                (h.register)();
            }
            if let Some(m) = p.machinery {
                m();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The parts this crate can see; that each primitive registers the functions its
    /// mirrors, manager twins and sections name is checked against the registered functions
    /// themselves, by the reference test (`tests/reference.rs`).
    #[test]
    fn every_primitive_has_its_parts() {
        register_machinery();
        let mut kinds = BTreeSet::new();
        for p in PRIMITIVES {
            assert!(!p.group.is_empty() && !p.sections.is_empty(), "{}: no place in the reference", p.name);
            if p.module.is_some() {
                assert!(p.sections.iter().any(|s| s.module == Some(p.name)), "{}: its module has no section", p.name);
            }
            let types: Vec<&str> = p.sections.iter().flat_map(|s| s.types.iter().map(|(t, _)| *t)).collect();
            for h in p.handles {
                assert!(types.contains(&h.kind), "{}: its handle {} has no section of the reference", p.name, h.kind);
                assert!(kinds.insert(h.kind), "{}: handle {} declared twice", p.name, h.kind);
            }
        }
        // Every codec registered is one a primitive declares (no handle type without a
        // place), and every declared one is registered.
        let registered: BTreeSet<&str> = rhai_mp_core::wire::registered_kinds().into_iter().collect();
        assert_eq!(registered, kinds);
        // Every kind of object a manager makes is either data (dict, list …) or the twin of
        // exactly one primitive.
        for k in Kind::ALL {
            let twins = PRIMITIVES.iter().filter(|p| p.managed.contains(&k)).count();
            let data = matches!(k, Kind::Dict | Kind::List | Kind::Namespace);
            assert_eq!(twins, usize::from(!data), "manager kind {} has {twins} primitives", k.object());
        }
    }
}
