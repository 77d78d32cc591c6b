//! Adaptive waiting: whether, and how long, a waiter polls before it sleeps.
//!
//! A reply, a release or a queued item often comes within a few microseconds, and polling
//! for it saves the sleep and the wake-up (most of a round trip on a small machine). But
//! polling only pays when the process being waited for runs at the same time on another
//! CPU. On a machine with more runnable tasks than CPUs, a poller takes CPU time from the
//! very process it waits for, and the time it burns makes the scheduler favour it less
//! when it is woken; a blocking wait is then much faster. So every wait polls through a
//! [`Spin`], which decides:
//!
//! - **never on one CPU**, and only for a few microseconds (a short critical section,
//!   not a round trip) when the machine is oversubscribed: more runnable tasks than CPUs
//!   (the `running` count of `/proc/loadavg`, read at most every [`LOAD_EVERY`] per
//!   process, two readings in a row; it counts this process too, so two processes
//!   ping-ponging on an idle two-CPU machine still poll);
//! - **for as long as recent waits show it pays**: each object (a lock, a queue, a
//!   connection, an event …) keeps its own budget, starting at [`spin_time`]. A
//!   poll that found the value at least doubles the budget (and leaves it at least twice
//!   the time it took); a poll
//!   that ran out (the waiter had to sleep) halves it, down to nothing. With no budget the
//!   waiter sleeps at once, and only every [`PROBE_EVERY`]th wait polls briefly again, to
//!   notice when polling starts to pay again. A parent waiting on a pool of long tasks so
//!   stops polling after a few waits.
//!
//! The budget is per process and per handle (plain atomics next to the handle, not in
//! shared memory): each side of a pipe learns on its own.

use std::sync::atomic::AtomicU32;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// How often a process re-reads the machine's load.
pub const LOAD_EVERY: Duration = Duration::from_millis(10);
/// With no budget left, one wait in this many polls (briefly) again.
pub const PROBE_EVERY: u32 = 16;
/// The most a wait polls on an oversubscribed machine.
const CROWDED_NS: u32 = 3_000;
/// A budget below this is no budget.
const MIN_BUDGET_NS: u32 = 1_500;

/// The polling budget of one waitable object in this process.
#[derive(Debug)]
pub struct Spin {
    /// Nanoseconds a wait may poll; `u32::MAX` until first used (then the full budget).
    budget: AtomicU32,
    /// Waits since the last probe, while the budget is zero.
    skipped: AtomicU32,
}

impl Default for Spin {
    fn default() -> Self {
        Spin::new()
    }
}

impl Spin {
    /// A fresh budget: the full [`spin_time`].
    pub const fn new() -> Spin {
        Spin { budget: AtomicU32::new(u32::MAX), skipped: AtomicU32::new(0) }
    }

    /// Polls `busy` while polling pays (see the module doc); returns whether it stopped
    /// being busy. `false` means: go to sleep (and re-check first, as always).
    pub fn spin_while(&self, busy: impl FnMut() -> bool) -> bool {
        self.poll(busy, oversubscribed)
    }

    /// [`Spin::spin_while`] with the load signal given (`crowded`: is the machine
    /// oversubscribed?).
    fn poll(&self, mut busy: impl FnMut() -> bool, crowded: impl FnOnce() -> bool) -> bool {
        if !busy() {
            return true;
        }
        let max = spin_time().as_nanos() as u32;
        if max == 0 {
            return false;
        }
        let mut budget = self.budget.load(Relaxed).min(max);
        let probing = budget == 0;
        if probing {
            if self.skipped.fetch_add(1, Relaxed) + 1 < PROBE_EVERY {
                return false;
            }
            self.skipped.store(0, Relaxed);
            budget = max / 4;
        }
        if crowded() {
            // The process waited for may be waiting for a CPU itself: poll only for the
            // time a short critical section takes (a lock's holder that is running releases
            // within it), never for a round trip, so as to lose no time slice to a sleep
            // that a moment's poll would have saved, and to steal none from the peer.
            budget = budget.min(CROWDED_NS);
        }
        let start = Instant::now();
        let until = start + Duration::from_nanos(budget as u64);
        loop {
            // A few pauses between looks (each `pause` is up to ~50 ns): a value that comes
            // is seen within a fraction of a microsecond.
            for _ in 0..4 {
                std::hint::spin_loop();
            }
            if !busy() {
                let took = start.elapsed().as_nanos().min(max as u128) as u32;
                // Success: at least double the budget (it recovers fast after a bad patch).
                let grown = budget.saturating_mul(2).max(took.saturating_mul(2)).max(4 * MIN_BUDGET_NS);
                self.budget.store(grown.min(max), Relaxed);
                return true;
            }
            if Instant::now() >= until {
                // (A probe that failed leaves no budget: the next wait sleeps at once.)
                let half = budget / 2;
                self.budget.store(if probing || half < MIN_BUDGET_NS { 0 } else { half }, Relaxed);
                return false;
            }
        }
    }

