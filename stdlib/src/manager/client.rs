//! The client side of a manager: proxies, and the connections they talk over.
//!
//! A proxy names its object by the server's address, the manager's secret key and the
//! object's id; that is all that crosses a process boundary (no descriptors), so a proxy
//! works in any process it reaches. Each process opens one connection per server, on first
//! use, and authenticates with the key; a forked child notices it is not the process that
//! opened a connection and opens its own.
//!
//! A request is one message `[id, method, args]`, the reply one message `[ok, value]`
//! (both encoded by the wire format). An error raised in the server comes back as the map
//! a local `catch` would see and is thrown again here.

use rhai::{Array, Dynamic, EvalAltResult, NativeCallContext};
use rhai_mp_core::{mp_err, ContextFns, HandleCodec, MessageKind, MpError, MpResult, NoFunctions};
use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// The first message of a connection is the key; the server answers with one of these.
pub const AUTH_OK: &[u8] = b"ok";
pub const AUTH_BAD: &[u8] = b"denied";

/// What a proxy stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dict = 1,
    List = 2,
    Namespace = 3,
    Value = 4,
    Array = 5,
}

impl Kind {
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Dict,
            2 => Kind::List,
            3 => Kind::Namespace,
            4 => Kind::Value,
            5 => Kind::Array,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Dict => "DictProxy",
            Kind::List => "ListProxy",
            Kind::Namespace => "NamespaceProxy",
            Kind::Value => "ValueProxy",
            Kind::Array => "ArrayProxy",
        }
    }
}

/// Where a server is and how to get in.
#[derive(Clone, PartialEq, Eq)]
pub struct Address {
    pub name: String,
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
    /// The script's functions, taken at the first request made with a context: replies
    /// read without one (a `for` loop over a proxy) may hold closures too.
    static FUNCTIONS: RefCell<Option<rhai_mp_core::FnTable>> = const { RefCell::new(None) };
    /// The receive buffer, kept between requests (it is 64 KiB).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn gone(what: &str, e: impl std::fmt::Display) -> MpError {
    mp_err!(BrokenPipeError, "the manager's server process is gone (shut down, or it died) — {what}: {e}")
}

