//! Fuzz target: the message header parsers of the transports — a `SOCK_SEQPACKET` packet's
//! header (`seqpacket::parse_header`, given a whole packet) and a stream frame's header
//! (`stream::parse_header`, given its first 16 bytes). Any bytes must parse or be refused,
//! and what parses must agree with the packet's length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rhai_mp_core::transport::{seqpacket, stream};

fuzz_target!(|data: &[u8]| {
    if let Some(h) = seqpacket::parse_header(data) {
        assert!(h.spilled || data.len().checked_sub(16) == Some(h.len), "{h:?} for {} bytes", data.len());
    }
    if let Some(head) = data.get(..stream::HEADER) {
        let _ = stream::parse_header(head);
    }
    assert!(data.len() == stream::HEADER || stream::parse_header(data).is_none());
});
