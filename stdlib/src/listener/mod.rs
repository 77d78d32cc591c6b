//! `Listener` and `Client` (see the reference, "Listener and Client"): Python's
//! `multiprocessing.connection` on CPython's own wire, so that unrelated programs — two
//! rhai-mp scripts, or a rhai-mp script and a Python program with nothing but the standard
//! library — exchange messages.
//!
//! - `socket.rs`: addresses (TCP, Unix paths, abstract names), listening, connecting, and a
//!   listener's accepting with many handshakes at once;
//! - `auth.rs`: the HMAC challenge in both directions (3.12's `{sha256}`, 3.11's MD5);
//! - `frame.rs`: the length-prefixed frames, read without blocking and bounded;
//! - `pickle.rs`: the plain values as pickles (protocol 3 written, 2 to 5 read);
//! - `stream.rs`: what a `Connection` made here does for `send`, `recv`, `poll` …
//!
//! The connections are the `Connection` type scripts know from `Pipe()`.

pub(crate) mod auth;
pub(crate) mod frame;
pub(crate) mod pickle;
mod socket;
pub(crate) mod stream;

use crate::connection::Connection;
use crate::opts::{self, Opts};
use rhai::plugin::*;
use rhai::{Array, Dynamic, Map, INT};
use rhai_mp_core::base::sys;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{Deadline, MpError, MpResult};
use rhai_mp_core::transport::poll;
pub use socket::Listener;

/// Python's default backlog for a `Listener`.
const BACKLOG: INT = 1;

fn key_of(v: Option<Dynamic>, func: &str) -> MpResult<Option<Vec<u8>>> {
    let Some(k) = v else { return Ok(None) };
    if let Ok(s) = k.clone().into_string() {
        return Ok(Some(s.into_bytes()));
    }
    if k.is_blob() {
        return Ok(k.into_blob().ok());
    }
    Err(mp_err!(TypeError, "option 'authkey' of {func}() must be a string or a blob, not {}", opts::type_name(&k)))
}

fn address_of(v: &Dynamic, func: &str) -> MpResult<String> {
    opts::arg_str(v, func, "address")
}

/// A fresh socket file's path in the temporary directory (Python's `arbitrary_address`).
fn arbitrary_address() -> MpResult<String> {
    let tag = sys::random_bytes(6).map_err(|e| MpError::os("a random name", e))?;
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let path = std::env::temp_dir().join(format!("rhai-mp-listener-{}-{tag}", sys::pid()));
    Ok(path.to_string_lossy().into_owned())
}

fn listen(address: Option<String>, mut o: Opts) -> MpResult<Listener> {
    let key = key_of(o.take("authkey"), "Listener")?;
    let backlog = o.int("backlog")?.unwrap_or(BACKLOG);
    let address = match address {
        Some(a) => a,
        None => match o.take("address") {
            Some(a) => address_of(&a, "Listener")?,
            None => arbitrary_address()?,
        },
    };
    let backlog = backlog.clamp(0, i32::MAX as INT) as i32;
    let state = socket::ListenerState::bind(&address, key, backlog)?;
    Ok(Listener(std::rc::Rc::new(std::cell::RefCell::new(state))))
}

fn client(address: Option<String>, mut o: Opts) -> MpResult<Connection> {
    let key = key_of(o.take("authkey"), "Client")?;
    let address = match address {
        Some(a) => a,
        None => match o.take("address") {
            Some(a) => address_of(&a, "Client")?,
            None => return Err(mp_err!(ValueError, "Client() needs an address: Client(#{{address: \"host:port\"}})")),
        },
    };
    socket::connect(&address, key)
}