    /// The current budget (for tests and diagnostics).
    pub fn budget(&self) -> Duration {
        Duration::from_nanos(self.budget.load(Relaxed).min(spin_time().as_nanos() as u32) as u64)
    }
}

/// The process-wide budget of waits that have no object of their own to keep one.
pub static SHARED: Spin = Spin::new();

/// When the load was last read (ns since [`epoch`]; 0: never) and what it said.
static LOAD_AT: AtomicU64 = AtomicU64::new(0);
static LOAD_BUSY: AtomicU32 = AtomicU32::new(0);
/// In `LOAD_BUSY`: the last reading said crowded (bit 0 is the verdict).
const SEEN_BUSY: u32 = 2;

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Whether more tasks want to run than there are CPUs (so polling would take CPU time from
/// the process waited for). Read from `/proc/loadavg` at most every [`LOAD_EVERY`].
pub fn oversubscribed() -> bool {
    let now = epoch().elapsed().as_nanos() as u64 + 1;
    let at = LOAD_AT.load(Relaxed);
    if at != 0 && now.saturating_sub(at) < LOAD_EVERY.as_nanos() as u64 {
        return LOAD_BUSY.load(Relaxed) & 1 == 1;
    }
    // Crowded only when two readings in a row say so: a single one is often a passing
    // kernel thread beside two processes that ping-pong on an idle machine.
    let now_busy = runnable().is_some_and(|r| r > cpus());
    let before = LOAD_BUSY.load(Relaxed);
    let busy = now_busy && before & SEEN_BUSY != 0;
    LOAD_BUSY.store(busy as u32 | if now_busy { SEEN_BUSY } else { 0 }, Relaxed);
    LOAD_AT.store(now, Relaxed);
    busy
}

fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The number of runnable tasks on the machine now (this one included): the numerator of
/// the fourth field of `/proc/loadavg` (`0.50 0.40 0.30 3/150 1234`).
fn runnable() -> Option<usize> {
    use std::io::Read;
    let mut buf = [0u8; 128];
    let mut f = std::fs::File::open("/proc/loadavg").ok()?;
    let n = f.read(&mut buf).ok()?;
    parse_runnable(&buf[..n])
}

fn parse_runnable(text: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(text).ok()?;
    let field = text.split_ascii_whitespace().nth(3)?;
    field.split('/').next()?.parse().ok()
}

/// The longest a waiter polls before it sleeps: a reply or a release often comes within a
/// few microseconds, and sleeping then being woken costs more than that (most of a round
/// trip on a small VM). Zero on a single CPU, where polling would only delay the process it
/// waits for. Each wait polls for at most its object's adaptive budget ([`Spin`]),
/// which is this at most.
pub fn spin_time() -> std::time::Duration {
    static SPIN: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();
    *SPIN.get_or_init(|| {
        if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
            std::time::Duration::from_micros(50)
        } else {
            std::time::Duration::ZERO
        }
    })
}

/// Polls `busy` while polling pays, with the process-wide budget (see the module doc;
/// objects that wait often keep a [`Spin`] of their own); returns whether it
/// stopped being busy.
pub fn spin_while(busy: impl Fn() -> bool) -> bool {
    SHARED.spin_while(busy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadavg_parses() {
        assert_eq!(parse_runnable(b"0.50 0.40 0.30 3/150 1234\n"), Some(3));
        assert_eq!(parse_runnable(b"garbage"), None);
        assert!(runnable().is_some_and(|r| r >= 1));
    }

    #[test]
    fn a_ready_value_needs_no_poll() {
        let s = Spin::new();
        assert!(s.spin_while(|| false));
    }

    #[test]
    fn failed_polls_shrink_the_budget_to_nothing_then_probe() {
        if spin_time().is_zero() {
            return;
        }
        let s = Spin::new();
        for _ in 0..20 {
            s.poll(|| true, || false);
        }
        assert_eq!(s.budget(), Duration::ZERO);
        // With no budget, waits stop at once (never polling) but for a probe now and then.
        let mut polls = 0;
        for _ in 0..PROBE_EVERY * 2 {
            let mut calls = 0;
            s.poll(
                || {
                    calls += 1;
                    true
                },
                || false,
            );
            if calls > 1 {
                polls += 1;
            }
        }
        assert!(polls <= 2, "{polls}");
    }

    #[test]
    fn successful_polls_keep_a_budget() {
        if spin_time().is_zero() {
            return;
        }
        let s = Spin::new();
        for _ in 0..20 {
            // Busy at the first look only: the second look comes before any look at the
            // clock, so this poll succeeds however long the test thread is preempted.
            let mut n = 0;
            assert!(s.poll(
                || {
                    n += 1;
                    n < 2
                },
                || false
            ));
        }
        assert!(!s.budget().is_zero());
        // On a crowded machine a poll that does not succeed soon gives up, and the budget
        // goes.
        for _ in 0..3 {
            assert!(!s.poll(|| true, || true));
        }
        assert_eq!(s.budget(), Duration::ZERO);
    }
}
