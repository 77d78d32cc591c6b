//! Fuzz target: the messages between the ranks of an MPI job (`stdlib/src/cluster/
//! protocol.rs`, reached through `rhai_mp_stdlib::fuzzing`): what a worker rank reads from
//! rank 0, what rank 0 reads from a worker rank, and the invitation broadcast at the start.
//! Any bytes must decode or give an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rhai_mp_stdlib::fuzzing::rank_messages(data);
});