/// `wait()` over objects among which are Listeners or Listener/Client connections: those
/// are moved on without blocking (connections accepted, handshakes stepped, bytes read) and
/// called ready only when `accept()` / `recv()` would not block; `fd_of` gives the others'
/// descriptors.
pub(crate) fn wait_driven(
    objects: Array,
    deadline: Deadline,
    fd_of: impl Fn(&Dynamic, usize) -> MpResult<i32>,
) -> MpResult<Array> {
    loop {
        let mut ready = vec![false; objects.len()];
        let mut driven = vec![false; objects.len()];
        let (mut fds, mut owner) = (Vec::new(), Vec::new());
        for (i, o) in objects.iter().enumerate() {
            if let Some(l) = o.read_lock::<Listener>() {
                driven[i] = true;
                let mut s = l.0.borrow_mut();
                s.drive()?;
                if s.ready() {
                    ready[i] = true;
                    continue;
                }
                for fd in s.fds()? {
                    fds.push(fd);
                    owner.push(i);
                }
                continue;
            }
            let stream = o.read_lock::<Connection>().and_then(|c| c.stream_ready());
            if let Some(r) = stream {
                driven[i] = true;
                if r? {
                    ready[i] = true;
                    continue;
                }
            }
            fds.push(fd_of(o, i)?);
            owner.push(i);
        }
        let until = if ready.contains(&true) { Deadline::now() } else { deadline };
        if !fds.is_empty() {
            let borrowed: Vec<_> = fds.iter().map(|&fd| sys::borrow_fd(fd)).collect();
            let polled = poll::wait_any(&borrowed, until).map_err(|e| MpError::os("wait", e))?;
            for (k, p) in polled.into_iter().enumerate() {
                if p && !driven[owner[k]] {
                    ready[owner[k]] = true;
                }
            }
        }
        if ready.contains(&true) {
            return Ok(objects.into_iter().zip(ready).filter(|(_, r)| *r).map(|(o, _)| o).collect());
        }
        if deadline.passed() {
            return Ok(Array::new());
        }
    }
}

/// Whether `wait()` must hand `obj` to [`wait_driven`].
pub(crate) fn is_driven(obj: &Dynamic) -> bool {
    obj.is::<Listener>() || obj.read_lock::<Connection>().is_some_and(|c| c.is_stream())
}

/// The Rhai bindings: `Listener`, `Client` and the methods of a `Listener`.
#[export_module]
pub mod listener_functions {
    use super::*;

    /// A listening socket that other programs (rhai-mp's or Python's `Client`) connect to.
    pub type Listener = super::Listener;

    /// A Listener on a fresh Unix socket file in the temporary directory (Python's
    /// `Listener()`); `l.address` tells its path.
    ///
    /// ```rhai
    /// let l = Listener();
    /// print(l.address);
    /// ```
    ///
    /// Throws when: the socket cannot be made (`OSError`).
    #[rhai_fn(name = "Listener", return_raw)]
    pub fn listener_anywhere() -> Result<Listener, Box<EvalAltResult>> {
        Ok(listen(None, Opts::new(Map::new(), "Listener", &[])?)?)
    }

    /// Listens at `address`: `"host:port"` (TCP; port 0 picks a free one), a socket file's
    /// path (removed on close), or `"@name"` / `"\x00name"` (Linux's abstract namespace); or
    /// takes `#{address, authkey, backlog}` (`authkey`: a string or blob that every client
    /// must prove it knows; `backlog`: default 1, as Python's).
    ///
    /// ```rhai
    /// let l = Listener(#{address: "127.0.0.1:0", authkey: "secret"});
    /// print(l.address);
    /// ```
    ///
    /// Throws when: the address is malformed or an option unknown (`ValueError`); an argument
    /// or option is of the wrong type (`TypeError`); the address is in use or cannot be
    /// listened at (`OSError`).
    #[rhai_fn(name = "Listener", return_raw)]
    pub fn listener(address: Dynamic) -> Result<Listener, Box<EvalAltResult>> {
        if address.is_map() {
            let o = Opts::new(address.cast::<Map>(), "Listener", &["address", "authkey", "backlog"])?;
            return Ok(listen(None, o)?);
        }
        let address = address_of(&address, "Listener")?;
        Ok(listen(Some(address), Opts::new(Map::new(), "Listener", &[])?)?)
    }

    /// `Listener(address, #{authkey, backlog})`.
    ///
    /// ```rhai
    /// let l = Listener("/tmp/work.sock", #{authkey: "secret"});
    /// ```
    ///
    /// Throws when: as `Listener(address)`.
    #[rhai_fn(name = "Listener", return_raw)]
    pub fn listener_with(address: Dynamic, options: Dynamic) -> Result<Listener, Box<EvalAltResult>> {
        let address = address_of(&address, "Listener")?;
        let o = Opts::new(opts::arg_map(options, "Listener", "options")?, "Listener", &["authkey", "backlog"])?;
        Ok(listen(Some(address), o)?)
    }

