//! `Queue` and `JoinableQueue` (see the reference, "Queues"): the script bindings. The
//! machinery, a shared-memory log with no feeder thread, is `log.rs`; `SimpleQueue` is
//! `simple.rs`.
//!
//! Because a queue is a log in shared memory, `put` never needs a reader to make progress
//! (unless `maxsize` is reached), and a process that put items and then exits loses nothing
//! and never deadlocks — Python's "put a large item, then join the producer" example just
//! works. Caveat: like Python's, `qsize()` is a snapshot.

mod log;
mod simple;

pub(crate) use log::{Flavour, QueueCore};
pub use simple::simple_queue_functions;
pub use simple::SimpleQueue;

use crate::opts;
use rhai::plugin::*;
use rhai::{Dynamic, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpResult};
use rhai_mp_core::wire::{Handle, Portable, Reader, Writer};
use std::rc::Rc;

/// A queue handle (`Queue` or `JoinableQueue`). Copies share the queue; `close()` applies to
/// this process's handle.
#[derive(Debug, Clone)]
pub struct Queue(pub Rc<QueueCore>);

impl Portable for Queue {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        self.0.write(w)
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(Queue(Rc::new(QueueCore::read(r)?)))
    }
}

impl Handle for Queue {
    const KIND: &'static str = "Queue";
    const ELSEWHERE: &'static str = "a TCP manager's m.Queue() (Manager() under MPI, else Manager(#{address: ..}))";
}

pub(crate) fn maxsize(n: &Dynamic, func: &str) -> MpResult<u64> {
    // 0 or less is no limit, as in Python.
    Ok(opts::arg_int(n, func, "maxsize")?.max(0) as u64)
}

fn block_timeout(block: bool, timeout: &Dynamic, func: &str) -> MpResult<Deadline> {
    let deadline = opts::timeout_deadline(timeout, func)?;
    Ok(if block { deadline } else { Deadline::NEVER })
}

/// `block` and `timeout` of a `get` or `put`, positional or in a keyword map
/// (`q.get(#{timeout: 0.5})`): whether to wait, and until when.
pub(crate) fn block_and_deadline(func: &str, given: Vec<Dynamic>) -> MpResult<(bool, Deadline)> {
    let [block, timeout] = opts::keywords(func, ["block", "timeout"], 0, given)?;
    let block = match block {
        None => true,
        Some(b) => opts::arg_bool(&b, func, "block")?,
    };
    let deadline = match timeout {
        None => Deadline::NEVER,
        Some(t) => block_timeout(block, &t, func)?,
    };
    Ok((block, deadline))
}

/// The Rhai bindings: `Queue`, `JoinableQueue` and their methods.
#[export_module]
pub mod queue_functions {
    use super::*;

    /// A process-safe FIFO queue (`Queue`) or one that counts unfinished tasks
    /// (`JoinableQueue`).
    pub type Queue = super::Queue;

    /// An unbounded queue.
    ///
    /// ```rhai
    /// let q = Queue();
    /// q.put([42, (), "hello"]);
    /// print(q.get());
    /// ```
    ///
    /// Throws when: the OS refuses the shared memory (`OSError`).
    #[rhai_fn(name = "Queue", return_raw)]
    pub fn queue() -> Result<Queue, Box<EvalAltResult>> {
        queue_max(Dynamic::from(0 as INT))
    }

    /// A queue holding at most `maxsize` items (`0`: no limit); `put` waits for room.
    ///
    /// ```rhai
    /// let q = Queue(10);
    /// ```
    ///
    /// Throws when: `maxsize` is not an integer (`TypeError`; `0` or less is no limit, as
    /// in Python); the OS refuses (`OSError`).
    #[rhai_fn(name = "Queue", return_raw)]
    pub fn queue_max(maxsize: Dynamic) -> Result<Queue, Box<EvalAltResult>> {
        Ok(super::Queue(Rc::new(QueueCore::new(Flavour::Queue, super::maxsize(&maxsize, "Queue")?)?)))
    }

    /// A queue whose `join()` waits until every item put has been marked `task_done()`.
    ///
    /// ```rhai
    /// let q = JoinableQueue();
    /// ```
    ///
    /// Throws when: the OS refuses the shared memory (`OSError`).
    #[rhai_fn(name = "JoinableQueue", return_raw)]
    pub fn joinable() -> Result<Queue, Box<EvalAltResult>> {
        joinable_max(Dynamic::from(0 as INT))
    }

    /// A JoinableQueue holding at most `maxsize` items.
    ///
    /// ```rhai
    /// let q = JoinableQueue(100);
    /// ```
    ///
    /// Throws when: `maxsize` is not an integer (`TypeError`; `0` or less is no limit); the
    /// OS refuses (`OSError`).
    #[rhai_fn(name = "JoinableQueue", return_raw)]
    pub fn joinable_max(maxsize: Dynamic) -> Result<Queue, Box<EvalAltResult>> {
        Ok(super::Queue(Rc::new(QueueCore::new(Flavour::Joinable, super::maxsize(&maxsize, "JoinableQueue")?)?)))
    }

    /// Puts an item, waiting for room if the queue is full.
    ///
    /// ```rhai
    /// q.put(#{job: 1});
    /// ```
    ///
    /// Throws when: the item cannot be sent (`SerializationError`); the queue was closed in
    /// this process (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn put(q: &mut Queue, item: Dynamic) -> Result<(), Box<EvalAltResult>> {
        Ok(q.0.put_value(item, true, Deadline::NEVER)?)
    }

    /// Puts an item; with `block == false`, throws `Full` at once instead of waiting. The
    /// options may be a map: `q.put(item, #{block: false})`, `q.put(item, #{timeout: 1})`.
    ///
    /// ```rhai
    /// q.put(1, false);
    /// q.put(2, #{timeout: 0.5});
    /// ```
    ///
    /// Throws when: the queue is full and `block` is false (`Full`; also when another
    /// process holds the queue's lock for more than a moment, 10 ms: stopped while using
    /// it); no room in time (`Full`); an unknown option (`ValueError`); as `put(item)`.
    #[rhai_fn(global, name = "put", return_raw)]
    pub fn put_block(q: &mut Queue, item: Dynamic, block: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let (block, deadline) = block_and_deadline("put", vec![block])?;
        Ok(q.0.put_value(item, block, deadline)?)
    }

    /// Puts an item, waiting at most `timeout` seconds for room (`()`: no limit).
    ///
    /// ```rhai
    /// try { q.put(1, true, 0.5) } catch (e) { if e.type == "Full" { print("no room") } }
    /// ```
    ///
    /// Throws when: no room in time (`Full`; also when another process holds the queue's
    /// lock through the timeout: stopped while using it); `timeout` is negative
    /// (`ValueError`); as `put(item)`.
    #[rhai_fn(global, name = "put", return_raw)]
    pub fn put_timeout(
        q: &mut Queue,
        item: Dynamic,
        block: Dynamic,
        timeout: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        let (block, deadline) = block_and_deadline("put", vec![block, timeout])?;
        Ok(q.0.put_value(item, block, deadline)?)
    }

    /// `put(item, false)`.
    ///
    /// ```rhai
    /// q.put_nowait(1);
    /// ```
    ///
    /// Throws when: the queue is full, or another process holds its lock for more than a
    /// moment (`Full`); as `put(item)`.
    #[rhai_fn(global, return_raw)]
    pub fn put_nowait(q: &mut Queue, item: Dynamic) -> Result<(), Box<EvalAltResult>> {
        Ok(q.0.put_value(item, false, Deadline::NEVER)?)
    }

    /// Takes the oldest item, waiting for one.
    ///
    /// ```rhai
    /// let item = q.get();
    /// ```
    ///
    /// Throws when: the queue was closed in this process (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn get(q: &mut Queue) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(q.0.get_value(true, Deadline::NEVER)?)
    }

