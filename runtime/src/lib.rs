//! rhai-mp: run Rhai scripts with the primitives of Python's `multiprocessing`.
//!
//! This crate is the runtime: the `rhai-mp` binary (CLI and REPL, behind the default
//! feature `cli`) and the embedding API a host application uses to put the same runtime
//! into its own program — [`Runtime`] (a session that evaluates code and makes the engines
//! of every process), [`Pool`] (a pool driven from Rust) and [`Error`]. The primitives are
//! `rhai-mp-stdlib` (their one list: [`registry`]); the machinery under them (wire
//! format, start methods, child bootstrap) is `rhai-mp-core`. Every script-visible function
//! is listed, with its meaning and errors, in the script reference `stdlib/REFERENCE.md`.
//!
//! ```no_run
//! use rhai_mp::{rhai, Error, Runtime};
//!
//! fn main() -> Result<(), Error> {
//!     let rt = Runtime::new().register(|engine| {
//!         engine.register_fn("host_triple", |x: i64| x * 3);
//!     });
//!     rt.run_if_child(); // first thing: spawn children are this program started again
//!     let n: i64 = rt.eval("fn w(x) { host_triple(x) + 1 } let p = Pool(2); p.map(w, 0..5)[4]")?;
//!     let pool = rt.pool(2)?;
//!     let out: Vec<rhai::Dynamic> = pool.map("w", vec![1_i64.into(), 2_i64.into()])?;
//!     println!("{n} {out:?}");
//!     Ok(())
//! }
//! ```
//!
//! Bounds: a task may be given a time limit ([`Pool::map_timeout`], [`Pool::submit`],
//! [`PoolOptions::task_timeout`], or `#{timeout}` in script), a worker a memory limit
//! ([`PoolOptions::max_memory`]); a [`StopHandle`] ([`Runtime::stop_handle`]) stops the
//! running evaluation or pool call from another thread (an [`Error`] of kind
//! `"CancelledError"`; the session stays usable). A built-in that would build a value
//! larger than the process may have (`s.pad(1 << 40, "x")`, `blob(1 << 45)`) throws
//! `MemoryError` at once; [`Runtime::max_value_bytes`] lowers that budget. An embedding
//! runtime installs no signal handler unless the host asks ([`Runtime::catch_signals`]);
//! the command line does. See `examples/time_limits.rs`.
//!
//! A host depends on this crate without the command line:
//! `rhai-mp = { path = "<checkout>/runtime", default-features = false }`.

#[cfg(feature = "cli")]
mod cli;
mod error;
#[cfg(feature = "cli")]
mod help;
#[cfg(feature = "mpi")]
mod mpi;
mod pool;
#[cfg(feature = "reference")]
pub mod reference;
#[cfg(feature = "cli")]
mod repl;
mod runtime;

#[cfg(feature = "cli")]
pub use cli::main as cli_main;
pub use error::Error;
pub use pool::{Pool, PoolOptions, Task};
/// The Rhai crate this runtime is built on: a host uses the same version through it.
pub use rhai;
pub use rhai_mp_core::base::vm::Interpreter;
pub use rhai_mp_core::tree::state::StartMethod;
pub use rhai_mp_core::wire::{register_codec, DataCodec, HandleCodec};
pub use rhai_mp_stdlib::{registry, MultiprocessingPackage};
pub use runtime::{Runtime, StopHandle};
