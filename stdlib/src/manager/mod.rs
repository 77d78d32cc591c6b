//! `Manager()`, `BaseManager(..)` and their proxies (see the reference, "Manager"): a
//! server that keeps shared objects for every process that holds a proxy — on this host
//! (`Manager()`, an abstract Unix socket) or for other machines too (a manager with an
//! address, over TCP).
//!
//! - `bindings.rs`: `Manager()`, `BaseManager(..)` and the manager's methods, as scripts
//!   see them;
//! - `proxy.rs`: proxies and the methods of dicts, lists, namespaces, values and arrays;
//! - `proxied.rs`: the methods of a TCP manager's queues and synchronization primitives;
//! - `protocol.rs`: the typed requests and replies between clients and the server;
//! - `auth.rs`: the handshake that proves both ends know the key;
//! - `client.rs`: where a server is, and this process's connections to servers;
//! - `server/`: the server's loop (the native entry `manager-server`, or the calling
//!   process for `serve_forever()`), its objects, and the requests parked on them.
//!
//! A started server is a daemon child started with the current start method (so it is
//! killed if its parent dies, and terminated when the main script ends); the manager shuts
//! it down when its last copy in the process that made it goes away (proxies made there
//! keep it). A local manager's primitives and queues (`m.Lock()`, `m.Queue()` …) are
//! rhai-mp's shared-memory ones, made in the server and used directly by every process:
//! they behave exactly as the globals, and keep working after `shutdown()`. A TCP
//! manager's are proxies: the server holds them, and each call is a request.

pub(crate) mod auth;
mod bindings;
mod client;
mod protocol;
mod proxied;
mod proxy;
mod server;

pub use bindings::manager_functions;
pub(crate) use client::forget_all as forget_connections;
pub(crate) use protocol::Timeout;
pub use proxied::proxied_functions;
pub use proxy::proxy_functions;
pub(crate) use proxy::register;
pub use proxy::Kind;
pub(crate) use proxy::Proxy;
pub(crate) use server::{entry as server_entry, ENTRY as SERVER_ENTRY};

use self::client::{Address, Endpoint};
use self::protocol::{Create, Request};
use self::proxy::ProxyInner;
use self::server::{ServerArgs, Transport};
use rhai::{Array, Dynamic, NativeCallContext};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, MpResult, RhaiResult};
use rhai_mp_core::transport::{listener, tcp};
use rhai_mp_core::tree::process::Process;
use rhai_mp_core::tree::state::StartMethod;
use std::cell::RefCell;
use std::rc::Rc;

/// Decodes a request as the server does (for `crate::fuzzing`): whether it is well formed.
pub(crate) fn decode_request(bytes: &[u8]) -> bool {
    rhai_mp_core::wire::decode_message::<Request>(bytes, Vec::new()).is_ok()
}

/// Decodes a handshake message each way it could be read (for `crate::fuzzing`): how many
/// of the three readings succeeded.
pub(crate) fn decode_handshake(bytes: &[u8]) -> usize {
    use rhai_mp_core::wire::decode_message;
    decode_message::<auth::Answer>(bytes, Vec::new()).is_ok() as usize
        + decode_message::<auth::Hello>(bytes, Vec::new()).is_ok() as usize
        + decode_message::<auth::Verdict>(bytes, Vec::new()).is_ok() as usize
}

/// A manager handle; copies share it.
#[derive(Clone)]
pub struct Manager(Rc<ManagerInner>);

/// Where a manager is in its life.
enum State {
    /// `BaseManager(..)`: neither started nor connected.
    Initial,
    /// `start()`ed: this process started the server.
    Started(Process),
    /// `connect()`ed to a server someone else started.
    Connected,
    /// Shut down.
    Stopped,
}

