//! A manager's server: one thread and one `poll` loop that serve every connection, local
//! (an abstract Unix socket: `Manager()`) or TCP (a manager with an address).
//!
//! - `conn.rs`: a connection's socket, framing, buffers and handshake phase;
//! - `objects.rs`: the data objects (dicts, lists, namespaces, values, arrays);
//! - `sync/`: a TCP manager's queues and synchronization primitives, and the requests
//!   parked on them.
//!
//! Each request runs alone and sees the effects of all earlier ones: no lost updates,
//! whatever the number of clients. A request that has to wait (a queue's `get`, a lock's
//! `acquire`) is parked and the loop goes on serving others; its reply is sent when it is
//! done, when its timeout passes, or not at all when its client goes away. The loop sleeps
//! until a socket is ready or the earliest deadline (a timeout, a slow handshake).
//!
//! A local manager hands out rhai-mp's shared-memory primitives (`m.Lock()` is a `Lock`
//! made here and sent with its descriptors; clients use it directly); a TCP manager keeps
//! every object itself, since descriptors cannot cross machines.
//!
//! Security: every connection runs the handshake of `auth.rs` before its first request; a
//! local one must also come from this user (`SO_PEERCRED`). A refused or misbehaving peer
//! is dropped; the others never notice.

mod conn;
mod objects;
mod sync;

use self::conn::{Conn, Incoming, Phase};
use self::objects::Store;
use self::sync::{ConnId, Sync};

use super::auth::{self, Answer, Hello, Verdict};
use super::protocol::{Create, Reply, Request};
use rhai::{Dynamic, EvalAltResult, NativeCallContext, INT};
use rhai_mp_core::prelude::{Deadline, MpError, MpResult, RhaiResult};
use rhai_mp_core::run::remote::RemoteError;
use rhai_mp_core::transport::{listener, tcp};
use rhai_mp_core::wire::{Packet, Portable, Reader, Writer};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

/// The name of the server's native entry point.
pub(crate) const ENTRY: &str = "manager-server";

/// The kind of socket a server listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// An abstract Unix seqpacket socket.
    Local,
    /// A TCP socket.
    Tcp,
}

/// What a server starts with.
pub(crate) struct ServerArgs {
    /// The listening socket (only the server holds it: once the server is gone, connecting
    /// fails at once).
    pub listener: OwnedFd,
    /// Its kind.
    pub transport: Transport,
    /// The key every connection must prove it knows.
    pub authkey: Vec<u8>,
    /// Where the server says it is ready (one byte), so that `Manager()` returns only then.
    pub ready: Option<OwnedFd>,
}

impl Portable for ServerArgs {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.dup(self.listener.as_fd())?;
        w.bool(self.transport == Transport::Tcp);
        w.bytes(&self.authkey);
        w.bool(self.ready.is_some());
        if let Some(r) = &self.ready {
            w.dup(r.as_fd())?;
        }
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        let listener = r.fd()?;
        let transport = if r.bool()? { Transport::Tcp } else { Transport::Local };
        let authkey = r.bytes()?.to_vec();
        let ready = if r.bool()? { Some(r.fd()?) } else { None };
        Ok(ServerArgs { listener, transport, authkey, ready })
    }
}

/// The native entry of a manager's server process: serves until a `shutdown` request.
pub(crate) fn entry(ctx: &NativeCallContext, payload: Packet) -> RhaiResult<()> {
    let args: ServerArgs = rhai_mp_core::wire::decode_message(&payload.bytes, payload.fds)?;
    // As Python's: Ctrl-C is for the script, not the server it keeps its data in.
    rhai_mp_core::base::sys::ignore_signal(libc::SIGINT);
    serve(ctx, args, false)
}

