//! Rank 0's side of an MPI job: the listening socket the worker ranks connect to, one
//! connection per worker rank, and the events (results, ended processes, lost ranks) routed
//! to the pool or process ("owner") they belong to.
//!
//! Everything runs on the script's thread, in [`Head::pump`], which the owners call while
//! they wait: it accepts and authenticates connections (the manager's handshake, with the
//! job's key), reads what the ranks sent, and notices ranks that went away (their
//! connection closed: the rank's process died, or its host did). Nothing here blocks for
//! long: writes to a rank are small (a pool keeps at most a few tasks in flight per rank),
//! and waits are bounded by the caller's deadline and cut short by signals.

use super::protocol::{frame, FromRank, ToRank};
use crate::manager::auth::{Answer, Hello, Verdict};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, MpResult};
use rhai_mp_core::transport::tcp::{self, FrameReader, Read};
use rhai_mp_core::wire::{decode_message, encode_remote};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// The largest message a rank may send (a pool result can be big).
const MAX_FRAME: usize = 1 << 31;
/// How long a connecting rank has for the handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// What happened that an owner waits for.
#[derive(Debug)]
pub(crate) enum Event {
    /// A pool task's result (`task`), or a pool initializer's failure (not a task).
    Done { rank: u32, result: Vec<u8>, task: bool },
    /// A process's call ended.
    Exited { code: i32 },
    /// The rank went away.
    Lost { rank: u32 },
}

/// Where a worker rank is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// It has not connected yet (it is running the script's top level).
    Waiting,
    /// It serves.
    Ready,
    /// Its top level failed (the exit code says how; its error is on its stderr).
    Failed(i32),
    /// Its connection closed: the rank is gone.
    Lost,
}

/// One worker rank.
#[derive(Debug)]
pub(crate) struct Link {
    pub rank: u32,
    pub state: LinkState,
    conn: Option<OwnedFd>,
    reader: FrameReader,
    pub pid: i32,
    pub host: String,
    /// The address of rank 0 this rank reached it at.
    pub local_ip: Option<std::net::IpAddr>,
    /// The process running on it, if any.
    pub process: Option<u64>,
    /// The owners that sent it work (they hear when it is lost).
    owners: HashSet<u64>,
}

/// Rank 0's state (see the module docs).
#[derive(Debug)]
pub(crate) struct Head {
    listener: OwnedFd,
    key: Vec<u8>,
    pub links: Vec<Link>,
    next_owner: u64,
    events: HashMap<u64, VecDeque<Event>>,
    /// Whether a note that ranks are slow to connect was printed.
    noted_wait: bool,
    /// Whether the job is ending (ranks leaving are then expected).
    closing: bool,
}

thread_local! {
    static HEAD: RefCell<Option<Head>> = const { RefCell::new(None) };
}

/// Runs `f` with rank 0's state; `ValueError` if this process is not rank 0 of a job.
pub(crate) fn with_head<R>(f: impl FnOnce(&mut Head) -> MpResult<R>) -> MpResult<R> {
    HEAD.with(|h| match h.try_borrow_mut() {
        Ok(mut h) => match h.as_mut() {
            Some(head) => f(head),
            None => Err(rhai_mp_core::tree::place::unavailable()),
        },
        Err(_) => Err(mp_err!(RuntimeError, "the MPI ranks are busy (re-entrant call)")),
    })
}

/// Opens rank 0's listening socket for a job of `size` ranks with `key`: returns the
/// addresses to tell the other ranks (every address of this host's interfaces, loopback
/// last, with the port).
pub fn open(size: u32, key: Vec<u8>) -> MpResult<Vec<String>> {
    let (actual, listener) = tcp::listen("0.0.0.0:0")?;
    tcp::set_nonblocking(listener.as_fd()).map_err(|e| MpError::os("the ranks' listening socket", e))?;
    let port = actual.rsplit(':').next().unwrap_or("0").to_string();
    let mut ips: Vec<std::net::IpAddr> = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            if let Some(ip) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()).map(|s| std::net::IpAddr::V4(s.ip()))
            {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
    }
    ips.sort_by_key(|ip| ip.is_loopback());
    if ips.is_empty() {
        ips.push(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    }
    let links = (1..size)
        .map(|rank| Link {
            rank,
            state: LinkState::Waiting,
            conn: None,
            reader: FrameReader::new(MAX_FRAME),
            pid: 0,
            host: String::new(),
            local_ip: None,
            process: None,
            owners: HashSet::new(),
        })
        .collect();
    HEAD.with(|h| {
        *h.borrow_mut() = Some(Head {
            listener,
            key,
            links,
            next_owner: 1,
            events: HashMap::new(),
            noted_wait: false,
            closing: false,
        })
    });
    Ok(ips.iter().map(|ip| format!("{ip}:{port}")).collect())
}

