//! What the machine can give: a size a script asks for is checked here before anything is
//! allocated, so that a huge one is a `MemoryError` — never an abort, a crash on a full
//! tmpfs, or the OOM killer.
//!
//! The budget of one value is the least of: the memory the machine could still give
//! (available RAM plus free swap), this process's own limit (`RLIMIT_DATA`, `RLIMIT_AS`,
//! and a pool worker's `max_memory`, see [`limit_memory`]), and a size a host sets with
//! [`set_max_value_bytes`].

use crate::base::error::MpResult;
use crate::mp_err;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Sizes below this are never refused (no need to read `/proc/meminfo` for them).
const SMALL: u128 = 64 << 20;

/// A host's limit on one value (0: none).
static MAX_VALUE: AtomicU64 = AtomicU64::new(0);

/// The memory the machine could still give: available RAM plus free swap.
fn available() -> u128 {
    let Ok(info) = std::fs::read_to_string("/proc/meminfo") else { return u128::MAX };
    let field = |name: &str| -> Option<u128> {
        let line = info.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse::<u128>().ok().map(|kb| kb * 1024)
    };
    match field("MemAvailable:") {
        Some(mem) => mem + field("SwapFree:").unwrap_or(0),
        None => u128::MAX,
    }
}

/// This process's own limit on its memory (`RLIMIT_DATA`, `RLIMIT_AS`), if any.
fn own_limit() -> u128 {
    use nix::sys::resource::{getrlimit, Resource};
    let soft =
        |r| getrlimit(r).map_or(u128::MAX, |(s, _)| if s == libc::RLIM_INFINITY { u128::MAX } else { s as u128 });
    soft(Resource::RLIMIT_DATA).min(soft(Resource::RLIMIT_AS))
}

/// The most one value may take now (see the module docs).
pub fn budget() -> u128 {
    let host = match MAX_VALUE.load(Relaxed) {
        0 => u128::MAX,
        n => n as u128,
    };
    available().min(own_limit()).min(host)
}

/// Sets the most bytes one value a script builds at once may take (`0`: no limit of the
/// host's own; the machine's and the process's still hold). A host calls it before it runs
/// scripts (it holds for the whole process).
pub fn set_max_value_bytes(bytes: u64) {
    MAX_VALUE.store(bytes, Relaxed);
}

/// The host's limit on one value (0: none).
pub fn max_value_bytes() -> u64 {
    MAX_VALUE.load(Relaxed)
}

/// Limits this process's memory to `bytes` (`RLIMIT_DATA`: its heap and private mappings;
/// shared memory objects do not count): a pool worker's `max_memory`. An allocation past it
/// fails (a value built at once throws `MemoryError` first, see [`allocation`]).
pub fn limit_memory(bytes: u64) -> MpResult<()> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_DATA)?;
    let soft = if hard == libc::RLIM_INFINITY { bytes } else { bytes.min(hard) };
    setrlimit(Resource::RLIMIT_DATA, soft, hard)?;
    Ok(())
}

/// Checks that `bytes` (for `what`, as the error names it) can be allocated; returns it as
/// a `usize`. Throws `MemoryError` when the machine (or this process's limit) cannot give
/// that much.
pub fn allocation(bytes: u128, what: &str) -> MpResult<usize> {
    if bytes >= SMALL {
        let free = budget();
        if bytes > free || bytes > isize::MAX as u128 {
            return Err(mp_err!(
                MemoryError,
                "{what} needs {bytes} bytes, more than this process can have ({free} bytes available)"
            ));
        }
    }
    Ok(bytes as usize)
}
