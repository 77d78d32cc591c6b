//! The groups and sections of the reference (the order of the README's tour), and which
//! entries each takes: methods by receiver type, functions by name, module functions by
//! module. A new primitive needs a place here, or the reference test fails.

use super::{Entry, Form};

/// A group of the reference (a `##` heading).
pub struct Group {
    /// The heading.
    pub title: &'static str,
    /// Its sections, in order.
    pub sections: &'static [Section],
}

/// A section of a group (a `###` heading, none when `title` is empty).
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

const fn section(
    title: &'static str,
    types: &'static [(&'static str, &'static str)],
    names: &'static [&'static str],
    hints: &'static [&'static str],
) -> Section {
    Section { title, types, names, module: None, hints }
}

const fn module(name: &'static str) -> Section {
    Section { title: "", types: &[], names: &[], module: Some(name), hints: &[] }
}

/// The reference's groups, in order.
pub const GROUPS: &[Group] = &[
    Group {
        title: "Processes and the process tree",
        sections: &[
            section("Process", &[("Process", "p")], &["Process"], &["Process(", "current_process(", "parent_process("]),
            section(
                "The process tree",
                &[],
                &["cpu_count", "active_children", "current_process", "parent_process"],
                &[],
            ),
        ],
    },
    Group {
        title: "Start methods and contexts",
        sections: &[
            section(
                "Start methods",
                &[],
                &["set_start_method", "get_start_method", "get_all_start_methods", "get_context"],
                &[],
            ),
            section("Context", &[("Context", "ctx")], &[], &["get_context("]),
        ],
    },
    Group {
        title: "Pipes and connections",
        sections: &[section(
            "Pipe and Connection",
            &[("Connection", "conn")],
            &["Pipe", "recv_bytes_into"],
            &["Pipe("],
        )],
    },
    Group {
        title: "Listener and Client",
        sections: &[section("", &[("Listener", "l")], &["Listener", "Client"], &["Listener("])],
    },
    Group {
        title: "Queues",
        sections: &[
            section(
                "Queue and JoinableQueue",
                &[("Queue", "q")],
                &["Queue", "JoinableQueue"],
                &["Queue(", "JoinableQueue("],
            ),
            section("SimpleQueue", &[("SimpleQueue", "q")], &["SimpleQueue"], &["SimpleQueue("]),
        ],
    },
    Group { title: "wait()", sections: &[section("", &[], &["wait"], &[])] },
    Group {
        title: "Synchronization",
        sections: &[
            section("Lock and RLock", &[("Lock", "lock")], &["Lock", "RLock"], &["Lock(", "RLock(", ".get_lock("]),
            section(
                "Semaphore and BoundedSemaphore",
                &[("Semaphore", "s")],
                &["Semaphore", "BoundedSemaphore"],
                &["Semaphore("],
            ),
            section("Event", &[("Event", "e")], &["Event"], &["Event("]),
            section("Condition", &[("Condition", "c")], &["Condition"], &["Condition("]),
            section("Barrier", &[("Barrier", "b")], &["Barrier"], &["Barrier("]),
            section("hold()", &[], &["hold"], &[]),
        ],
    },
    Group {
        title: "Shared memory",
        sections: &[
            section("Value and RawValue", &[("Value", "v")], &["Value", "RawValue"], &["Value("]),
            section("Array and RawArray", &[("SharedArray", "a")], &["Array", "RawArray"], &["Array("]),
            section("SharedMemory", &[("SharedMemory", "shm")], &["SharedMemory"], &["SharedMemory("]),
        ],
    },
    Group {
        title: "Pool, AsyncResult, imap iterators",
        sections: &[
            section("Pool", &[("Pool", "pool")], &["Pool"], &["Pool("]),
            section("AsyncResult", &[("AsyncResult", "r")], &[], &[".apply_async(", ".map_async(", ".starmap_async("]),
            section("imap iterators", &[("ImapIterator", "it")], &[], &[".imap(", ".imap_unordered("]),
        ],
    },
    Group {
        title: "Manager and proxies",
        sections: &[
            section("Manager", &[("Manager", "m")], &["Manager", "BaseManager"], &["Manager(", "BaseManager("]),
            section("Proxy", &[("Proxy", "proxy")], &[], &[".dict(", ".list(", ".Namespace(", ".Value(", ".Array("]),
        ],
    },
    Group { title: "os::", sections: &[module("os")] },
    Group { title: "time::", sections: &[module("time")] },
    Group { title: "mpi::", sections: &[module("mpi")] },
    Group { title: "Other", sections: &[section("", &[], &["exit"], &[])] },
];

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
    GROUPS.iter().enumerate().find_map(|(g, group)| group.sections.iter().position(&mut takes).map(|s| (g, s)))
}

/// The variable name signatures use for a value of `type_name` (`q` for a Queue); for
/// types no section lists (a blob), a lower-case name.
pub(super) fn variable(type_name: &str) -> String {
    GROUPS
        .iter()
        .flat_map(|g| g.sections)
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
    &GROUPS[place.0].sections[place.1]
}
