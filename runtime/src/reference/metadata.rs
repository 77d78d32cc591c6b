//! From rhai's function metadata (JSON) to reference entries: which functions count, how
//! each is called, and the meaning and `Throws when:` text of its doc comment.

use super::{Call, Entry, Form};
use rhai::packages::Package;
use serde_json::Value;
use std::collections::HashSet;

/// Types that scripts never handle (internal to pools and managers); a function that takes
/// or returns one is not listed.
const INTERNAL_TYPES: &[&str] = &["PoolSlots", "ManagerSocket"];

/// One registered function, as the metadata describes it.
struct Func {
    module: Option<String>,
    name: String,
    /// `(name, type)` of each parameter (none for functions registered raw).
    params: Vec<(String, String)>,
    num_params: usize,
    return_type: String,
    doc: String,
    hash: u64,
}

/// The entries of everything `engine` registers beyond Rhai's standard library, rhai-fs and
/// rhai-rand, internal functions left out, names of one function merged (unplaced).
pub(super) fn entries(engine: &rhai::Engine) -> Vec<Entry> {
    let foreign = package_hashes();
    let funcs: Vec<Func> =
        functions(engine).into_iter().filter(|f| !foreign.contains(&f.hash) && !is_internal(f)).collect();
    let mut entries: Vec<(Entry, String)> = Vec::new();
    for f in &funcs {
        let entry = match mirrored(f, &funcs) {
            Some(global) => mirror_entry(f, global),
            None => entry(f),
        };
        merge(&mut entries, entry, f.doc.clone());
    }
    entries.into_iter().map(|(e, _)| e).collect()
}

/// The hashes of the functions rhai-fs and rhai-rand register (they have their own docs).
fn package_hashes() -> HashSet<u64> {
    let mut engine = rhai::Engine::new_raw();
    rhai_fs::FilesystemPackage::new().register_into_engine(&mut engine);
    rhai_rand::RandomPackage::new().register_into_engine(&mut engine);
    functions(&engine).into_iter().map(|f| f.hash).collect()
}

/// The names of the functions (and properties) of Rhai's standard library, rhai-fs and
/// rhai-rand.
pub(super) fn other_names() -> HashSet<String> {
    let mut engine = rhai::Engine::new();
    rhai_fs::FilesystemPackage::new().register_into_engine(&mut engine);
    rhai_rand::RandomPackage::new().register_into_engine(&mut engine);
    functions_of(&engine, true)
        .into_iter()
        .map(|f| f.name.trim_start_matches("get$").trim_start_matches("set$").to_string())
        .collect()
}

/// Every function of `engine` outside Rhai's standard packages, static modules included.
fn functions(engine: &rhai::Engine) -> Vec<Func> {
    functions_of(engine, false)
}

