//! The `forkserver` start method.
//!
//! On first use a process spawns a server (a fresh interpreter, see [`super::spawn`]) and
//! hands it a listening Unix socket in the abstract namespace and a fresh random key. The
//! server runs the script's top level once (with `__name__ == "__mp_main__"`), then loops on
//! one thread: for each request it forks a child that runs the call, replies with the
//! child's pid, and when the child ends writes its exit code on that connection (the
//! client's sentinel). The client's descendants reuse the same server (they inherit its
//! `ServerAddr`).
//!
//! Safety: the server serves only peers of its own user (`SO_PEERCRED`) that open with the
//! key (as Python 3.14's forkserver does). It reads every connection without blocking, one
//! piece at a time as bytes arrive — so an idle or slow peer delays no one, and a header
//! that claims a huge size allocates nothing — and drops a request that is not complete
//! within [`REQUEST_TIME`]. It dies with the process that started it (`PR_SET_PDEATHSIG`);
//! a daemon child is killed when the connection of the process that asked for it closes
//! (that process died).
//!
//! Caveat: a REPL's functions may be defined after the server started, so a child of a REPL
//! compiles the entries sent with its request instead of using the server's.

use super::popen::Popen;
use crate::base::error::{MpError, MpResult};
use crate::base::sys;
use crate::transport::{listener, stream};
use crate::tree::boot::{Boot, Mode};
use crate::tree::state::{self, ChildInfo, ParentInfo, ServerAddr, StartMethod};
use crate::wire::Packet;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// The length of a server's key.
pub(crate) const KEY_LEN: usize = 32;
/// How long a peer may take to send a whole request.
pub(crate) const REQUEST_TIME: Duration = Duration::from_secs(10);
/// The largest request a server reads (a boot message with its script and arguments).
const MAX_REQUEST: usize = 1 << 40;

/// A fresh listening socket with a fresh random key.
pub(crate) fn listen(prefix: &str) -> MpResult<(ServerAddr, OwnedFd)> {
    let (name, fd) = listener::listen(prefix, listener::Kind::Stream)?;
    Ok((ServerAddr { name, key: crate::base::sys::random_bytes(KEY_LEN)? }, fd))
}

/// The server's address, starting the server if this process has none yet.
fn ensure_server() -> MpResult<ServerAddr> {
    if let Some(addr) = state::with(|s| s.forkserver.clone()) {
        return Ok(addr);
    }
    let (addr, listener) = listen("rhai-mp-forkserver")?;
    let boot = state::with(|s| Boot {
        mode: Mode::Server,
        info: ChildInfo {
            identity: s.identity.clone(),
            name: "ForkServerProcess".into(),
            daemon: false,
            parent: ParentInfo { pid: std::process::id() as i32, name: s.name.clone() },
            method: StartMethod::ForkServer,
        },
        script: s.script.clone(),
        argv: s.argv.clone(),
        forkserver: Some(addr.clone()),
        call: Packet { bytes: Vec::new(), fds: vec![listener] },
    });
    let (pid, _) = super::spawn::exec_self("forkserver", boot)?;
    state::with(|s| {
        s.forkserver = Some(addr.clone());
        s.forkserver_pid = Some(pid);
    });
    Ok(addr)
}

/// Asks the forkserver for a child that runs the call in `boot`. A server that is gone
/// (killed, or ended by a signal: nothing listens at its address any more) is replaced
/// once, as Python does (bpo-31308): its exit is reaped, a new one starts, and the request
/// goes to it. (Only a refused connection retries: the old server cannot have run anything
/// for this request.)
pub(crate) fn launch(mut boot: Boot) -> MpResult<Popen> {
    let mut addr = ensure_server()?;
    let conn = match listener::connect(&addr.name, listener::Kind::Stream) {
        Err(e) if gone(&e) => {
            forget_server();
            addr = ensure_server()?;
            listener::connect(&addr.name, listener::Kind::Stream)
        }
        r => r,
    }
    .map_err(|e| listener::unreachable("forkserver", e))?;
    boot.forkserver = Some(addr.clone());
    request(&addr, conn, boot)
}

