//! The crate's floors, checked: every `crate::` (and `super::`, and a `mod.rs`'s own
//! children) path in the code of `src/` is read, and an import that runs up a floor — or,
//! inside a folder whose `mod.rs` says "Each file imports only the ones above it", up that
//! folder's list — fails the test. So does a name taken through `lib.rs` instead of from
//! the module that defines it (the exported macros, which Rust puts at the root, aside).
//!
//! The floors are `lib.rs`'s: base (0) → wire and transport (1, which never import each
//! other) → tree (2) → run (3).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The floor of each top-level module.
const FLOORS: &[(&str, u32)] = &[("base", 0), ("wire", 1), ("transport", 1), ("tree", 2), ("run", 3)];
/// Names Rust puts at the crate root that are defined there (`#[macro_export]`).
const ROOT_MACROS: &[&str] = &["mp_err", "mp_bail"];

/// A module: its path from the crate root (`["tree", "start", "fork"]`).
type ModPath = Vec<String>;

/// One source file.
struct File {
    module: ModPath,
    is_mod_rs: bool,
    path: PathBuf,
    text: String,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn files() -> Vec<File> {
    fn walk(dir: &Path, module: &ModPath, out: &mut Vec<File>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            if p.is_dir() {
                let mut m = module.clone();
                m.push(name);
                walk(&p, &m, out);
            } else if let Some(stem) = name.strip_suffix(".rs") {
                let is_mod_rs = stem == "mod" || (module.is_empty() && stem == "lib");
                let mut m = module.clone();
                if !is_mod_rs {
                    m.push(stem.to_string());
                }
                out.push(File { module: m, is_mod_rs, text: std::fs::read_to_string(&p).unwrap(), path: p });
            }
        }
    }
    let mut out = Vec::new();
    walk(&src(), &Vec::new(), &mut out);
    out
}

/// The code of a file: comment lines and trailing comments removed (doc links are not
/// imports), and the `#[cfg(test)]` tail kept (tests obey the floors too).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("//") {
                ""
            } else {
                l.split(" // ").next().unwrap()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path that starts with `prefix` (`crate::`, `super::`) in `code`, with `{a, b::c}`
/// groups expanded: each as its segments after the prefix.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = code[at..].find(prefix) {
        let start = at + i;
        at = start + prefix.len();
        if start > 0 && code[..start].chars().next_back().is_some_and(|c| is_ident_char(c) || c == ':') {
            continue;
        }
        expand(&code[at..], Vec::new(), &mut out);
    }
    out
}

/// Reads a path (or a group) at the start of `rest`, after the segments `head`.
fn expand(rest: &str, head: Vec<String>, out: &mut Vec<Vec<String>>) {
    let rest = rest.trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        // Split the group's items at top-level commas.
        let (mut depth, mut item) = (0, String::new());
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&item, head.clone(), out);
                    item.clear();
                    continue;
                }
                _ => {}
            }
            item.push(c);
        }
        if !item.trim().is_empty() {
            expand(&item, head, out);
        }
        return;
    }
    let seg: String = rest.chars().take_while(|&c| is_ident_char(c)).collect();
    if seg.is_empty() {
        if !head.is_empty() {
            out.push(head);
        }
        return;
    }
    let mut path = head;
    path.push(seg.clone());
    match rest[seg.len()..].strip_prefix("::") {
        Some(more) => expand(more, path, out),
        None => out.push(path),
    }
}

/// The ordered list a folder's `mod.rs` declares (entries without `.rs` or `/`), if it
/// says its files import only the ones above them.
fn orders(files: &[File]) -> BTreeMap<ModPath, Vec<String>> {
    let mut out = BTreeMap::new();
    for f in files.iter().filter(|f| f.is_mod_rs && !f.module.is_empty()) {
        if !f.text.contains("Each file imports only the ones above it") {
            continue;
        }
        let mut list = Vec::new();
        for line in f.text.lines() {
            let Some(entry) = line.strip_prefix("//! - `") else { continue };
            let name = entry.split('`').next().unwrap();
            let name = name.strip_suffix(".rs").or_else(|| name.strip_suffix('/')).unwrap_or(name);
            list.push(name.to_string());
        }
        if !list.iter().any(|n| n == "mod") {
            list.push("mod".to_string());
        }
        out.insert(f.module.clone(), list);
    }
    out
}

/// The module a path names: its longest prefix that is a module of the crate.
fn module_of(path: &[String], modules: &[ModPath]) -> Option<ModPath> {
    (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains(p))
}

fn floor(top: &str) -> Option<u32> {
    FLOORS.iter().find(|(n, _)| *n == top).map(|(_, f)| *f)
}

