//! The `forkserver` start method.
//!
//! On first use a process spawns a server (a fresh interpreter, see [`super::spawn`]) and
//! hands it a listening Unix socket in the abstract namespace. The server runs the script's
//! top level once (with `__name__ == "__mp_main__"`), then loops on one thread: for each
//! connection it reads a boot message, forks a child that runs the call, replies with the
//! child's pid, and when the child ends writes its exit code on that connection (the
//! client's sentinel). The client's descendants reuse the same server.
//!
//! Safety and lifetime: the server accepts only peers with its own uid (`SO_PEERCRED`); it
//! dies with the process that started it (`PR_SET_PDEATHSIG`); a daemon child is killed
//! when the connection of the process that asked for it closes (that process died).
//!
//! Caveat: a REPL's functions may be defined after the server started, so a child of a REPL
//! compiles the entries sent with its request instead of using the server's.

use super::Popen;
use crate::boot::{Boot, Mode};
use crate::error::{MpError, MpResult};
use crate::state::{self, ChildInfo, ParentInfo, StartMethod};
use crate::transport::{listener, stream};
use crate::wire::Packet;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// The server's address, starting the server if this process has none yet.
fn ensure_server() -> MpResult<String> {
    if let Some(name) = state::with(|s| s.forkserver.clone()) {
        return Ok(name);
    }
    let (name, listener) = listener::listen("rhai-mp-forkserver", listener::Kind::Stream)?;
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
        forkserver: Some(name.clone()),
        call: Packet { bytes: Vec::new(), fds: vec![listener] },
    });
    let pid = super::spawn::exec_self("forkserver", boot)?;
    state::with(|s| {
        s.forkserver = Some(name.clone());
        s.forkserver_pid = Some(pid);
    });
    Ok(name)
}

/// Asks the forkserver for a child that runs the call in `boot`.
pub(crate) fn launch(mut boot: Boot) -> MpResult<Popen> {
    let name = ensure_server()?;
    boot.forkserver = Some(name.clone());
    launch_at(&name, boot)
}

/// Asks the server listening at `name` (a forkserver, or a fork pool's server, see
/// [`super::fork::Server`]) for a child that runs the call in `boot`.
pub(crate) fn launch_at(name: &str, boot: Boot) -> MpResult<Popen> {
    let packet = boot.into_packet()?;
    let conn = listener::connect(name, listener::Kind::Stream).map_err(|e| listener::unreachable("forkserver", e))?;
    stream::send(conn.as_fd(), &packet.bytes, &packet.fds)
        .map_err(|e| MpError::os("cannot send to the forkserver", e))?;
    let mut pid = [0u8; 4];
    stream::read_exact(conn.as_fd(), &mut pid).map_err(|_| {
        crate::mp_err!(
            RuntimeError,
            "the forkserver could not start the process (it has exited; its error, if any, is on stderr above)"
        )
    })?;
    Ok(Popen::Served { pid: i32::from_le_bytes(pid), conn, status: None })
}

/// One served child, as the server sees it.
struct Served {
    conn: Option<OwnedFd>,
    daemon: bool,
}

/// The server loop; never returns. `run_child` runs in each forked child with the request
/// and returns the child's exit code.
pub(crate) fn serve(listener: OwnedFd, mut run_child: impl FnMut(Boot) -> i32) -> ! {
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
            crate::sys::exit_now(1)
        }
    };
    let mut children: HashMap<i32, Served> = HashMap::new();
    loop {
        let conns: Vec<(i32, std::os::fd::RawFd)> =
            children.iter().filter_map(|(pid, s)| s.conn.as_ref().map(|c| (*pid, c.as_raw_fd()))).collect();
        let mut fds =
            vec![PollFd::new(listener.as_fd(), PollFlags::POLLIN), PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        fds.extend(conns.iter().map(|(_, c)| PollFd::new(crate::sys::borrow_fd(*c), PollFlags::POLLIN)));
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            Err(_) => crate::sys::exit_now(1),
            Ok(_) => {}
        }
        let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        let listener_ready = ready(&fds[0]);
        let sig_ready = ready(&fds[1]);
        let gone: Vec<i32> = conns.iter().zip(&fds[2..]).filter(|(_, f)| ready(f)).map(|((pid, _), _)| *pid).collect();
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
        if listener_ready {
            let Some(conn) = listener::accept_same_user(listener.as_fd()) else {
                continue;
            };
            use nix::sys::socket as sock;
            let _ = sock::setsockopt(&conn, sock::sockopt::ReceiveTimeout, &nix::sys::time::TimeVal::new(10, 0));
            let Ok(Some((bytes, req_fds))) = stream::recv(conn.as_fd()) else {
                continue;
            };
            let Ok(boot) = Boot::from_packet(Packet { bytes, fds: req_fds }) else {
                continue;
            };
            let daemon = boot.info.daemon;
            match crate::sys::fork() {
                Ok(crate::sys::Forked::Child) => {
                    crate::interrupt::restore_sigint();
                    let _ = blocked.thread_unblock();
                    drop(sfd);
                    drop(listener);
                    drop(conn);
                    drop(children);
                    let code = run_child(boot);
                    crate::sys::exit_now(code)
                }
                Ok(crate::sys::Forked::Parent(pid)) => {
                    if stream::write_all(conn.as_fd(), &pid.to_le_bytes()).is_ok() {
                        children.insert(pid, Served { conn: Some(conn), daemon });
                    } else {
                        children.insert(pid, Served { conn: None, daemon });
                        if daemon {
                            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                        }
                    }
                }
                Err(_) => {} // dropping `conn` tells the client
            }
        }
    }
}

fn report(children: &mut HashMap<i32, Served>, pid: i32, code: i32) {
    if let Some(Served { conn: Some(conn), .. }) = children.remove(&pid) {
        let _ = stream::write_all(conn.as_fd(), &code.to_le_bytes());
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