/// Whether a failed connection says that no server listens there any more.
fn gone(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ECONNREFUSED | libc::ENOENT))
}

/// Forgets a forkserver that is gone, reaping it if this process started it.
fn forget_server() {
    let pid = state::with(|s| {
        s.forkserver = None;
        s.forkserver_pid.take()
    });
    if let Some(pid) = pid {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(pid), None);
    }
}

/// The prefix of a fork pool's server's address (see [`super::fork::Server`]).
pub(crate) const FORK_POOL_PREFIX: &str = "rhai-mp-fork-pool";

/// What the server at `addr` is, for messages: the user chose a forkserver, or a fork pool
/// (whose server is its own business).
fn server_name(addr: &ServerAddr) -> &'static str {
    if addr.name.starts_with(FORK_POOL_PREFIX) {
        "the fork pool's server"
    } else {
        "the forkserver"
    }
}

/// Asks the server at `addr` (a forkserver, or a fork pool's server, see
/// [`super::fork::Server`]) for a child that runs the call in `boot`.
pub(crate) fn launch_at(addr: &ServerAddr, boot: Boot) -> MpResult<Popen> {
    let conn = listener::connect(&addr.name, listener::Kind::Stream)
        .map_err(|e| listener::unreachable(server_name(addr).trim_start_matches("the "), e))?;
    request(addr, conn, boot)
}

/// Sends the request in `boot` on `conn`, a connection to the server at `addr`, and reads
/// the new child's pid (or the errno of the server's failure to make it: a negative
/// number).
fn request(addr: &ServerAddr, conn: OwnedFd, boot: Boot) -> MpResult<Popen> {
    let server = server_name(addr);
    let packet = boot.into_packet()?;
    let sent =
        sys::write_all(conn.as_fd(), &addr.key).and_then(|()| stream::send(conn.as_fd(), &packet.bytes, &packet.fds));
    drop(packet);
    let mut pid = [0u8; 4];
    // A server that refused the request (out of descriptors) replied before it hung up: its
    // reply is still there to read even when the request could not be sent whole.
    let read = sys::read_exact(conn.as_fd(), &mut pid).map(|()| i32::from_le_bytes(pid));
    match (read, sent) {
        (Ok(pid), _) if pid > 0 => Ok(Popen::Served { pid, conn, status: None }),
        (Ok(errno), _) => Err(MpError::no_process(
            &format!("{server} could not start the process"),
            std::io::Error::from_raw_os_error(-errno),
        )),
        (Err(_), Err(e)) => Err(MpError::os(&format!("cannot send to {server}"), e)),
        (Err(_), Ok(())) => Err(crate::mp_err!(
            RuntimeError,
            "{server} could not start the process (it has exited; its error, if any, is on stderr above)"
        )),
    }
}

/// One served child, as the server sees it.
struct Served {
    conn: Option<OwnedFd>,
    daemon: bool,
}

/// A request being read: the key, then a stream frame (see `transport/stream.rs`).
struct Pending {
    conn: OwnedFd,
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    since: Instant,
}

/// What a read of a pending request came to.
enum Progress {
    /// More bytes are needed.
    Partial,
    /// The request is whole: its packet.
    Done(Packet),
    /// A wrong key, a malformed frame, or a peer that hung up: drop it.
    Drop,
    /// The request cannot be served (its descriptors could not be received: out of
    /// descriptors): tell the peer the errno, then drop it.
    Refuse(i32),
}

