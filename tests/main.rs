//! Integration tests: they run the real `rhai-mp` binary (and the embedding example) on
//! real scripts, under each start method. Every wait is bounded (see `common::run`), and no
//! assertion looks at the clock.

mod cli;
mod common;
mod embedding;
mod errors;
mod pipes;
mod process;
mod queues;
mod repl;
mod scripts;
mod shared_memory;
mod start_methods;
mod sync;
