//! The wire format: the one module through which every value crosses a process boundary.
//!
//! Two kinds of things cross:
//!
//! - **Rhai values** ([`Dynamic`]): unit, bool, int, float, char, string, blob, array,
//!   object map, function pointers and closures *with their captured values*, and handles
//!   (a Queue, a Lock, a host type …) whose Rust type has a codec ([`Handle`],
//!   [`register_codec`]). A value becomes a [`Wire`] tree (`tree.rs`), written with bincode 2
//!   (`bytes.rs`); shared values (closure captures) keep their sharing.
//! - **Typed messages** ([`Portable`]): the boot message of a child, a pool's tasks and
//!   results, a manager's requests and replies, and a handle's own state. They are written
//!   field by field with a [`Writer`] and read back with a [`Reader`] (`message.rs`); a field
//!   may be a Rhai value, a descriptor, or another portable type.
//!
//! Descriptors (a handle's memfd, a socket) travel beside the bytes in a [`Packet`] — sent
//! with `SCM_RIGHTS`, or inherited over `fork` — and are named in the bytes by their index.
//!
//! What does not cross, with a `SerializationError` naming the value and where it is
//! (`args[1].items[3]`): a type with no codec (Process, Pool, timestamps, host types), a
//! shared-reference cycle, a value nested deeper than [`MAX_DEPTH`], and a native Rust
//! function pointer.
//!
//! Code travels with function pointers (`code.rs`): a script's functions and closures cross
//! by name (every process of the tree compiled the script; closures are `anon$<hash>`, the
//! same in every process thanks to the fixed hashing seed of `run::setup::init`), and code
//! typed at the REPL or evaluated by a host crosses with its text, compiled once per
//! receiving process. The decoder never panics on malformed bytes and never allocates more
//! than the input could hold: it returns a `SerializationError`.
//! bincode is used in this module only.
//!
//! Floor 1: it imports only the base (the transport never imports it, nor it the transport).
//! Its files
//! refer to each other — a value holds handles, whose codecs write messages that hold
//! values — behind this one API:
//!
//! - `tree.rs` — a Rhai value as a [`Wire`] tree, and back (sharing and cycles checked);
//! - `bytes.rs` — a tree as bytes (bincode), large parts kept apart;
//! - `message.rs` — typed messages: [`Writer`], [`Reader`], [`Portable`];
//! - `handle.rs` — the codecs of handle types (a Queue, a Lock, a host type);
//! - `code.rs` — code that travels: session units, closures by name.

mod bytes;
mod code;
mod handle;
mod message;
mod tree;

pub use bytes::{tree_from_bytes, tree_to_bytes};
pub use code::{add_program, add_unit, compile_unit, set_program, unit_of_function, unit_source, unit_text};
pub use handle::{register_codec, register_handle, registered_kinds, DataCodec, Handle, HandleCodec};
pub use message::{decode_message, encode_message, encode_remote, Portable, Reader, Writer};
pub use tree::Wire;

use crate::base::error::{ErrorKind, MpError, MpResult};
use rhai::Dynamic;
use std::os::fd::OwnedFd;

/// Values nested deeper than this do not cross (and a malicious message cannot overflow the
/// decoder's stack).
pub const MAX_DEPTH: u32 = 512;

/// Encoded bytes plus the file descriptors that must travel with them.
#[derive(Debug, Default)]
pub struct Packet {
    /// The encoded message.
    pub bytes: Vec<u8>,
    /// The descriptors its handles need, in the order the bytes name them.
    pub fds: Vec<OwnedFd>,
}

/// An encoded message whose large blobs and blocks of ints are kept apart from its other
/// bytes, so that they are copied once, straight to where the message goes (a memfd, a
/// queue's file) rather than first into one buffer. [`Segmented::pieces`] in order are the
/// message's bytes.
#[derive(Debug, Default)]
pub struct Segmented {
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    /// The parts, each with its position in `bytes` (ascending).
    apart: Vec<(usize, bytes::Segment)>,
}

impl Segmented {
    /// The message's length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len() + self.apart.iter().map(|(_, s)| s.as_bytes().len()).sum::<usize>()
    }

    /// Whether the message has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The message's bytes, in pieces.
    pub fn pieces(&self) -> Vec<&[u8]> {
        let mut out = Vec::with_capacity(2 * self.apart.len() + 1);
        let mut at = 0;
        for (pos, seg) in &self.apart {
            out.push(&self.bytes[at..*pos]);
            out.push(seg.as_bytes());
            at = *pos;
        }
        out.push(&self.bytes[at..]);
        out.retain(|p| !p.is_empty());
        out
    }

    /// The descriptors that travel with the message.
    pub fn fds(&self) -> &[OwnedFd] {
        &self.fds
    }

    /// The message in one piece.
    pub fn into_packet(self) -> Packet {
        if self.apart.is_empty() {
            return Packet { bytes: self.bytes, fds: self.fds };
        }
        let mut bytes = Vec::with_capacity(self.len());
        for p in self.pieces() {
            bytes.extend_from_slice(p);
        }
        Packet { bytes, fds: self.fds }
    }
}

/// Encodes a value the caller gives up (see [`Writer::value_owned`]); `root` names it in
/// error messages.
pub fn encode_owned(value: Dynamic, root: &str) -> MpResult<Segmented> {
    let mut w = Writer::new();
    w.value_owned(value, root)?;
    Ok(w.finish_apart())
}

/// A `SerializationError` with this message.
pub(crate) fn serr(msg: impl Into<String>) -> MpError {
    MpError::new(ErrorKind::SerializationError, msg)
}

/// The `SerializationError` for a message whose `what` is not as it should be.
pub fn malformed(what: &str) -> MpError {
    serr(format!("malformed message: {what}"))
}

/// Encodes one Rhai value into a packet. `root` names it in error messages (`"obj"`).
pub fn encode(value: &Dynamic, root: &str) -> MpResult<Packet> {
    let mut w = Writer::new();
    w.value(value, root)?;
    Ok(w.finish())
}

/// Encodes one Rhai value for another machine (an MPI rank, a TCP manager): objects that
/// live in this host's memory are refused with a `SerializationError` naming their
/// equivalent (see [`Writer::remote`]). The packet has no descriptors.
pub fn encode_remote_value(value: &Dynamic, root: &str) -> MpResult<Packet> {
    let mut w = Writer::remote();
    w.value(value, root)?;
    let p = w.finish();
    if !p.fds.is_empty() {
        return Err(serr(format!("{root} holds objects that live in this host's memory")));
    }
    Ok(p)
}

/// Decodes a packet made by [`encode`] back into a value.
pub fn decode(bytes: &[u8], fds: Vec<OwnedFd>) -> MpResult<Dynamic> {
    let mut r = Reader::new(bytes, fds);
    let v = r.value()?;
    r.finish()?;
    Ok(v)
}
