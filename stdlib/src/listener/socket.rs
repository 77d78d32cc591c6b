//! The sockets under `Listener` and `Client`: addresses as scripts write them, listening,
//! connecting, and a listener's accepting.
//!
//! An address is `"host:port"` (TCP, IPv4 or IPv6: `"127.0.0.1:0"`, `"[::1]:0"`), `"@name"`
//! or `"\x00name"` (a Unix socket in Linux's abstract namespace: no file), or anything else,
//! a filesystem path (a Unix socket; a string with a `/` is always a path). A listener
//! removes its socket file when it is closed or dropped, in the process that made it only
//! (as Python's finalizer does: a forked child's copy leaves it alone).
//!
//! A listener with an authkey runs the handshake of every connection it has accepted at the
//! same time, without blocking on any (`auth.rs`): the listening socket is non-blocking,
//! and `accept()` (or `wait()`) takes every waiting connection, feeds each handshake what its
//! peer has sent, and hands out the first that completes. A client that stalls mid-handshake
//! holds up no one, and `wait([listener])` is ready only when `accept()` would not block
//! (a connection is through, or a handshake failed: `accept()` then throws its error, as
//! Python's does).

use super::auth::{self, Handshake};
use super::frame::{self, FrameReader, Next};
use crate::connection::Connection;
use rhai_mp_core::base::sys;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, MpResult};
use rhai_mp_core::transport::poll;
use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

/// How many connections may be mid-handshake at once; past it the oldest is dropped.
const MAX_PENDING: usize = 1024;

/// An address, parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Address {
    /// `"host:port"`.
    Tcp(String),
    /// A filesystem path.
    Path(PathBuf),
    /// An abstract name (without its NUL), and the text the script wrote.
    Abstract(Vec<u8>, String),
}

impl Address {
    /// Parses a script's address.
    pub(crate) fn parse(address: &str) -> MpResult<Address> {
        if let Some(name) = address.strip_prefix('@').or_else(|| address.strip_prefix('\0')) {
            if name.is_empty() {
                return Err(mp_err!(ValueError, "an abstract socket address needs a name after the '@': {address:?}"));
            }
            return Ok(Address::Abstract(name.as_bytes().to_vec(), address.to_string()));
        }
        if address.is_empty() {
            return Err(mp_err!(
                ValueError,
                "an address is \"host:port\", a socket file's path, or \"@name\", not an empty string"
            ));
        }
        if address.contains(':') && !address.contains('/') {
            return Ok(Address::Tcp(address.to_string()));
        }
        Ok(Address::Path(PathBuf::from(address)))
    }

    fn resolve(address: &str) -> MpResult<Vec<std::net::SocketAddr>> {
        use std::net::ToSocketAddrs;
        let bad = || {
            mp_err!(
                ValueError,
                "a TCP address is \"host:port\" (\"127.0.0.1:6000\", \"[::1]:0\", \"localhost:0\"), not {address:?}"
            )
        };
        let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return Err(bad());
        }
        let found: Vec<_> = (host, port)
            .to_socket_addrs()
            .map_err(|e| MpError::os(&format!("cannot resolve the host of {address:?}"), e))?
            .collect();
        if found.is_empty() {
            return Err(mp_err!(OSError, "the host of {address:?} has no address"));
        }
        Ok(found)
    }
}

fn unix_addr(name: &[u8]) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name)
}

fn set_listen_backlog(fd: BorrowedFd, backlog: i32) -> std::io::Result<()> {
    // listen() again on a listening socket only changes its backlog.
    nix::sys::socket::listen(&fd, nix::sys::socket::Backlog::new(backlog).map_err(std::io::Error::from)?)
        .map_err(std::io::Error::from)
}

/// `TCP_NODELAY`: a message is written in one piece; do not hold its last segment back.
fn tune_tcp(fd: BorrowedFd) {
    let _ = nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::TcpNoDelay, &true);
}

/// One connection accepted, handshake done (or none needed).
#[derive(Debug)]
struct Accepted {
    fd: OwnedFd,
    reader: FrameReader,
    peer: String,
}

/// One connection accepted whose handshake goes on.
#[derive(Debug)]
struct Pending {
    fd: OwnedFd,
    reader: FrameReader,
    handshake: Handshake,
    peer: String,
}

