//! Floor 2, the process tree: this process's place in it, the message that makes a new
//! process a child, the start methods, and the Process object. It imports only the base,
//! the wire format and the transport; where it must reach the floor that runs scripts (a
//! forked child's call), it does so through a hook set at start-up.
//!
//! Each file imports only the ones above it in this list:
//!
//! - `place.rs` — this process's place in an MPI job (rank, size, MPI support);
//! - `state.rs` — its place in the process tree (name, identity, start method, the script
//!   its spawn children re-run, the forkserver it uses);
//! - `boot.rs` — the boot message: everything a new process needs to become a child;
//! - `start/` — the start methods and [`start::popen::Popen`];
//! - `process.rs` — the Process object, this process's live children, and their end.

pub mod boot;
pub mod place;
pub mod process;
pub mod start;
pub mod state;