fn functions_of(engine: &rhai::Engine, standard: bool) -> Vec<Func> {
    let json = engine.gen_fn_metadata_to_json(standard).expect("rhai's metadata serializes");
    let root: Value = serde_json::from_str(&json).expect("rhai's metadata is JSON");
    let mut out: Vec<Func> = list(&root["functions"]).iter().map(|f| func(None, f)).collect();
    if let Some(modules) = root["modules"].as_object() {
        for (name, module) in modules {
            out.extend(list(&module["functions"]).iter().map(|f| func(Some(name.clone()), f)));
        }
    }
    out
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn func(module: Option<String>, f: &Value) -> Func {
    let params = list(&f["params"]).iter().map(|p| (text(&p["name"]), text(&p["type"]))).collect();
    let doc = list(&f["docComments"]).iter().map(|c| strip_slashes(c.as_str().unwrap_or_default())).collect();
    Func {
        module,
        name: text(&f["name"]),
        params,
        num_params: f["numParams"].as_u64().unwrap_or_default() as usize,
        return_type: text(&f["returnType"]),
        doc,
        hash: f["fullHash"].as_u64().unwrap_or_default(),
    }
}

/// A doc comment's text without the `///` of each line.
fn strip_slashes(comment: &str) -> String {
    comment
        .lines()
        .map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("///").unwrap_or(l);
            l.strip_prefix(' ').unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The last path segment of a type, without `&mut` (`&mut crate::queue::Queue` → `Queue`).
fn short_type(t: &str) -> String {
    let t = t.trim().trim_start_matches("&mut ").trim_start_matches('&').trim();
    t.rsplit("::").next().unwrap_or(t).to_string()
}

fn mentions_type(t: &str, name: &str) -> bool {
    t.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == name)
}

fn is_internal(f: &Func) -> bool {
    f.name.starts_with("__")
        || INTERNAL_TYPES
            .iter()
            .any(|t| mentions_type(&f.return_type, t) || f.params.iter().any(|(_, ty)| mentions_type(ty, t)))
}

/// The first paragraph of a doc comment (outside code blocks), on one line.
fn meaning(doc: &str) -> String {
    paragraphs(doc).into_iter().find(|p| !p.starts_with("Throws when:")).unwrap_or_default()
}

/// The `Throws when:` paragraph's text, on one line.
fn throws(doc: &str) -> String {
    paragraphs(doc)
        .into_iter()
        .find_map(|p| p.strip_prefix("Throws when:").map(|t| t.trim().to_string()))
        .unwrap_or_default()
}

/// The paragraphs of a doc comment, each on one line, code blocks left out.
fn paragraphs(doc: &str) -> Vec<String> {
    let (mut out, mut current, mut in_code) = (Vec::new(), Vec::new(), false);
    for line in doc.lines().map(str::trim) {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if in_code {
        } else if line.is_empty() {
            flush(&mut out, &mut current);
        } else {
            current.push(line);
        }
    }
    flush(&mut out, &mut current);
    out
}

fn flush(out: &mut Vec<String>, current: &mut Vec<&str>) {
    if !current.is_empty() {
        out.push(current.join(" "));
        current.clear();
    }
}

/// How a function is called, its receiver type and the Rhai name of the call.
fn form(f: &Func) -> (Form, Option<String>, String) {
    let receiver = f.params.first().filter(|(_, t)| t.starts_with("&mut ")).map(|(_, t)| short_type(t));
    if let Some(m) = &f.module {
        return (Form::Module(m.clone()), None, f.name.clone());
    }
    let Some(receiver) = receiver else {
        return (Form::Function, None, f.name.clone());
    };
    let (form, name) = if let Some(p) = f.name.strip_prefix("get$") {
        (Form::Getter, p.to_string())
    } else if let Some(p) = f.name.strip_prefix("set$") {
        (Form::Setter, p.to_string())
    } else if f.name == "index$get$" {
        (Form::IndexGet, "[]".to_string())
    } else if f.name == "index$set$" {
        (Form::IndexSet, "[]=".to_string())
    } else if !f.name.starts_with(|c: char| c.is_alphabetic() || c == '_') {
        (Form::Operator, f.name.clone())
    } else {
        (Form::Method, f.name.clone())
    };
    (form, Some(receiver), name)
}

fn entry(f: &Func) -> Entry {
    let (form, receiver, name) = form(f);
    let skip = usize::from(receiver.is_some());
    Entry {
        calls: vec![Call { name, form }],
        receiver,
        params: f.params.iter().skip(skip).map(|(n, _)| n.trim_start_matches('_').to_string()).collect(),
        meaning: meaning(&f.doc),
        throws: throws(&f.doc),
        place: None,
    }
}

/// A context's mirror of a global (`ctx.Queue(maxsize)`, see the stdlib's `context.rs`):
/// registered raw, so without doc comment or parameter information; it takes one argument
/// more than the documented global function of the same name. Returns that global.
fn mirrored<'a>(f: &Func, funcs: &'a [Func]) -> Option<&'a Func> {
    if !f.doc.is_empty() || f.module.is_some() || f.num_params == 0 || !f.params.is_empty() {
        return None;
    }
    funcs.iter().find(|g| {
        g.module.is_none()
            && g.name == f.name
            && g.num_params + 1 == f.num_params
            && !g.doc.is_empty()
            && form(g).0 == Form::Function
    })
}

fn mirror_entry(f: &Func, global: &Func) -> Entry {
    let g = entry(global);
    let call = format!("`{}({})`", f.name, g.params.join(", "));
    let mut meaning = g.meaning.chars();
    let first = meaning.next().map_or(String::new(), |c| c.to_lowercase().collect());
    Entry {
        calls: vec![Call { name: f.name.clone(), form: Form::Method }],
        receiver: Some("Context".to_string()),
        params: g.params,
        meaning: format!("Same as {call}: {first}{}", meaning.as_str()),
        throws: format!("as {call}."),
        place: None,
    }
}

/// Adds `entry`, or its name to an entry already there for the same function under another
/// name (`to_string` / `to_debug`, `a.len()` / `a.len`): same receiver, parameters and doc.
fn merge(entries: &mut Vec<(Entry, String)>, entry: Entry, doc: String) {
    let same = |(e, d): &&mut (Entry, String)| {
        !doc.is_empty() && *d == doc && e.receiver == entry.receiver && e.params == entry.params
    };
    match entries.iter_mut().find(|x| same(x)) {
        Some((e, _)) => e.calls.extend(entry.calls),
        None => entries.push((entry, doc)),
    }
}