/// The end of the job on rank 0: tells every rank to leave and waits (a few seconds at
/// most) for them to go. Returns the ranks that were lost during the job.
pub fn close() -> Vec<u32> {
    let Some(mut head) = HEAD.with(|h| h.borrow_mut().take()) else { return Vec::new() };
    let _ = rhai_mp_core::base::interrupt::masked(|| head.pump(Deadline::now()));
    let lost: Vec<u32> = head.links.iter().filter(|l| l.state == LinkState::Lost).map(|l| l.rank).collect();
    head.closing = true;
    let bye = frame(&ToRank::Shutdown { finalize: lost.is_empty() }).unwrap_or_default();
    for l in &mut head.links {
        if let Some(c) = &l.conn {
            let _ = tcp::write_all(c.as_fd(), &bye);
        }
    }
    // Ranks still running the top level get the news when they connect.
    let deadline = Deadline::after_secs(10.0);
    rhai_mp_core::base::interrupt::masked(|| {
        while head.links.iter().any(|l| l.state == LinkState::Waiting || l.conn.is_some()) && !deadline.passed() {
            if head.pump(Deadline::after_secs(0.2)).is_err() {
                break;
            }
            for l in &mut head.links {
                if l.conn.is_some() && l.state != LinkState::Lost {
                    if let Some(c) = &l.conn {
                        let _ = tcp::write_all(c.as_fd(), &bye);
                    }
                }
            }
        }
    });
    lost
}

impl Head {
    /// A new owner number.
    pub(crate) fn new_owner(&mut self) -> u64 {
        let o = self.next_owner;
        self.next_owner += 1;
        o
    }

    /// The link of worker rank `rank`.
    pub(crate) fn link(&mut self, rank: u32) -> &mut Link {
        &mut self.links[rank as usize - 1]
    }

    /// Sends a message to a rank on behalf of `owner`, which then hears if the rank is lost.
    /// A rank that cannot be written to is lost (the event says so).
    pub(crate) fn send(&mut self, owner: u64, rank: u32, msg: &ToRank) -> MpResult<()> {
        self.send_bytes(owner, rank, &frame(msg)?)
    }

    /// Sends messages to a rank in one write (see [`Head::send`]).
    pub(crate) fn send_all(&mut self, owner: u64, rank: u32, msgs: &[ToRank]) -> MpResult<()> {
        let mut bytes = Vec::new();
        for m in msgs {
            bytes.extend_from_slice(&frame(m)?);
        }
        self.send_bytes(owner, rank, &bytes)
    }

    fn send_bytes(&mut self, owner: u64, rank: u32, bytes: &[u8]) -> MpResult<()> {
        let link = self.link(rank);
        link.owners.insert(owner);
        let failed = match &link.conn {
            Some(c) => tcp::write_all(c.as_fd(), bytes).is_err(),
            None => true,
        };
        if failed {
            self.lose(rank);
        }
        Ok(())
    }

    /// The events that came for `owner`.
    pub(crate) fn take(&mut self, owner: u64) -> VecDeque<Event> {
        self.events.remove(&owner).unwrap_or_default()
    }

    /// Forgets `owner` (its work is over): no more events for it.
    pub(crate) fn release(&mut self, owner: u64) {
        self.events.remove(&owner);
        for l in &mut self.links {
            l.owners.remove(&owner);
            if l.process == Some(owner) {
                l.process = None;
            }
        }
    }

