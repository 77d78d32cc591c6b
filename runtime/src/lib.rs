//! rhai-mp: run Rhai scripts with the primitives of Python's `multiprocessing`.
//!
//! This crate is the runtime: the `rhai-mp` binary (CLI and REPL) and the embedding API a
//! host application uses to put the same runtime into its own binary ([`Runtime`]). The
//! primitives are `rhai-mp-stdlib`; the machinery under them (wire format, start methods,
//! child bootstrap) is `rhai-mp-core`. Every script-visible function is listed, with its
//! meaning and errors, in the script reference `stdlib/REFERENCE.md`, which [`reference`]
//! generates (with the `reference` feature) from the doc comments.

mod cli;
mod help;
#[cfg(feature = "reference")]
pub mod reference;
mod repl;
mod runtime;

pub use cli::main as cli_main;
pub use rhai_mp_core::{register_codec, DataCodec, ErrorKind, HandleCodec, MpError, StartMethod};
pub use rhai_mp_stdlib::MultiprocessingPackage;
pub use runtime::Runtime;
