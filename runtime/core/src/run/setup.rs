//! Start-up: what every process does before it creates a Rhai engine, and where the hooks
//! through which lower floors reach this one are set.

/// The fixed hashing seed that makes Rhai's names for closures (`anon$<hash>`) the same in
/// every process. A host that sets its own seed must set the same one in every process.
const HASHING_SEED: [u64; 4] =
    [0x5248_4149_4d50_0001, 0x9e37_79b9_7f4a_7c15, 0xc2b2_ae3d_27d4_eb4f, 0x1656_67b1_9e37_79f9];

/// Prepares this process for rhai-mp; call before creating any Rhai engine. Idempotent.
///
/// Installs the fixed hashing seed (closures must hash to the same names in parent and
/// child), ignores SIGPIPE (a write to a closed pipe is then an error, not death), raises
/// the open-descriptor limit (every shared object holds a memfd), lets malloc reuse large
/// freed blocks (see `base::sys::tune_malloc`), and tells the fork start method what a
/// forked child does.
pub fn init() {
    crate::base::interrupt::record_start();
    let _ = rhai::config::hashing::set_hashing_seed(Some(HASHING_SEED));
    crate::base::sys::ignore_signal(libc::SIGPIPE);
    crate::base::sys::raise_fd_limit();
    crate::base::sys::tune_malloc();
    crate::tree::start::fork::set_hooks(crate::run::child::FORK_HOOKS);
}
