//! The groups and sections of the reference, as the stdlib's registry of primitives lists
//! them (each primitive names its group and its sections), and which entries each section
//! takes: methods by receiver type, functions by name, module functions by module. A
//! function no section takes fails the reference test.

use super::{Entry, Form};
pub use rhai_mp_stdlib::registry::Section;
use rhai_mp_stdlib::registry::PRIMITIVES;
use std::sync::OnceLock;

/// A group of the reference (a `##` heading): the sections of the primitives next to each
/// other in the registry with the same group.
pub struct Group {
    /// The heading.
    pub title: &'static str,
    /// Its sections, in order.
    pub sections: Vec<&'static Section>,
}

/// The reference's groups, in the registry's order.
pub fn groups() -> &'static [Group] {
    static GROUPS: OnceLock<Vec<Group>> = OnceLock::new();
    GROUPS.get_or_init(|| {
        let mut groups: Vec<Group> = Vec::new();
        for p in PRIMITIVES {
            match groups.last_mut() {
                Some(g) if g.title == p.group => g.sections.extend(p.sections.iter()),
                _ => groups.push(Group { title: p.group, sections: p.sections.iter().collect() }),
            }
        }
        groups
    })
}

/// The section that takes `entry`: by its module, its receiver type, then its name.
pub(super) fn place(entry: &Entry) -> Option<(usize, usize)> {
    let call = &entry.calls[0];
    find(|s| match (&call.form, &entry.receiver) {
        (Form::Module(m), _) => s.module == Some(m.as_str()),
        (_, Some(t)) => s.types.iter().any(|(ty, _)| ty == t),
        _ => false,
    })
    .or_else(|| find(|s| s.names.contains(&call.name.as_str())))
}

fn find(mut takes: impl FnMut(&Section) -> bool) -> Option<(usize, usize)> {
    groups().iter().enumerate().find_map(|(g, group)| group.sections.iter().position(|s| takes(s)).map(|s| (g, s)))
}

/// The variable name signatures use for a value of `type_name` (`q` for a Queue); for
/// types no section lists (a blob), a lower-case name.
pub(super) fn variable(type_name: &str) -> String {
    groups()
        .iter()
        .flat_map(|g| &g.sections)
        .flat_map(|s| s.types)
        .find(|(t, _)| *t == type_name)
        .map_or_else(|| receiver_name(type_name), |(_, v)| v.to_string())
}

fn receiver_name(type_name: &str) -> String {
    match type_name {
        "Blob" => "buf".to_string(),
        t => t.to_lowercase(),
    }
}

/// The section at `place`.
pub(super) fn section_at(place: (usize, usize)) -> &'static Section {
    groups()[place.0].sections[place.1]
}