/// Serves until a client asks the server to stop — or, with `signals` (the script called
/// `serve_forever()`), until the process gets SIGINT, SIGTERM or SIGHUP.
pub(crate) fn serve(ctx: &NativeCallContext, args: ServerArgs, signals: bool) -> RhaiResult<()> {
    tcp::set_nonblocking(args.listener.as_fd()).map_err(|e| MpError::os("the manager's socket", e))?;
    let mut server = Server {
        ctx,
        store: Store::default(),
        sync: Sync::new(args.authkey.clone()),
        names: HashMap::new(),
        conns: HashMap::new(),
        next_conn: 0,
        args,
        stop: false,
        scratch: Vec::new(),
        failed: Vec::new(),
    };
    // The polling between requests (`serve_conn`) reads the CPU count from cgroup files on
    // first use: done now, before any client, so that none waits for it and the files are
    // not open behind the first replies (a client counting the server's descriptors then
    // would count them). Only `/proc/loadavg` is read while serving, for microseconds.
    let _ = rhai_mp_core::base::spin::spin_time();
    let _ = rhai_mp_core::base::spin::oversubscribed();
    if let Some(ready) = server.args.ready.take() {
        let _ = rhai_mp_core::base::sys::write_all(ready.as_fd(), &[1]);
    }
    while !server.stop {
        server.turn(signals)?;
    }
    server.finish();
    Ok(())
}

struct Server<'a, 'ctx> {
    ctx: &'a NativeCallContext<'ctx>,
    store: Store,
    sync: Sync,
    /// `m.register(name, obj)`.
    names: HashMap<String, Dynamic>,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    args: ServerArgs,
    stop: bool,
    scratch: Vec<u8>,
    /// Connections found broken while serving another: dropped at the end of the turn.
    failed: Vec<ConnId>,
}

/// How many requests in a row one connection may have served (a client in a loop sends
/// its next request within microseconds) before the others get their turn.
const TURNS: usize = 64;

