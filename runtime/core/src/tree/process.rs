//! The Process object: the state behind a script's `Process(..)`, `current_process()` and
//! `parent_process()`, and the rules Python enforces on it. The Rhai bindings live in
//! `rhai-mp-stdlib`'s `process.rs`; this is the machinery.
//!
//! Copies of a `Process` value share one state (it is a handle), so a process started
//! through one copy is joined through any other.

use crate::base::deadline::Deadline;
use crate::base::error::{MpError, MpResult};
use crate::mp_err;
use crate::tree::boot::{Boot, Call, Mode};
use crate::tree::start::popen::Popen;
use crate::tree::start::{fork, forkserver, remote, spawn};
use crate::tree::state::{self, ChildInfo, ParentInfo, StartMethod};
use crate::wire::Packet;
use nix::sys::signal::Signal;
use rhai::{Array, Dynamic, FnPtr, NativeCallContext};
use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::rc::Rc;

/// What a Process object stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A child this process made with `Process(..)`.
    Child,
    /// This process (`current_process()`).
    Current,
    /// This process's parent (`parent_process()`).
    Parent,
}

/// What a child process runs.
#[derive(Debug)]
pub enum Target {
    /// A script function or closure (or nothing) and its arguments.
    Script {
        /// The function; `None`: the process runs nothing.
        func: Option<FnPtr>,
        /// Its arguments.
        args: Array,
    },
    /// A native entry point (see `run::child::register_entry`) and its encoded arguments,
    /// which go to the child when it starts.
    Native {
        /// The entry's name.
        entry: &'static str,
        /// Its arguments (taken by `start()`).
        payload: Option<Packet>,
    },
}

/// The state behind a [`Process`] handle.
#[derive(Debug)]
pub struct Inner {
    role: Role,
    target: Target,
    name: String,
    daemon: bool,
    identity: Vec<u32>,
    /// The start method of the context that made it; `None`: the default at start time.
    method: Option<StartMethod>,
    popen: Option<Popen>,
    /// The pid of the process that made this object (only it may start and join it).
    creator: i32,
    /// The pid of a `Current` or `Parent` object.
    known_pid: Option<i32>,
    /// A `Parent` object's pidfd, readable once the parent has ended (opened on first use;
    /// `None` inside: the parent was gone by then).
    parent_fd: Option<Option<OwnedFd>>,
    closed: bool,
}

/// A handle on a process.
#[derive(Debug, Clone)]
pub struct Process(pub Rc<RefCell<Inner>>);

/// The `RuntimeError` of the missing `__main__` guard.
pub fn guard_error() -> MpError {
    mp_err!(RuntimeError, "{GUARD_MESSAGE}")
}

const GUARD_MESSAGE: &str = "An attempt has been made to start a new process before the current process has finished its bootstrapping phase.

        This probably means that you are not using fork to start your child processes and you have forgotten to use the proper idiom in the main module:

            if __name__ == \"__main__\" {
                ...
            }

        The script's top level runs again in every spawn and forkserver child (with __name__ == \"__mp_main__\"), so code that starts processes must be inside that guard.";

fn this_pid() -> i32 {
    std::process::id() as i32
}

impl Process {
    /// A new, unstarted child process object that will call `target(args..)`, named like
    /// Python's (`Process-N`, `Process-1:2`) unless `name` is given.
    pub fn new(
        target: Option<FnPtr>,
        args: Array,
        name: Option<String>,
        daemon: Option<bool>,
        method: Option<StartMethod>,
    ) -> Process {
        Self::with_target(Target::Script { func: target, args }, name, daemon, method)
    }

    /// A new, unstarted child process object that will run the native entry `entry` with
    /// `payload` (see `run::child::register_entry`).
    pub fn native(
        entry: &'static str,
        payload: Packet,
        name: Option<String>,
        daemon: Option<bool>,
        method: Option<StartMethod>,
    ) -> Process {
        Self::with_target(Target::Native { entry, payload: Some(payload) }, name, daemon, method)
    }

