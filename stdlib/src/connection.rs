//! `Pipe()` and `Connection` (see the reference, "Pipe and Connection").
//!
//! A pipe is a `SOCK_SEQPACKET` socket pair: every message is one packet, so several
//! processes may read or write the same end and never see a torn or interleaved message
//! (Python warns that data may be corrupted there; rhai-mp does not allow it). Large
//! messages travel in a memfd (see `rhai_mp_core::transport`). `Pipe(false)` gives a
//! read-only and a write-only end. A Connection crosses to other processes — as a `Process`
//! argument, or through a pipe or queue — as a duplicate of its descriptor.

use crate::opts;
use rhai::plugin::*;
use rhai::{Blob, Dynamic, INT};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, MpResult};
use rhai_mp_core::transport::seqpacket;
use rhai_mp_core::transport::seqpacket::Kind as MessageKind;
use rhai_mp_core::wire::{Handle, Portable, Reader, Writer};
use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;

/// The state of one connection end (its socket, buffers and caches).
#[derive(Debug)]
pub struct ConnState {
    fd: Option<OwnedFd>,
    readable: bool,
    writable: bool,
    /// Reused receive buffer.
    buf: Vec<u8>,
    /// How long a `recv` on this end polls before it sleeps (adaptive).
    spin: rhai_mp_core::base::spin::Spin,
    /// The memfds of the large messages this end sent, for reuse.
    spills: rhai_mp_core::transport::seqpacket::SpillCache,
    /// The memfds of the large values this end received, kept mapped.
    maps: rhai_mp_core::transport::seqpacket::MapCache,
}

/// One end of a pipe. Copies share the end: closing any copy closes it.
#[derive(Debug, Clone)]
pub struct Connection(pub Rc<RefCell<ConnState>>);

fn os_error(what: &str, e: std::io::Error) -> MpError {
    match e.raw_os_error() {
        Some(libc::EPIPE) | Some(libc::ECONNRESET) => {
            mp_err!(BrokenPipeError, "[Errno 32] Broken pipe: the other end of the connection is closed")
        }
        _ => MpError::os(what, e),
    }
}

impl Connection {
    /// A connection on `fd`, readable and/or writable.
    pub fn new(fd: OwnedFd, readable: bool, writable: bool) -> Connection {
        Connection(Rc::new(RefCell::new(ConnState {
            fd: Some(fd),
            readable,
            writable,
            buf: Vec::new(),
            spin: rhai_mp_core::base::spin::Spin::new(),
            spills: rhai_mp_core::transport::seqpacket::SpillCache::new(),
            maps: rhai_mp_core::transport::seqpacket::MapCache::new(),
        })))
    }

    /// A connected pair: duplex, or `[reader, writer]`.
    pub fn pipe(duplex: bool) -> MpResult<(Connection, Connection)> {
        use nix::sys::socket::{shutdown, socketpair, AddressFamily, Shutdown, SockFlag, SockType};
        let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
        if duplex {
            return Ok((Connection::new(a, true, true), Connection::new(b, true, true)));
        }
        shutdown(a.as_raw_fd(), Shutdown::Write)?;
        shutdown(b.as_raw_fd(), Shutdown::Read)?;
        Ok((Connection::new(a, true, false), Connection::new(b, false, true)))
    }

    /// The descriptor, or `OSError` if closed.
    pub fn raw_fd(&self) -> MpResult<i32> {
        self.0.borrow().fd.as_ref().map(|f| f.as_raw_fd()).ok_or_else(|| mp_err!(OSError, "handle is closed"))
    }

    fn check(&self, reading: bool) -> MpResult<()> {
        let s = self.0.borrow();
        if s.fd.is_none() {
            return Err(mp_err!(OSError, "handle is closed"));
        }
        if reading && !s.readable {
            return Err(mp_err!(OSError, "connection is write-only"));
        }
        if !reading && !s.writable {
            return Err(mp_err!(OSError, "connection is read-only"));
        }
        Ok(())
    }

    fn send_raw(&self, kind: MessageKind, payload: &[u8], fds: &[OwnedFd]) -> MpResult<()> {
        self.check(false)?;
        let s = self.0.borrow();
        seqpacket::send(s.fd.as_ref().unwrap().as_fd(), kind, &[payload], fds, Some(&s.spills))
            .map_err(|e| os_error("send", e))
    }