impl Server<'_, '_> {
    /// Sleeps until something happens, then deals with it.
    fn turn(&mut self, signals: bool) -> RhaiResult<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let deadline = self.conns.values().fold(self.sync.next_deadline(), |d, c| d.min(c.deadline()));
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        let ready: Vec<(bool, bool)> = {
            let mut fds = vec![PollFd::new(self.args.listener.as_fd(), PollFlags::POLLIN)];
            for id in &ids {
                let c = &self.conns[id];
                let flags = if c.wants_write() { PollFlags::POLLOUT } else { PollFlags::POLLIN };
                fds.push(PollFd::new(c.fd(), flags));
            }
            let wait = if signals {
                deadline.slice(rhai_mp_core::base::interrupt::SLICE)
            } else {
                deadline.slice(std::time::Duration::from_secs(3600))
            };
            let ms = wait.as_micros().div_ceil(1000);
            match poll(&mut fds, PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX)) {
                Err(nix::Error::EINTR) | Ok(0) => vec![(false, false); fds.len()],
                Err(e) => return Err(MpError::from(e).into()),
                Ok(_) => fds
                    .iter()
                    .map(|f| {
                        let r = f.revents().unwrap_or(PollFlags::empty());
                        (!(r & !PollFlags::POLLOUT).is_empty(), r.contains(PollFlags::POLLOUT))
                    })
                    .collect(),
            }
        };
        if signals && rhai_mp_core::base::interrupt::take().is_some() {
            // serve_forever() ends on SIGINT, SIGTERM or SIGHUP.
            self.stop = true;
            return Ok(());
        }
        let mut dead = std::mem::take(&mut self.failed);
        for (i, id) in ids.iter().enumerate() {
            let (readable, writable) = ready[i + 1];
            if (writable || readable) && !self.serve_conn(*id, readable) {
                dead.push(*id);
            }
            if self.stop {
                return Ok(());
            }
        }
        if ready[0].0 {
            self.accept();
        }
        self.sync.expire();
        for (id, c) in &self.conns {
            if c.deadline().passed() {
                dead.push(*id);
            }
        }
        self.deliver(&mut dead);
        // Dropping a connection can end others' waits (a lock it held): deliver those too.
        while !dead.is_empty() {
            for id in std::mem::take(&mut dead) {
                self.drop_conn(id);
            }
            self.deliver(&mut dead);
            dead.retain(|id| self.conns.contains_key(id));
        }
        Ok(())
    }

    /// Reads and answers what connection `id` sent; `false` when it is to be dropped.
    fn serve_conn(&mut self, id: ConnId, readable: bool) -> bool {
        let Some(c) = self.conns.get_mut(&id) else { return false };
        if c.flush().is_err() {
            return false;
        }
        if !readable || c.wants_write() {
            return true;
        }
        for turn in 0..TURNS {
            let Some(c) = self.conns.get_mut(&id) else { return false };
            if turn > 0
                && !rhai_mp_core::base::spin::spin_while(|| {
                    !rhai_mp_core::transport::poll::readable_now(c.fd()).unwrap_or(true)
                })
            {
                break;
            }
            match c.read(&mut self.scratch) {
                Incoming::Nothing => break,
                Incoming::Closed => return false,
                Incoming::Message(bytes, fds) => {
                    if !self.message(id, bytes, fds) {
                        return false;
                    }
                }
            }
            if self.stop {
                return true;
            }
            let mut dead = Vec::new();
            self.deliver(&mut dead);
            if !dead.is_empty() {
                // Left to the end of the turn, which drops them (and delivers what that ends).
                self.failed.extend(dead);
                return true;
            }
            if self.conns.get(&id).is_none_or(|c| c.wants_write() || matches!(c.phase, Phase::Closing)) {
                break;
            }
        }
        true
    }

    /// Sends the replies `sync` made; connections that fail go to `dead`.
    fn deliver(&mut self, dead: &mut Vec<ConnId>) {
        for (id, reply) in std::mem::take(&mut self.sync.out) {
            self.send(id, &reply);
        }
        for (id, c) in self.conns.iter_mut() {
            // (The flush goes first: a connection closing once it has flushed is dead too.)
            if (c.wants_write() && c.flush().is_err()) || (matches!(c.phase, Phase::Closing) && !c.wants_write()) {
                dead.push(*id);
            }
        }
    }

    /// Queues a reply; one that cannot be encoded becomes the error it is.
    fn send(&mut self, id: ConnId, reply: &Reply) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        if let Err(e) = c.queue(reply) {
            let _ = c.queue(&Reply::from(e));
        }
    }

    /// Accepts the connections waiting, and sends each the handshake's hello.
    fn accept(&mut self) {
        for _ in 0..64 {
            let fd = match self.args.transport {
                Transport::Local => listener::accept_same_user(self.args.listener.as_fd()),
                Transport::Tcp => tcp::accept(self.args.listener.as_fd()),
            };
            let Some(fd) = fd else { return };
            if self.args.transport == Transport::Tcp {
                // A client whose host vanished (a partition) is let go within the bound:
                // its locks are released, its parked requests dropped.
                let _ = tcp::set_liveness(fd.as_fd(), super::client::liveness());
            }
            let Ok(nonce) = auth::nonce() else { continue };
            if conn::nonblocking(&fd).is_err() {
                continue;
            }
            let hello = Hello { nonce };
            let mut c = match self.args.transport {
                Transport::Local => Conn::local(fd, Hello { nonce: hello.nonce.clone() }),
                Transport::Tcp => Conn::tcp(fd, Hello { nonce: hello.nonce.clone() }),
            };
            if c.queue(&hello).is_err() || c.flush().is_err() {
                continue;
            }
            self.next_conn += 1;
            self.conns.insert(self.next_conn, c);
        }
    }

    /// Handles one message; `false` when the connection is to be dropped.
    fn message(&mut self, id: ConnId, bytes: Vec<u8>, fds: Vec<OwnedFd>) -> bool {
        let Some(c) = self.conns.get_mut(&id) else { return false };
        match &c.phase {
            Phase::Closing => true,
            Phase::Hello(hello, _) => {
                let Ok(answer) = rhai_mp_core::wire::decode_message::<Answer>(&bytes, fds) else {
                    return false;
                };
                let verdict = answer.verdict(&self.args.authkey, hello);
                let welcome = matches!(verdict, Verdict::Welcome(_));
                if c.queue(&verdict).is_err() {
                    return false;
                }
                if welcome {
                    c.authenticated();
                    let host = if c.is_tcp() && !answer.host.is_empty() {
                        format!(" on {}", answer.host)
                    } else {
                        String::new()
                    };
                    self.sync.connected(id, format!("pid {}{host}", answer.pid));
                } else {
                    // Nothing about the key is logged; the peer just goes.
                    c.phase = Phase::Closing;
                }
                true
            }
            Phase::Ready => {
                let request = match rhai_mp_core::wire::decode_message::<Request>(&bytes, fds) {
                    Ok(r) => r,
                    Err(e) => {
                        self.send(id, &Reply::from(e));
                        return true;
                    }
                };
                self.request(id, request);
                true
            }
        }
    }

    /// Runs a request (its reply goes out now or, for a parked one, later).
    fn request(&mut self, id: ConnId, request: Request) {
        let reply: Reply = match request {
            Request::Create(Create::Primitive(p, args)) => match self.args.transport {
                Transport::Local => {
                    // Made with the global of the same name: its arguments and errors are
                    // the same.
                    let mut args = args;
                    let mut refs: Vec<&mut Dynamic> = args.iter_mut().collect();
                    match self.ctx.call_fn_raw(p.object(), false, false, &mut refs) {
                        Ok(v) => {
                            self.store.keep(v.clone());
                            Reply::Value(v)
                        }
                        Err(e) => Reply::Error(caught(e)),
                    }
                }
                Transport::Tcp => {
                    let obj = self.store.next_id();
                    match self.sync.create(obj, p, args) {
                        Ok(()) => Reply::Value((obj as INT).into()),
                        Err(e) => e.into(),
                    }
                }
            },
            Request::Create(c) => self.store.create(c).map(|obj| Dynamic::from(obj as INT)).into(),
            Request::Call { id: obj, op } if self.sync.has(obj) => {
                self.sync.call(id, obj, op);
                return;
            }
            Request::Call { id: obj, op } => self.store.call(obj, op).into(),
            Request::Register(name, value) => {
                self.names.insert(name, value);
                Reply::Value(Dynamic::UNIT)
            }
            Request::Lookup(name) => match self.names.get(&name) {
                Some(v) => Reply::Value(v.clone()),
                None => rhai_mp_core::mp_err!(KeyError, "nothing is registered as {name:?} with this manager").into(),
            },
            Request::ActionDone(result) => {
                self.sync.action_done(id, result);
                return;
            }
            Request::Cancel => {
                self.sync.cancel(id);
                return;
            }
            Request::Shutdown => {
                self.stop = true;
                Reply::Value(Dynamic::UNIT)
            }
        };
        self.send(id, &reply);
    }

    /// Closes a connection: whatever it waited for or held is given up.
    fn drop_conn(&mut self, id: ConnId) {
        if self.conns.remove(&id).is_some() {
            self.sync.disconnected(id);
        }
    }

    /// After a `shutdown` request: its reply (and others queued) get a moment to go out.
    fn finish(&mut self) {
        let mut dead = Vec::new();
        self.deliver(&mut dead);
        let deadline = Deadline::after_secs(1.0);
        while !deadline.passed() && self.conns.values().any(|c| c.wants_write()) {
            for c in self.conns.values_mut() {
                let _ = c.flush();
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// The value a local `catch` would have received for `e`.
fn caught(e: Box<EvalAltResult>) -> Dynamic {
    let who = rhai_mp_core::tree::state::with(|s| s.name.clone());
    RemoteError::capture(&e, &who, rhai_mp_core::base::sys::pid() as i32).value
}