/// What a manager handle holds.
pub(crate) struct ManagerInner {
    /// The address asked for (`None`: a local manager), then the one the server has.
    endpoint: RefCell<Option<Endpoint>>,
    authkey: Vec<u8>,
    state: RefCell<State>,
    creator: u32,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.0.state.borrow() {
            State::Initial => "initial",
            State::Started(_) => "started",
            State::Connected => "connected",
            State::Stopped => "shut down",
        };
        match &*self.0.endpoint.borrow() {
            Some(e) => write!(f, "<Manager address={:?} {state}>", e.text()),
            None => write!(f, "<Manager {state}>"),
        }
    }
}

/// A fresh random key (as text: scripts pass keys as strings).
fn random_key() -> MpResult<Vec<u8>> {
    let bytes = rhai_mp_core::base::sys::random_bytes(16).map_err(|e| MpError::os("a random key", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().into_bytes())
}

impl Manager {
    /// `BaseManager(#{address, authkey})`: a manager not started yet (`address`: `None`
    /// for a local one; `authkey`: `None` for a random key).
    fn new(address: Option<String>, authkey: Option<Vec<u8>>) -> MpResult<Manager> {
        if let Some(a) = &address {
            tcp::resolve(a)?; // a malformed address fails here, not in start()
        }
        Ok(Manager(Rc::new(ManagerInner {
            endpoint: RefCell::new(address.map(Endpoint::Tcp)),
            authkey: match authkey {
                Some(k) => k,
                None => random_key()?,
            },
            state: RefCell::new(State::Initial),
            creator: rhai_mp_core::base::sys::pid(),
        })))
    }

    /// `Manager()`: a local manager, started.
    ///
    /// Under the `"mpi"` start method it is a TCP manager (random key) served from this
    /// host at the address the worker ranks reach it at, so its proxies work on every rank;
    /// its server is a local spawn process.
    fn local(ctx: &NativeCallContext, method: Option<StartMethod>) -> RhaiResult<Manager> {
        if method.unwrap_or_else(rhai_mp_core::tree::state::default_method) == StartMethod::Mpi {
            if !rhai_mp_core::tree::place::mpi_available() {
                return Err(rhai_mp_core::tree::place::unavailable().into());
            }
            let ip = crate::cluster::reachable_ip()?;
            let m = Manager::new(Some(tcp::text(&std::net::SocketAddr::new(ip, 0))), None)?;
            m.start(ctx, Some(StartMethod::Spawn))?;
            return Ok(m);
        }
        let m = Manager::new(None, None)?;
        m.start(ctx, method)?;
        Ok(m)
    }

    fn not_initial(&self) -> MpResult<()> {
        match &*self.0.state.borrow() {
            State::Initial => Ok(()),
            State::Started(_) | State::Connected => {
                Err(mp_err!(ProcessError, "the manager is already started or connected"))
            }
            State::Stopped => Err(mp_err!(ProcessError, "the manager has shut down")),
        }
    }

    /// The listening socket for this manager's server.
    fn listen(&self) -> MpResult<(OwnedListener, Transport)> {
        let endpoint = self.0.endpoint.borrow().clone();
        Ok(match endpoint {
            None => {
                let (name, fd) = listener::listen("rhai-mp-manager", listener::Kind::SeqPacket)?;
                *self.0.endpoint.borrow_mut() = Some(Endpoint::Local(name));
                (fd, Transport::Local)
            }
            Some(Endpoint::Tcp(address)) => {
                let (actual, fd) = tcp::listen(&address)?;
                *self.0.endpoint.borrow_mut() = Some(Endpoint::Tcp(actual));
                (fd, Transport::Tcp)
            }
            Some(Endpoint::Local(_)) => return Err(mp_err!(ProcessError, "the manager is already started")),
        })
    }

    /// Starts the server process (with `method`, or the default start method).
    fn start(&self, ctx: &NativeCallContext, method: Option<StartMethod>) -> RhaiResult<()> {
        self.not_initial()?;
        let (listener, transport) = self.listen()?;
        let (ready_rd, ready) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(MpError::from)?;
        // The listening socket goes to the server only: once it is gone, connecting fails.
        let payload = rhai_mp_core::wire::encode_message(&ServerArgs {
            listener,
            transport,
            authkey: self.0.authkey.clone(),
            ready: Some(ready),
        })?;
        let process = Process::native(server::ENTRY, payload, None, Some(true), method);
        process.set_name(process.name().replacen("Process", "SyncManager", 1));
        process.start(ctx)?;
        wait_ready(&process, ready_rd)?;
        *self.0.state.borrow_mut() = State::Started(process);
        Ok(())
    }

    /// Connects to a server already running at the address.
    fn connect(&self) -> MpResult<()> {
        if matches!(&*self.0.state.borrow(), State::Stopped) {
            return Err(mp_err!(ProcessError, "the manager has shut down"));
        }
        let addr = match self.0.endpoint.borrow().clone() {
            Some(endpoint) => Address { endpoint, authkey: self.0.authkey.clone() },
            None => {
                return Err(mp_err!(
                    ValueError,
                    "connect() needs the manager's address: BaseManager(#{{address: \"host:port\", authkey: ..}})"
                ))
            }
        };
        client::check(&addr)?;
        let mut state = self.0.state.borrow_mut();
        if matches!(*state, State::Initial) {
            *state = State::Connected;
        }
        Ok(())
    }

    /// Serves in this process until a client asks the server to stop (or a signal).
    fn serve_forever(&self, ctx: &NativeCallContext) -> RhaiResult<()> {
        self.not_initial()?;
        let (listener, transport) = self.listen()?;
        let args = ServerArgs { listener, transport, authkey: self.0.authkey.clone(), ready: None };
        *self.0.state.borrow_mut() = State::Connected;
        let served = server::serve(ctx, args, true);
        *self.0.state.borrow_mut() = State::Stopped;
        served
    }

    /// Where the server is (the manager must be started or connected).
    fn addr(&self) -> MpResult<Address> {
        match &*self.0.state.borrow() {
            State::Started(_) | State::Connected => {}
            State::Initial => {
                return Err(mp_err!(AssertionError, "the manager is not started: call m.start() or m.connect() first"))
            }
            State::Stopped => return Err(mp_err!(BrokenPipeError, "the manager has shut down")),
        }
        match self.0.endpoint.borrow().clone() {
            Some(endpoint) => Ok(Address { endpoint, authkey: self.0.authkey.clone() }),
            None => Err(mp_err!(AssertionError, "the manager has no address")),
        }
    }

    /// Makes a managed object and returns its proxy.
    fn proxy(&self, kind: Kind, create: Create) -> RhaiResult<Proxy> {
        let addr = self.addr()?;
        let id = client::request_id(&addr, &Request::Create(create))?;
        Ok(Proxy(Rc::new(ProxyInner { addr, id, kind, owner: Some(self.clone()) })))
    }

    /// Makes a primitive with the global's arguments: a shared-memory one made by a local
    /// server, a proxy of one a TCP server holds.
    fn create(&self, p: Kind, args: Array) -> RhaiResult<Dynamic> {
        let addr = self.addr()?;
        match addr.endpoint {
            Endpoint::Local(_) => client::request(&addr, &Request::Create(Create::Primitive(p, args))),
            Endpoint::Tcp(_) => self.proxy(p, Create::Primitive(p, args)).map(Dynamic::from),
        }
    }

    /// `m.register(name, obj)`.
    fn register(&self, name: String, value: Dynamic) -> RhaiResult<()> {
        client::request(&self.addr()?, &Request::Register(name, value)).map(|_| ())
    }

    /// `m.get(name)`.
    fn lookup(&self, name: String) -> RhaiResult {
        client::request(&self.addr()?, &Request::Lookup(name))
    }

    /// The address as scripts see it.
    fn address(&self) -> Dynamic {
        self.0.endpoint.borrow().as_ref().map_or(Dynamic::UNIT, |e| e.text().into())
    }

    /// The server's pid, if this process started it.
    fn pid(&self) -> Option<i32> {
        match &*self.0.state.borrow() {
            State::Started(p) => p.pid().ok().flatten(),
            _ => None,
        }
    }
}

type OwnedListener = std::os::fd::OwnedFd;

/// Waits until the server says it serves (as Python's `Manager()` waits for its address);
/// a server that ends first gives the reason.
fn wait_ready(process: &Process, ready: std::os::fd::OwnedFd) -> MpResult<()> {
    use std::os::fd::AsFd;
    loop {
        let sentinel = rhai_mp_core::base::sys::borrow_fd(process.sentinel()?);
        let got = rhai_mp_core::transport::poll::wait_any(&[ready.as_fd(), sentinel], Deadline::NEVER)?;
        if got[0] {
            let mut b = [0u8; 1];
            if nix::unistd::read(ready.as_fd(), &mut b).is_ok_and(|n| n == 1) {
                return Ok(());
            }
        }
        if got[1] || got[0] {
            let _ = process.join(Deadline::NEVER);
            return Err(match process.exitcode()? {
                Some(rhai_mp_core::tree::start::popen::EXIT_GUARD) => rhai_mp_core::tree::process::guard_error(),
                Some(rhai_mp_core::tree::start::popen::EXIT_BOOT_FAILED) => mp_err!(
                    RuntimeError,
                    "the manager's server cannot start: the script's top level fails in it (its error is above)"
                ),
                code => mp_err!(
                    ProcessError,
                    "the manager's server process ended (exit code {}) before it served",
                    code.map_or("unknown".to_string(), |c| c.to_string())
                ),
            });
        }
    }
}

impl ManagerInner {
    /// Asks the server to stop; a server this process started is then made sure to end.
    fn shutdown(&self) -> RhaiResult<()> {
        let state = std::mem::replace(&mut *self.state.borrow_mut(), State::Stopped);
        let addr = self.endpoint.borrow().clone().map(|endpoint| Address { endpoint, authkey: self.authkey.clone() });
        match state {
            State::Started(process) if self.creator == rhai_mp_core::base::sys::pid() => {
                if let Some(addr) = &addr {
                    let _ = client::request(addr, &Request::Shutdown);
                    client::forget(addr);
                }
                if process.join(Deadline::after_secs(5.0)).is_err() || matches!(process.exitcode(), Ok(None)) {
                    let _ = process.kill();
                    let _ = process.join(Deadline::after_secs(5.0));
                }
                Ok(())
            }
            State::Connected => {
                let Some(addr) = addr else { return Ok(()) };
                let stopped = client::request(&addr, &Request::Shutdown);
                client::forget(&addr);
                stopped.map(|_| ())
            }
            _ => Ok(()),
        }
    }
}

impl Drop for ManagerInner {
    fn drop(&mut self) {
        // Only a manager that started its server stops it when it goes away.
        if matches!(&*self.state.borrow(), State::Started(_)) {
            let _ = self.shutdown();
        }
    }
}

/// manager's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::{handle, section};
    crate::registry::Primitive {
        name: "manager",
        group: "Manager and proxies",
        sections: &[
            section("Manager", &[("Manager", "m")], &["Manager", "BaseManager"], &["Manager(", "BaseManager("]),
            section("Proxy", &[("Proxy", "proxy")], &[], &[".dict(", ".list(", ".Namespace(", ".Value(", ".Array("]),
        ],
        functions,
        module: None,
        handles: &[handle::<Proxy>()],
        machinery: Some(machinery),
        mirrors: &[],
        managed: &[],
    }
};

/// Registers manager's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "manager", manager_functions);
    rhai::combine_with_exported_module!(lib, "proxy", proxy_functions);
    rhai::combine_with_exported_module!(lib, "proxied", proxied_functions);
    register(lib);
}

/// The server's native entry point, and forked children forgetting their parent's
/// connections to servers.
fn machinery() {
    rhai_mp_core::run::child::register_entry(SERVER_ENTRY, server_entry);
    rhai_mp_core::run::child::at_fork_child(forget_connections);
}