impl Pending {
    /// Reads what has arrived (never blocks).
    fn read(&mut self, key: &[u8]) -> Progress {
        let mut chunk = [0u8; 64 * 1024];
        let mut cmsg = nix::cmsg_space!([RawFd; crate::base::sys::MAX_FDS]);
        loop {
            let mut iov = [std::io::IoSliceMut::new(&mut chunk)];
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
            let n = match recvmsg::<()>(self.conn.as_raw_fd(), &mut iov, Some(&mut cmsg), flags) {
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::EAGAIN) => break,
                Err(_) => return Progress::Drop,
                Ok(msg) => {
                    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
                        // The descriptors that came with it were dropped: no room here.
                        return Progress::Refuse(libc::EMFILE);
                    }
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmRights(raw) = c {
                                self.fds.extend(raw.into_iter().map(crate::base::sys::own_fd));
                            }
                        }
                    }
                    msg.bytes
                }
            };
            if n == 0 {
                return Progress::Drop;
            }
            self.bytes.extend_from_slice(&chunk[..n]);
            if self.bytes.len() >= KEY_LEN && !crate::base::sys::same_bytes(&self.bytes[..KEY_LEN], key) {
                return Progress::Drop;
            }
            if let Some(p) = self.whole() {
                return p;
            }
        }
        self.whole().unwrap_or(Progress::Partial)
    }

    /// The request, if all of it is here.
    fn whole(&mut self) -> Option<Progress> {
        let frame = self.bytes.get(KEY_LEN..)?;
        let (len, nfds) = match stream::parse_header(frame.get(..stream::HEADER)?) {
            Some((len, nfds)) if len <= MAX_REQUEST => (len, nfds),
            _ => return Some(Progress::Drop),
        };
        // (More descriptors than one message carries come on marker bytes after the header.)
        let start = stream::HEADER + stream::markers(nfds);
        let end = start.saturating_add(len);
        if frame.len() < end {
            return None;
        }
        if frame.len() > end || nfds != self.fds.len() {
            return Some(Progress::Drop);
        }
        let bytes = frame[start..].to_vec();
        Some(Progress::Done(Packet { bytes, fds: std::mem::take(&mut self.fds) }))
    }
}

