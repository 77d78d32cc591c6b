//! Fuzz target: the wire value decoder. Any bytes must decode to a value or give an error
//! (never a panic, a huge allocation or a stack overflow), both as a bare tree
//! (`wire::tree_from_bytes`) and as a Rhai value (`decode`, with every handle codec of a
//! script process registered, and no descriptors); a tree that decodes re-encodes to bytes
//! that decode to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rhai_mp_core::wire;

fuzz_target!(|data: &[u8]| {
    rhai_mp_stdlib::fuzzing::register_codecs();
    if let Ok(tree) = wire::tree_from_bytes(data) {
        let bytes = wire::tree_to_bytes(&tree);
        let again = wire::tree_from_bytes(&bytes).expect("a re-encoded tree decodes");
        assert_eq!(wire::tree_to_bytes(&again), bytes, "re-encoding is stable");
    }
    let _ = rhai_mp_core::wire::decode(data, Vec::new());
});
