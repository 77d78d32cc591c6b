//! Fuzz target: the handshake messages of a manager's connections (`stdlib/src/manager/
//! auth.rs`, reached through `rhai_mp_stdlib::fuzzing`): the answer a TCP server reads from
//! anyone who connects, and the hello and verdict a client reads. Any bytes must decode or
//! give an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rhai_mp_stdlib::fuzzing::manager_handshake(data);
});
