//! Integration tests: they run the real `rhai-mp` binary (and the embedding example) on
//! real scripts, under each start method. Every wait is bounded (see `common::run`), and no
//! assertion looks at the clock.

/// Generates one test per start method for each `fn name(method: &str)` listed.
macro_rules! per_method {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn spawn() { super::$name("spawn") }
                #[test]
                fn fork() { super::$name("fork") }
                #[test]
                fn forkserver() { super::$name("forkserver") }
            }
        )*
    };
}

mod bad_input;
mod bounded;
mod chaos;
mod cli;
mod common;
mod conformance3;
mod embedding;
mod errors;
mod executor;
mod faults;
mod faults2;
mod globals;
mod interpreter;
mod keywords;
mod listener;
mod manager;
mod mpi;
mod oversubscribed;
mod partition;
mod pipes;
mod pool;
mod process;
mod queues;
mod readme;
mod reference;
mod remote_manager;
mod repl;
mod repl_pty;
mod scripts;
mod shared_memory;
mod start_methods;
mod sync;
mod travel;
