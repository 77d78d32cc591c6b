//! rhai-mp-core: the machinery under rhai-mp's Rhai primitives — the wire format, the
//! transport, the start methods, the child bootstrap, process state, and the one place Rust
//! errors become Rhai errors. Scripts never see this crate directly; `rhai-mp-stdlib` binds
//! it to Rhai and `rhai-mp` (the runtime) puts both into an engine.
//!
//! The crate is built in floors. A module imports only its own folder or a lower floor
//! (and, inside a folder, only the files above it in its `mod.rs` map); where a lower floor
//! must call up, it takes a hook that start-up ([`run::setup::init`]) sets once.
//! `tests/layers.rs` reads every `use crate::` and fails on an import that runs up.
//!
//! - [`base`] — floor 0: system calls, signals, errors, deadlines, adaptive waiting, shared
//!   memory, limits, output, the interpreter switch;
//! - [`wire`] — floor 1: the one module through which values cross a process boundary;
//! - [`transport`] — floor 1: how bytes and descriptors travel (never imports `wire`, nor
//!   `wire` it);
//! - [`tree`] — floor 2: the process tree — state, the boot message, the MPI place, the
//!   start methods, the Process object;
//! - [`run`] — floor 3: running a script — the interpreter's set-up, reports, errors from
//!   other processes, the child side;
//! - [`prelude`] — the few names nearly every user of the crate needs.
//!
//! A name is imported from the module that defines it; only the prelude repeats names.

pub mod base;
pub mod run;
pub mod transport;
pub mod tree;
pub mod wire;

/// The names nearly every user of this crate needs: `use rhai_mp_core::prelude::*;`.
pub mod prelude {
    pub use crate::base::deadline::Deadline;
    pub use crate::base::error::{ErrorKind, MpError, MpResult, RhaiResult};
    pub use crate::{mp_bail, mp_err};
}
