//! The script reference generator: `stdlib/REFERENCE.md` is made here from the doc comments
//! of the functions a rhai-mp engine registers (only with the `reference` feature, which
//! turns on rhai's `metadata`).
//!
//! Every script-visible function of the stdlib has a `///` comment whose first paragraph is
//! its meaning and which has a `Throws when:` paragraph. [`entries`] reads them from the
//! engine's metadata — everything [`Runtime::engine`](crate::Runtime::engine) registers,
//! minus Rhai's standard library, rhai-fs and rhai-rand, and minus internal functions (names
//! starting with `__`, and anything taking or returning `PoolSlots` or `ManagerSocket`) —
//! places each in a group of the reference, and [`markdown`] renders them, with a link to an
//! example script that uses each one where there is one.
//!
//! ```no_run
//! let entries = rhai_mp::reference::entries(&rhai_mp::Runtime::new());
//! let text = rhai_mp::reference::markdown(&entries, "scripts".as_ref());
//! ```
//!
//! Regenerate the file with `UPDATE_REFERENCE=1 cargo test --release --test integration
//! reference` (the test `tests/reference.rs` fails while the file is out of date).

mod examples;
mod groups;
mod metadata;
mod render;

pub use groups::{groups, Group, Section};
pub use render::markdown;

/// How a script calls an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// `name(a, b)`.
    Function,
    /// `module::name(a, b)`, a function of a static module (`os`).
    Module(String),
    /// `recv.name(a, b)`, on a value of the receiver type.
    Method,
    /// `recv.name`.
    Getter,
    /// `recv.name = value`.
    Setter,
    /// `recv[index]`.
    IndexGet,
    /// `recv[index] = value`.
    IndexSet,
    /// `recv OP other`.
    Operator,
}

/// One way of calling an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The Rhai name: `get`, `value` for a property, `[]` for an indexer, `==`.
    pub name: String,
    /// How it is called.
    pub form: Form,
}

/// One script-visible function of the reference (with all the names it is registered
/// under: `to_string` and `to_debug`, the method `a.len()` and the property `a.len`).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The ways it is called, the first one being the main one.
    pub calls: Vec<Call>,
    /// The receiver's type for methods, properties, indexers and operators (`Queue`).
    pub receiver: Option<String>,
    /// The parameter names after the receiver.
    pub params: Vec<String>,
    /// The first paragraph of the doc comment, on one line.
    pub meaning: String,
    /// The text of the doc comment's `Throws when:` paragraph, on one line.
    pub throws: String,
    /// Where it belongs: indexes into [`groups()`] and the group's sections (`None`: no group
    /// takes it, which the reference test reports).
    pub place: Option<(usize, usize)>,
}

impl Entry {
    /// The Rhai names it is called by.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.calls.iter().map(|c| c.name.as_str())
    }

    /// Its signatures in Rhai form (`q.get(block, timeout)`, `p.name`, `Queue(maxsize)`,
    /// `os::kill(pid)`), one per call.
    pub fn signatures(&self) -> Vec<String> {
        self.calls.iter().map(|c| render::signature(self, c)).collect()
    }

    /// The number of arguments a call passes (not counting the receiver).
    pub fn arity(&self) -> usize {
        self.params.len()
    }
}

/// The reference entries of everything `runtime`'s engines register beyond Rhai's standard
/// library, rhai-fs and rhai-rand, sorted by group, then as they are listed.
pub fn entries(runtime: &crate::Runtime) -> Vec<Entry> {
    let mut entries = metadata::entries(&runtime.engine());
    for e in &mut entries {
        e.place = groups::place(e);
    }
    entries.sort_by_key(|e| {
        let main = &e.calls[0];
        // The parameters' names last: overloads of one arity (`Process(target, args)`,
        // `Process(target, opts)`) would otherwise come in the order of Rhai's function
        // tables, which changes with rhai's features.
        (e.place.unwrap_or((usize::MAX, 0)), form_rank(&main.form), main.name.clone(), e.arity(), e.params.clone())
    });
    entries
}

/// Entries of one section list constructors and functions first, then properties and
/// indexers, then methods, then operators.
fn form_rank(form: &Form) -> u8 {
    match form {
        Form::Function | Form::Module(_) => 0,
        Form::Getter | Form::Setter => 1,
        Form::IndexGet | Form::IndexSet => 2,
        Form::Method => 3,
        Form::Operator => 4,
    }
}

/// The entries no group takes (a new primitive must be placed in the registry, `rhai_mp_stdlib::registry`).
pub fn unplaced(entries: &[Entry]) -> Vec<&Entry> {
    entries.iter().filter(|e| e.place.is_none()).collect()
}

/// The entries whose doc comment lacks a meaning or a `Throws when:` text.
pub fn undocumented(entries: &[Entry]) -> Vec<&Entry> {
    entries.iter().filter(|e| e.meaning.trim().is_empty() || e.throws.trim().is_empty()).collect()
}