/// Connects and authenticates.
fn connect(addr: &Address) -> MpResult<OwnedFd> {
    use nix::sys::socket::{self as sock, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = sock::socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)?;
    let ua = UnixAddr::new_abstract(addr.name.as_bytes())?;
    sock::connect(fd.as_raw_fd(), &ua).map_err(|e| {
        mp_err!(
            BrokenPipeError,
            "cannot reach the manager's server (it was shut down, or it died): {}",
            std::io::Error::from_raw_os_error(e as i32)
        )
    })?;
    // A live server answers at once; don't wait forever for one that is stopped.
    let _ = sock::setsockopt(&fd, sock::sockopt::ReceiveTimeout, &nix::sys::time::TimeVal::new(30, 0));
    rhai_mp_core::transport::send(fd.as_fd(), MessageKind::Bytes, &addr.authkey, &[])
        .map_err(|e| gone("authentication", e))?;
    let mut scratch = Vec::new();
    let answer = rhai_mp_core::transport::recv_message(fd.as_fd(), &mut scratch);
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
pub fn forget(addr: &Address) {
    CONNECTIONS.with(|c| c.borrow_mut().remove(&addr.name));
}

/// Sends `[id, method, args]` and returns the reply's value (or throws its error).
pub fn request(
    ctx: Option<&NativeCallContext>,
    addr: &Address,
    id: u64,
    method: &str,
    args: Array,
) -> RhaiResult<Dynamic> {
    let msg = Dynamic::from_array(vec![(id as rhai::INT).into(), method.into(), Dynamic::from_array(args)]);
    let packet = rhai_mp_core::encode(&msg, "args")?;
    let fd = connection(addr)?;
    if let Err(e) = rhai_mp_core::transport::send(fd.as_fd(), MessageKind::Value, &packet.bytes, &packet.fds) {
        forget(addr);
        return Err(gone("sending a request", e).into());
    }
    let received = SCRATCH.with(|s| rhai_mp_core::transport::recv_message(fd.as_fd(), &mut s.borrow_mut()));
    let reply = match received {
        Ok(Some(m)) => m,
        Ok(None) => {
            forget(addr);
            return Err(gone("waiting for a reply", "the connection closed").into());
        }
        Err(e) => {
            forget(addr);
            return Err(gone("waiting for a reply", e).into());
        }
    };
    let value = match ctx {
        Some(ctx) => {
            FUNCTIONS.with(|f| {
                let mut f = f.borrow_mut();
                if f.is_none() {
                    *f = Some(rhai_mp_core::FnTable::from_context(ctx));
                }
            });
            rhai_mp_core::decode(&reply.data, reply.fds, &ContextFns(ctx))?
        }
        None => FUNCTIONS.with(|f| match &*f.borrow() {
            Some(table) => rhai_mp_core::decode(&reply.data, reply.fds, table),
            None => rhai_mp_core::decode(&reply.data, reply.fds, &NoFunctions),
        })?,
    };
    let bad = || mp_err!(SerializationError, "malformed reply from the manager's server");
    let mut parts = value.try_cast::<Array>().ok_or_else(bad)?;
    if parts.len() != 2 {
        return Err(bad().into());
    }
    let value = parts.pop().unwrap();
    if parts[0].as_bool().map_err(|_| bad())? {
        Ok(value)
    } else {
        Err(rhai_mp_core::rethrow(value))
    }
}

/// A proxy: a handle on an object kept by a manager's server. Copies share it.
#[derive(Clone)]
pub struct Proxy(pub Rc<ProxyInner>);

pub struct ProxyInner {
    pub addr: Address,
    pub id: u64,
    pub kind: Kind,
    /// In the process that made the manager: keeps it running while proxies exist.
    #[allow(dead_code)] // held, never read
    pub owner: Option<super::Manager>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} id={}>", self.0.kind.name(), self.0.id)
    }
}

impl Proxy {
    pub fn call(&self, ctx: Option<&NativeCallContext>, method: &str, args: Array) -> RhaiResult<Dynamic> {
        request(ctx, &self.0.addr, self.0.id, method, args)
    }
}

/// Sends proxies: the server's address, the key and the object's id.
pub(crate) struct ProxyCodec;

impl HandleCodec for ProxyCodec {
    fn kind(&self) -> &'static str {
        "Proxy"
    }
    fn type_id(&self) -> std::any::TypeId {
        std::any::TypeId::of::<Proxy>()
    }
    fn encode(&self, value: &Dynamic, _fds: &mut Vec<OwnedFd>) -> MpResult<Vec<u8>> {
        let p = value.read_lock::<Proxy>().ok_or_else(|| mp_err!(SerializationError, "not a proxy"))?;
        let mut b = Vec::new();
        b.extend_from_slice(&p.0.id.to_le_bytes());
        b.push(p.0.kind as u8);
        b.extend_from_slice(&(p.0.addr.name.len() as u32).to_le_bytes());
        b.extend_from_slice(p.0.addr.name.as_bytes());
        b.extend_from_slice(&p.0.addr.authkey);
        Ok(b)
    }
    fn decode(&self, data: &[u8], _fds: Vec<OwnedFd>) -> MpResult<Dynamic> {
        let bad = || mp_err!(SerializationError, "malformed proxy");
        if data.len() < 13 {
            return Err(bad());
        }
        let id = u64::from_le_bytes(data[0..8].try_into().unwrap());
        let kind = Kind::from_u8(data[8]).ok_or_else(bad)?;
        let n = u32::from_le_bytes(data[9..13].try_into().unwrap()) as usize;
        let name = data.get(13..13 + n).ok_or_else(bad)?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| bad())?;
        let authkey = data[13 + n..].to_vec();
        Ok(Dynamic::from(Proxy(Rc::new(ProxyInner { addr: Address { name, authkey }, id, kind, owner: None }))))
    }
}
