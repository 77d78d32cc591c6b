//! rhai-mp-stdlib: the Rhai-visible primitives of rhai-mp, as one Rhai package.
//!
//! [`MultiprocessingPackage`] registers the script-visible API (`Process(..)`,
//! `cpu_count()`, `get_context(..)` …) and, when put into an engine, the static modules
//! `os::` and `time::`. Every function's doc comment (meaning, example, `Throws when:`) is
//! what the script reference `stdlib/REFERENCE.md` is generated from. One file per
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
mod condition;
mod connection;
mod context;
mod event;
mod hold;
mod lock;
mod manager;
mod opts;
mod os;
mod pool;
mod process;
mod queue;
mod region_codec;
mod semaphore;
mod shared_memory;
mod simple_queue;
mod time;
mod typecode;
mod value;
mod wait;

pub use connection::Connection;
pub use context::Context;
pub use pool::Pool;
pub use queue::Queue;
pub use simple_queue::SimpleQueue;

def_package! {
    /// Python's `multiprocessing` for Rhai: every primitive of API.md, plus `os::` and
    /// `time::` as static modules.
    pub MultiprocessingPackage(lib) {
        combine_with_exported_module!(lib, "process", process::process_functions);
        combine_with_exported_module!(lib, "context", context::context_functions);
        combine_with_exported_module!(lib, "connection", connection::connection_functions);
        combine_with_exported_module!(lib, "queue", queue::queue_functions);
        combine_with_exported_module!(lib, "simple_queue", simple_queue::simple_queue_functions);
        combine_with_exported_module!(lib, "wait", wait::wait_functions);
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
        combine_with_exported_module!(lib, "manager", manager::manager_functions);
        manager::register(lib);
        pool::register(lib);
        lib.set_iterable::<array::SharedArray>();
        connection::register_codecs();
        lock::register_codecs();
        semaphore::register_codecs();
        event::register_codecs();
        condition::register_codecs();
        barrier::register_codecs();
        value::register_codecs();
        array::register_codecs();
        shared_memory::register_codecs();
        queue::register_codecs();
        simple_queue::register_codecs();
        pool::register_codecs();
        manager::register_codecs();
    } |> |engine| {
        engine.register_static_module("os", exported_module!(os::os_functions).into());
        engine.register_static_module("time", exported_module!(time::time_functions).into());
        context::register_mirrors(engine);
    }
}
