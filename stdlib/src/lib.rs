//! rhai-mp-stdlib: the Rhai-visible primitives of rhai-mp, as one Rhai package.
//!
//! [`MultiprocessingPackage`] registers the script-visible API (`Process(..)`,
//! `cpu_count()`, `get_context(..)` …) and, when put into an engine, the static modules
//! `os::`, `time::` and `mpi::`. One file (or folder) per primitive, each declaring itself
//! once in the one list of primitives, [`registry::PRIMITIVES`], from which the package, the
//! context mirrors and the script reference are built. Every function's doc comment
//! (meaning, example, `Throws when:`) is what the script reference `stdlib/REFERENCE.md` is
//! generated from; the machinery under them is `rhai-mp-core`.
//!
//! ```no_run
//! use rhai::packages::Package;
//! let mut engine = rhai::Engine::new();
//! rhai_mp_stdlib::MultiprocessingPackage::new().register_into_engine(&mut engine);
//! ```

use rhai::def_package;

// The primitives, one public module each (its Rhai functions are its `*_functions`
// module), each declared once in `registry.rs`; and the helpers under them.
pub mod array;
pub mod barrier;
pub mod cluster;
pub mod condition;
pub mod connection;
pub mod context;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod globals;
pub mod hold;
pub mod listener;
pub mod lock;
pub mod manager;
pub mod memory;
mod opts;
pub mod os;
pub mod pool;
pub mod process;
pub mod queue;
pub mod registry;
pub mod semaphore;
pub mod shared_memory;
pub mod time;
mod typecode;
pub mod value;
pub mod wait;

pub use connection::Connection;
pub use context::Context;
pub use listener::Listener;
pub use pool::Pool;
pub use queue::{Queue, SimpleQueue};

def_package! {
    /// Python's `multiprocessing` for Rhai: every primitive of [`registry::PRIMITIVES`]
    /// (their functions, and their static modules `os::`, `time::`, `mpi::`), and the
    /// methods of `get_context(..)` contexts that mirror the globals.
    pub MultiprocessingPackage(lib) {
        for p in registry::PRIMITIVES {
            (p.functions)(lib);
        }
        registry::register_machinery();
    } |> |engine| {
        for p in registry::PRIMITIVES {
            if let Some(module) = p.module {
                engine.register_static_module(p.name, module().into());
            }
        }
        context::register_mirrors(engine);
        // Every engine notices stops (a signal, a task's timeout, a cancel, a host's stop).
        engine.on_progress(rhai_mp_core::run::interp::progress);
    }
}