    /// Takes the oldest item; with `block == false`, throws `Empty` at once if there is none.
    /// The options may be a map: `q.get(#{timeout: 0.5})`, `q.get(#{block: false})`.
    ///
    /// ```rhai
    /// try { q.get(false) } catch (e) { if e.type == "Empty" { print("nothing") } }
    /// try { q.get(#{timeout: 0.1}) } catch (e) { print(e.type) }
    /// ```
    ///
    /// Throws when: the queue is empty and `block` is false (`Empty`; also when another
    /// process holds the queue's lock for more than a moment, 10 ms: stopped while using
    /// it, as Python's `get(False)` gives up on its lock); no item in time (`Empty`); an
    /// unknown option (`ValueError`); as `get()`.
    #[rhai_fn(global, name = "get", return_raw)]
    pub fn get_block(q: &mut Queue, block: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        let (block, deadline) = block_and_deadline("get", vec![block])?;
        Ok(q.0.get_value(block, deadline)?)
    }

    /// Takes the oldest item, waiting at most `timeout` seconds (`()`: no limit).
    ///
    /// ```rhai
    /// let item = q.get(true, 1.5);
    /// ```
    ///
    /// Throws when: no item in time (`Empty`; also when another process holds the queue's
    /// lock through the timeout: stopped while using it); `timeout` is negative
    /// (`ValueError`); as `get()`.
    #[rhai_fn(global, name = "get", return_raw)]
    pub fn get_timeout(q: &mut Queue, block: Dynamic, timeout: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        let (block, deadline) = block_and_deadline("get", vec![block, timeout])?;
        Ok(q.0.get_value(block, deadline)?)
    }