    /// Waits for a client and returns the Connection to it, after the authentication
    /// handshake when the listener has an authkey. Clients whose handshake stalls hold up
    /// no one: the first to be through is returned.
    ///
    /// ```rhai
    /// let conn = l.accept();
    /// conn.send("hello");
    /// ```
    ///
    /// Throws when: a client's key is wrong or its handshake malformed (`AuthenticationError`;
    /// the listener goes on), it closed during the handshake (`EOFError`); the listener is
    /// closed (`OSError`).
    #[rhai_fn(global, return_raw)]
    pub fn accept(l: &mut Listener) -> Result<Connection, Box<EvalAltResult>> {
        Ok(l.accept()?)
    }

    /// The address it listens at, the actual one (`"127.0.0.1:41234"` when port 0 was asked).
    ///
    /// ```rhai
    /// let c = Client(l.address);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, get = "address", pure)]
    pub fn get_address(l: &mut Listener) -> String {
        l.0.borrow().address().to_string()
    }

    /// The address of the last client accepted (`"host:port"`; `""` on a Unix socket), or
    /// `()` before the first.
    ///
    /// ```rhai
    /// let conn = l.accept();
    /// print(l.last_accepted);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, get = "last_accepted", pure)]
    pub fn get_last_accepted(l: &mut Listener) -> Dynamic {
        l.0.borrow().last_accepted().map_or(Dynamic::UNIT, |a| a.into())
    }

    /// Stops listening (every copy of it) and removes its socket file; connections already
    /// accepted go on.
    ///
    /// ```rhai
    /// l.close();
    /// ```
    ///
    /// Throws when: never (closing twice is fine).
    #[rhai_fn(global, name = "close")]
    pub fn close(l: &mut Listener) {
        l.0.borrow_mut().close();
    }

    /// `<Listener address=127.0.0.1:41234>`, or `<Listener closed>`.
    ///
    /// ```rhai
    /// print(l);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(l: &mut Listener) -> String {
        let s = l.0.borrow();
        if s.closed() {
            "<Listener closed>".into()
        } else {
            format!("<Listener address={}>", s.address())
        }
    }

    /// Connects to the Listener at `address` (as `Listener` takes it), or takes
    /// `#{address, authkey}`, and returns the Connection; with an `authkey`, runs the
    /// handshake (both sides prove they know the key).
    ///
    /// ```rhai
    /// let conn = Client(#{address: "127.0.0.1:6000", authkey: "secret"});
    /// conn.send([1, 2, 3]);
    /// ```
    ///
    /// Throws when: nothing listens there (`ConnectionRefusedError`); the key is wrong or the
    /// listener wants one and none was given (`AuthenticationError`); the address is malformed
    /// or an option unknown (`ValueError`); an argument is of the wrong type (`TypeError`);
    /// another failure to connect (`OSError`).
    #[rhai_fn(name = "Client", return_raw)]
    pub fn client_to(address: Dynamic) -> Result<Connection, Box<EvalAltResult>> {
        if address.is_map() {
            let o = Opts::new(address.cast::<Map>(), "Client", &["address", "authkey"])?;
            return Ok(client(None, o)?);
        }
        let address = address_of(&address, "Client")?;
        Ok(client(Some(address), Opts::new(Map::new(), "Client", &[])?)?)
    }

    /// `Client(address, #{authkey})`.
    ///
    /// ```rhai
    /// let conn = Client("127.0.0.1:6000", #{authkey: "secret"});
    /// ```
    ///
    /// Throws when: as `Client(address)`.
    #[rhai_fn(name = "Client", return_raw)]
    pub fn client_with(address: Dynamic, options: Dynamic) -> Result<Connection, Box<EvalAltResult>> {
        let address = address_of(&address, "Client")?;
        let o = Opts::new(opts::arg_map(options, "Client", "options")?, "Client", &["authkey"])?;
        Ok(client(Some(address), o)?)
    }
}

/// listener's entry in the package's list of primitives (`registry.rs`). A `Listener` stays
/// in the process that made it (as Python's, it does not pickle); the Connections it and
/// `Client` make cross processes as `Connection` handles. Python's contexts have no
/// `Listener` or `Client`, so none is mirrored.
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::section;
    crate::registry::Primitive {
        name: "listener",
        group: "Listener and Client",
        sections: &[section("", &[("Listener", "l")], &["Listener", "Client"], &["Listener("])],
        functions,
        module: None,
        handles: &[],
        machinery: None,
        mirrors: &[],
        managed: &[],
    }
};

/// Registers listener's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "listener", listener_functions);
}