    /// Sends a value (any value that can cross processes). Its large blobs and int arrays
    /// are copied once, straight into the message's memfd.
    pub fn send(&self, value: Dynamic) -> MpResult<()> {
        self.check(false)?;
        let message = rhai_mp_core::wire::encode_owned(value, "obj")?;
        let s = self.0.borrow();
        seqpacket::send(
            s.fd.as_ref().unwrap().as_fd(),
            MessageKind::Value,
            &message.pieces(),
            message.fds(),
            Some(&s.spills),
        )
        .map_err(|e| os_error("send", e))
    }

    /// Sends raw bytes as one message.
    pub fn send_bytes(&self, bytes: &[u8]) -> MpResult<()> {
        self.send_raw(MessageKind::Bytes, bytes, &[])
    }

    /// Receives one message; `EOFError` when the other end is closed and nothing is left.
    pub fn recv_message(&self) -> MpResult<rhai_mp_core::transport::seqpacket::Message> {
        self.check(true)?;
        let mut s = self.0.borrow_mut();
        let ConnState { fd, buf, spin, maps, .. } = &mut *s;
        match seqpacket::recv_message(fd.as_ref().unwrap().as_fd(), buf, spin, Some(maps)) {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(mp_err!(EOFError, "the other end of the connection is closed and no message is left")),
            Err(e) => Err(os_error("recv", e)),
        }
    }

    /// Receives a value (a `send_bytes` message arrives as a blob).
    pub fn recv(&self) -> MpResult<Dynamic> {
        let m = self.recv_message()?;
        match m.kind {
            MessageKind::Value => rhai_mp_core::wire::decode(&m.data, m.fds),
            MessageKind::Bytes => Ok(Dynamic::from_blob(m.data.into_vec())),
        }
    }

    /// Receives one message's bytes; one longer than `maxlength` stays unread (`OSError`).
    pub fn recv_bytes(&self, maxlength: Option<usize>) -> MpResult<Blob> {
        if let Some(max) = maxlength {
            self.check(true)?;
            let len = {
                let s = self.0.borrow();
                seqpacket::peek(s.fd.as_ref().unwrap().as_fd()).map_err(|e| os_error("recv_bytes", e))?
            };
            if let Some((_, len)) = len {
                if len > max {
                    return Err(mp_err!(
                        OSError,
                        "bad message length: the message has {len} bytes, more than maxlength {max} (it stays unread)"
                    ));
                }
            }
        }
        Ok(self.recv_message()?.data.into_vec())
    }

    /// Whether a message (or the end of the stream) can be read, waiting until `deadline`.
    pub fn poll(&self, deadline: Deadline) -> MpResult<bool> {
        self.check(true)?;
        let s = self.0.borrow();
        rhai_mp_core::transport::poll::wait_readable(s.fd.as_ref().unwrap().as_fd(), deadline)
            .map_err(|e| os_error("poll", e))
    }

    /// Closes this end (every copy of the handle).
    pub fn close(&self) {
        let mut s = self.0.borrow_mut();
        s.fd = None;
        s.spills.clear();
        s.maps.clear();
    }

    /// Whether this end is closed.
    pub fn closed(&self) -> bool {
        self.0.borrow().fd.is_none()
    }
}

/// A Connection crosses as a duplicate of its descriptor.
impl Portable for Connection {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        let s = self.0.borrow();
        let fd = s.fd.as_ref().ok_or_else(|| mp_err!(SerializationError, "a closed Connection cannot be sent"))?;
        w.dup(fd.as_fd())?;
        w.bool(s.readable);
        w.bool(s.writable);
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(Connection::new(r.fd()?, r.bool()?, r.bool()?))
    }
}

