//! Fuzz target: the authentication handshake of `Listener` / `Client`
//! (`stdlib/src/listener/auth.rs`), both sides, fed frames cut from the input (each byte
//! `n` is followed by a frame of `n` bytes): what a listener reads from anyone who connects,
//! and what a client reads from anything it connects to. It must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rhai_mp_stdlib::fuzzing::listener_handshake(data);
});
