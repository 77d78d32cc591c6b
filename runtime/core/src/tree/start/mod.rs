//! Start methods: how a child process comes to life, one file per method, and the parent's
//! view of it.
//!
//! Each file imports only the ones above it in this list:
//!
//! - `remote.rs` — the `mpi` start method: a call on a free rank, through a launcher that
//!   `rhai-mp-stdlib` registers at start-up;
//! - `popen.rs` — [`popen::Popen`], the parent's handle on a started child, and the exit
//!   codes a runtime child reports;
//! - `spawn.rs` — exec a fresh copy of this binary and hand it a boot message on its stdin
//!   (a Unix socket, so descriptors can ride along);
//! - `forkserver.rs` — ask a server process (spawned on first use, having run the script's
//!   top level once) to fork a child for us;
//! - `fork.rs` — `fork()` this process; the child calls the target directly (what it does
//!   then is set at start-up through [`fork::set_hooks`]).

pub mod fork;
pub mod forkserver;
pub mod popen;
pub mod remote;
pub mod spawn;
