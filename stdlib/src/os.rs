//! The `os::` static module: `os::getpid()`, `os::getppid()`, `os::kill(pid)`,
//! `os::kill(pid, signal)` — the helpers a Python user imports from `os`.

use rhai::plugin::*;
use rhai::INT;

/// Signal numbers by name (`"SIGKILL"` or `"KILL"`).
fn signal_by_name(name: &str) -> Option<nix::sys::signal::Signal> {
    let full = if name.starts_with("SIG") { name.to_string() } else { format!("SIG{name}") };
    full.parse().ok()
}

fn send(pid: INT, sig: Option<nix::sys::signal::Signal>) -> Result<(), Box<EvalAltResult>> {
    let target = i32::try_from(pid).map_err(|_| rhai_mp_core::mp_err!(ValueError, "pid {pid} is out of range"))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(target), sig).map_err(|e| {
        rhai_mp_core::prelude::MpError::os(
            &format!("os::kill({pid}, {})", sig.map_or("0", |s| s.as_str())),
            std::io::Error::from_raw_os_error(e as i32),
        )
        .into()
    })
}

/// The Rhai bindings: The `os::` module.
#[export_module]
pub mod os_functions {
    use rhai_mp_core::mp_err;

    /// This process's id.
    ///
    /// ```rhai
    /// print(`I am ${os::getpid()}`);
    /// ```
    ///
    /// Throws when: never.
    pub fn getpid() -> INT {
        std::process::id() as INT
    }

    /// The parent process's id.
    ///
    /// ```rhai
    /// print(`my parent is ${os::getppid()}`);
    /// ```
    ///
    /// Throws when: never.
    pub fn getppid() -> INT {
        nix::unistd::getppid().as_raw() as INT
    }

    /// This machine's host name (on an MPI job: the host of the rank that calls it).
    ///
    /// ```rhai
    /// print(`running on ${os::hostname()}`);
    /// ```
    ///
    /// Throws when: never.
    pub fn hostname() -> String {
        crate::cluster::rank::hostname()
    }

    /// Sends SIGTERM to process `pid`.
    ///
    /// ```rhai
    /// os::kill(p.pid);
    /// ```
    ///
    /// Throws when: there is no such process or it may not be signalled (`OSError`).
    #[rhai_fn(name = "kill", return_raw)]
    pub fn kill_term(pid: Dynamic) -> Result<(), Box<EvalAltResult>> {
        super::send(crate::opts::arg_int(&pid, "os::kill", "pid")?, Some(nix::sys::signal::Signal::SIGTERM))
    }

    /// Sends a signal, by number (`9`) or name (`"SIGKILL"`, `"KILL"`), to process `pid`.
    ///
    /// ```rhai
    /// os::kill(p.pid, "SIGKILL");
    /// ```
    ///
    /// Throws when: the signal is unknown (`ValueError`); there is no such process or it may
    /// not be signalled (`OSError`).
    #[rhai_fn(name = "kill", return_raw)]
    pub fn kill_with(pid: Dynamic, signal: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let pid = crate::opts::arg_int(&pid, "os::kill", "pid")?;
        let sig = if let Ok(0) = signal.as_int() {
            // Signal 0 only checks that the process exists.
            return super::send(pid, None);
        } else if let Ok(n) = signal.as_int() {
            i32::try_from(n).ok().and_then(|n| nix::sys::signal::Signal::try_from(n).ok())
        } else if let Ok(s) = signal.clone().into_string() {
            super::signal_by_name(&s)
        } else {
            return Err(mp_err!(
                TypeError,
                "os::kill() takes a signal number or name, not {}",
                crate::opts::type_name(&signal)
            )
            .into());
        };
        let sig = sig.ok_or_else(|| mp_err!(ValueError, "unknown signal {signal}"))?;
        super::send(pid, Some(sig))
    }
}

/// os's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::module_section;
    crate::registry::Primitive {
        name: "os",
        group: "os::",
        sections: &[module_section("os")],
        functions: |_| {},
        module: Some(|| rhai::exported_module!(os_functions)),
        handles: &[],
        machinery: None,
        mirrors: &[],
        managed: &[],
    }
};
