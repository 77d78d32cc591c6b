//! The REPL's `:help TOPIC`: the entries of the script reference (`stdlib/REFERENCE.md`,
//! embedded at build time, so no metadata is needed at run time) for a section or group
//! (`:help Pool`, `:help Queue`, `:help os`) and every function of that name (`:help get`),
//! each as its signatures and one-line meaning.

const REFERENCE: &str = include_str!("../../stdlib/REFERENCE.md");

/// One `###` section of the reference (or a group's entries before any `###`).
struct Block<'a> {
    group: &'a str,
    section: &'a str,
    /// Entry lines, without their `- `.
    entries: Vec<&'a str>,
}

fn blocks() -> Vec<Block<'static>> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut group = "";
    for line in REFERENCE.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            group = title;
            blocks.push(Block { group, section: "", entries: Vec::new() });
        } else if let Some(title) = line.strip_prefix("### ") {
            blocks.push(Block { group, section: title, entries: Vec::new() });
        } else if let (true, Some(block)) = (line.starts_with("- `"), blocks.last_mut()) {
            block.entries.push(&line[2..]);
        }
    }
    blocks.retain(|b| !b.entries.is_empty());
    blocks
}

/// The words of a heading, lower case, without filler words.
fn words(title: &str) -> impl Iterator<Item = String> + '_ {
    title
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty() && *w != "and" && *w != "the")
        .map(str::to_lowercase)
}

/// The signatures of an entry line (before ` — `), without backticks.
fn signatures(entry: &str) -> Vec<&str> {
    let head = entry.split(" — ").next().unwrap_or(entry);
    head.split(", `").map(|s| s.trim_matches('`')).collect()
}

/// The Rhai name a signature calls: `get` for `q.get(block)`, `kill` for `os::kill(pid)`,
/// `name` for `p.name = name`, `==` for `p == other`, `[]` for `a[index]`.
fn name(signature: &str) -> &str {
    let s = signature.rsplit("::").next().unwrap_or(signature);
    let ident_end = |s: &str| s.find(|c: char| !c.is_alphanumeric() && c != '_').unwrap_or(s.len());
    let first = ident_end(s);
    let rest = &s[first..];
    if let Some(after) = rest.strip_prefix('.') {
        return &after[..ident_end(after)];
    }
    if rest.starts_with('[') {
        return "[]";
    }
    match rest.strip_prefix(' ') {
        Some(op) => op.split(' ').next().unwrap_or(op),
        None => &s[..first],
    }
}

/// An entry line with its signatures out of backticks (its meaning keeps them: `()`).
fn plain_signatures(entry: &str) -> String {
    match entry.split_once(" — ") {
        Some((head, meaning)) => format!("{} — {meaning}", head.replace('`', "")),
        None => entry.to_string(),
    }
}

fn matches_name(entry: &str, topic: &str) -> bool {
    signatures(entry).iter().any(|s| {
        let call = s.split('(').next().unwrap_or(s);
        name(s).eq_ignore_ascii_case(topic) || call.eq_ignore_ascii_case(topic)
    })
}

/// What `:help TOPIC` prints.
pub(crate) fn topic(topic: &str) -> String {
    let t = topic.trim().trim_end_matches("()").trim_end_matches("::").to_lowercase();
    let blocks = blocks();
    let in_section = |b: &Block| words(b.section).any(|w| w == t);
    let in_group = |b: &Block| words(b.group).any(|w| w == t);
    let whole: Vec<bool> = if blocks.iter().any(in_section) {
        blocks.iter().map(in_section).collect()
    } else {
        blocks.iter().map(in_group).collect()
    };
    let mut out = String::new();
    for (b, whole) in blocks.iter().zip(whole) {
        let entries: Vec<&str> = b.entries.iter().copied().filter(|e| whole || matches_name(e, &t)).collect();
        if entries.is_empty() {
            continue;
        }
        let heading = if b.section.is_empty() { b.group.to_string() } else { format!("{} › {}", b.group, b.section) };
        out.push_str(&heading);
        out.push('\n');
        for e in entries {
            out.push_str(&format!("  {}\n", plain_signatures(e)));
        }
    }
    if out.is_empty() {
        return no_entry(topic.trim(), &blocks);
    }
    out.push_str("(errors and examples of each: stdlib/REFERENCE.md in the rhai-mp source tree)");
    out
}

fn no_entry(topic: &str, blocks: &[Block]) -> String {
    let mut groups: Vec<&str> = blocks.iter().map(|b| b.group).collect();
    groups.dedup();
    format!("no entry for '{topic}' (Rhai's own functions are in the Rhai book); groups: {}", groups.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_signatures() {
        assert_eq!(name("q.get(block, timeout)"), "get");
        assert_eq!(name("os::kill(pid)"), "kill");
        assert_eq!(name("Queue(maxsize)"), "Queue");
        assert_eq!(name("p.name = name"), "name");
        assert_eq!(name("p.pid"), "pid");
        assert_eq!(name("a[index] = value"), "[]");
        assert_eq!(name("p == other"), "==");
    }

    #[test]
    fn topics() {
        assert!(topic("Pool").contains("pool.map(f, iterable)"));
        assert!(topic("get").contains("q.get()"));
        assert!(topic("os").contains("os::getpid()"));
        assert!(topic("nosuchthing").starts_with("no entry"));
    }
}
