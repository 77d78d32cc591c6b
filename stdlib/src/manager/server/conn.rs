//! One client connection as the server sees it: its socket (a local seqpacket one or a TCP
//! one), the messages read from it without ever blocking, the replies waiting to be
//! written, and where it is in the handshake.
//!
//! Nothing a client sends can stall the server: sockets are non-blocking, a TCP frame is
//! assembled as its bytes arrive (its announced length is checked first: at most
//! [`MAX_HANDSHAKE`] bytes before the handshake, [`MAX_MESSAGE`] after), replies that do not
//! fit in the socket wait in the connection's queue, and a connection that has not finished
//! the handshake in [`HANDSHAKE_TIME`] seconds, or sends nothing for as long halfway
//! through a frame, is dropped (a slowloris peer).

use crate::manager::auth::Hello;
use crate::manager::client::{HANDSHAKE_TIME, MAX_HANDSHAKE, MAX_MESSAGE};
use rhai_mp_core::prelude::{Deadline, MpResult};
use rhai_mp_core::transport::seqpacket;
use rhai_mp_core::transport::seqpacket::Kind as MessageKind;
use rhai_mp_core::transport::tcp::{self, FrameReader, Read};
use rhai_mp_core::wire::Portable;
use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Where a connection is in its life.
pub(super) enum Phase {
    /// The server sent its hello; the answer must come before the deadline.
    Hello(Hello, Deadline),
    /// Authenticated: requests come.
    Ready,
    /// Refused: the verdict is sent, then the connection closes.
    Closing,
}

/// A socket and its framing.
enum Link {
    Local(OwnedFd),
    Tcp(OwnedFd, FrameReader),
}

/// A reply not yet written.
enum Out {
    Packet(Vec<u8>, Vec<OwnedFd>),
    Bytes(Vec<u8>, usize),
}

/// A client connection.
pub(super) struct Conn {
    link: Link,
    out: VecDeque<Out>,
    pub(super) phase: Phase,
    /// A frame is half-read: how much of it, and when the peer is dropped if no more comes.
    stalled: Option<(usize, Deadline)>,
}

/// What a read found.
pub(super) enum Incoming {
    /// A message's bytes and descriptors.
    Message(Vec<u8>, Vec<OwnedFd>),
    /// Nothing now.
    Nothing,
    /// The peer is gone, or broke the protocol: drop the connection.
    Closed,
}

impl Conn {
    /// A local connection (seqpacket).
    pub(super) fn local(fd: OwnedFd, hello: Hello) -> Conn {
        Conn::new(Link::Local(fd), hello)
    }

    /// A TCP connection.
    pub(super) fn tcp(fd: OwnedFd, hello: Hello) -> Conn {
        Conn::new(Link::Tcp(fd, FrameReader::new(MAX_HANDSHAKE)), hello)
    }

    fn new(link: Link, hello: Hello) -> Conn {
        Conn {
            link,
            out: VecDeque::new(),
            phase: Phase::Hello(hello, Deadline::after_secs(HANDSHAKE_TIME)),
            stalled: None,
        }
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        match &self.link {
            Link::Local(fd) | Link::Tcp(fd, _) => fd.as_fd(),
        }
    }

    /// Whether this connection's messages go to another machine (TCP).
    pub(super) fn is_tcp(&self) -> bool {
        matches!(self.link, Link::Tcp(..))
    }

    /// The handshake is done: larger messages may come.
    pub(super) fn authenticated(&mut self) {
        self.phase = Phase::Ready;
        if let Link::Tcp(_, reader) = &mut self.link {
            reader.set_max(MAX_MESSAGE);
        }
    }

    /// When this connection is to be dropped for being slow (handshake or a frame).
    pub(super) fn deadline(&self) -> Deadline {
        let hello = match &self.phase {
            Phase::Hello(_, d) => *d,
            _ => Deadline::NEVER,
        };
        hello.min(self.stalled.map_or(Deadline::NEVER, |(_, d)| d))
    }

    /// Queues a message (encoded for this connection's transport).
    pub(super) fn queue<T: Portable>(&mut self, msg: &T) -> MpResult<()> {
        match &self.link {
            Link::Local(_) => {
                let p = rhai_mp_core::wire::encode_message(msg)?;
                self.out.push_back(Out::Packet(p.bytes, p.fds));
            }
            Link::Tcp(..) => {
                let bytes = rhai_mp_core::wire::encode_remote(msg)?;
                let frame = tcp::frame(&bytes).map_err(|e| rhai_mp_core::mp_err!(ValueError, "{e}"))?;
                self.out.push_back(Out::Bytes(frame, 0));
            }
        }
        Ok(())
    }

    /// Whether replies wait to be written.
    pub(super) fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// Writes what the socket takes; `Err` when the peer is gone.
    pub(super) fn flush(&mut self) -> std::io::Result<()> {
        while let Some(out) = self.out.front_mut() {
            let done = match (out, &self.link) {
                (Out::Packet(bytes, fds), Link::Local(fd)) => {
                    match seqpacket::send(fd.as_fd(), MessageKind::Value, &[bytes], fds, None) {
                        Ok(()) => true,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
                        Err(e) => return Err(e),
                    }
                }
                (Out::Bytes(buf, written), Link::Tcp(fd, _)) => tcp::write_some(fd.as_fd(), buf, written)?,
                _ => true,
            };
            if !done {
                return Ok(());
            }
            self.out.pop_front();
        }
        Ok(())
    }

    /// Reads the next message, if one is there.
    pub(super) fn read(&mut self, scratch: &mut Vec<u8>) -> Incoming {
        match &mut self.link {
            Link::Local(fd) => {
                match seqpacket::recv_message(fd.as_fd(), scratch, &rhai_mp_core::base::spin::SHARED, None) {
                    Ok(Some(m)) if m.kind == MessageKind::Value => Incoming::Message(m.data.into_vec(), m.fds),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Incoming::Nothing,
                    _ => Incoming::Closed,
                }
            }
            Link::Tcp(fd, reader) => match reader.read_from(fd.as_fd()) {
                Ok(Read::Frame(f)) => {
                    self.stalled = None;
                    Incoming::Message(f, Vec::new())
                }
                Ok(Read::Pending) => {
                    // A frame that makes no progress for a while is a stalled peer.
                    let now = reader.buffered();
                    if !reader.mid_frame() {
                        self.stalled = None;
                    } else if self.stalled.is_none_or(|(before, _)| before != now) {
                        self.stalled = Some((now, Deadline::after_secs(HANDSHAKE_TIME)));
                    }
                    Incoming::Nothing
                }
                Ok(Read::Closed) | Err(_) => Incoming::Closed,
            },
        }
    }
}

/// Makes a socket non-blocking (every connection of the server is).
pub(super) fn nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    tcp::set_nonblocking(fd.as_fd())
}
