//! The script reference, `stdlib/REFERENCE.md`, is generated from the doc comments of the
//! registered functions (`rhai_mp::reference`): this test regenerates it and fails when the
//! file differs. `UPDATE_REFERENCE=1 cargo test --release --test integration reference`
//! rewrites the file instead. It also checks that every function is documented (a meaning
//! and a `Throws when:` text) and placed in a group.

use crate::common::root;
use rhai_mp::reference::{self, Entry};

fn describe(entries: &[&Entry]) -> String {
    entries.iter().map(|e| format!("  {}\n", e.signatures().join(", "))).collect()
}

fn entries() -> Vec<Entry> {
    reference::entries(&rhai_mp::Runtime::new())
}

#[test]
fn every_function_is_placed_in_a_group() {
    let entries = entries();
    let unplaced = reference::unplaced(&entries);
    assert!(
        unplaced.is_empty(),
        "no group of the reference takes these functions; add them to their primitive's sections \
         in its registry entry (stdlib/src/registry.rs):\n{}",
        describe(&unplaced)
    );
}

/// Every part a primitive declares in the registry (`stdlib/src/registry.rs`) is there: the
/// globals its contexts mirror and its manager twins are functions it registers (the
/// stdlib's own test checks the handle codecs), and each of its sections takes a function.
#[test]
fn every_primitive_has_its_parts() {
    use rhai_mp::registry::PRIMITIVES;
    let entries = entries();
    let groups = reference::groups();
    let mut missing = Vec::new();
    for p in PRIMITIVES {
        let mine: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.place.is_some_and(|(g, s)| p.sections.iter().any(|x| std::ptr::eq(x, groups[g].sections[s]))))
            .collect();
        let has = |name: &str, arity: usize| {
            mine.iter().any(|e| {
                e.arity() == arity && e.calls.iter().any(|c| c.name == name && c.form == reference::Form::Function)
            })
        };
        for section in p.sections {
            if !mine.iter().any(|e| e.place.is_some_and(|(g, s)| std::ptr::eq(section, groups[g].sections[s]))) {
                missing.push(format!("{}: no function in its section '{}'", p.name, section.title));
            }
        }
        for m in p.mirrors {
            for &n in m.arities {
                if !has(m.name, n) {
                    missing.push(format!(
                        "{}: mirrors {}() with {n} arguments, which it does not register",
                        p.name, m.name
                    ));
                }
            }
        }
        for k in p.managed {
            if !mine.iter().any(|e| e.calls.iter().any(|c| c.name == k.object())) {
                missing.push(format!("{}: its manager twin m.{}() has no global of that name", p.name, k.object()));
            }
        }
    }
    assert!(missing.is_empty(), "primitives lacking a part:\n{}", missing.join("\n"));
}

#[test]
fn every_function_has_a_meaning_and_throws_when() {
    let entries = entries();
    let bare = reference::undocumented(&entries);
    assert!(
        bare.is_empty(),
        "these functions need a doc comment whose first paragraph says what they do and with a \
         \"Throws when:\" paragraph:\n{}",
        describe(&bare)
    );
}

/// Where two texts first differ, and how many lines each has that the other lacks.
fn diff_summary(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let first = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    let only = |x: &[&str], y: &[&str]| x.iter().filter(|l| !y.contains(l)).count();
    let show = |x: &[&str]| x.iter().skip(first).take(4).map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        "{} line(s) only in the file, {} only in the generated text; first difference at line {}:\n  \
         file:\n{}  generated:\n{}",
        only(&a, &b),
        only(&b, &a),
        first + 1,
        show(&a),
        show(&b)
    )
}

#[test]
fn reference_md_is_up_to_date() {
    let path = root().join("stdlib/REFERENCE.md");
    let generated = reference::markdown(&entries(), &root().join("scripts"));
    if std::env::var_os("UPDATE_REFERENCE").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "stdlib/REFERENCE.md is out of date (the doc comments, the groups or scripts/ changed).\n\
         Rewrite it with: UPDATE_REFERENCE=1 cargo test --release --test integration reference\n\
         (then rebuild: the REPL's :help embeds the file)\n{}",
        diff_summary(&current, &generated)
    );
}