/// Why `from` may not import `to`, if it may not.
fn violation(from: &File, to: &ModPath, orders: &BTreeMap<ModPath, Vec<String>>) -> Option<String> {
    let (a, b) = (&from.module, to);
    let (fa, fb) = (floor(&a[0])?, floor(&b[0])?);
    if fb > fa {
        return Some(format!("floor {} ({}) imports floor {} ({})", fa, a[0], fb, b[0]));
    }
    if a[0] != b[0] {
        return (fa == fb).then(|| format!("{} and {} never import each other", a[0], b[0]));
    }
    // The same top folder: compare positions in the deepest ordered folder holding both.
    let common = a.iter().zip(b.iter()).take_while(|(x, y)| x == y).count();
    let folder: ModPath = a[..common].to_vec();
    let order = orders.get(&folder)?;
    // Where a module sits in `folder`'s list: its entry, or `mod` for the folder itself.
    let entry = |m: &ModPath, is_mod_rs: bool| -> String {
        if m.len() > folder.len() {
            m[folder.len()].clone()
        } else {
            debug_assert!(is_mod_rs || m == &folder);
            "mod".to_string()
        }
    };
    let (ea, eb) = (entry(a, from.is_mod_rs), entry(b, true));
    if ea == eb {
        return None;
    }
    let pos = |e: &str| order.iter().position(|n| n == e);
    match (pos(&ea), pos(&eb)) {
        (Some(i), Some(j)) if j > i => {
            Some(format!("`{ea}` imports `{eb}`, which comes after it in {}/mod.rs's list", folder.join("/")))
        }
        (Some(_), Some(_)) => None,
        _ => Some(format!("`{ea}` or `{eb}` is missing from the list in {}/mod.rs", folder.join("/"))),
    }
}

#[test]
fn no_module_imports_from_a_higher_floor() {
    let files = files();
    let modules: Vec<ModPath> = files.iter().map(|f| f.module.clone()).collect();
    let orders = orders(&files);
    let mut errors = Vec::new();
    for f in files.iter().filter(|f| !f.module.is_empty()) {
        let code = code(&f.text);
        let mut targets = Vec::new();
        for p in paths_after(&code, "crate::") {
            if p.len() == 1 && ROOT_MACROS.contains(&p[0].as_str()) {
                continue;
            }
            match module_of(&p, &modules) {
                Some(m) if !m.is_empty() => targets.push((p.join("::"), m)),
                _ => errors.push(format!(
                    "{}: `crate::{}` goes through lib.rs: import it from the module that defines it",
                    f.path.display(),
                    p.join("::")
                )),
            }
        }
        // `super::x` is relative to the parent module (the folder, for a mod.rs).
        let parent: ModPath = f.module[..f.module.len() - usize::from(!f.is_mod_rs)].to_vec();
        let parent = if f.is_mod_rs { parent[..parent.len().saturating_sub(1)].to_vec() } else { parent };
        for p in paths_after(&code, "super::") {
            if p.first().is_some_and(|s| s == "super" || s == "*") {
                continue;
            }
            let full: ModPath = parent.iter().cloned().chain(p.iter().cloned()).collect();
            if let Some(m) = module_of(&full, &modules) {
                targets.push((format!("super::{}", p.join("::")), m));
            }
        }
        // A mod.rs's `use child::..`.
        if f.is_mod_rs {
            for line in code.lines() {
                let t = line.trim_start().trim_start_matches("pub ").trim_start_matches("pub(crate) ");
                let Some(rest) = t.strip_prefix("use ") else { continue };
                let mut p = Vec::new();
                expand(rest, Vec::new(), &mut p);
                for p in p {
                    let full: ModPath = f.module.iter().cloned().chain(p.iter().cloned()).collect();
                    if p[0] != "crate" && p[0] != "super" && full.len() > f.module.len() {
                        if let Some(m) = module_of(&full, &modules).filter(|m| m.len() > f.module.len()) {
                            targets.push((p.join("::"), m));
                        }
                    }
                }
            }
        }
        for (path, to) in targets {
            if let Some(why) = violation(f, &to, &orders) {
                errors.push(format!("{}: `{path}`: {why}", f.path.display()));
            }
        }
    }
    errors.sort();
    errors.dedup();
    assert!(errors.is_empty(), "imports that run up a floor:\n{}", errors.join("\n"));
}

#[test]
fn every_folder_opens_with_a_map_of_its_files() {
    for f in files().iter().filter(|f| f.is_mod_rs && !f.module.is_empty()) {
        let dir = f.path.parent().unwrap();
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap();
            if name == "mod.rs" {
                continue;
            }
            let listed = if p.is_dir() { format!("`{name}/`") } else { format!("`{name}`") };
            assert!(f.text.contains(&listed), "{} does not list {listed}", f.path.display());
        }
    }
}

#[test]
fn the_checker_sees_a_violation() {
    // The parser itself: a group, a nested group, a path in an expression.
    let code = "use crate::{run::child, tree::{boot::Boot, state}};\nlet x = crate::base::sys::pid();";
    let paths: Vec<String> = paths_after(code, "crate::").iter().map(|p| p.join("::")).collect();
    assert_eq!(paths, ["run::child", "tree::boot::Boot", "tree::state", "base::sys::pid"]);
    let f = File { module: vec!["base".into(), "sys".into()], is_mod_rs: false, path: "x".into(), text: String::new() };
    assert!(violation(&f, &vec!["tree".into(), "state".into()], &BTreeMap::new()).is_some());
    assert!(violation(&f, &vec!["base".into(), "error".into()], &BTreeMap::new()).is_none());
    let order = BTreeMap::from([(vec!["base".to_string()], vec!["sys".to_string(), "error".to_string()])]);
    assert!(violation(&f, &vec!["base".into(), "error".into()], &order).is_some());
}
