//! Fuzz target: the frame reader of a `Listener` / `Client` connection (CPython's big-endian
//! frames, `stdlib/src/listener/frame.rs`), fed the input through a socket pair in pieces
//! whose sizes come from its first two bytes: it must never panic, and never allocate more
//! than the bytes that arrived justify.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let pieces = [data[0] as usize % 17 + 1, data[1] as usize % 5 + 1];
    let _ = rhai_mp_stdlib::fuzzing::listener_frames(&data[2..], &pieces);
});
