//! Floor 3, running a script: compiling and running it, reporting what went wrong, errors
//! that come from other processes, and the child side of every start method. The floor
//! below reaches it only through the hooks [`setup::init`] sets.
//!
//! Each file imports only the ones above it in this list:
//!
//! - `report.rs` — the report of an uncaught error (type, message, `file:line:col`, the
//!   quoted line, the process it came from);
//! - `remote.rs` — an error raised in another process, on its way back;
//! - `interp.rs` — running a script: `__name__`, `ARGV`, the outcome as an exit code;
//! - `child.rs` — how a process started as a child becomes one and makes its call;
//! - `setup.rs` — what every process does first ([`setup::init`]).

pub mod child;
pub mod interp;
pub mod remote;
pub mod report;
pub mod setup;
