//! Fuzz target: the frame reader of a manager's TCP connections (`FrameReader` in
//! `runtime/core/src/transport/tcp.rs`), fed the input in pieces whose sizes come from its
//! first bytes, with a small bound: it must never panic nor return a frame over the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = data[0] as usize * 4;
    let pieces = [data[1] as usize % 17 + 1, data[2] as usize % 5 + 1];
    let _ = rhai_mp_stdlib::fuzzing::tcp_frames(&data[3..], max, &pieces);
});
