//! rhai-mp-stdlib: the Rhai-visible primitives of rhai-mp, as one Rhai package.
//!
//! [`MultiprocessingPackage`] registers the script-visible API (`Process(..)`,
//! `cpu_count()`, `get_context(..)` …) and, when put into an engine, the static modules
//! `os::` and `time::`. Every function's doc comment (meaning, example, `Throws when:`) is
//! what the script reference `stdlib/REFERENCE.md` is generated from. One file (or folder) per
//! primitive; the machinery under them is `rhai-mp-core`.
//!
//! ```no_run
//! use rhai::packages::Package;
//! let mut engine = rhai::Engine::new();
//! rhai_mp_stdlib::MultiprocessingPackage::new().register_into_engine(&mut engine);
//! ```

use rhai::def_package;
use rhai::plugin::*;

mod array;
mod barrier;
pub mod cluster;
mod condition;
mod connection;
mod context;
mod event;
#[doc(hidden)]
pub mod fuzzing;
mod hold;
mod listener;
mod lock;
mod manager;
mod opts;
mod os;
mod pool;
mod process;
mod queue;
mod semaphore;
mod shared_memory;
mod time;
mod typecode;
mod value;
mod wait;

pub use connection::Connection;
pub use listener::Listener;

/// The Rhai-visible functions, one module per primitive: what [`MultiprocessingPackage`]
/// registers (`os` and `time` are the static modules `os::` and `time::`). Their
/// documentation is the script reference.
pub mod bindings {
    pub use crate::array::array_functions as array;
    pub use crate::barrier::barrier_functions as barrier;
    pub use crate::cluster::mpi_functions as mpi;
    pub use crate::condition::condition_functions as condition;
    pub use crate::connection::connection_functions as connection;
    pub use crate::context::context_functions as context;
    pub use crate::event::event_functions as event;
    pub use crate::hold::hold_functions as hold;
    pub use crate::listener::listener_functions as listener;
    pub use crate::lock::lock_functions as lock;
    pub use crate::manager::manager_functions as manager;
    pub use crate::manager::proxied_functions as proxied;
    pub use crate::manager::proxy_functions as proxy;
    pub use crate::os::os_functions as os;
    pub use crate::pool::pool_functions as pool;
    pub use crate::pool::result_functions as pool_results;
    pub use crate::process::process_functions as process;
    pub use crate::queue::queue_functions as queue;
    pub use crate::queue::simple_queue_functions as simple_queue;
    pub use crate::semaphore::semaphore_functions as semaphore;
    pub use crate::shared_memory::shared_memory_functions as shared_memory;
    pub use crate::time::time_functions as time;
    pub use crate::value::value_functions as value;
    pub use crate::wait::wait_functions as wait;
}
pub use context::Context;
pub use pool::Pool;
pub use queue::{Queue, SimpleQueue};

/// Registers what crosses process boundaries and the runtime's native entry points (once
/// per process; idempotent).
fn register_machinery() {
    use rhai_mp_core::register_handle;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        register_handle::<connection::Connection>();
        register_handle::<queue::Queue>();
        register_handle::<queue::SimpleQueue>();
        register_handle::<lock::Lock>();
        register_handle::<semaphore::Semaphore>();
        register_handle::<event::Event>();
        register_handle::<condition::Condition>();
        register_handle::<barrier::Barrier>();
        register_handle::<value::Value>();
        register_handle::<array::SharedArray>();
        register_handle::<shared_memory::SharedMemory>();
        register_handle::<manager::Proxy>();
        rhai_mp_core::register_entry(pool::WORKER_ENTRY, pool::worker_entry);
        rhai_mp_core::register_entry(manager::SERVER_ENTRY, manager::server_entry);
        rhai_mp_core::at_fork_child(manager::forget_connections);
        cluster::register();
    });
}

def_package! {
    /// Python's `multiprocessing` for Rhai: every primitive of the reference, plus `os::`
    /// and `time::` as static modules.
    pub MultiprocessingPackage(lib) {
        combine_with_exported_module!(lib, "process", process::process_functions);
        combine_with_exported_module!(lib, "context", context::context_functions);
        combine_with_exported_module!(lib, "connection", connection::connection_functions);
        combine_with_exported_module!(lib, "queue", queue::queue_functions);
        combine_with_exported_module!(lib, "simple_queue", queue::simple_queue_functions);
        combine_with_exported_module!(lib, "wait", wait::wait_functions);
        combine_with_exported_module!(lib, "listener", listener::listener_functions);
        combine_with_exported_module!(lib, "lock", lock::lock_functions);
        combine_with_exported_module!(lib, "semaphore", semaphore::semaphore_functions);
        combine_with_exported_module!(lib, "event", event::event_functions);
        combine_with_exported_module!(lib, "condition", condition::condition_functions);
        combine_with_exported_module!(lib, "barrier", barrier::barrier_functions);
        combine_with_exported_module!(lib, "value", value::value_functions);
        combine_with_exported_module!(lib, "array", array::array_functions);
        combine_with_exported_module!(lib, "shared_memory", shared_memory::shared_memory_functions);
        combine_with_exported_module!(lib, "hold", hold::hold_functions);
        combine_with_exported_module!(lib, "pool", pool::pool_functions);
        combine_with_exported_module!(lib, "pool_results", pool::result_functions);
        combine_with_exported_module!(lib, "manager", manager::manager_functions);
        combine_with_exported_module!(lib, "proxy", manager::proxy_functions);
        combine_with_exported_module!(lib, "proxied", manager::proxied_functions);
        manager::register(lib);
        pool::register(lib);
        lib.set_iterable::<array::SharedArray>();
        register_machinery();
    } |> |engine| {
        engine.register_static_module("os", exported_module!(os::os_functions).into());
        engine.register_static_module("time", exported_module!(time::time_functions).into());
        engine.register_static_module("mpi", exported_module!(cluster::mpi_functions).into());
        context::register_mirrors(engine);
    }
}