    fn with_target(target: Target, name: Option<String>, daemon: Option<bool>, method: Option<StartMethod>) -> Process {
        let (identity, default_name, parent_daemon) = state::with(|s| {
            s.counter += 1;
            let mut id = s.identity.clone();
            id.push(s.counter);
            let name = format!("Process-{}", id.iter().map(u32::to_string).collect::<Vec<_>>().join(":"));
            (id, name, s.daemon)
        });
        Process(Rc::new(RefCell::new(Inner {
            role: Role::Child,
            target,
            name: name.unwrap_or(default_name),
            daemon: daemon.unwrap_or(parent_daemon),
            identity,
            method,
            popen: None,
            creator: this_pid(),
            known_pid: None,
            parent_fd: None,
            closed: false,
        })))
    }

    /// `current_process()`.
    pub fn current() -> Process {
        let (name, daemon, identity) = state::with(|s| (s.name.clone(), s.daemon, s.identity.clone()));
        Self::known(Role::Current, name, daemon, identity, this_pid())
    }

    /// `parent_process()`: `None` in the main process.
    pub fn parent() -> Option<Process> {
        let p = state::with(|s| s.parent.clone())?;
        Some(Self::known(Role::Parent, p.name, false, Vec::new(), p.pid))
    }

    fn known(role: Role, name: String, daemon: bool, identity: Vec<u32>, pid: i32) -> Process {
        Process(Rc::new(RefCell::new(Inner {
            role,
            target: Target::Script { func: None, args: Array::new() },
            name,
            daemon,
            identity,
            method: None,
            popen: None,
            creator: this_pid(),
            known_pid: Some(pid),
            parent_fd: None,
            closed: false,
        })))
    }