/// The server loop; never returns. `run_child` runs in each forked child with the request
/// and returns the child's exit code.
pub(crate) fn serve(listener: OwnedFd, key: &[u8], mut run_child: impl FnMut(Boot) -> i32) -> ! {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    // SIGINT is ignored by servers; blocked too, so that one sent to a child between its
    // fork and its restoring the default action stays pending there and then ends it.
    let mut blocked = mask;
    blocked.add(Signal::SIGINT);
    let _ = blocked.thread_block();
    let sfd = match SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rhai-mp forkserver: signalfd: {e}");
            crate::base::sys::exit_now(1)
        }
    };
    let server = std::process::id() as i32;
    // A descriptor kept spare, given up to accept a client when none is left (see below).
    let mut spare = std::fs::File::open("/dev/null").ok();
    let mut children: HashMap<i32, Served> = HashMap::new();
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        // Requests that took too long are dropped; the next wait ends when the oldest would.
        pending.retain(|p| p.since.elapsed() < REQUEST_TIME);
        let timeout = pending.iter().map(|p| REQUEST_TIME.saturating_sub(p.since.elapsed())).min();
        let conns: Vec<(i32, RawFd)> =
            children.iter().filter_map(|(pid, s)| s.conn.as_ref().map(|c| (*pid, c.as_raw_fd()))).collect();
        let mut fds =
            vec![PollFd::new(listener.as_fd(), PollFlags::POLLIN), PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        fds.extend(pending.iter().map(|p| PollFd::new(p.conn.as_fd(), PollFlags::POLLIN)));
        fds.extend(conns.iter().map(|(_, c)| PollFd::new(crate::base::sys::borrow_fd(*c), PollFlags::POLLIN)));
        let wait = timeout.map_or(PollTimeout::NONE, |t| {
            PollTimeout::try_from(t.as_millis().min(i32::MAX as u128) as i32 + 1).unwrap_or(PollTimeout::MAX)
        });
        match poll(&mut fds, wait) {
            Err(nix::Error::EINTR) => continue,
            Err(_) => crate::base::sys::exit_now(1),
            Ok(_) => {}
        }
        let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        let listener_ready = ready(&fds[0]);
        let sig_ready = ready(&fds[1]);
        let readable: Vec<bool> = fds[2..2 + pending.len()].iter().map(ready).collect();
        let gone: Vec<i32> =
            conns.iter().zip(&fds[2 + readable.len()..]).filter(|(_, f)| ready(f)).map(|((pid, _), _)| *pid).collect();
        drop(fds);

        // A client closed its connection (it died, or dropped the process): a daemon child
        // dies with it.
        for pid in gone {
            if let Some(s) = children.get_mut(&pid) {
                s.conn = None;
                if s.daemon {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
        if sig_ready {
            while sfd.read_signal().ok().flatten().is_some() {}
            loop {
                match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) => report(&mut children, pid.as_raw(), code),
                    Ok(WaitStatus::Signaled(pid, sig, _)) => report(&mut children, pid.as_raw(), -(sig as i32)),
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        // Read what came on the pending requests; fork for each that is whole.
        let mut still = Vec::with_capacity(pending.len());
        // (An explicit iterator: a child forked below drops the requests not reached yet,
        // whose connections and descriptors it must not keep.)
        let mut rest = pending.into_iter().zip(readable);
        while let Some((mut p, r)) = rest.next() {
            if !r {
                still.push(p);
                continue;
            }
            match p.read(key) {
                Progress::Partial => still.push(p),
                Progress::Drop => {}
                Progress::Refuse(errno) => refuse(&p.conn, errno),
                Progress::Done(packet) => {
                    let Ok(boot) = Boot::from_packet(packet) else { continue };
                    let daemon = boot.info.daemon;
                    match crate::base::sys::fork() {
                        Ok(crate::base::sys::Forked::Child) => {
                            // A daemon dies with the server (which dies with the process
                            // that started it). The server may have died between the fork
                            // and the parent-death signal being set here: then that signal
                            // never comes, so end now.
                            if daemon
                                && (crate::base::sys::set_parent_death_signal(libc::SIGKILL).is_err()
                                    || nix::unistd::getppid().as_raw() != server)
                            {
                                crate::base::sys::exit_now(1);
                            }
                            crate::base::interrupt::restore_sigint();
                            let _ = blocked.thread_unblock();
                            drop(sfd);
                            drop(spare);
                            drop(listener);
                            drop(p);
                            drop(rest);
                            drop(still);
                            drop(children);
                            let code = run_child(boot);
                            crate::base::sys::exit_now(code)
                        }
                        Ok(crate::base::sys::Forked::Parent(pid)) => {
                            drop(boot);
                            let conn = Some(p.conn).filter(|c| sys::write_all(c.as_fd(), &pid.to_le_bytes()).is_ok());
                            if conn.is_none() && daemon {
                                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                            }
                            children.insert(pid, Served { conn, daemon });
                        }
                        Err(e) => refuse(&p.conn, e.raw_os_error().unwrap_or(libc::EAGAIN)),
                    }
                }
            }
        }
        pending = still;
        if listener_ready {
            match listener::accept_same_user_checked(listener.as_fd()) {
                Ok(Some(conn)) => {
                    pending.push(Pending { conn, bytes: Vec::new(), fds: Vec::new(), since: Instant::now() })
                }
                Ok(None) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // Out of descriptors: the spare one makes room to tell the client that
                    // waits (else it would wait forever, and this loop spin).
                    drop(spare.take());
                    if let Ok(Some(conn)) = listener::accept_same_user_checked(listener.as_fd()) {
                        refuse(&conn, e.raw_os_error().unwrap_or(libc::EMFILE));
                    }
                    spare = std::fs::File::open("/dev/null").ok();
                }
                Err(_) => {}
            }
        }
    }
}

/// Tells a client that its request cannot be served: the errno, as a negative pid.
fn refuse(conn: &OwnedFd, errno: i32) {
    let _ = sys::write_all(conn.as_fd(), &(-errno.max(1)).to_le_bytes());
}

fn report(children: &mut HashMap<i32, Served>, pid: i32, code: i32) {
    if let Some(Served { conn: Some(conn), .. }) = children.remove(&pid) {
        let _ = sys::write_all(conn.as_fd(), &code.to_le_bytes());
    }
}

/// Stops the forkserver this process started, if any (at exit: its served children were
/// joined or terminated already).
pub(crate) fn stop_server() {
    if let Some(pid) = state::with(|s| s.forkserver_pid.take()) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(pid), None);
    }
}
