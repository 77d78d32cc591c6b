//! Entry points for the fuzz targets in `runtime/fuzz/`: they run decoders that are
//! private to this crate on arbitrary bytes. Not an API (hidden from the documentation).

/// Registers the codecs of every handle type (`Queue`, `Lock`, a manager's `Proxy` …) as
/// a process that runs scripts has them, so that fuzzed values reach their decoders.
pub fn register_codecs() {
    crate::registry::register_machinery();
}

/// Decodes `bytes` as a manager's server decodes a request (no descriptors come with it)
/// and returns whether it was a well-formed request. Never panics, whatever the bytes.
pub fn manager_request(bytes: &[u8]) -> bool {
    register_codecs();
    crate::manager::decode_request(bytes)
}

/// Decodes `bytes` as what a manager's server reads from a peer before it has
/// authenticated (the handshake's answer, read by a TCP server from anyone who connects),
/// and as what a client reads from a server (the hello and the verdict); returns how many
/// decoded. Never panics, whatever the bytes.
pub fn manager_handshake(bytes: &[u8]) -> usize {
    crate::manager::decode_handshake(bytes)
}

/// Decodes `bytes` as each message of the MPI ranks' protocol (`cluster/protocol.rs`: what
/// a worker rank reads from rank 0, what rank 0 reads from a worker rank, and the
/// invitation every rank gets at the start); returns how many decoded. Never panics,
/// whatever the bytes.
pub fn rank_messages(bytes: &[u8]) -> usize {
    crate::cluster::protocol::decode_all(bytes)
}

/// Feeds `bytes` to a TCP frame reader (the length-prefixed frames of a manager's TCP
/// connections) in pieces of the given sizes; returns the frames it assembled. Never
/// panics and never keeps more than the bound.
pub fn tcp_frames(bytes: &[u8], max: usize, pieces: &[usize]) -> usize {
    use rhai_mp_core::transport::tcp::{FrameReader, Read};
    use std::io::Write;
    use std::os::fd::AsFd;
    let Ok((mut a, b)) = std::os::unix::net::UnixStream::pair() else { return 0 };
    let mut reader = FrameReader::new(max);
    let mut frames = 0;
    let mut rest = bytes;
    let mut sizes = pieces.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        if a.write_all(&rest[..n]).is_err() {
            return frames;
        }
        rest = &rest[n..];
        loop {
            match reader.read_from(b.as_fd()) {
                Ok(Read::Frame(f)) => {
                    assert!(f.len() <= max);
                    frames += 1;
                }
                Ok(_) => break,
                // The connection would be dropped here: nothing more is read.
                Err(_) => return frames,
            }
        }
    }
    frames
}

/// Feeds `bytes` to the frame reader of a `Listener` / `Client` connection (CPython's
/// big-endian frames) through a socket pair, in pieces of the given sizes; returns the frames
/// it assembled. Never panics.
pub fn listener_frames(bytes: &[u8], pieces: &[usize]) -> usize {
    crate::listener::frame::feed(bytes, pieces)
}

/// Decodes `bytes` as a pickle received on a `Listener` / `Client` connection; a value that
/// decodes re-encodes and decodes to itself. Returns whether it decoded. Never panics.
pub fn pickle(bytes: &[u8]) -> bool {
    crate::listener::pickle::round_trip(bytes)
}

/// Feeds `bytes`, cut into frames (each prefixed by its length byte), to a listener's and a
/// client's authentication handshakes; returns how many frames they took. Never panics.
pub fn listener_handshake(bytes: &[u8]) -> usize {
    crate::listener::auth::feed(bytes)
}
