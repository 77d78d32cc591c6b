//! The client side of a manager: where a server is ([`Address`]), the connection each
//! process keeps to it, and [`request`], which sends one typed request and returns the
//! reply's value (or throws its error).
//!
//! Each process opens one connection per server, on first use, and authenticates with the
//! key; a forked child notices it is not the process that opened a connection and opens its
//! own. An error raised in the server comes back as the map a local `catch` would see and
//! is thrown again here.

use super::protocol::{read_reply, Request};
use rhai::Dynamic;
use rhai_mp_core::transport::{listener, seqpacket};
use rhai_mp_core::{mp_err, MessageKind, MpError, MpResult, Reader, RhaiResult};
use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

/// The first message of a connection is the key; the server answers with one of these.
pub(super) const AUTH_OK: &[u8] = b"ok";
/// The server's answer to a wrong key.
pub(super) const AUTH_BAD: &[u8] = b"denied";

/// Where a server is and how to get in.
#[derive(Clone, PartialEq, Eq)]
pub struct Address {
    /// The server's socket name (abstract namespace).
    pub name: String,
    /// The manager's key.
    pub authkey: Vec<u8>,
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Address({:?})", self.name) // never the key
    }
}

struct Open {
    pid: u32,
    fd: Rc<OwnedFd>,
}

thread_local! {
    static CONNECTIONS: RefCell<HashMap<String, Open>> = RefCell::new(HashMap::new());
    /// The receive buffer, kept between requests (it is 64 KiB).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn gone(what: &str, e: impl std::fmt::Display) -> MpError {
    mp_err!(BrokenPipeError, "the manager's server process is gone (shut down, or it died) — {what}: {e}")
}

/// A request that failed half-way: the connection is dropped (a reply may still come on
/// it). A signal that stopped the wait gives its own error.
fn failed(addr: &Address, what: &str, e: std::io::Error) -> MpError {
    forget(addr);
    if e.kind() == std::io::ErrorKind::Interrupted {
        return MpError::os(what, e);
    }
    gone(what, e)
}

/// Connects and authenticates.
fn connect(addr: &Address) -> MpResult<OwnedFd> {
    use nix::sys::socket as sock;
    let fd = listener::connect(&addr.name, listener::Kind::SeqPacket).map_err(|e| {
        mp_err!(BrokenPipeError, "cannot reach the manager's server (it was shut down, or it died): {e}")
    })?;
    // A live server answers at once; don't wait forever for one that is stopped.
    let _ = sock::setsockopt(&fd, sock::sockopt::ReceiveTimeout, &nix::sys::time::TimeVal::new(30, 0));
    seqpacket::send(fd.as_fd(), MessageKind::Bytes, &addr.authkey, &[]).map_err(|e| gone("authentication", e))?;
    let mut scratch = Vec::new();
    let answer = seqpacket::recv_message(fd.as_fd(), &mut scratch);
    let _ = sock::setsockopt(&fd, sock::sockopt::ReceiveTimeout, &nix::sys::time::TimeVal::new(0, 0));
    match answer {
        Ok(Some(m)) if &*m.data == AUTH_OK => Ok(fd),
        Ok(_) => Err(mp_err!(AuthenticationError, "the manager's server refused this process's key")),
        Err(e) => Err(gone("authentication", e)),
    }
}

fn connection(addr: &Address) -> MpResult<Rc<OwnedFd>> {
    let me = rhai_mp_core::pid();
    if let Some(fd) = CONNECTIONS.with(|c| c.borrow().get(&addr.name).filter(|o| o.pid == me).map(|o| o.fd.clone())) {
        return Ok(fd);
    }
    let fd = Rc::new(connect(addr)?);
    CONNECTIONS.with(|c| c.borrow_mut().insert(addr.name.clone(), Open { pid: me, fd: fd.clone() }));
    Ok(fd)
}

/// Closes this process's connection to a server.
pub(super) fn forget(addr: &Address) {
    CONNECTIONS.with(|c| c.borrow_mut().remove(&addr.name));
}

/// Sends a request and returns the reply's value (or throws its error).
pub(super) fn request(addr: &Address, req: &Request) -> RhaiResult {
    let packet = rhai_mp_core::wire::encode_message(req)?;
    let fd = connection(addr)?;
    if let Err(e) = seqpacket::send(fd.as_fd(), MessageKind::Value, &packet.bytes, &packet.fds) {
        return Err(failed(addr, "sending a request", e).into());
    }
    let received = SCRATCH.with(|s| seqpacket::recv_message(fd.as_fd(), &mut s.borrow_mut()));
    let reply = match received {
        Ok(Some(m)) => m,
        Ok(None) => {
            forget(addr);
            return Err(gone("waiting for a reply", "the connection closed").into());
        }
        Err(e) => return Err(failed(addr, "waiting for a reply", e).into()),
    };
    let mut r = Reader::new(&reply.data, reply.fds);
    let reply = read_reply(&mut r)?;
    r.finish()?;
    reply.map_err(rhai_mp_core::rethrow)
}

/// `request` for a value that must be an object id (`Create`).
pub(super) fn request_id(addr: &Address, req: &Request) -> RhaiResult<u64> {
    let v: Dynamic = request(addr, req)?;
    v.as_int()
        .map(|i| i as u64)
        .map_err(|_| mp_err!(SerializationError, "malformed reply from the manager's server").into())
}
