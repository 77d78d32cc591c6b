//! Floor 1, the transport: how bytes and descriptors travel between processes. What they
//! mean is the wire format's business: this folder and `wire/` never import each other.
//!
//! - `seqpacket/` — atomic messages over `SOCK_SEQPACKET` sockets (pipes, a queue's
//!   descriptor side channel, a manager's connections), large ones in a memfd;
//! - `stream.rs` — framed messages over stream sockets (a spawned child's boot message, the
//!   forkserver's requests);
//! - `listener.rs` — listening sockets in the abstract namespace that only this user may
//!   reach (the forkserver's, a manager's);
//! - `tcp.rs` — addresses, listening and connecting over TCP, and length-prefixed frames (a
//!   manager that other machines reach, MPI ranks);
//! - `poll.rs` — waiting for descriptors to become readable.

pub mod listener;
pub mod poll;
pub mod seqpacket;
pub mod stream;
pub mod tcp;
