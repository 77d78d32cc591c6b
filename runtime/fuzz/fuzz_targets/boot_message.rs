//! Fuzz target: the boot message a spawned child (or a forkserver's child) decodes first,
//! `Boot::from_packet`, and the call inside it, `Call::decode` — as `child.rs` does, minus
//! the descriptors. Any bytes must decode or give an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rhai_mp_core::tree::boot::{Boot, Call};
use rhai_mp_core::wire::Packet;

fuzz_target!(|data: &[u8]| {
    if let Ok(boot) = Boot::from_packet(Packet { bytes: data.to_vec(), fds: Vec::new() }) {
        let _ = Call::decode(boot.call);
    }
});