    /// Waits until every worker rank has connected (or failed, or was lost), pumping.
    pub(crate) fn wait_joined(&mut self) -> MpResult<()> {
        let started = std::time::Instant::now();
        while self.links.iter().any(|l| l.state == LinkState::Waiting) {
            self.pump(Deadline::after_secs(1.0))?;
            let waiting: Vec<String> =
                self.links.iter().filter(|l| l.state == LinkState::Waiting).map(|l| l.rank.to_string()).collect();
            if !self.noted_wait && !waiting.is_empty() && started.elapsed() > Duration::from_secs(30) {
                self.noted_wait = true;
                rhai_mp_core::base::output::stderr_line(&format!(
                    "rhai-mp: still waiting for rank(s) {} to connect (they run the script's top level first)",
                    waiting.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The first failure of a rank's top level, as the error every pool on the ranks
    /// throws (`None` if every rank started).
    pub(crate) fn boot_failure(&self) -> Option<MpError> {
        self.links.iter().find_map(|l| match l.state {
            LinkState::Failed(code) if code == rhai_mp_core::tree::start::popen::EXIT_GUARD => {
                Some(rhai_mp_core::tree::process::guard_error())
            }
            LinkState::Failed(_) => Some(mp_err!(
                RuntimeError,
                "the worker ranks cannot start: the script's top level fails on rank {} ({}; its error is above)",
                l.rank,
                l.host
            )),
            _ => None,
        })
    }

    /// The address of this host that the worker ranks reach it at (loopback in a job
    /// without worker ranks).
    pub(crate) fn reachable_ip(&self) -> std::net::IpAddr {
        self.links.iter().find_map(|l| l.local_ip).unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    }

    fn lose(&mut self, rank: u32) {
        let closing = self.closing;
        let link = self.link(rank);
        if link.state == LinkState::Lost {
            return;
        }
        link.state = LinkState::Lost;
        link.conn = None;
        link.process = None;
        if !closing {
            // Said at once: the launcher may end the job (and this process) any moment now.
            rhai_mp_core::base::output::stderr_line(&format!(
                "rhai-mp: worker rank {rank} (pid {} on {}) was lost: its connection to rank 0 closed",
                link.pid, link.host
            ));
        }
        let owners: Vec<u64> = link.owners.drain().collect();
        for o in owners {
            self.events.entry(o).or_default().push_back(Event::Lost { rank });
        }
    }

    /// Accepts, reads and routes what is there, waiting until `deadline` at most for
    /// something to happen (a signal ends the wait with its error).
    pub(crate) fn pump(&mut self, deadline: Deadline) -> MpResult<()> {
        let live: Vec<usize> = (0..self.links.len()).filter(|&i| self.links[i].conn.is_some()).collect();
        let ready = {
            let mut fds = vec![self.listener.as_fd()];
            fds.extend(live.iter().map(|&i| self.links[i].conn.as_ref().unwrap().as_fd()));
            rhai_mp_core::transport::poll::wait_any(&fds, deadline).map_err(MpError::from)?
        };
        if ready[0] {
            while let Some(conn) = tcp::accept(self.listener.as_fd()) {
                if let Err(e) = self.admit(conn) {
                    rhai_mp_core::base::output::stderr_line(&format!(
                        "rhai-mp: a connection to rank 0 was refused: {e}"
                    ));
                }
            }
        }
        for (k, &i) in live.iter().enumerate() {
            if ready[k + 1] {
                self.read_link(i);
            }
        }
        Ok(())
    }

    /// Reads every whole message a link has.
    fn read_link(&mut self, i: usize) {
        let rank = self.links[i].rank;
        loop {
            let link = &mut self.links[i];
            let Some(conn) = &link.conn else { return };
            let got = link.reader.read_from(conn.as_fd());
            match got {
                Ok(Read::Frame(bytes)) => match decode_message::<FromRank>(&bytes, Vec::new()) {
                    Ok(msg) => self.route(rank, msg),
                    Err(e) => {
                        rhai_mp_core::base::output::stderr_line(&format!(
                            "rhai-mp: rank {rank} sent a malformed message: {e}"
                        ));
                        self.lose(rank);
                        return;
                    }
                },
                Ok(Read::Pending) => return,
                Ok(Read::Closed) | Err(_) => {
                    self.lose(rank);
                    return;
                }
            }
        }
    }

    fn route(&mut self, rank: u32, msg: FromRank) {
        let (owner, event) = match msg {
            FromRank::Done { owner, result } => {
                // A pool result is a task's unless it is job 0 (an initializer's failure).
                let task = result.get(..8).is_some_and(|b| b != [0u8; 8]);
                (owner, Event::Done { rank, result, task })
            }
            FromRank::Exited { owner, code } => {
                let link = self.link(rank);
                if link.process == Some(owner) {
                    link.process = None;
                }
                (owner, Event::Exited { code })
            }
            FromRank::Joined { .. } => return,
        };
        self.events.entry(owner).or_default().push_back(event);
    }

    /// Authenticates a new connection and records the rank it is.
    fn admit(&mut self, conn: OwnedFd) -> MpResult<()> {
        // The handshake is short and bounded: the rank connects when it is ready to answer.
        let deadline = Deadline::after(HANDSHAKE);
        let hello = Hello { nonce: crate::manager::auth::nonce()? };
        tcp::write_all(conn.as_fd(), &tcp::frame(&encode_remote(&hello)?).map_err(io)?).map_err(io)?;
        let mut reader = FrameReader::new(4096);
        let answer: Answer = decode_message(&read_frame(&conn, &mut reader, deadline)?, Vec::new())?;
        let verdict = answer.verdict(&self.key, &hello);
        let welcome = matches!(verdict, Verdict::Welcome(_));
        tcp::write_all(conn.as_fd(), &tcp::frame(&encode_remote(&verdict)?).map_err(io)?).map_err(io)?;
        if !welcome {
            return Err(mp_err!(AuthenticationError, "a connection with the wrong key (from pid {})", answer.pid));
        }
        let joined: FromRank = decode_message(&read_frame(&conn, &mut reader, deadline)?, Vec::new())?;
        let FromRank::Joined { rank, code } = joined else {
            return Err(mp_err!(SerializationError, "a rank's first message is not its rank"));
        };
        if rank == 0 || rank as usize > self.links.len() || self.links[rank as usize - 1].state != LinkState::Waiting {
            return Err(mp_err!(ValueError, "rank {rank} connected twice, or is not a worker rank of this job"));
        }
        let local_ip =
            nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(std::os::fd::AsRawFd::as_raw_fd(&conn))
                .ok()
                .and_then(|s| s.as_sockaddr_in().map(|a| std::net::IpAddr::V4(a.ip())));
        let link = self.link(rank);
        link.pid = answer.pid as i32;
        link.host = answer.host;
        link.local_ip = local_ip;
        link.reader = FrameReader::new(MAX_FRAME);
        if code == 0 {
            link.state = LinkState::Ready;
            link.conn = Some(conn);
        } else {
            link.state = LinkState::Failed(code);
            let _ = tcp::write_all(conn.as_fd(), &frame(&ToRank::Shutdown { finalize: true })?);
        }
        Ok(())
    }
}

fn io(e: std::io::Error) -> MpError {
    MpError::os("a rank's connection", e)
}

/// Reads one whole frame, waiting until `deadline` at most.
pub(crate) fn read_frame(conn: &OwnedFd, reader: &mut FrameReader, deadline: Deadline) -> MpResult<Vec<u8>> {
    loop {
        match reader.read_from(conn.as_fd()).map_err(io)? {
            Read::Frame(b) => return Ok(b),
            Read::Closed => return Err(mp_err!(BrokenPipeError, "the connection closed")),
            Read::Pending => {
                if deadline.passed() {
                    return Err(mp_err!(TimeoutError, "no answer within {} s", HANDSHAKE.as_secs()));
                }
                rhai_mp_core::base::interrupt::masked(|| {
                    rhai_mp_core::transport::poll::wait_readable(conn.as_fd(), deadline)
                })
                .map_err(io)?;
            }
        }
    }
}
