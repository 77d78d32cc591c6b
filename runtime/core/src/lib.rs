//! rhai-mp-core: the machinery under rhai-mp's Rhai primitives — the wire format, the start
//! methods, the child bootstrap, process state, and the one place Rust errors become Rhai
//! errors. Scripts never see this crate directly; `rhai-mp-stdlib` binds it to Rhai and
//! `rhai-mp` (the runtime) puts both into an engine.

mod boot;
mod child;
pub mod cluster;
mod deadline;
mod error;
mod interp;
pub mod interrupt;
pub mod limits;
mod output;
mod process;
mod report;
mod shm;
pub mod spin;
mod start;
mod state;
mod sys;
pub mod transport;
pub mod wire;

pub use boot::{Boot, Call, Mode};
pub use child::{at_fork_child, register_entry, run_as_rank, run_if_child, run_remote_call, Entry, CHILD_ENV};
pub use deadline::Deadline;
pub use error::{rethrow, ErrorKind, MpError, MpResult, RemoteError, RhaiResult};
pub use interp::{
    compile_ast, ending, error_report, exit_code, finish_main, outcome, report_error, run_main, run_script, set_names,
    watch_signals, Ending, ExitRequest, INTERRUPTED,
};
pub use output::{stderr_line, stdout_line};
pub use process::{
    active_children, at_exit, guard_error, Process, Role, Target, EXIT_BOOT_FAILED, EXIT_GUARD, EXIT_NOT_A_CHILD,
};
pub use report::type_and_message;
pub use shm::{Cond, Locked, Mutex, Region, COND_SIZE, MUTEX_SIZE};
pub use spin::Spin;
pub use start::{fork::Server as ForkServer, Popen};
pub use state::{default_method, with as with_state, ChildInfo, ParentInfo, Script, StartMethod, State};
pub use sys::{
    borrow_fd, futex_wait, futex_wake, ignore_signal, own_fd, pid, pread_vec, process_is_dead, random_bytes,
    same_bytes, spin_time, spin_while,
};
pub use transport::poll::{readable_now, wait_any, wait_readable};
pub use transport::seqpacket::{Kind as MessageKind, MapCache, Message, Payload, SpillCache, INLINE_MAX};
pub use wire::compile_unit;
pub use wire::{
    decode, encode, encode_owned, encode_remote_value, register_codec, register_handle, DataCodec, Handle, HandleCodec,
    Packet, Portable, Reader, Segmented, Writer,
};

/// The fixed hashing seed that makes Rhai's names for closures (`anon$<hash>`) the same in
/// every process. A host that sets its own seed must set the same one in every process.
const HASHING_SEED: [u64; 4] =
    [0x5248_4149_4d50_0001, 0x9e37_79b9_7f4a_7c15, 0xc2b2_ae3d_27d4_eb4f, 0x1656_67b1_9e37_79f9];

/// Prepares this process for rhai-mp; call before creating any Rhai engine. Idempotent.
///
/// Installs the fixed hashing seed (closures must hash to the same names in parent and
/// child), ignores SIGPIPE (a write to a closed pipe is then an error, not death), and
/// raises the open-descriptor limit (every shared object holds a memfd), and lets malloc
/// reuse large freed blocks (see `sys::tune_malloc`).
pub fn init() {
    interrupt::record_start();
    let _ = rhai::config::hashing::set_hashing_seed(Some(HASHING_SEED));
    sys::ignore_signal(libc::SIGPIPE);
    sys::raise_fd_limit();
    sys::tune_malloc();
}
