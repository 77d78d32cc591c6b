//! Fuzz target: the typed request decoder of a manager's server (`Request` in
//! `stdlib/src/manager/protocol.rs`, reached through `rhai_mp_stdlib::fuzzing`). Any bytes
//! must decode or give an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rhai_mp_stdlib::fuzzing::manager_request(data);
});
