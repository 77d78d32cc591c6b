//! Entry points for the fuzz targets in `runtime/fuzz/`: they run decoders that are
//! private to this crate on arbitrary bytes. Not an API (hidden from the documentation).

/// Registers the codecs of every handle type (`Queue`, `Lock`, a manager's `Proxy` …) as
/// a process that runs scripts has them, so that fuzzed values reach their decoders.
pub fn register_codecs() {
    crate::register_machinery();
}

/// Decodes `bytes` as a manager's server decodes a request (no descriptors come with it)
/// and returns whether it was a well-formed request. Never panics, whatever the bytes.
pub fn manager_request(bytes: &[u8]) -> bool {
    register_codecs();
    crate::manager::decode_request(bytes)
}
