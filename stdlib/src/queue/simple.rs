//! `SimpleQueue` (see the reference, "Queues"): an unbounded queue with only `put`, `get`,
//! `empty` and `close`, on the same shared-memory log as `Queue` (`log.rs`).

use super::log::{Flavour, QueueCore};
use rhai::plugin::*;
use rhai::Dynamic;
use rhai_mp_core::prelude::{Deadline, MpResult};
use rhai_mp_core::wire::{Handle, Portable, Reader, Writer};
use std::rc::Rc;

/// A SimpleQueue handle; copies share the queue.
#[derive(Debug, Clone)]
pub struct SimpleQueue(pub Rc<QueueCore>);

impl Portable for SimpleQueue {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        self.0.write(w)
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(SimpleQueue(Rc::new(QueueCore::read(r)?)))
    }
}

impl Handle for SimpleQueue {
    const KIND: &'static str = "SimpleQueue";
    const ELSEWHERE: &'static str = "a TCP manager's m.Queue() (Manager() under MPI, else Manager(#{address: ..}))";
}

/// The Rhai bindings: `SimpleQueue` and its methods.
#[export_module]
pub mod simple_queue_functions {
    use super::*;

    /// An unbounded, process-safe FIFO queue with a minimal interface.
    pub type SimpleQueue = super::SimpleQueue;

    /// A new SimpleQueue.
    ///
    /// ```rhai
    /// let q = SimpleQueue();
    /// q.put(1);
    /// print(q.get());
    /// ```
    ///
    /// Throws when: the OS refuses the shared memory (`OSError`).
    #[rhai_fn(name = "SimpleQueue", return_raw)]
    pub fn simple_queue() -> Result<SimpleQueue, Box<EvalAltResult>> {
        Ok(super::SimpleQueue(Rc::new(QueueCore::new(Flavour::Simple, 0)?)))
    }

    /// Puts an item.
    ///
    /// ```rhai
    /// q.put("job");
    /// ```
    ///
    /// Throws when: the item cannot be sent (`SerializationError`); the queue was closed in
    /// this process (`OSError` "handle is closed", as Python).
    #[rhai_fn(global, return_raw)]
    pub fn put(q: &mut SimpleQueue, item: Dynamic) -> Result<(), Box<EvalAltResult>> {
        Ok(q.0.put_value(item, true, Deadline::NEVER)?)
    }

    /// Takes the oldest item, waiting for one.
    ///
    /// ```rhai
    /// let item = q.get();
    /// ```
    ///
    /// Throws when: the queue was closed in this process (`OSError` "handle is closed").
    #[rhai_fn(global, return_raw)]
    pub fn get(q: &mut SimpleQueue) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(q.0.get_value(true, Deadline::NEVER)?)
    }

    /// Whether the queue is empty (a snapshot).
    ///
    /// ```rhai
    /// if q.empty() { print("nothing yet"); }
    /// ```
    ///
    /// Throws when: the queue was closed in this process (`OSError` "handle is closed").
    #[rhai_fn(global, pure, return_raw)]
    pub fn empty(q: &mut SimpleQueue) -> Result<bool, Box<EvalAltResult>> {
        Ok(q.0.empty_checked()?)
    }

    /// This process will put and get no more (items stay for other processes): later
    /// `put`, `get` and `empty` here throw `OSError`.
    ///
    /// ```rhai
    /// q.close();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global)]
    pub fn close(q: &mut SimpleQueue) {
        q.0.close()
    }

    /// `<SimpleQueue>`.
    ///
    /// ```rhai
    /// print(q);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(q: &mut SimpleQueue) -> String {
        format!("<SimpleQueue{}>", if q.0.is_closed() { " closed" } else { "" })
    }
}
