//! The client side of a manager: where a server is ([`Address`]), the connection each
//! process keeps to it, and [`exchange`], which sends one typed request and waits for its
//! reply.
//!
//! Each process opens one connection per server and key, on first use, and runs the
//! handshake of `auth.rs` on it. A forked child drops the connections it inherited (see
//! [`forget_all`]) and opens its own: the server tells processes apart by connection (a
//! lock's owner is a connection). A request's reply may take as long as the operation
//! waits (a queue's `get`); a signal (Ctrl-C) during that wait sends [`Request::Cancel`],
//! and the request ends either cancelled (the signal's error is thrown) or done (its result
//! is returned, and the signal is acted on at the next check) — a value is never lost.
//!
//! Nothing waits for ever on a network that failed. A TCP connection (both ends) has a
//! liveness bound, [`liveness`] (20 s, or `RHAI_MP_MANAGER_LIVENESS` seconds): keepalive
//! probes and `TCP_USER_TIMEOUT` (see `tcp::set_liveness`) end a connection whose peer's
//! host has acknowledged nothing for that long, and the call waiting on it throws
//! `BrokenPipeError`. A timed call (a queue's `get(true, 1)`, an `acquire(true, t)`, a
//! `wait(t)`; a non-blocking one counts as timeout 0) waits for its reply for its timeout
//! and half the liveness bound more at most, then throws `TimeoutError` and closes the
//! connection (a reply that came later would be taken for the next request's); the next
//! call connects again. So through a partition a timed call fails within its timeout plus
//! half the bound, and any other within the bound (a reconnect, within the bound too).

use super::auth::{Hello, Verdict};
use super::protocol::{Reply, Request};
use rhai::Dynamic;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, MpResult, RhaiResult};
use rhai_mp_core::transport::seqpacket::Kind as MessageKind;
use rhai_mp_core::transport::tcp::{self, FrameReader, Read};
use rhai_mp_core::transport::{listener, seqpacket};
use rhai_mp_core::wire::Portable;
use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

/// The largest message a connection takes once it has authenticated.
pub(super) const MAX_MESSAGE: usize = 1 << 30;
/// The largest message of the handshake.
pub(super) const MAX_HANDSHAKE: usize = 1024;
/// How long a connection may take to get through the handshake, and a connect may take.
pub(super) const HANDSHAKE_TIME: f64 = 10.0;
/// The default of [`liveness`].
const LIVENESS: Duration = Duration::from_secs(20);

/// How long a TCP connection to or from a manager's server may go without a sign of life
/// from the other host before it is given up (see the module doc): `RHAI_MP_MANAGER_LIVENESS`
/// seconds (read by clients and servers alike; at least 1), else 20 s.
pub(crate) fn liveness() -> Duration {
    std::env::var("RHAI_MP_MANAGER_LIVENESS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(LIVENESS, |s| Duration::from_secs_f64(s.clamp(1.0, 86400.0)))
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// An abstract Unix socket of this host (`Manager()`): its objects may be shared memory.
    Local(String),
    /// A TCP address, `"host:port"`: every object is held by the server.
    Tcp(String),
}

impl Endpoint {
    /// The address as scripts see it.
    pub fn text(&self) -> &str {
        match self {
            Endpoint::Local(name) | Endpoint::Tcp(name) => name,
        }
    }
}

/// Where a server is and how to get in.
#[derive(Clone, PartialEq, Eq)]
pub struct Address {
    /// The server's socket.
    pub endpoint: Endpoint,
    /// The manager's key.
    pub authkey: Vec<u8>,
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Address({:?})", self.endpoint) // never the key
    }
}

/// A connection's socket and how messages are framed on it.
enum Link {
    /// A seqpacket socket: one message per packet, descriptors included.
    Local(OwnedFd),
    /// A TCP socket: length-prefixed frames, no descriptors.
    Tcp(OwnedFd, FrameReader),
}

