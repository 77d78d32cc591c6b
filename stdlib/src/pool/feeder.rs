//! The pool's feeder: a thread that puts tasks on the task queue when the queue cannot take
//! them at once. That happens only to tasks carrying handles (a captured Queue, a Lock in
//! the arguments …) once a few hundred of them wait: their descriptors travel on a socket
//! whose buffer is then full. Python's pool always feeds from a thread; rhai-mp puts from
//! the script's thread and starts this one only when needed, so that `apply_async` never
//! blocks and tasks reach the workers while the script does something else.
//!
//! The thread has its own handle on the queue (made from copies of its descriptors) and
//! gets plain bytes and descriptors, never Rhai values. It stops when the pool drops it.

use crate::queue::{Flavour, QueueCore};
use rhai_mp_core::prelude::{Deadline, ErrorKind, MpResult};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

/// A task's bytes, its function's descriptors (shared by the tasks of a call) and its own.
pub(super) type Task = (Vec<u8>, Arc<Vec<OwnedFd>>, Vec<OwnedFd>);

/// The descriptors of a task, in order: the function's, then its own.
pub(super) fn task_fds<'a>(func: &'a [OwnedFd], own: &'a [OwnedFd]) -> Vec<std::os::fd::BorrowedFd<'a>> {
    use std::os::fd::AsFd;
    func.iter().chain(own).map(AsFd::as_fd).collect()
}

pub(super) struct Feeder {
    tx: Option<mpsc::Sender<Task>>,
    /// Tasks handed over and not yet on the queue.
    pending: Arc<AtomicUsize>,
    cancel: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Feeder {
    pub(super) fn start(queue: &QueueCore) -> MpResult<Feeder> {
        let fds = queue.dup_fds()?;
        let (maxsize, flavour): (u64, Flavour) = (queue.maxsize, queue.flavour);
        let (tx, rx) = mpsc::channel::<Task>();
        let pending = Arc::new(AtomicUsize::new(0));
        let cancel = Arc::new(AtomicBool::new(false));
        let (p, c) = (pending.clone(), cancel.clone());
        let thread = std::thread::Builder::new()
            .name("rhai-mp-pool-feeder".into())
            .spawn(move || {
                let Ok(queue) = QueueCore::from_fds(fds, maxsize, flavour) else { return };
                for (bytes, func, own) in rx {
                    let fds = task_fds(&func, &own);
                    loop {
                        if c.load(Ordering::SeqCst) {
                            return;
                        }
                        match queue.put_fds(&[&bytes], &fds, true, Deadline::after_secs(0.1)) {
                            Ok(()) => break,
                            Err(e) if e.kind == ErrorKind::Full => continue,
                            Err(_) => return,
                        }
                    }
                    p.fetch_sub(1, Ordering::SeqCst);
                }
            })
            .map_err(|e| rhai_mp_core::prelude::MpError::os("cannot start the pool's feeder thread", e))?;
        Ok(Feeder { tx: Some(tx), pending, cancel, thread: Some(thread) })
    }

    /// Whether tasks handed over earlier are still waiting (later ones must queue behind).
    pub(super) fn busy(&self) -> bool {
        self.pending.load(Ordering::SeqCst) > 0
    }

    pub(super) fn send(&self, task: Task) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if let Some(tx) = &self.tx {
            let _ = tx.send(task);
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