    /// Whether two handles refer to the same process.
    pub fn same(&self, other: &Process) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }

    fn check_closed(&self) -> MpResult<()> {
        if self.0.borrow().closed {
            return Err(mp_err!(ValueError, "process object is closed"));
        }
        Ok(())
    }

    /// The script target and its arguments, if this process has one (`run()`).
    pub fn script_target(&self) -> Option<(FnPtr, Array)> {
        match &self.0.borrow().target {
            Target::Script { func: Some(f), args } => Some((f.clone(), args.clone())),
            _ => None,
        }
    }

    /// The process's name.
    pub fn name(&self) -> String {
        self.0.borrow().name.clone()
    }

    /// Renames it (a started child keeps the name it started with).
    pub fn set_name(&self, name: String) {
        self.0.borrow_mut().name = name;
    }

    /// Whether it is a daemon.
    pub fn daemon(&self) -> bool {
        self.0.borrow().daemon
    }

    /// Makes it a daemon or not (before `start()` only).
    pub fn set_daemon(&self, daemon: bool) -> MpResult<()> {
        let mut i = self.0.borrow_mut();
        if i.popen.is_some() {
            return Err(mp_err!(AssertionError, "process has already started"));
        }
        if i.role != Role::Child {
            return Err(mp_err!(AssertionError, "can only set daemon on a process object this process made"));
        }
        i.daemon = daemon;
        Ok(())
    }

    /// Its pid (`None` before `start()`).
    pub fn pid(&self) -> MpResult<Option<i32>> {
        self.check_closed()?;
        let i = self.0.borrow();
        Ok(i.known_pid.or(i.popen.as_ref().map(Popen::pid)))
    }

    /// A descriptor readable once the process has ended.
    pub fn sentinel(&self) -> MpResult<i32> {
        self.check_closed()?;
        match &self.0.borrow().popen {
            Some(p) => p.sentinel().ok_or_else(|| {
                mp_err!(
                    ValueError,
                    "a process on another MPI rank has no sentinel here: use join(timeout) or is_alive()"
                )
            }),
            None => Err(mp_err!(ValueError, "process not started")),
        }
    }

    /// `()` while running or before start, else the exit code (`-N` after signal N).
    pub fn exitcode(&self) -> MpResult<Option<i32>> {
        self.check_closed()?;
        match &mut self.0.borrow_mut().popen {
            Some(p) => p.poll(),
            None => Ok(None),
        }
    }

    /// Whether it is running.
    pub fn is_alive(&self) -> MpResult<bool> {
        self.check_closed()?;
        let (role, pid) = {
            let i = self.0.borrow();
            (i.role, i.known_pid)
        };
        match role {
            Role::Current => Ok(true),
            Role::Parent => Ok(pid.is_some() && !self.parent_ended(Deadline::now())?),
            Role::Child => {
                let done = match &mut self.0.borrow_mut().popen {
                    None => return Ok(false),
                    Some(p) => p.poll()?.is_some(),
                };
                if done {
                    self.forget();
                }
                Ok(!done)
            }
        }
    }

    /// For a `Parent` object: waits at most until `deadline` for the parent to end, and
    /// says whether it has (a parent that ended but was not reaped yet has ended: its pidfd
    /// says so). Without a pidfd (out of descriptors) it polls the pid.
    fn parent_ended(&self, deadline: Deadline) -> MpResult<bool> {
        let mut i = self.0.borrow_mut();
        let Some(pid) = i.known_pid else { return Ok(true) };
        if i.parent_fd.is_none() {
            match crate::base::sys::pidfd_open(pid) {
                Ok(fd) => i.parent_fd = Some(Some(fd)),
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => i.parent_fd = Some(None),
                Err(_) => {}
            }
        }
        let fd = match &i.parent_fd {
            Some(None) => return Ok(true),
            Some(Some(fd)) => Some(crate::base::sys::borrow_fd(std::os::fd::AsRawFd::as_raw_fd(fd))),
            None => None,
        };
        drop(i);
        if let Some(fd) = fd {
            // (The descriptor stays open: only this object owns it, and it lives on.)
            return Ok(crate::transport::poll::wait_readable(fd, deadline)?);
        }
        loop {
            if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
                return Ok(true);
            }
            if deadline.passed() {
                return Ok(false);
            }
            crate::base::interrupt::check()?;
            std::thread::sleep(deadline.slice(std::time::Duration::from_millis(10)));
        }
    }

    /// Removes this process from the live children list.
    fn forget(&self) {
        CHILDREN.with(|c| c.borrow_mut().retain(|c| !c.same(self)));
    }

    /// Starts the child: checks Python's preconditions, encodes the call, and launches it
    /// with the object's start method (or the default).
    pub fn start(&self, ctx: &NativeCallContext) -> MpResult<()> {
        self.start_in(Some(ctx), None)
    }

    /// Starts the child from outside any native call (a pool replacing a worker while a
    /// `for` loop reads its results). Under `fork` it needs `server`, a fork server made
    /// earlier (a forked child needs the script's running context).
    pub fn start_detached(&self, server: Option<&fork::Server>) -> MpResult<()> {
        self.start_in(None, server)
    }

    /// Checks Python's preconditions for starting a child from this process: not a daemon,
    /// not bootstrapping (the missing `__main__` guard).
    pub fn check_startable() -> MpResult<()> {
        let (daemonic, bootstrapping) = state::with(|s| (s.daemon, s.bootstrapping));
        // The missing guard first: a pool worker (a daemon) re-running the top level would
        // otherwise report its own daemon status, which is not the problem.
        if bootstrapping {
            return Err(mp_err!(RuntimeError, "{GUARD_MESSAGE}"));
        }
        if daemonic {
            return Err(mp_err!(AssertionError, "daemonic processes are not allowed to have children"));
        }
        Ok(())
    }

    fn start_in(&self, ctx: Option<&NativeCallContext>, server: Option<&fork::Server>) -> MpResult<()> {
        self.check_closed()?;
        {
            let i = self.0.borrow();
            if i.popen.is_some() {
                return Err(mp_err!(AssertionError, "cannot start a process twice"));
            }
            if i.role != Role::Child || i.creator != this_pid() {
                return Err(mp_err!(AssertionError, "can only start a process object created by current process"));
            }
        }
        Self::check_startable()?;
        reap_finished();

        let (info, method) = {
            let i = self.0.borrow();
            let method = i.method.unwrap_or_else(state::default_method);
            let parent = state::with(|s| ParentInfo { pid: this_pid(), name: s.name.clone() });
            (ChildInfo { identity: i.identity.clone(), name: i.name.clone(), daemon: i.daemon, parent, method }, method)
        };
        let popen = match (method, server) {
            (StartMethod::Fork, None) => {
                let ctx = ctx.ok_or_else(|| {
                    mp_err!(RuntimeError, "a fork child can only be started from a function call, not by a for loop")
                })?;
                fork::launch(info, self.fork_call()?, ctx)?
            }
            (StartMethod::Fork, Some(server)) => forkserver::launch_at(&server.addr, self.boot(info)?)?,
            (StartMethod::Spawn, _) => spawn::launch(self.boot(info)?)?,
            (StartMethod::ForkServer, _) => forkserver::launch(self.boot(info)?)?,
            (StartMethod::Mpi, _) => {
                let call = self.encode_remote_call()?;
                Popen::Remote(remote::launch(&info, call)?)
            }
        };
        self.0.borrow_mut().popen = Some(popen);
        CHILDREN.with(|c| c.borrow_mut().push(self.clone()));
        Ok(())
    }

    /// The encoded call, taking a native target's arguments.
    fn encode_call(&self) -> MpResult<Packet> {
        match &mut self.0.borrow_mut().target {
            Target::Script { func, args } => {
                let target = func.clone().map_or(Dynamic::UNIT, Dynamic::from);
                Call::encode_script(&target, &Dynamic::from_array(args.clone()))
            }
            Target::Native { entry, payload } => {
                let payload = payload.take().ok_or_else(|| mp_err!(AssertionError, "cannot start a process twice"))?;
                Ok(Call::encode_native(entry, payload))
            }
        }
    }

    /// The encoded call for a process on another rank (objects that live in this host's
    /// memory cannot go there: `SerializationError`).
    fn encode_remote_call(&self) -> MpResult<Vec<u8>> {
        match &self.0.borrow().target {
            Target::Script { func, args } => {
                let target = func.clone().map_or(Dynamic::UNIT, Dynamic::from);
                Call::encode_script_remote(&target, &Dynamic::from_array(args.clone()))
            }
            Target::Native { .. } => Err(mp_err!(ValueError, "runtime processes do not start on other ranks")),
        }
    }

    /// The boot message of a child that decodes its call (all but a plain fork).
    fn boot(&self, info: ChildInfo) -> MpResult<Boot> {
        let call = self.encode_call()?;
        Ok(state::with(|s| Boot {
            mode: Mode::Child,
            info,
            script: s.script.clone(),
            argv: s.argv.clone(),
            forkserver: s.forkserver.clone(),
            call,
        }))
    }

    /// The call of a plain fork child. A script call is checked to cross (so scripts behave
    /// the same under every method), but the child gets the very values: as in Python, a
    /// forked child uses the parent's objects, so closing an inherited Connection closes it.
    fn fork_call(&self) -> MpResult<Call> {
        let packet = self.encode_call()?;
        match &self.0.borrow().target {
            Target::Script { func: None, .. } => Ok(Call::Nothing),
            Target::Script { func: Some(f), args } => Ok(Call::Script(f.clone(), args.clone())),
            Target::Native { .. } => Call::decode(packet),
        }
    }

    /// Waits for the child to end, at most until `deadline`.
    pub fn join(&self, deadline: Deadline) -> MpResult<()> {
        self.check_closed()?;
        if self.0.borrow().role == Role::Parent {
            // Python's `_ParentProcess.join(timeout)`: wait for the parent to end.
            return self.parent_ended(deadline).map(drop);
        }
        let done = {
            let mut i = self.0.borrow_mut();
            if i.role != Role::Child || i.creator != this_pid() {
                return Err(mp_err!(AssertionError, "can only join a child process"));
            }
            match &mut i.popen {
                None => return Err(mp_err!(AssertionError, "can only join a started process")),
                Some(p) => p.wait(deadline)?.is_some(),
            }
        };
        if done {
            self.forget();
        }
        // Ctrl-C reaches the child too, which may end before the wait notices the signal:
        // the join is still what was interrupted (nothing is lost by saying so).
        Ok(crate::base::interrupt::check()?)
    }

    fn send_signal(&self, sig: Signal, what: &str) -> MpResult<()> {
        self.check_closed()?;
        let mut i = self.0.borrow_mut();
        if i.role != Role::Child {
            let whom = if i.role == Role::Current { "this process (use exit())" } else { "the parent process" };
            return Err(mp_err!(AssertionError, "can only {what} a child process, not {whom}"));
        }
        match &mut i.popen {
            Some(p) => p.signal(sig),
            None => Err(mp_err!(AssertionError, "can only {what} a started process")),
        }
    }

    /// SIGINT (Python 3.14's `interrupt()`): the child gets `KeyboardInterrupt`.
    pub fn interrupt(&self) -> MpResult<()> {
        self.send_signal(Signal::SIGINT, "interrupt")
    }

    /// SIGTERM.
    pub fn terminate(&self) -> MpResult<()> {
        self.send_signal(Signal::SIGTERM, "terminate")
    }

    /// SIGKILL.
    pub fn kill(&self) -> MpResult<()> {
        self.send_signal(Signal::SIGKILL, "kill")
    }

    /// Releases the process's resources; it must have ended.
    pub fn close(&self) -> MpResult<()> {
        {
            let mut i = self.0.borrow_mut();
            if let Some(p) = &mut i.popen {
                if p.poll()?.is_none() {
                    return Err(mp_err!(ValueError, "Cannot close a process while it is still running. You should first call join() or terminate()."));
                }
            }
            i.popen = None;
            i.closed = true;
        }
        self.forget();
        Ok(())
    }

    /// Python's repr: `<Process name='Process-1' pid=12 parent=11 started daemon>`.
    pub fn describe(&self) -> String {
        let mut i = self.0.borrow_mut();
        let kind = match i.role {
            Role::Child => "Process",
            Role::Current if i.identity.is_empty() => "_MainProcess",
            Role::Current => "Process",
            Role::Parent => "_ParentProcess",
        };
        let mut s = format!("<{kind} name='{}'", i.name);
        if i.closed {
            s.push_str(" closed>");
            return s;
        }
        let pid = i.known_pid.or(i.popen.as_ref().map(Popen::pid));
        if let Some(pid) = pid {
            s.push_str(&format!(" pid={pid}"));
        }
        if i.role == Role::Child {
            s.push_str(&format!(" parent={}", i.creator));
        }
        let role = i.role;
        let status = match (&mut i.popen, role) {
            (_, Role::Current) | (_, Role::Parent) => "started".to_string(),
            (None, _) => "initial".to_string(),
            (Some(p), _) => match p.poll() {
                Ok(Some(code)) => format!("stopped exitcode={code}"),
                _ => "started".to_string(),
            },
        };
        s.push(' ');
        s.push_str(&status);
        if i.daemon {
            s.push_str(" daemon");
        }
        s.push('>');
        s
    }
}