impl Link {
    /// Sends a message (a signal can stop a send that waits for room: `Interrupted`).
    fn send<T: Portable>(&mut self, msg: &T) -> Result<(), Failure> {
        match self {
            Link::Local(fd) => {
                let packet = rhai_mp_core::wire::encode_message(msg).map_err(Failure::Encode)?;
                seqpacket::send(fd.as_fd(), MessageKind::Value, &[&packet.bytes], &packet.fds, None)
                    .map_err(Failure::Io)
            }
            Link::Tcp(fd, _) => {
                let bytes = rhai_mp_core::wire::encode_remote(msg).map_err(Failure::Encode)?;
                let frame = tcp::frame(&bytes).map_err(|e| Failure::Encode(mp_err!(ValueError, "{e}")))?;
                tcp::write_all(fd.as_fd(), &frame).map_err(Failure::Io)
            }
        }
    }

    /// Receives a message, waiting at most until `deadline` (`TimedOut`); `Ok(None)`: the
    /// server closed the connection.
    fn recv<T: Portable>(&mut self, deadline: Deadline) -> Result<Option<T>, Failure> {
        let decode =
            |bytes: &[u8], fds| rhai_mp_core::wire::decode_message(bytes, fds).map(Some).map_err(Failure::Decode);
        match self {
            Link::Local(fd) => {
                if !deadline.is_never()
                    && !rhai_mp_core::transport::poll::wait_readable(fd.as_fd(), deadline).map_err(Failure::Io)?
                {
                    return Err(Failure::Io(std::io::ErrorKind::TimedOut.into()));
                }
                match SCRATCH.with(|s| {
                    seqpacket::recv_message(fd.as_fd(), &mut s.borrow_mut(), &rhai_mp_core::base::spin::SHARED, None)
                }) {
                    Ok(Some(m)) if m.kind == MessageKind::Value => decode(&m.data, m.fds),
                    Ok(Some(_)) => Err(Failure::Io(std::io::ErrorKind::InvalidData.into())),
                    Ok(None) => Ok(None),
                    Err(e) => Err(Failure::Io(e)),
                }
            }
            Link::Tcp(fd, reader) => {
                // A reply often comes within microseconds: look again for a moment before
                // sleeping, which saves the sleep and the wake-up (when polling pays: see
                // `rhai_mp_core::base::spin`).
                static TCP_SPIN: rhai_mp_core::base::spin::Spin = rhai_mp_core::base::spin::Spin::new();
                let mut polled = false;
                loop {
                    match reader.read_from(fd.as_fd()).map_err(Failure::Io)? {
                        Read::Frame(f) => return decode(&f, Vec::new()),
                        Read::Closed => return Ok(None),
                        Read::Pending
                            if !std::mem::replace(&mut polled, true)
                                && TCP_SPIN.spin_while(|| {
                                    !rhai_mp_core::transport::poll::readable_now(fd.as_fd()).unwrap_or(true)
                                }) => {}
                        Read::Pending => {
                            if !rhai_mp_core::transport::poll::wait_readable(fd.as_fd(), deadline)
                                .map_err(Failure::Io)?
                            {
                                return Err(Failure::Io(std::io::ErrorKind::TimedOut.into()));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Why an exchange failed.
enum Failure {
    /// The request could not be encoded (nothing was sent; the connection is fine).
    Encode(MpError),
    /// The socket failed, or a signal stopped the wait.
    Io(std::io::Error),
    /// The reply was malformed.
    Decode(MpError),
}

struct Open {
    authkey: Vec<u8>,
    pid: u32,
    link: Rc<RefCell<Link>>,
}

thread_local! {
    /// This process's connections, by endpoint (and key: a few at most per endpoint).
    static CONNECTIONS: RefCell<HashMap<Endpoint, Vec<Open>>> = RefCell::new(HashMap::new());
    /// The receive buffer of local connections, kept between requests (it is 64 KiB).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn gone(addr: &Address, what: &str, e: impl std::fmt::Display) -> MpError {
    mp_err!(
        BrokenPipeError,
        "the manager's server at {} is gone (shut down, or it died, or the network failed) — {what}: {e}",
        addr.endpoint.text()
    )
}

/// Connects and runs the handshake.
fn connect(addr: &Address, explicit: bool) -> MpResult<Link> {
    let mut link = match &addr.endpoint {
        Endpoint::Local(name) => Link::Local(listener::connect(name, listener::Kind::SeqPacket).map_err(|e| {
            mp_err!(BrokenPipeError, "cannot reach the manager's server (it was shut down, or it died): {e}")
        })?),
        Endpoint::Tcp(address) => {
            let within = Duration::from_secs_f64(HANDSHAKE_TIME).min(liveness());
            let fd = tcp::connect(address, within).map_err(|e| {
                // A proxy whose server went away, or cannot be reached: that is a broken
                // pipe (connect() itself reports ConnectionRefusedError, see `check`).
                match e.kind {
                    rhai_mp_core::prelude::ErrorKind::ConnectionRefusedError if !explicit => {
                        gone(addr, "connecting", "nothing listens there any more")
                    }
                    rhai_mp_core::prelude::ErrorKind::OSError if !explicit => gone(addr, "connecting", &e.message),
                    _ => e,
                }
            })?;
            tcp::set_nonblocking(fd.as_fd()).map_err(|e| MpError::os("a manager connection", e))?;
            tcp::set_liveness(fd.as_fd(), liveness()).map_err(|e| MpError::os("a manager connection", e))?;
            Link::Tcp(fd, FrameReader::new(MAX_HANDSHAKE))
        }
    };
    let deadline = Deadline::after_secs(HANDSHAKE_TIME);
    let failed = |e: Failure| {
        match e {
        Failure::Io(e) if e.kind() == std::io::ErrorKind::Interrupted => MpError::os("connecting to a manager", e),
        Failure::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => mp_err!(
            AuthenticationError,
            "the server at {} did not start the manager's handshake within {HANDSHAKE_TIME} s (is it a rhai-mp manager?)",
            addr.endpoint.text()
        ),
        Failure::Io(e) => gone(addr, "authentication", e),
        Failure::Decode(_) => mp_err!(
            AuthenticationError,
            "the server at {} does not speak the manager's handshake (is it a rhai-mp manager?)",
            addr.endpoint.text()
        ),
        Failure::Encode(e) => e,
    }
    };
    let closed = || gone(addr, "authentication", "the connection closed");
    let hello: Hello = link.recv(deadline).map_err(failed)?.ok_or_else(closed)?;
    let answer = hello.answer(&addr.authkey)?;
    link.send(&answer).map_err(failed)?;
    let verdict: Verdict = link.recv(deadline).map_err(failed)?.ok_or_else(|| {
        // A server closes right after a denial; the verdict may be lost with it.
        mp_err!(AuthenticationError, "the manager's server at {} refused this key", addr.endpoint.text())
    })?;
    match verdict {
        Verdict::Denied => {
            Err(mp_err!(AuthenticationError, "the manager's server at {} refused this key", addr.endpoint.text()))
        }
        v if !v.proves(&addr.authkey, &answer) => Err(mp_err!(
            AuthenticationError,
            "the server at {} could not prove it knows the manager's key: it is not the manager this key is for",
            addr.endpoint.text()
        )),
        _ => {
            if let Link::Tcp(_, reader) = &mut link {
                reader.set_max(MAX_MESSAGE);
            }
            Ok(link)
        }
    }
}

fn connection(addr: &Address, explicit: bool) -> MpResult<Rc<RefCell<Link>>> {
    let me = rhai_mp_core::base::sys::pid();
    let open = CONNECTIONS.with(|c| {
        let c = c.borrow();
        let open = c.get(&addr.endpoint)?.iter().find(|o| o.authkey == addr.authkey)?;
        (open.pid == me).then(|| open.link.clone())
    });
    if let Some(link) = open {
        return Ok(link);
    }
    forget(addr);
    let link = Rc::new(RefCell::new(connect(addr, explicit)?));
    let open = Open { authkey: addr.authkey.clone(), pid: me, link: link.clone() };
    CONNECTIONS.with(|c| c.borrow_mut().entry(addr.endpoint.clone()).or_default().push(open));
    Ok(link)
}

/// Checks that a server answers this address and key (`m.connect()`).
pub(super) fn check(addr: &Address) -> MpResult<()> {
    connection(addr, true).map(|_| ())
}

/// Closes this process's connection to a server.
pub(super) fn forget(addr: &Address) {
    CONNECTIONS.with(|c| {
        if let Some(open) = c.borrow_mut().get_mut(&addr.endpoint) {
            open.retain(|o| o.authkey != addr.authkey);
        }
    });
}

/// Closes every connection (a forked child: its parent's connections are not its own, and
/// holding them open would keep the server from noticing the parent's death).
pub(crate) fn forget_all() {
    CONNECTIONS.with(|c| c.borrow_mut().clear());
}

/// Sends a request and returns the server's reply.
pub(super) fn exchange(addr: &Address, req: &Request) -> MpResult<Reply> {
    let link = connection(addr, false)?;
    let mut link = link.borrow_mut();
    let broken = |e: std::io::Error, what: &str| {
        forget(addr);
        if e.kind() == std::io::ErrorKind::Interrupted {
            return MpError::os(what, e);
        }
        gone(addr, what, e)
    };
    match link.send(req) {
        Ok(()) => {}
        Err(Failure::Encode(e)) => return Err(e),
        Err(Failure::Io(e)) => return Err(broken(e, "sending a request")),
        Err(Failure::Decode(e)) => return Err(e),
    }
    // A timed request's reply is due by its timeout; half the liveness bound more covers
    // its travel and a busy server.
    let slack = liveness().as_secs_f64() / 2.0;
    let due = req.timeout().map_or(Deadline::NEVER, |t| Deadline::after_secs(t + slack));
    match link.recv::<Reply>(due) {
        Ok(Some(reply)) => Ok(reply),
        // Our own deadline (a socket's ETIMEDOUT, its liveness bound, has an errno: it is
        // a broken pipe, below).
        Err(Failure::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut && e.raw_os_error().is_none() => {
            forget(addr);
            Err(mp_err!(
                TimeoutError,
                "no reply from the manager's server at {} within the call's timeout ({} s) and {slack} s more \
                 (the network may be partitioned; the connection is closed, the next call connects again)",
                addr.endpoint.text(),
                req.timeout().unwrap_or_default()
            ))
        }
        Ok(None) => Err(broken(std::io::ErrorKind::UnexpectedEof.into(), "waiting for a reply")),
        Err(Failure::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
            // A signal while the request waits: cancel it, and take whichever reply comes
            // (the signal stays noted, so it is acted on either way).
            let outcome = rhai_mp_core::base::interrupt::masked(|| {
                link.send(&Request::Cancel)?;
                link.recv::<Reply>(Deadline::after_secs(5.0))
            });
            match outcome {
                Ok(Some(Reply::Cancelled)) => Err(MpError::os("waiting for the manager", e)),
                Ok(Some(reply)) => Ok(reply),
                _ => Err(broken(e, "waiting for the manager")),
            }
        }
        Err(Failure::Io(e)) => Err(broken(e, "waiting for a reply")),
        Err(Failure::Decode(e)) | Err(Failure::Encode(e)) => {
            forget(addr);
            Err(mp_err!(SerializationError, "a malformed reply from the manager's server: {}", e.message))
        }
    }
}

/// Sends a request and returns the reply's value (or throws its error). A warning that
/// comes with it goes to stderr.
pub(super) fn request(addr: &Address, req: &Request) -> RhaiResult {
    value_of(exchange(addr, req)?)
}

/// A reply's value (or its error, thrown); a warning that comes with it goes to stderr.
pub(super) fn value_of(reply: Reply) -> RhaiResult {
    match reply {
        Reply::Value(v) => Ok(v),
        Reply::Warned(v, warning) => {
            rhai_mp_core::base::output::stderr_line(&warning);
            Ok(v)
        }
        Reply::Error(e) => Err(rhai_mp_core::base::error::rethrow(e)),
        Reply::Cancelled | Reply::RunAction(_) => {
            Err(mp_err!(SerializationError, "an unexpected reply from the manager's server").into())
        }
    }
}

/// `request` for a value that must be an object id (`Create`).
pub(super) fn request_id(addr: &Address, req: &Request) -> RhaiResult<u64> {
    let v: Dynamic = request(addr, req)?;
    v.as_int()
        .map(|i| i as u64)
        .map_err(|_| mp_err!(SerializationError, "malformed reply from the manager's server").into())
}
