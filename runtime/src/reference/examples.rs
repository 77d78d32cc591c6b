//! Finds, for an entry, an example script in `scripts/` that uses it: the first script (by
//! name) whose code — comments and string text left out — makes the call with the entry's
//! number of arguments (an `opts`/`options` argument must be an object map).
//!
//! A method, property or indexer must be used on a value of the receiver's type: on a
//! variable that a `let` binds to a call making one (the section's `hints`: `let q =
//! Queue()` … `q.get()`; a worker's parameter of the same name counts too). When the name
//! is the receiver type's alone (not another type's, nor a Rhai or package function's, as
//! `get` or `join` are), any `.name(` in a script that makes such a value will do.

use super::{groups, Call, Entry, Form};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The example scripts: file name and code (comments and string text blanked), by name,
/// and the method and property names that more than one type has.
pub(super) struct Scripts {
    scripts: Vec<(String, String)>,
    shared_names: HashSet<String>,
}

impl Scripts {
    /// Reads `dir/*.rhai` (not subdirectories). `entries` and `other_names` (the names of
    /// Rhai's and the packages' functions) tell which method names are shared.
    pub(super) fn load(dir: &Path, entries: &[Entry], other_names: HashSet<String>) -> Scripts {
        let mut scripts: Vec<(String, String)> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
            .filter_map(|p| {
                let name = p.file_name()?.to_str()?.to_string();
                Some((name, code_only(&std::fs::read_to_string(&p).ok()?)))
            })
            .collect();
        scripts.sort();
        Scripts { scripts, shared_names: shared_names(entries, other_names) }
    }

    /// The file name of the first script that uses `entry`.
    pub(super) fn example(&self, entry: &Entry) -> Option<&str> {
        let hints = entry.place.map_or(&[][..], |p| groups::section_at(p).hints);
        self.scripts
            .iter()
            .find(|(_, code)| entry.calls.iter().any(|c| self.uses(code, entry, c, hints)))
            .map(|(name, _)| name.as_str())
    }

    fn uses(&self, code: &str, entry: &Entry, call: &Call, hints: &[&str]) -> bool {
        let on = |receiver: &str| match &call.form {
            Form::Method => calls(code, &call.name, &format!("{receiver}."), entry),
            Form::Getter => reads_property(code, &format!("{receiver}.{}", call.name)),
            Form::Setter => writes_property(code, &format!("{receiver}.{}", call.name)),
            Form::IndexGet | Form::IndexSet => indexes(code, receiver, call.form == Form::IndexSet),
            _ => false,
        };
        match &call.form {
            Form::Function => calls(code, &call.name, "", entry),
            Form::Module(m) => calls(code, &call.name, &format!("{m}::"), entry),
            Form::Operator => false,
            Form::IndexGet | Form::IndexSet => variables(code, hints).iter().any(|v| on(v)),
            _ if self.shared_names.contains(&call.name) => variables(code, hints).iter().any(|v| on(v)),
            _ => has_hint(code, hints) && on(""),
        }
    }
}

/// Method and property names that more than one receiver type has, or that Rhai or a
/// package also defines.
fn shared_names(entries: &[Entry], other_names: HashSet<String>) -> HashSet<String> {
    let mut types: HashMap<&str, HashSet<&str>> = HashMap::new();
    for e in entries {
        for c in &e.calls {
            types.entry(c.name.as_str()).or_default().insert(e.receiver.as_deref().unwrap_or(""));
        }
    }
    let mut shared = other_names;
    shared.extend(types.into_iter().filter(|(_, t)| t.len() > 1).map(|(n, _)| n.to_string()));
    shared
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The char before byte `at`, if any.
fn before(code: &str, at: usize) -> Option<char> {
    code[..at].chars().next_back()
}

/// Positions where `word` starts and is not the tail of a longer identifier.
fn occurrences<'a>(code: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    code.match_indices(word).map(|(i, _)| i).filter(move |&i| {
        let starts_ident = word.starts_with(is_ident);
        !starts_ident || !before(code, i).is_some_and(is_ident)
    })
}

fn has_hint(code: &str, hints: &[&str]) -> bool {
    hints.iter().any(|h| occurrences(code, h).next().is_some())
}

/// Whether `code` calls `prefix name(..)` with the arguments `entry` takes (`prefix` empty:
/// a plain function call, not a method call nor a definition).
fn calls(code: &str, name: &str, prefix: &str, entry: &Entry) -> bool {
    let pattern = format!("{prefix}{name}(");
    let found = occurrences(code, &pattern).any(|i| {
        let head = code[..i].trim_end();
        if prefix.is_empty() && (before(code, i) == Some('.') || head.ends_with("::") || head.ends_with("fn")) {
            return false;
        }
        arguments(&code[i + pattern.len()..]).is_some_and(|args| fits(entry, &args))
    });
    found
}

/// Whether call arguments fit `entry`'s parameters: as many, and object maps for options.
fn fits(entry: &Entry, args: &[&str]) -> bool {
    args.len() == entry.arity()
        && entry.params.iter().zip(args).all(|(p, a)| !matches!(p.as_str(), "opts" | "options") || a.starts_with("#{"))
}

