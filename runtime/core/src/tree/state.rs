//! This process's place in the process tree: its name, identity, start method, the script
//! its spawn children re-run, and the forkserver it uses. (Its live children are
//! `process.rs`'s.)
//!
//! The state is per thread (Rhai engines here are single-threaded) and is copied into a
//! `fork` child, which then calls [`enter_child`] to make it its own.

use std::cell::RefCell;

/// How a child process is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMethod {
    /// A fresh interpreter (`spawn`).
    Spawn,
    /// A copy of this process (`fork`).
    Fork,
    /// A fork of a server process (`forkserver`).
    ForkServer,
    /// A free rank of the MPI job this process is rank 0 of (`mpi`; only under a launcher,
    /// see `cluster.rs`).
    Mpi,
}

impl StartMethod {
    /// Every method that starts local processes, in `get_all_start_methods()` order.
    pub const ALL: [StartMethod; 3] = [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer];

    /// The methods usable here: [`StartMethod::ALL`], and `mpi` on rank 0 under a launcher.
    pub fn usable() -> Vec<StartMethod> {
        let mut all = Self::ALL.to_vec();
        if crate::tree::place::mpi_available() {
            all.push(StartMethod::Mpi);
        }
        all
    }

    /// Its name (`"spawn"`).
    pub fn name(self) -> &'static str {
        match self {
            StartMethod::Spawn => "spawn",
            StartMethod::Fork => "fork",
            StartMethod::ForkServer => "forkserver",
            StartMethod::Mpi => "mpi",
        }
    }

    /// The method named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().chain([StartMethod::Mpi]).find(|m| m.name() == s)
    }
}

/// What a spawn child re-runs to get the parent's functions.
#[derive(Debug, Clone, PartialEq)]
pub enum Script {
    /// A script file or `-e` code: its text and the name used in messages.
    Source {
        /// The name used in messages (the file, `<-e>`).
        name: String,
        /// The script.
        text: String,
    },
    /// A session (the REPL, a host's `eval`): nothing runs again in a child; the code a
    /// call needs travels with it (see `wire/code.rs`).
    Session,
}

/// Who this process's parent is (`parent_process()`).
#[derive(Debug, Clone)]
pub struct ParentInfo {
    /// Its pid.
    pub pid: i32,
    /// Its name.
    pub name: String,
}

/// Where a fork server listens and the key its peers must present (see
/// `start/forkserver.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    /// The abstract socket name.
    pub name: String,
    /// The key (never logged, never shown).
    pub key: Vec<u8>,
}

/// This process's place in the process tree (see the module docs).
pub struct State {
    /// `[]` in the main process, `[1]` in Process-1, `[1, 2]` in Process-1:2.
    pub identity: Vec<u32>,
    /// Its name (`current_process().name`).
    pub name: String,
    /// Whether it is a daemon.
    pub daemon: bool,
    /// How many Process objects this process has made (names the next one).
    pub counter: u32,
    /// The start method used when none is given; fixed once used.
    pub default_method: StartMethod,
    /// Whether the default start method was used or set (it can no longer change).
    pub method_fixed: bool,
    /// True while a child re-runs the script's top level (starting a process then is the
    /// missing `__main__` guard).
    pub bootstrapping: bool,
    /// Its parent (`None` in the main process).
    pub parent: Option<ParentInfo>,
    /// What spawn children re-run.
    pub script: Script,
    /// `ARGV`.
    pub argv: Vec<String>,
    /// The forkserver this process uses, once started.
    pub forkserver: Option<ServerAddr>,
    /// The pid of the forkserver this process started (it is killed and reaped at exit).
    pub forkserver_pid: Option<i32>,
}

impl Default for State {
    fn default() -> Self {
        State {
            identity: Vec::new(),
            name: "MainProcess".into(),
            daemon: false,
            counter: 0,
            default_method: StartMethod::Spawn,
            method_fixed: false,
            bootstrapping: false,
            parent: None,
            script: Script::Source { name: "<none>".into(), text: String::new() },
            argv: Vec::new(),
            forkserver: None,
            forkserver_pid: None,
        }
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Runs `f` with this process's state. Do not call back into scripts from inside `f`.
pub fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

/// The start method for a process that names none, fixing the default (as Python does the
/// first time the default context is used).
pub fn default_method() -> StartMethod {
    with(|s| {
        s.method_fixed = true;
        s.default_method
    })
}

/// What a new child needs to know about its own place in the tree.
#[derive(Debug, Clone)]
pub struct ChildInfo {
    /// Its identity (`[1, 2]` for Process-1:2).
    pub identity: Vec<u32>,
    /// Its name.
    pub name: String,
    /// Whether it is a daemon.
    pub daemon: bool,
    /// Its parent.
    pub parent: ParentInfo,
    /// The start method it was started with (its own default).
    pub method: StartMethod,
}

/// Makes the state a child's own: its name, the counter restarted (see also
/// `process::enter_child`, which also forgets the parent's children).
pub(crate) fn enter_child(info: ChildInfo) {
    with(|s| {
        s.identity = info.identity;
        s.name = info.name;
        s.daemon = info.daemon;
        s.parent = Some(info.parent);
        s.counter = 0;
        s.forkserver_pid = None;
        s.default_method = info.method;
        s.method_fixed = true;
    })
}
