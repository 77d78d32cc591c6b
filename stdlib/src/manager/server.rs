//! The manager's server: the loop its process runs (the native entry [`ENTRY`]).
//!
//! One thread serves every connection in turn (`poll`), so each request runs alone and
//! sees the effects of all earlier ones: no lost updates, whatever the number of clients.
//! No request blocks the server: the synchronization primitives and queues a manager makes
//! are rhai-mp's own shared-memory ones, which clients use directly.
//!
//! Security: a connection must come from this user (`SO_PEERCRED`) and its first message
//! must be the manager's key; anything else is refused (`AuthenticationError` for the
//! client) and closed.

use super::client::{AUTH_BAD, AUTH_OK};
use super::objects::Store;
use super::protocol::{write_reply, Create, Reply, Request};
use rhai::{Dynamic, EvalAltResult, NativeCallContext, INT};
use rhai_mp_core::transport::{listener, seqpacket};
use rhai_mp_core::{MessageKind, MpError, MpResult, Packet, Portable, Reader, RemoteError, RhaiResult, Writer};
use std::os::fd::{AsFd, OwnedFd};

/// The name of the server's native entry point.
pub(crate) const ENTRY: &str = "manager-server";

/// What the server process is started with.
pub(super) struct ServerArgs {
    /// The listening socket (only the server holds it: once the server is gone, connecting
    /// fails at once).
    pub listener: OwnedFd,
    /// The key every connection must present.
    pub authkey: Vec<u8>,
    /// Where the server says it is ready (one byte), so that `Manager()` returns only then.
    pub ready: OwnedFd,
}

impl Portable for ServerArgs {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.dup(self.listener.as_fd())?;
        w.bytes(&self.authkey);
        w.dup(self.ready.as_fd())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(ServerArgs { listener: r.fd()?, authkey: r.bytes()?.to_vec(), ready: r.fd()? })
    }
}

struct Conn {
    fd: OwnedFd,
    authed: bool,
}

/// The native entry of a manager's server process: serves until a `shutdown` request.
pub(crate) fn entry(ctx: &NativeCallContext, payload: Packet) -> RhaiResult<()> {
    let args: ServerArgs = rhai_mp_core::wire::decode_message(&payload.bytes, payload.fds)?;
    serve(ctx, args)
}

fn serve(ctx: &NativeCallContext, args: ServerArgs) -> RhaiResult<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    // As Python's: Ctrl-C is for the script, not the server it keeps its data in.
    rhai_mp_core::ignore_signal(libc::SIGINT);
    let mut store = Store::default();
    let mut conns: Vec<Conn> = Vec::new();
    let mut scratch = Vec::new();
    let _ = rhai_mp_core::transport::stream::write_all(args.ready.as_fd(), &[1]);
    loop {
        let ready: Vec<bool> = {
            let mut fds = vec![PollFd::new(args.listener.as_fd(), PollFlags::POLLIN)];
            fds.extend(conns.iter().map(|c| PollFd::new(c.fd.as_fd(), PollFlags::POLLIN)));
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(MpError::from(e).into()),
                Ok(_) => {}
            }
            fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect()
        };
        let mut closed = Vec::new();
        for (i, c) in conns.iter_mut().enumerate() {
            if !ready[i + 1] {
                continue;
            }
            // A client in a loop sends its next request within microseconds: serve it at
            // once (a few dozen in a row at most, so that others get their turn).
            for turn in 0..64 {
                if turn > 0 && !rhai_mp_core::spin_while(|| !rhai_mp_core::readable_now(c.fd.as_fd()).unwrap_or(true)) {
                    break;
                }
                match serve_one(&mut store, ctx, c, &args.authkey, &mut scratch) {
                    Step::Continue => {}
                    Step::Close => {
                        closed.push(i);
                        break;
                    }
                    Step::Stop => return Ok(()),
                }
            }
        }
        for i in closed.into_iter().rev() {
            conns.remove(i);
        }
        if ready[0] {
            if let Some(fd) = listener::accept_same_user(args.listener.as_fd()) {
                conns.push(Conn { fd, authed: false });
            }
        }
    }
}

enum Step {
    Continue,
    Close,
    Stop,
}

/// Reads and answers one message of a connection.
fn serve_one(store: &mut Store, ctx: &NativeCallContext, c: &mut Conn, authkey: &[u8], scratch: &mut Vec<u8>) -> Step {
    let msg = match seqpacket::recv_message(c.fd.as_fd(), scratch) {
        Ok(Some(m)) => m,
        _ => return Step::Close,
    };
    if !c.authed {
        let ok = msg.kind == MessageKind::Bytes && rhai_mp_core::same_bytes(&msg.data, authkey);
        let _ = seqpacket::send(c.fd.as_fd(), MessageKind::Bytes, if ok { AUTH_OK } else { AUTH_BAD }, &[]);
        c.authed = ok;
        return if ok { Step::Continue } else { Step::Close };
    }
    let (reply, stop) = match rhai_mp_core::wire::decode_message::<Request>(&msg.data, msg.fds) {
        Ok(Request::Shutdown) => (Ok(Dynamic::UNIT), true),
        Ok(request) => (answer(store, ctx, request), false),
        Err(e) => (Err(e.to_map().into()), false),
    };
    let packet = match encode_reply(&reply) {
        Ok(p) => p,
        // A value that cannot cross becomes the error it is.
        Err(e) => match encode_reply(&Err(e.to_map().into())) {
            Ok(p) => p,
            Err(_) => return Step::Close,
        },
    };
    let sent = seqpacket::send(c.fd.as_fd(), MessageKind::Value, &packet.bytes, &packet.fds);
    match (stop, sent) {
        (true, _) => Step::Stop,
        (false, Err(_)) => Step::Close,
        (false, Ok(())) => Step::Continue,
    }
}

fn encode_reply(reply: &Reply) -> MpResult<Packet> {
    let mut w = Writer::new();
    write_reply(reply, &mut w)?;
    Ok(w.finish())
}

/// The value a local `catch` would have received for `e`.
fn caught(e: Box<EvalAltResult>) -> Dynamic {
    let who = rhai_mp_core::with_state(|s| s.name.clone());
    RemoteError::capture(&e, &who, rhai_mp_core::pid() as i32).value
}

/// Runs a request.
fn answer(store: &mut Store, ctx: &NativeCallContext, request: Request) -> Reply {
    let err = |e: MpError| -> Dynamic { e.to_map().into() };
    match request {
        Request::Create(Create::Primitive(p, args)) => {
            // Made with the global of the same name: its arguments and errors are the same.
            let mut args = args;
            let mut refs: Vec<&mut Dynamic> = args.iter_mut().collect();
            let v = ctx.call_fn_raw(p.global(), false, false, &mut refs).map_err(caught)?;
            store.keep(v.clone());
            Ok(v)
        }
        Request::Create(c) => store.create(c).map(|id| (id as INT).into()).map_err(err),
        Request::Call { id, op } => store.call(id, op).map_err(err),
        Request::Shutdown => Ok(Dynamic::UNIT),
    }
}
