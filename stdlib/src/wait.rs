//! `wait(objects)`, `wait(objects, timeout)`: like `multiprocessing.connection.wait`, over
//! connections (a message or the end of the stream), queues (an item can be got), processes
//! and process sentinels (the process ended), and raw file descriptors.

use crate::connection::Connection;
use crate::opts;
use crate::queue::{Queue, SimpleQueue};
use rhai::plugin::*;
use rhai::{Array, Dynamic};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpResult};
use rhai_mp_core::tree::process::Process;

/// The descriptor that becomes readable when `obj` is ready.
fn fd_of(obj: &Dynamic, i: usize) -> MpResult<i32> {
    if let Some(c) = obj.read_lock::<Connection>() {
        return c.raw_fd();
    }
    if let Some(q) = obj.read_lock::<Queue>() {
        return q.0.ready_fd();
    }
    if let Some(q) = obj.read_lock::<SimpleQueue>() {
        return q.0.ready_fd();
    }
    if let Some(p) = obj.read_lock::<Process>() {
        return p.sentinel();
    }
    if let Ok(fd) = obj.as_int() {
        // A negative number is no descriptor (poll would ignore it, and wait forever).
        return i32::try_from(fd)
            .ok()
            .filter(|&fd| fd >= 0)
            .ok_or_else(|| mp_err!(ValueError, "objects[{i}]: {fd} is not a file descriptor"));
    }
    Err(mp_err!(
        TypeError,
        "objects[{i}]: wait() takes connections, queues, processes and sentinels, not {}",
        opts::type_name(obj)
    ))
}

fn wait_for(objects: Array, deadline: Deadline) -> MpResult<Array> {
    let fds = objects.iter().enumerate().map(|(i, o)| fd_of(o, i)).collect::<MpResult<Vec<i32>>>()?;
    if fds.is_empty() {
        return Ok(Array::new());
    }
    let borrowed: Vec<_> = fds.iter().map(|&fd| rhai_mp_core::base::sys::borrow_fd(fd)).collect();
    let ready = rhai_mp_core::transport::poll::wait_any(&borrowed, deadline)?;
    Ok(objects.into_iter().zip(ready).filter(|(_, r)| *r).map(|(o, _)| o).collect())
}

/// The Rhai bindings: `wait(objects)`.
#[export_module]
pub mod wait_functions {
    use super::*;

    /// Waits until at least one of `objects` is ready and returns the ready ones: a
    /// Connection with a message (or at the end of its stream), a queue with an item, a
    /// Process (or its `sentinel`) that has ended, or any readable file descriptor.
    ///
    /// ```rhai
    /// for ready in wait([conn, q, p.sentinel]) { print(ready); }
    /// ```
    ///
    /// Throws when: an object is of another type (`TypeError`); a number is not a file
    /// descriptor (negative or too large: `ValueError`); a connection is closed (`OSError`);
    /// a process was not started or is closed (`ValueError`).
    #[rhai_fn(name = "wait", return_raw)]
    pub fn wait(objects: Dynamic) -> Result<Array, Box<EvalAltResult>> {
        Ok(wait_for(opts::arg_array(objects, "wait", "objects")?, Deadline::NEVER)?)
    }

    /// As `wait(objects)`, but returns `[]` after `timeout` seconds (`()`: no limit).
    ///
    /// ```rhai
    /// let ready = wait([conn], 0.5);
    /// if ready.is_empty() { print("timed out"); }
    /// ```
    ///
    /// Throws when: `timeout` is negative (`ValueError`) or not a number (`TypeError`); as
    /// `wait(objects)`.
    #[rhai_fn(name = "wait", return_raw)]
    pub fn wait_timeout(objects: Dynamic, timeout: Dynamic) -> Result<Array, Box<EvalAltResult>> {
        let [objects, timeout] = opts::keywords("wait", ["objects", "timeout"], 1, vec![objects, timeout])?;
        let objects = opts::arg_array(objects.unwrap_or_default(), "wait", "objects")?;
        Ok(wait_for(objects, opts::timeout_deadline(&timeout.unwrap_or_default(), "wait")?)?)
    }
}

/// wait's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::{mirror, section};
    crate::registry::Primitive {
        name: "wait",
        group: "wait()",
        sections: &[section("", &[], &["wait"], &[])],
        functions,
        module: None,
        handles: &[],
        machinery: None,
        mirrors: &[mirror("wait", &[1, 2])],
        managed: &[],
    }
};

/// Registers wait's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "wait", wait_functions);
}