thread_local! {
    /// This process's live children, as `active_children()` returns them.
    static CHILDREN: RefCell<Vec<Process>> = const { RefCell::new(Vec::new()) };
}

/// Makes this process a child described by `info` (its place in the tree, the state a
/// `fork` copied made its own): it has no children of its own yet.
pub fn enter_child(info: ChildInfo) {
    state::enter_child(info);
    CHILDREN.with(|c| c.borrow_mut().clear());
}

/// Drops finished children from the live list (Python does this on every start).
pub(crate) fn reap_finished() {
    let children = CHILDREN.with(|c| c.borrow().clone());
    for c in children {
        let _ = c.is_alive();
    }
}

/// `active_children()`: the live children of this process.
pub fn active_children() -> Vec<Process> {
    reap_finished();
    CHILDREN.with(|c| c.borrow().clone())
}

/// After SIGTERM or SIGHUP: every child gets SIGTERM (daemon or not), then is joined — and
/// killed if it is still there after a few seconds — and the forkserver is stopped.
pub(crate) fn at_exit_signalled() {
    let children = active_children();
    for c in &children {
        let _ = c.terminate();
    }
    let deadline = Deadline::after_secs(5.0);
    for c in children {
        if c.join(deadline).is_err() || matches!(c.exitcode(), Ok(None)) {
            let _ = c.kill();
            let _ = c.join(Deadline::NEVER);
        }
    }
    forkserver::stop_server();
}

/// At the end of a main script or a child's target: terminate daemon children, then join
/// every child (Python's `_exit_function`).
pub fn at_exit() {
    for c in active_children() {
        if c.daemon() {
            let _ = c.terminate();
        }
    }
    for c in active_children() {
        let _ = c.join(Deadline::NEVER);
    }
    forkserver::stop_server();
}
