//! What the machine can give: a size a script asks for is checked here before anything is
//! allocated, so that a huge one is a `MemoryError` — never an abort, a crash on a full
//! tmpfs, or the OOM killer.

use crate::base::error::MpResult;
use crate::mp_err;

/// Sizes below this are never refused (no need to read `/proc/meminfo` for them).
const SMALL: u128 = 64 << 20;

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

/// Checks that `bytes` (for `what`, as the error names it) can be allocated; returns it as
/// a `usize`. Throws `MemoryError` when the machine cannot give that much.
pub fn allocation(bytes: u128, what: &str) -> MpResult<usize> {
    if bytes >= SMALL {
        let free = available();
        if bytes > free || bytes > isize::MAX as u128 {
            return Err(mp_err!(
                MemoryError,
                "{what} needs {bytes} bytes, more than this machine can give ({free} bytes available)"
            ));
        }
    }
    Ok(bytes as usize)
}
