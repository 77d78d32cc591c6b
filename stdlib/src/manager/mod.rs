//! `Manager()` and its proxies (see the reference, "Manager"): a server process that keeps
//! dicts, lists, namespaces, values and arrays for every process that holds a proxy, and
//! makes synchronization primitives and queues for them.
//!
//! - `bindings.rs`: `Manager()` and its constructors, as scripts see them;
//! - `proxy.rs`: proxies and their methods, as scripts see them;
//! - `protocol.rs`: the typed requests and replies between clients and the server;
//! - `client.rs`: connections to a server;
//! - `server.rs`: the server's loop (the native entry `manager-server`);
//! - `objects.rs`: the objects the server keeps and the operations on them.
//!
//! The server is a daemon child started with the current start method (so it is killed
//! if its parent dies, and terminated when the main script ends); the manager shuts it
//! down when its last copy in the process that made it goes away (proxies made there keep
//! it). Caveat: the primitives and queues a manager makes (`m.Lock()`, `m.Queue()` …) are
//! rhai-mp's shared-memory ones, made in the server and used directly by every process:
//! they behave exactly as the globals, and they keep working after `shutdown()`.

mod bindings;
mod client;
mod objects;
mod protocol;
mod proxy;
mod server;

pub use bindings::manager_functions;
pub use proxy::proxy_functions;
pub(crate) use proxy::register;
pub(crate) use proxy::Proxy;
pub(crate) use server::{entry as server_entry, ENTRY as SERVER_ENTRY};

use self::client::Address;
use self::protocol::{Create, Primitive, Request};
use self::proxy::{Kind, ProxyInner};
use rhai::{Array, Dynamic, NativeCallContext};
use rhai_mp_core::transport::listener;
use rhai_mp_core::{Deadline, Process, RhaiResult, StartMethod};
use std::cell::Cell;
use std::rc::Rc;

/// Decodes a request as the server does (for `crate::fuzzing`): whether it is well formed.
pub(crate) fn decode_request(bytes: &[u8]) -> bool {
    rhai_mp_core::wire::decode_message::<Request>(bytes, Vec::new()).is_ok()
}

/// A manager handle; copies share it.
#[derive(Clone)]
pub struct Manager(Rc<ManagerInner>);

/// What a manager handle holds.
pub(crate) struct ManagerInner {
    process: Process,
    addr: Address,
    creator: u32,
    stopped: Cell<bool>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<Manager address={:?}>", self.0.addr.name)
    }
}

impl Manager {
    /// Starts a server process (with `method`, or the default start method).
    fn start(ctx: &NativeCallContext, method: Option<StartMethod>) -> RhaiResult<Manager> {
        let (name, listener) = listener::listen("rhai-mp-manager", listener::Kind::SeqPacket)?;
        let key = rhai_mp_core::random_bytes(32).map_err(|e| rhai_mp_core::MpError::os("random key", e))?;
        // The listening socket goes to the server only: once it is gone, connecting fails.
        let payload = rhai_mp_core::wire::encode_message(&server::ServerArgs { listener, authkey: key.clone() })?;
        let process = Process::native(server::ENTRY, payload, None, Some(true), method);
        process.set_name(process.name().replacen("Process", "SyncManager", 1));
        process.start(ctx)?;
        Ok(Manager(Rc::new(ManagerInner {
            process,
            addr: Address { name, authkey: key },
            creator: rhai_mp_core::pid(),
            stopped: Cell::new(false),
        })))
    }

    /// Makes a managed object and returns its proxy.
    fn proxy(&self, kind: Kind, create: Create) -> RhaiResult<Proxy> {
        let id = client::request_id(&self.0.addr, &Request::Create(create))?;
        Ok(Proxy(Rc::new(ProxyInner { addr: self.0.addr.clone(), id, kind, owner: Some(self.clone()) })))
    }

    /// Makes a primitive in the server (with the global's arguments).
    fn create(&self, p: Primitive, args: Array) -> RhaiResult<Dynamic> {
        client::request(&self.0.addr, &Request::Create(Create::Primitive(p, args)))
    }
}

impl ManagerInner {
    /// Asks the server to stop, then makes sure it did.
    fn shutdown(&self) {
        if self.stopped.replace(true) || self.creator != rhai_mp_core::pid() {
            return;
        }
        let _ = client::request(&self.addr, &Request::Shutdown);
        client::forget(&self.addr);
        if self.process.join(Deadline::after_secs(5.0)).is_err() || matches!(self.process.exitcode(), Ok(None)) {
            let _ = self.process.kill();
            let _ = self.process.join(Deadline::after_secs(5.0));
        }
    }
}

impl Drop for ManagerInner {
    fn drop(&mut self) {
        self.shutdown();
    }
}