impl Handle for Connection {
    const KIND: &'static str = "Connection";
    const ELSEWHERE: &'static str = "a TCP manager's m.Queue() (Manager() under MPI, else Manager(#{address: ..}))";
}

fn bad_range(msg: &str) -> Box<EvalAltResult> {
    mp_err!(ValueError, "{msg}").into()
}

/// The Rhai bindings: `Pipe` and the methods of a `Connection`.
#[export_module]
pub mod connection_functions {
    use super::*;

    /// One end of a pipe.
    pub type Connection = super::Connection;

    /// A duplex pipe: `[conn1, conn2]`; what one end sends, the other receives.
    ///
    /// ```rhai
    /// let ends = Pipe();
    /// let parent = ends[0]; let child = ends[1];
    /// ```
    ///
    /// Throws when: the OS cannot make a socket pair (`OSError`).
    #[rhai_fn(name = "Pipe", return_raw)]
    pub fn pipe() -> Result<rhai::Array, Box<EvalAltResult>> {
        pipe_duplex(Dynamic::TRUE)
    }

    /// `Pipe(true)` is duplex; `Pipe(false)` returns `[reader, writer]`, one-way.
    ///
    /// ```rhai
    /// let ends = Pipe(false);
    /// let reader = ends[0]; let writer = ends[1];
    /// ```
    ///
    /// Throws when: the OS cannot make a socket pair (`OSError`).
    #[rhai_fn(name = "Pipe", return_raw)]
    pub fn pipe_duplex(duplex: Dynamic) -> Result<rhai::Array, Box<EvalAltResult>> {
        let (a, b) = super::Connection::pipe(opts::arg_bool(&duplex, "Pipe", "duplex")?)?;
        Ok(vec![Dynamic::from(a), Dynamic::from(b)])
    }

    /// Sends any value that can cross processes (handles included) as one message.
    ///
    /// ```rhai
    /// conn.send([42, (), "hello"]);
    /// ```
    ///
    /// Throws when: the value cannot be sent (`SerializationError`); the other end is closed
    /// (`BrokenPipeError`); this end is closed or read-only (`OSError`).
    #[rhai_fn(global, return_raw)]
    pub fn send(conn: &mut Connection, value: Dynamic) -> Result<(), Box<EvalAltResult>> {
        Ok(conn.send(value)?)
    }

    /// Receives the next message, waiting for one.
    ///
    /// ```rhai
    /// let msg = conn.recv();
    /// ```
    ///
    /// Throws when: the other end is closed and nothing is left (`EOFError`); this end is
    /// closed or write-only (`OSError`).
    #[rhai_fn(global, return_raw)]
    pub fn recv(conn: &mut Connection) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(conn.recv()?)
    }

    /// Whether a message (or the end of the stream) is waiting; does not block.
    ///
    /// ```rhai
    /// if conn.poll() { print(conn.recv()); }
    /// ```
    ///
    /// Throws when: this end is closed or write-only (`OSError`).
    #[rhai_fn(global, return_raw)]
    pub fn poll(conn: &mut Connection) -> Result<bool, Box<EvalAltResult>> {
        Ok(conn.poll(Deadline::now())?)
    }

    /// Waits up to `timeout` seconds (`()`: no limit) for a message or the end of the stream.
    ///
    /// ```rhai
    /// if conn.poll(0.5) { print(conn.recv()); } else { print("nothing yet"); }
    /// ```
    ///
    /// Throws when: `timeout` is negative (`ValueError`) or not a number (`TypeError`); this
    /// end is closed or write-only (`OSError`).
    #[rhai_fn(global, name = "poll", return_raw)]
    pub fn poll_timeout(conn: &mut Connection, timeout: Dynamic) -> Result<bool, Box<EvalAltResult>> {
        match opts::keyword("poll", "timeout", timeout)? {
            None => poll(conn),
            Some(timeout) => Ok(conn.poll(opts::timeout_deadline(&timeout, "poll")?)?),
        }
    }

    /// Sends a blob as one message.
    ///
    /// ```rhai
    /// conn.send_bytes(blob(3, 0x41));
    /// ```
    ///
    /// Throws when: the other end is closed (`BrokenPipeError`); this end is closed or
    /// read-only (`OSError`).
    #[rhai_fn(global, return_raw)]
    pub fn send_bytes(conn: &mut Connection, data: Dynamic) -> Result<(), Box<EvalAltResult>> {
        Ok(conn.send_bytes(&opts::arg_blob(data, "send_bytes", "data")?)?)
    }

    /// Sends the bytes of `data` from `offset` on. The options may be a map:
    /// `conn.send_bytes(b, #{offset: 2, size: 3})`.
    ///
    /// ```rhai
    /// conn.send_bytes(b, 2);
    /// conn.send_bytes(b, #{size: 1});
    /// ```
    ///
    /// Throws when: `offset` is negative or past the end (`ValueError`); an unknown option
    /// (`ValueError`); as `send_bytes(data)`.
    #[rhai_fn(global, name = "send_bytes", return_raw)]
    pub fn send_bytes_from(conn: &mut Connection, data: Dynamic, offset: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let [data, offset, size] = opts::keywords("send_bytes", ["data", "offset", "size"], 1, vec![data, offset])?;
        let data = opts::arg_blob(data.unwrap_or_default(), "send_bytes", "data")?;
        let offset = offset.unwrap_or(Dynamic::from(0 as INT));
        let size = match size {
            Some(size) => size,
            None => {
                let off = opts::arg_int(&offset, "send_bytes", "offset")?;
                Dynamic::from((data.len() as INT).saturating_sub(off).max(0))
            }
        };
        send_bytes_range(conn, Dynamic::from_blob(data), offset, size)
    }

    /// Sends `size` bytes of `data` from `offset`.
    ///
    /// ```rhai
    /// conn.send_bytes(b, 2, 3);
    /// ```
    ///
    /// Throws when: `offset` or `size` is negative, or the range passes the end of `data`
    /// (`ValueError`); as `send_bytes(data)`.
    #[rhai_fn(global, name = "send_bytes", return_raw)]
    pub fn send_bytes_range(
        conn: &mut Connection,
        data: Dynamic,
        offset: Dynamic,
        size: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        let [data, offset, size] =
            opts::keywords("send_bytes", ["data", "offset", "size"], 1, vec![data, offset, size])?;
        let data = opts::arg_blob(data.unwrap_or_default(), "send_bytes", "data")?;
        let offset = opts::arg_int(&offset.unwrap_or(Dynamic::from(0 as INT)), "send_bytes", "offset")?;
        let size = match size {
            Some(size) => opts::arg_int(&size, "send_bytes", "size")?,
            None => (data.len() as INT).saturating_sub(offset).max(0),
        };
        let len = data.len() as INT;
        if offset < 0 {
            return Err(bad_range("offset is negative"));
        }
        if len < offset {
            return Err(bad_range(&format!("buffer length {len} < offset {offset}")));
        }
        if size < 0 {
            return Err(bad_range("size is negative"));
        }
        let end = offset.checked_add(size).filter(|&end| end <= len);
        let Some(end) = end else {
            return Err(bad_range(&format!("buffer length {len} < offset {offset} + size {size}")));
        };
        Ok(conn.send_bytes(&data[offset as usize..end as usize])?)
    }

    /// Receives the next message as a blob (a `send` message gives its encoded bytes).
    ///
    /// ```rhai
    /// let b = conn.recv_bytes();
    /// ```
    ///
    /// Throws when: the other end is closed and nothing is left (`EOFError`); this end is
    /// closed or write-only (`OSError`).
    #[rhai_fn(global, return_raw)]
    pub fn recv_bytes(conn: &mut Connection) -> Result<Blob, Box<EvalAltResult>> {
        Ok(conn.recv_bytes(None)?)
    }

    /// Receives the next message as a blob, refusing one longer than `maxlength` bytes
    /// (that message stays unread).
    ///
    /// ```rhai
    /// let b = conn.recv_bytes(1024);
    /// ```
    ///
    /// Throws when: the message is longer than `maxlength` (`OSError`); `maxlength` is
    /// negative (`ValueError`); as `recv_bytes()`.
    #[rhai_fn(global, name = "recv_bytes", return_raw)]
    pub fn recv_bytes_max(conn: &mut Connection, maxlength: Dynamic) -> Result<Blob, Box<EvalAltResult>> {
        let Some(maxlength) = opts::keyword("recv_bytes", "maxlength", maxlength)? else { return recv_bytes(conn) };
        let maxlength = opts::arg_int(&maxlength, "recv_bytes", "maxlength")?;
        if maxlength < 0 {
            return Err(bad_range("negative maxlength"));
        }
        Ok(conn.recv_bytes(Some(maxlength as usize))?)
    }

    /// Receives the next message into this blob (which does not grow); returns its length.
    ///
    /// ```rhai
    /// let buf = blob(10);
    /// let n = buf.recv_bytes_into(conn);
    /// ```
    ///
    /// Throws when: the message is longer than the blob (`BufferTooShort`, with the whole
    /// message in `data`); as `recv_bytes()`.
    #[rhai_fn(global, return_raw)]
    pub fn recv_bytes_into(buf: &mut Blob, conn: Dynamic) -> Result<INT, Box<EvalAltResult>> {
        recv_bytes_into_at(buf, conn, Dynamic::from(0 as INT))
    }

    /// Receives the next message into this blob from `offset` on; returns its length.
    ///
    /// ```rhai
    /// let n = buf.recv_bytes_into(conn, 4);
    /// ```
    ///
    /// Throws when: `offset` is negative or past the end (`ValueError`); the message is
    /// longer than the room left (`BufferTooShort`, with the whole message in `data`); as
    /// `recv_bytes()`.
    #[rhai_fn(global, name = "recv_bytes_into", return_raw)]
    pub fn recv_bytes_into_at(buf: &mut Blob, conn: Dynamic, offset: Dynamic) -> Result<INT, Box<EvalAltResult>> {
        let [conn, offset] = opts::keywords("recv_bytes_into", ["conn", "offset"], 1, vec![conn, offset])?;
        let (conn, offset) = (conn.unwrap_or_default(), offset.unwrap_or(Dynamic::from(0 as INT)));
        let t = opts::type_name(&conn);
        let conn = conn
            .try_cast::<super::Connection>()
            .ok_or_else(|| mp_err!(TypeError, "recv_bytes_into() reads from a Connection, not {t}"))?;
        let offset = opts::arg_int(&offset, "recv_bytes_into", "offset")?;
        if offset < 0 {
            return Err(bad_range("offset is negative"));
        }
        if offset as usize > buf.len() {
            return Err(bad_range(&format!("offset {offset} too large for a buffer of {} bytes", buf.len())));
        }
        let data = conn.recv_bytes(None)?;
        let start = offset as usize;
        if data.len() > buf.len() - start {
            let err = mp_err!(
                BufferTooShort,
                "a message of {} bytes does not fit in the {} bytes left in the buffer",
                data.len(),
                buf.len() - start
            );
            return Err(err.with("data", Dynamic::from_blob(data)).into());
        }
        buf[start..start + data.len()].copy_from_slice(&data);
        Ok(data.len() as INT)
    }

    /// The connection's file descriptor.
    ///
    /// ```rhai
    /// print(`fd ${conn.fileno()}`);
    /// ```
    ///
    /// Throws when: the connection is closed (`OSError`).
    #[rhai_fn(global, return_raw)]
    pub fn fileno(conn: &mut Connection) -> Result<INT, Box<EvalAltResult>> {
        Ok(conn.raw_fd()? as INT)
    }

    /// Closes this end (every copy of it). The other end then sees the end of the stream.
    ///
    /// ```rhai
    /// conn.close();
    /// ```
    ///
    /// Throws when: never (closing twice is fine).
    #[rhai_fn(global)]
    pub fn close(conn: &mut Connection) {
        conn.close()
    }

    /// Whether this end is closed.
    ///
    /// ```rhai
    /// if !conn.closed { conn.send(1); }
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, get = "closed", pure)]
    pub fn get_closed(conn: &mut Connection) -> bool {
        conn.closed()
    }

    /// `<Connection fd=5>` (`readonly`/`writeonly` for `Pipe(false)` ends), or
    /// `<Connection closed>`.
    ///
    /// ```rhai
    /// print(conn);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(conn: &mut Connection) -> String {
        let s = conn.0.borrow();
        match &s.fd {
            None => "<Connection closed>".into(),
            Some(fd) => {
                let mode = match (s.readable, s.writable) {
                    (true, false) => " readonly",
                    (false, true) => " writeonly",
                    _ => "",
                };
                format!("<Connection fd={}{mode}>", fd.as_raw_fd())
            }
        }
    }
}

/// connection's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::{handle, mirror, section};
    crate::registry::Primitive {
        name: "connection",
        group: "Pipes and connections",
        sections: &[section(
            "Pipe and Connection",
            &[("Connection", "conn")],
            &["Pipe", "recv_bytes_into"],
            &["Pipe("],
        )],
        functions,
        module: None,
        handles: &[handle::<Connection>()],
        machinery: None,
        mirrors: &[mirror("Pipe", &[0, 1])],
        managed: &[],
    }
};

/// Registers connection's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "connection", connection_functions);
}
