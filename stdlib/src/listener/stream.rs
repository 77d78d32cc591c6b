//! The I/O of a Connection that `Listener.accept()` or `Client()` made: CPython's frames on a
//! stream socket (`frame.rs`), values as pickles (`pickle.rs`). `Connection` (see
//! `connection.rs`) hands its calls here when it is such a connection, so scripts see one
//! Connection type with one set of errors:
//!
//! - `recv()` at the end of the stream: `EOFError`; a peer that closed mid-message, or a
//!   frame header that is not one: `OSError` (and every later `recv` says so again);
//! - `send()` to a closed peer: `BrokenPipeError`; a value that cannot cross:
//!   `SerializationError` naming it, with nothing sent;
//! - a message that is not a pickle of a plain value: `SerializationError` naming what it
//!   holds; the message is consumed and the connection goes on;
//! - `recv_bytes(maxlength)` with a longer message: `OSError`, and the message stays unread.
//!
//! `poll()` and `wait()` read what has arrived without blocking and call a connection ready
//! only when a whole message (or the end of the stream) is there.

use super::frame::{FrameReader, Next};
use super::{auth, pickle};
use rhai::Dynamic;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, MpResult};
use std::os::fd::BorrowedFd;

/// The reading side's state of such a connection.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    pub(crate) reader: FrameReader,
    /// How long a `recv` polls before it sleeps (adaptive, as a pipe end's).
    pub(crate) spin: rhai_mp_core::base::spin::Spin,
}

/// Reads what has arrived, polling for a moment first while polling pays (see
/// `rhai_mp_core::spin`): a reply often comes within microseconds, and catching it saves
/// the sleep and the wake-up. Returns whether anything was read.
fn fill_spinning(fd: BorrowedFd, st: &mut Stream, limit: Option<u64>, what: &str) -> MpResult<bool> {
    let Stream { reader, spin } = st;
    let mut failed = None;
    let got = spin.spin_while(|| match reader.fill(fd, limit) {
        Ok(read) => !read,
        Err(e) => {
            failed = Some(e);
            false
        }
    });
    match failed {
        Some(e) => Err(io_error(what, e)),
        None => Ok(got),
    }
}

/// The error for an I/O failure during `what`.
pub(crate) fn io_error(what: &str, e: std::io::Error) -> MpError {
    if e.kind() == std::io::ErrorKind::OutOfMemory {
        return mp_err!(MemoryError, "{what}: {e}");
    }
    MpError::os(what, e)
}

/// Sends `value` as a pickle, in one frame.
pub(crate) fn send_value(fd: BorrowedFd, value: &Dynamic) -> MpResult<()> {
    // A big blob alone goes from where it is: header and opcodes around it, no copy.
    if let Some(b) = value.read_lock::<rhai::Blob>() {
        if let (true, Some((head, tail))) = (b.len() >= 64 * 1024, pickle::blob_head(b.len())) {
            let (h, n) = super::frame::header(head.len() + b.len() + tail.len());
            return super::frame::send_all(fd, &[&h[..n], &head, &b, &tail]).map_err(|e| io_error("send", e));
        }
    }
    // Room for the longest header in front, so that header and payload go in one write.
    let mut buf = vec![0u8; 12];
    pickle::encode_into(value, "obj", &mut buf)?;
    let (h, n) = super::frame::header(buf.len() - 12);
    let at = 12 - n;
    buf[at..12].copy_from_slice(&h[..n]);
    super::frame::send_all(fd, &[&buf[at..]]).map_err(|e| io_error("send", e))
}

/// Sends raw bytes as one frame.
pub(crate) fn send_bytes(fd: BorrowedFd, bytes: &[u8]) -> MpResult<()> {
    super::frame::send_frame(fd, bytes).map_err(|e| io_error("send_bytes", e))
}

/// Receives the next frame's payload, waiting for it; one longer than `max` stays unread
/// (`OSError`).
pub(crate) fn recv_frame(fd: BorrowedFd, st: &mut Stream, max: Option<usize>) -> MpResult<Vec<u8>> {
    loop {
        if let Some(max) = max {
            if let Ok(Some(len)) = st.reader.announced() {
                if len > max as u64 {
                    return Err(mp_err!(
                        OSError,
                        "bad message length: the message has {len} bytes, more than maxlength {max} (it stays unread)"
                    ));
                }
            }
        }
        match st.reader.next() {
            Next::Frame(f) => return Ok(f),
            Next::Closed => {
                return Err(mp_err!(EOFError, "the other end of the connection is closed and no message is left"))
            }
            Next::Broken(b) => return Err(mp_err!(OSError, "{}", b.message())),
            Next::Pending => {}
        }
        let limit = max.map(|m| m as u64);
        if !fill_spinning(fd, st, limit, "recv")? {
            rhai_mp_core::transport::poll::wait_readable(fd, Deadline::NEVER).map_err(|e| io_error("recv", e))?;
        }
    }
}

/// Receives the next message and unpickles it.
pub(crate) fn recv_value(fd: BorrowedFd, st: &mut Stream) -> MpResult<Dynamic> {
    let frame = recv_frame(fd, st, None)?;
    let challenge = frame.starts_with(auth::CHALLENGE);
    pickle::decode_owned(frame).map_err(|e| {
        if challenge {
            return mp_err!(
                AuthenticationError,
                "the peer sent an authentication challenge: it has an authkey, and this connection was made without \
                 one (Client(address, #{{authkey: ..}}), Listener(#{{address, authkey}}))"
            );
        }
        e
    })
}

/// Whether a whole message (or the end of the stream) is there, waiting until `deadline`.
pub(crate) fn poll(fd: BorrowedFd, st: &mut Stream, deadline: Deadline) -> MpResult<bool> {
    loop {
        if st.reader.ready() {
            return Ok(true);
        }
        let read = if deadline.passed() {
            st.reader.fill(fd, None).map_err(|e| io_error("poll", e))?
        } else {
            fill_spinning(fd, st, None, "poll")?
        };
        if !read && !rhai_mp_core::transport::poll::wait_readable(fd, deadline).map_err(|e| io_error("poll", e))? {
            return Ok(false);
        }
    }
}

/// Reads what is there without blocking; whether a whole message (or the end) is there.
pub(crate) fn ready_now(fd: BorrowedFd, st: &mut Stream) -> MpResult<bool> {
    while !st.reader.ready() {
        if !st.reader.fill(fd, None).map_err(|e| io_error("wait", e))? {
            return Ok(false);
        }
    }
    Ok(true)
}
