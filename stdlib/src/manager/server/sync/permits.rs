//! The one waiting mechanism under every primitive a TCP manager's server holds, as tokio
//! builds its mutex, semaphore and rwlock on one batch semaphore: a count of free permits
//! and the connections waiting for one, first come first served.
//!
//! A lock is one permit, a semaphore `n`, a queue two counts (its items and its room);
//! an event, a queue's `join`, a condition and a barrier use [`Permits::wake`], which lets
//! waiters go without keeping permits for later. A waiter that times out, is cancelled or
//! disconnects is [`Permits::forget`]-ten. Nobody overtakes: a free permit goes to the
//! first waiter before a newcomer can take it.

use super::ConnId;
use std::collections::VecDeque;

/// Free permits and the connections waiting for one (see the module doc).
#[derive(Debug, Default)]
pub(super) struct Permits {
    available: u64,
    waiters: VecDeque<ConnId>,
}

impl Permits {
    /// `available` free permits, nobody waiting.
    pub(super) fn new(available: u64) -> Permits {
        Permits { available, waiters: VecDeque::new() }
    }

    /// The free permits.
    pub(super) fn available(&self) -> u64 {
        self.available
    }

    /// How many connections wait.
    pub(super) fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// Takes a permit if one is free and nobody waits ahead; whether it did.
    pub(super) fn try_take(&mut self) -> bool {
        if self.available > 0 && self.waiters.is_empty() {
            self.available -= 1;
            true
        } else {
            false
        }
    }

    /// Puts `conn` in line for a permit: a later [`Permits::give`] or [`Permits::wake`]
    /// grants it.
    pub(super) fn enqueue(&mut self, conn: ConnId) {
        self.waiters.push_back(conn);
    }

    /// Gives `n` permits back: the first `n` waiters get one each (they are returned, in
    /// order); permits nobody waits for stay free.
    pub(super) fn give(&mut self, n: u64) -> Vec<ConnId> {
        let granted = self.wake(n);
        self.available = self.available.saturating_add(n - granted.len() as u64);
        granted
    }

    /// Lets the first `n` waiters go (returned, in order) and keeps no permit for later.
    pub(super) fn wake(&mut self, n: u64) -> Vec<ConnId> {
        let k = (n.min(self.waiters.len() as u64)) as usize;
        self.waiters.drain(..k).collect()
    }

    /// Lets every waiter go.
    pub(super) fn wake_all(&mut self) -> Vec<ConnId> {
        self.waiters.drain(..).collect()
    }

    /// Takes `conn` out of line (its wait timed out, was cancelled, or it went away);
    /// whether it was waiting.
    pub(super) fn forget(&mut self, conn: ConnId) -> bool {
        let before = self.waiters.len();
        self.waiters.retain(|c| *c != conn);
        self.waiters.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_go_first_come_first_served() {
        let mut p = Permits::new(1);
        assert!(p.try_take());
        assert!(!p.try_take());
        p.enqueue(7);
        p.enqueue(8);
        assert_eq!(p.give(1), [7]);
        // A newcomer does not overtake 8.
        assert!(!p.try_take());
        assert!(p.forget(8));
        assert!(!p.forget(8));
        assert_eq!(p.give(2), Vec::<ConnId>::new());
        assert_eq!(p.available(), 2);
        p.enqueue(9);
        assert_eq!(p.wake(5), [9]);
        assert_eq!(p.available(), 2);
    }
}