/// The arguments of a call whose `(` was just before `rest`, trimmed.
fn arguments(rest: &str) -> Option<Vec<&str>> {
    let (mut depth, mut in_params, mut start) = (0i32, false, 0);
    let mut args = Vec::new();
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => {
                args.push(rest[start..i].trim());
                if args == [""] {
                    args.clear();
                }
                return Some(args);
            }
            ')' | ']' | '}' => depth -= 1,
            // A closure's parameters, `|a, b|`, are not arguments.
            '|' if depth == 0 => in_params = !in_params,
            ',' if depth == 0 && !in_params => {
                args.push(rest[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    None
}

/// Whether `code` reads `pattern` (`q.name` or `.name`) as a property.
fn reads_property(code: &str, pattern: &str) -> bool {
    let found = occurrences(code, pattern).any(|i| {
        let next = code[i + pattern.len()..].chars().next();
        !next.is_some_and(|c| is_ident(c) || c == '(')
    });
    found
}

/// Whether `code` assigns to `pattern` (`q.name` or `.name`) as a property.
fn writes_property(code: &str, pattern: &str) -> bool {
    let found = occurrences(code, pattern).any(|i| {
        let rest = &code[i + pattern.len()..];
        !rest.starts_with(is_ident) && assigns(rest)
    });
    found
}

/// Whether `rest` starts with an assignment (`= x`, `+= x` …, not `==`).
fn assigns(rest: &str) -> bool {
    let rest = rest.trim_start();
    let op = rest.trim_start_matches(['+', '-', '*', '/', '%']);
    op.starts_with('=') && !op.starts_with("==")
}

/// The variables a `let` binds to a value made by one of `hints`.
fn variables(code: &str, hints: &[&str]) -> Vec<String> {
    code.lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix("let ")?;
            let (name, value) = rest.split_once('=')?;
            let name = name.trim();
            (name.chars().all(is_ident) && has_hint(value, hints)).then(|| name.to_string())
        })
        .collect()
}

/// Whether `code` indexes `var` (`var[i]`), or assigns to `var[i]` when `set`.
fn indexes(code: &str, var: &str, set: bool) -> bool {
    let pattern = format!("{var}[");
    let found = occurrences(code, &pattern).any(|i| {
        let rest = &code[i + pattern.len()..];
        let Some(close) = rest.find(']') else { return false };
        set == assigns(&rest[close + 1..])
    });
    found
}

/// `source` with `//` and `/* */` comments removed and the text of string literals
/// blanked (the code inside a backtick string's `${..}` is kept).
pub(super) fn code_only(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        out.push('\n');
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
            '"' | '\'' | '`' => {
                out.push(c);
                string(&mut chars, c, &mut out);
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Skips a string literal up to its closing `quote`, keeping the code of `${..}` in
/// backtick strings.
fn string(chars: &mut std::iter::Peekable<std::str::Chars>, quote: char, out: &mut String) {
    while let Some(d) = chars.next() {
        match d {
            '\\' => {
                chars.next();
            }
            '$' if quote == '`' && chars.peek() == Some(&'{') => {
                chars.next();
                out.push(' ');
                let mut depth = 1;
                for e in chars.by_ref() {
                    depth += match e {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    if depth == 0 {
                        break;
                    }
                    out.push(e);
                }
                out.push(' ');
            }
            d if d == quote => return,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_strings_are_not_code() {
        let code = code_only("q.get(); // p.join(3)\nprint(\"x.put(1)\"); print(`${q.qsize()} items`);");
        assert!(code.contains("q.get()"));
        assert!(!code.contains("join"));
        assert!(!code.contains("put"));
        assert!(code.contains("q.qsize()"));
    }

    fn count(rest: &str) -> Option<usize> {
        arguments(rest).map(|a| a.len())
    }

    #[test]
    fn arguments_are_split_at_the_top_level() {
        assert_eq!(count(")"), Some(0));
        assert_eq!(count("  )"), Some(0));
        assert_eq!(count("f, [1, 2])"), Some(2));
        assert_eq!(count("|a, b| a * b, [[1, 2]])"), Some(2));
        assert_eq!(count("|| work(1, 2))"), Some(1));
        assert_eq!(arguments("f, #{a: 1, b: 2})"), Some(vec!["f", "#{a: 1, b: 2}"]));
    }

    fn entry(params: &[&str]) -> Entry {
        Entry {
            calls: Vec::new(),
            receiver: None,
            params: params.iter().map(|p| p.to_string()).collect(),
            meaning: String::new(),
            throws: String::new(),
            place: None,
        }
    }

    #[test]
    fn calls_and_properties() {
        assert!(calls("let b = Barrier(3);", "Barrier", "", &entry(&["parties"])));
        assert!(!calls("let b = m.Barrier(3);", "Barrier", "", &entry(&["parties"])));
        assert!(!calls("fn wait(x) { }", "wait", "", &entry(&["objects"])));
        assert!(calls("q.get(true, 1.5)", "get", "q.", &entry(&["block", "timeout"])));
        assert!(calls("Process(f, #{daemon: true})", "Process", "", &entry(&["target", "opts"])));
        assert!(!calls("Process(f, [1])", "Process", "", &entry(&["target", "opts"])));
        assert!(reads_property("print(v.value)", "v.value"));
        assert!(!reads_property("v.values()", "v.value"));
        assert!(!reads_property("av.value", "v.value"));
        assert!(writes_property("v.value += 1;", ".value"));
        assert!(!writes_property("if v.value == 1 {}", ".value"));
        assert!(indexes("a[i] = -a[i];", "a", true));
        assert!(indexes("print(a[0]);", "a", false));
    }
}