    /// `get(false)`.
    ///
    /// ```rhai
    /// let item = q.get_nowait();
    /// ```
    ///
    /// Throws when: the queue is empty, or another process holds its lock for more than a
    /// moment (`Empty`); as `get()`.
    #[rhai_fn(global, return_raw)]
    pub fn get_nowait(q: &mut Queue) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(q.0.get_value(false, Deadline::NEVER)?)
    }

    /// The number of items (a snapshot: other processes may change it at once).
    ///
    /// ```rhai
    /// print(q.qsize());
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, pure)]
    pub fn qsize(q: &mut Queue) -> INT {
        q.0.qsize() as INT
    }

    /// Whether the queue is empty (a snapshot).
    ///
    /// ```rhai
    /// while !q.empty() { print(q.get()); }
    /// ```
    ///
    /// Throws when: this process put items on the queue and then closed it (`OSError`
    /// "handle is closed", as Python, whose feeder thread closed its pipe).
    #[rhai_fn(global, pure, return_raw)]
    pub fn empty(q: &mut Queue) -> Result<bool, Box<EvalAltResult>> {
        Ok(q.0.empty_checked()?)
    }

    /// Whether the queue holds `maxsize` items (a snapshot; always false without a limit).
    ///
    /// ```rhai
    /// if !q.full() { q.put(1); }
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, pure)]
    pub fn full(q: &mut Queue) -> bool {
        q.0.full()
    }

    /// This process will put and get no more: later `put`/`get` here throw `ValueError`.
    /// Items already put stay in the queue for other processes.
    ///
    /// ```rhai
    /// q.close();
    /// q.join_thread();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global)]
    pub fn close(q: &mut Queue) {
        q.0.close()
    }

    /// Python waits here for the feeder thread to flush; rhai-mp's `put` is already done
    /// when it returns, so this only checks that `close()` came first.
    ///
    /// ```rhai
    /// q.close();
    /// q.join_thread();
    /// ```
    ///
    /// Throws when: the queue was not closed (`AssertionError`).
    #[rhai_fn(global, return_raw)]
    pub fn join_thread(q: &mut Queue) -> Result<(), Box<EvalAltResult>> {
        if !q.0.is_closed() {
            return Err(mp_err!(AssertionError, "{} not closed", q.0.flavour.name()).into());
        }
        Ok(())
    }

    /// Does nothing: rhai-mp never holds items back in a process, so there is nothing to
    /// flush or lose at exit.
    ///
    /// ```rhai
    /// q.cancel_join_thread();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global)]
    pub fn cancel_join_thread(_q: &mut Queue) {}

    /// Marks one item taken with `get()` as processed (JoinableQueue).
    ///
    /// ```rhai
    /// let job = q.get();
    /// work(job);
    /// q.task_done();
    /// ```
    ///
    /// Throws when: called more often than items were put (`ValueError`); the queue is not a
    /// JoinableQueue (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn task_done(q: &mut Queue) -> Result<(), Box<EvalAltResult>> {
        if q.0.flavour != Flavour::Joinable {
            return Err(mp_err!(ValueError, "task_done() needs a JoinableQueue, not a Queue").into());
        }
        Ok(q.0.task_done()?)
    }

    /// Waits until every item put has been marked with `task_done()` (JoinableQueue).
    ///
    /// ```rhai
    /// q.join();
    /// ```
    ///
    /// Throws when: the queue is not a JoinableQueue (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn join(q: &mut Queue) -> Result<(), Box<EvalAltResult>> {
        if q.0.flavour != Flavour::Joinable {
            return Err(mp_err!(ValueError, "join() needs a JoinableQueue, not a Queue").into());
        }
        Ok(q.0.join()?)
    }

    /// `<Queue qsize=3 maxsize=0>` (or `<JoinableQueue ..>`).
    ///
    /// ```rhai
    /// print(q);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(q: &mut Queue) -> String {
        format!(
            "<{} qsize={} maxsize={}{}>",
            q.0.flavour.name(),
            q.0.qsize(),
            q.0.maxsize,
            if q.0.is_closed() { " closed" } else { "" }
        )
    }
}

/// queue's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::{handle, mirror, section};
    crate::registry::Primitive {
        name: "queue",
        group: "Queues",
        sections: &[
            section(
                "Queue and JoinableQueue",
                &[("Queue", "q")],
                &["Queue", "JoinableQueue"],
                &["Queue(", "JoinableQueue("],
            ),
            section("SimpleQueue", &[("SimpleQueue", "q")], &["SimpleQueue"], &["SimpleQueue("]),
        ],
        functions,
        module: None,
        handles: &[handle::<Queue>(), handle::<SimpleQueue>()],
        machinery: None,
        mirrors: &[mirror("Queue", &[0, 1]), mirror("JoinableQueue", &[0, 1]), mirror("SimpleQueue", &[0])],
        managed: &[crate::manager::Kind::Queue, crate::manager::Kind::JoinableQueue],
    }
};

/// Registers queue's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "queue", queue_functions);
    rhai::combine_with_exported_module!(lib, "simple_queue", simple_queue_functions);
}
