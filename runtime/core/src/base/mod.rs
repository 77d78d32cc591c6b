//! Floor 0, the base: what every other floor stands on. Nothing here imports a higher floor.
//!
//! Each file imports only the ones above it in this list:
//!
//! - `sys.rs` — thin wrappers over the system calls that need `unsafe` (fork, futexes,
//!   signals, descriptors), and whole-buffer reads and writes on a descriptor;
//! - `spin.rs` — adaptive waiting: whether, and how long, a waiter polls before it sleeps;
//! - `deadline.rs` — when a wait ends ([`deadline::Deadline`]);
//! - `interrupt.rs` — the signals that ask this process to stop (Ctrl-C, SIGTERM, SIGHUP)
//!   and the stop a host or a parent asks for, as plain state;
//! - `output.rs` — script output, one `write(2)` per line;
//! - `vm.rs` — which interpreter runs script code (Rhai's AST walker or its bytecode VM),
//!   and running an AST on it (every floor that runs or receives code goes through it);
//! - `error.rs` — the one place where Rust errors become Rhai errors ([`error::MpError`],
//!   `mp_err!`), and the requests that end a script (`exit(n)`, a signal);
//! - `limits.rs` — what the machine can give (`MemoryError` before a huge allocation);
//! - `shm.rs` — shared memory regions and the process-shared mutex and condition variable
//!   in them;
//! - `seeds.rs` — (tests only) the seed inputs of the fuzz targets.

pub mod deadline;
pub mod error;
pub mod interrupt;
pub mod limits;
pub mod output;
#[cfg(test)]
pub(crate) mod seeds;
pub mod shm;
pub mod spin;
pub mod sys;
pub mod vm;
