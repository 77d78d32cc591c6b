//! Fuzz target: the pickle decoder of a `Listener` / `Client` connection
//! (`stdlib/src/listener/pickle.rs`): any bytes must decode to a value or give an error
//! (never a panic, a huge allocation or a stack overflow), and a value that decodes must
//! re-encode to a pickle that decodes to it again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rhai_mp_stdlib::fuzzing::pickle(data);
});