/// What a `Listener` handle refers to.
#[derive(Debug)]
pub(crate) struct ListenerState {
    fd: Option<OwnedFd>,
    /// The actual address, as scripts read it.
    address: String,
    tcp: bool,
    /// The socket file to remove at close, and the process that may remove it.
    unlink: Option<(PathBuf, u32)>,
    key: Option<Vec<u8>>,
    pending: Vec<Pending>,
    done: VecDeque<MpResult<Accepted>>,
    last_accepted: Option<String>,
}

impl Drop for ListenerState {
    fn drop(&mut self) {
        self.close();
    }
}

impl ListenerState {
    /// Listens at `address` (`backlog`: the kernel's queue of connections not accepted yet).
    pub(crate) fn bind(address: &str, key: Option<Vec<u8>>, backlog: i32) -> MpResult<ListenerState> {
        let backlog = backlog.clamp(0, 4096);
        let parsed = Address::parse(address)?;
        let fail = |e: std::io::Error| MpError::os(&format!("cannot listen at {address:?}"), e);
        let (fd, actual, tcp, unlink): (OwnedFd, String, bool, Option<(PathBuf, u32)>) = match &parsed {
            Address::Tcp(a) => {
                let mut last = None;
                let mut got = None;
                for addr in Address::resolve(a)? {
                    // std's bind sets SO_REUSEADDR, as Python's listener does.
                    match std::net::TcpListener::bind(addr) {
                        Ok(l) => {
                            got = Some(l);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let Some(l) = got else {
                    return Err(fail(last.unwrap_or_else(|| std::io::ErrorKind::AddrNotAvailable.into())));
                };
                let actual = l.local_addr().map_err(fail)?.to_string();
                (OwnedFd::from(l), actual, true, None)
            }
            Address::Path(p) => {
                let l = std::os::unix::net::UnixListener::bind(p).map_err(fail)?;
                (OwnedFd::from(l), address.to_string(), false, Some((p.clone(), sys::pid())))
            }
            Address::Abstract(name, text) => {
                let l = std::os::unix::net::UnixListener::bind_addr(&unix_addr(name).map_err(fail)?).map_err(fail)?;
                (OwnedFd::from(l), text.clone(), false, None)
            }
        };
        let state = ListenerState {
            fd: Some(fd),
            address: actual,
            tcp,
            unlink,
            key: key.filter(|k| !k.is_empty()),
            pending: Vec::new(),
            done: VecDeque::new(),
            last_accepted: None,
        };
        let fd = state.fd.as_ref().unwrap().as_fd();
        set_listen_backlog(fd, backlog).map_err(fail)?;
        rhai_mp_core::transport::tcp::set_nonblocking(fd).map_err(fail)?;
        Ok(state)
    }

    /// The actual address.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// The address of the last accepted peer (`""` for a Unix socket's client, as Python).
    pub(crate) fn last_accepted(&self) -> Option<&str> {
        self.last_accepted.as_deref()
    }

    /// Whether it is closed.
    pub(crate) fn closed(&self) -> bool {
        self.fd.is_none()
    }

    /// Stops listening; removes the socket file (in the process that made it).
    pub(crate) fn close(&mut self) {
        self.fd = None;
        self.pending.clear();
        self.done.clear();
        if let Some((path, pid)) = self.unlink.take() {
            if pid == sys::pid() {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    fn check(&self) -> MpResult<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd()).ok_or_else(|| mp_err!(OSError, "listener is closed"))
    }

    /// The descriptors whose readiness moves it on: the listening socket, and each pending
    /// handshake's.
    pub(crate) fn fds(&self) -> MpResult<Vec<i32>> {
        let mut out = vec![self.check()?.as_raw_fd()];
        out.extend(self.pending.iter().map(|p| p.fd.as_raw_fd()));
        Ok(out)
    }

    /// Whether `accept()` would not block now.
    pub(crate) fn ready(&self) -> bool {
        !self.done.is_empty()
    }

    fn peer_of(&self, fd: BorrowedFd) -> String {
        if !self.tcp {
            return String::new();
        }
        use nix::sys::socket::{getpeername, SockaddrStorage};
        match getpeername::<SockaddrStorage>(fd.as_raw_fd()) {
            Ok(a) => {
                if let Some(v4) = a.as_sockaddr_in() {
                    std::net::SocketAddr::from(std::net::SocketAddrV4::from(*v4)).to_string()
                } else if let Some(v6) = a.as_sockaddr_in6() {
                    std::net::SocketAddr::from(std::net::SocketAddrV6::from(*v6)).to_string()
                } else {
                    String::new()
                }
            }
            Err(_) => String::new(),
        }
    }

    /// Takes the connections waiting to be accepted and moves every handshake on, without
    /// blocking.
    pub(crate) fn drive(&mut self) -> MpResult<()> {
        let listen = self.check()?.as_raw_fd();
        for _ in 0..64 {
            use nix::sys::socket::{accept4, SockFlag};
            let fd = match accept4(listen, SockFlag::SOCK_CLOEXEC) {
                Ok(fd) => sys::own_fd(fd),
                Err(nix::Error::EAGAIN) => break,
                Err(nix::Error::EINTR | nix::Error::ECONNABORTED) => continue,
                Err(e) => return Err(MpError::os("accept", std::io::Error::from(e))),
            };
            if self.tcp {
                tune_tcp(fd.as_fd());
            }
            let peer = self.peer_of(fd.as_fd());
            let Some(key) = &self.key else {
                self.done.push_back(Ok(Accepted { fd, reader: FrameReader::default(), peer }));
                continue;
            };
            let (handshake, first) = Handshake::listener(key)?;
            if let Err(e) = frame::send_frame(fd.as_fd(), &first) {
                self.done.push_back(Err(MpError::os(&format!("the handshake with {}", shown(&peer)), e)));
                continue;
            }
            if self.pending.len() >= MAX_PENDING {
                self.pending.remove(0);
            }
            self.pending.push(Pending { fd, reader: FrameReader::default(), handshake, peer });
        }
        let mut i = 0;
        while i < self.pending.len() {
            match step(&mut self.pending[i]) {
                Ok(false) => i += 1,
                Ok(true) => {
                    let p = self.pending.remove(i);
                    self.done.push_back(Ok(Accepted { fd: p.fd, reader: p.reader, peer: p.peer }));
                }
                Err(e) => {
                    let p = self.pending.remove(i);
                    let e = MpError { message: format!("{} (client {})", e.message, shown(&p.peer)), ..e };
                    self.done.push_back(Err(e));
                }
            }
        }
        Ok(())
    }

    /// The next accepted connection, if one is through (`None`: none yet).
    fn take(&mut self) -> Option<MpResult<Connection>> {
        let next = self.done.pop_front()?;
        Some(next.map(|a| {
            self.last_accepted = Some(a.peer);
            Connection::from_stream(a.fd, a.reader)
        }))
    }
}

fn shown(peer: &str) -> &str {
    if peer.is_empty() {
        "on a Unix socket"
    } else {
        peer
    }
}

/// Moves a pending handshake on with what its peer has sent; `Ok(true)`: done.
fn step(p: &mut Pending) -> MpResult<bool> {
    loop {
        match p.reader.next() {
            Next::Frame(f) => {
                let s = p.handshake.on_frame(&f);
                for out in &s.send {
                    // A peer that closed before reading a #FAILURE# does not change the outcome.
                    let sent = frame::send_frame(p.fd.as_fd(), out);
                    if s.result.is_ok() {
                        sent.map_err(|e| MpError::os("the authentication handshake", e))?;
                    }
                }
                if s.result? {
                    return Ok(true);
                }
            }
            Next::Pending => {
                if let Ok(Some(len)) = p.reader.announced() {
                    if len > auth::MAX_FRAME {
                        return Err(mp_err!(
                            AuthenticationError,
                            "the peer's handshake message has {len} bytes, more than {} (is it multiprocessing's wire?)",
                            auth::MAX_FRAME
                        ));
                    }
                }
                if !p.reader.fill(p.fd.as_fd(), Some(auth::MAX_FRAME)).map_err(|e| MpError::os("the handshake", e))? {
                    return Ok(false);
                }
            }
            Next::Closed => {
                return Err(mp_err!(EOFError, "the peer closed the connection during the authentication handshake"))
            }
            Next::Broken(b) => return Err(mp_err!(OSError, "{} (during the authentication handshake)", b.message())),
        }
    }
}

/// A `Listener` handle; copies share it.
#[derive(Debug, Clone)]
pub struct Listener(pub(crate) std::rc::Rc<std::cell::RefCell<ListenerState>>);

impl Listener {
    /// Waits for the next connection whose handshake (if any) is through.
    pub(crate) fn accept(&self) -> MpResult<Connection> {
        loop {
            let fds = {
                let mut s = self.0.borrow_mut();
                s.drive()?;
                if let Some(c) = s.take() {
                    return c;
                }
                s.fds()?
            };
            let borrowed: Vec<_> = fds.iter().map(|&fd| sys::borrow_fd(fd)).collect();
            poll::wait_any(&borrowed, Deadline::NEVER).map_err(|e| MpError::os("accept", e))?;
        }
    }
}

/// How long `Client()` waits for a TCP connection to be made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

fn refused(address: &str, e: std::io::Error) -> MpError {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            mp_err!(ConnectionRefusedError, "[Errno 111] Connection refused: nothing listens at {address:?}")
        }
        std::io::ErrorKind::NotFound => {
            mp_err!(ConnectionRefusedError, "nothing listens at {address:?} (no such socket file)")
        }
        _ => MpError::os(&format!("cannot connect to {address:?}"), e),
    }
}

/// Connects to the listener at `address` and runs the handshake when `key` is given.
pub(crate) fn connect(address: &str, key: Option<Vec<u8>>) -> MpResult<Connection> {
    let fd: OwnedFd = match Address::parse(address)? {
        Address::Tcp(a) => {
            let mut last = None;
            let mut got = None;
            for addr in Address::resolve(&a)? {
                match std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                    Ok(s) => {
                        got = Some(s);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            let Some(s) = got else {
                return Err(refused(address, last.unwrap_or_else(|| std::io::ErrorKind::AddrNotAvailable.into())));
            };
            let fd = OwnedFd::from(s);
            tune_tcp(fd.as_fd());
            fd
        }
        Address::Path(p) => OwnedFd::from(std::os::unix::net::UnixStream::connect(p).map_err(|e| refused(address, e))?),
        Address::Abstract(name, _) => {
            let addr = unix_addr(&name).map_err(|e| refused(address, e))?;
            OwnedFd::from(std::os::unix::net::UnixStream::connect_addr(&addr).map_err(|e| refused(address, e))?)
        }
    };
    let mut reader = FrameReader::default();
    if let Some(key) = key.filter(|k| !k.is_empty()) {
        let mut hs = Handshake::client(&key);
        loop {
            let f = loop {
                if let Ok(Some(len)) = reader.announced() {
                    if len > auth::MAX_FRAME {
                        return Err(mp_err!(
                            AuthenticationError,
                            "the listener's handshake message has {len} bytes, more than {} (is it multiprocessing's \
                             wire, and does it have an authkey?)",
                            auth::MAX_FRAME
                        ));
                    }
                }
                match reader.next() {
                    Next::Frame(f) => break f,
                    Next::Closed => {
                        return Err(mp_err!(
                            EOFError,
                            "the listener at {address:?} closed the connection during the authentication handshake"
                        ))
                    }
                    Next::Broken(b) => {
                        return Err(mp_err!(OSError, "{} (during the authentication handshake)", b.message()))
                    }
                    Next::Pending => {}
                }
                if !reader.fill(fd.as_fd(), Some(auth::MAX_FRAME)).map_err(|e| MpError::os("the handshake", e))? {
                    poll::wait_readable(fd.as_fd(), Deadline::NEVER).map_err(|e| MpError::os("the handshake", e))?;
                }
            };
            let s = hs.on_frame(&f);
            for out in &s.send {
                let sent = frame::send_frame(fd.as_fd(), out);
                if s.result.is_ok() {
                    sent.map_err(|e| MpError::os("the authentication handshake", e))?;
                }
            }
            if s.result? {
                break;
            }
        }
    }
    Ok(Connection::from_stream(fd, reader))
}
