//! Rhai values as [`Wire`] trees, and back.
//!
//! [`ToWire`] walks a [`Dynamic`]: scalars and containers map one to one, a function
//! pointer keeps its name and curried values, a shared value (a closure capture) is
//! numbered the first time it is met and referred to after that, and a handle is written
//! by its codec (see `handle.rs`), its descriptors joining the message's. [`FromWire`]
//! rebuilds the value. Both keep their state for a whole message, so sharing holds across
//! the values of one message (a target and its arguments).

use super::code::{self, Unit};
use super::handle::{codec_for_kind, codec_for_type};
use super::message::{Reader, Writer};
use super::{serr, MAX_DEPTH};
use crate::base::error::{MpError, MpResult};
use rhai::{Array, Blob, Dynamic, FnPtr, ImmutableString, Map};
use std::any::TypeId;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::rc::Rc;

/// A value in transit.
#[derive(Debug, Clone, PartialEq)]
pub enum Wire {
    /// `()`.
    Unit,
    /// A bool.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A char.
    Char(char),
    /// A string.
    Str(String),
    /// A blob.
    Blob(Vec<u8>),
    /// An array.
    Array(Vec<Wire>),
    /// A non-empty array of plain integers only, packed (no tree node per item: a pool
    /// argument of a million ints encodes and decodes several times faster).
    Ints(Vec<i64>),
    /// An object map, in its order.
    Map(Vec<(String, Wire)>),
    /// A function pointer or closure: its name and its curried (captured) values.
    Fn {
        /// The function's name (`anon$<hash>` for a closure).
        name: String,
        /// Its curried values.
        curry: Vec<Wire>,
    },
    /// A function pointer with the session code it needs (see `code.rs`): each unit's hash,
    /// and its text unless the message sent it already.
    FnCode {
        /// The function's name.
        name: String,
        /// Its curried values.
        curry: Vec<Wire>,
        /// The session's units, in order.
        units: Vec<(u64, Option<String>)>,
    },
    /// A function pointer with the same session code as the last `FnCode` of the message.
    FnSame {
        /// The function's name.
        name: String,
        /// Its curried values.
        curry: Vec<Wire>,
    },
    /// The first occurrence of a shared value (a closure capture), numbered.
    Shared {
        /// Its number in the message.
        id: u32,
        /// The value.
        value: Box<Wire>,
    },
    /// A later occurrence of the shared value numbered `id`.
    SharedRef(u32),
    /// A runtime object: its codec's kind, the codec's bytes, and the indexes of its file
    /// descriptors in the message's descriptor list.
    Handle {
        /// The codec's kind, such as `"Queue"`.
        kind: String,
        /// What the codec wrote.
        data: Vec<u8>,
        /// Indexes into the message's descriptors.
        fds: Vec<u32>,
    },
}

/// Where in a value the encoder is, for error messages.
enum Seg {
    Index(usize),
    Key(String),
    Captured(usize),
}

/// Converts values to trees for one message.
#[derive(Default)]
pub(crate) struct ToWire {
    root: String,
    path: Vec<Seg>,
    /// Shared cells seen so far (by address of their content) and their ids.
    shared: HashMap<usize, u32>,
    /// Shared cells being encoded right now: meeting one again is a cycle.
    open: Vec<usize>,
    /// Code units whose text this message carries already, and the last unit list written.
    sent_units: Vec<u64>,
    last_units: Option<Rc<[Unit]>>,
    /// The message goes to another machine: no descriptors (see `Writer::remote`).
    pub(crate) remote: bool,
}

impl ToWire {
    fn where_(&self) -> String {
        let mut s = self.root.clone();
        for seg in &self.path {
            match seg {
                Seg::Index(i) => s.push_str(&format!("[{i}]")),
                Seg::Key(k) if is_ident(k) => {
                    s.push('.');
                    s.push_str(k)
                }
                Seg::Key(k) => s.push_str(&format!("[{k:?}]")),
                Seg::Captured(i) => s.push_str(&format!(".captured[{i}]")),
            }
        }
        s
    }

    fn fail(&self, what: String) -> MpError {
        serr(format!("{what} (at {})", self.where_()))
    }

    /// Converts `v` (named `root` in messages); descriptors of its handles go to `fds`.
    pub(crate) fn convert(&mut self, v: &Dynamic, root: &str, fds: &mut Vec<OwnedFd>) -> MpResult<Wire> {
        root.clone_into(&mut self.root);
        self.path.clear();
        self.value(v, fds)
    }

    /// [`ToWire::convert`] of a value the caller gives up: its blobs (in arrays and maps
    /// too, but not in shared cells, which other variables see) move into the tree instead
    /// of being copied.
    pub(crate) fn convert_owned(&mut self, v: Dynamic, root: &str, fds: &mut Vec<OwnedFd>) -> MpResult<Wire> {
        root.clone_into(&mut self.root);
        self.path.clear();
        self.owned(v, fds)
    }

    fn owned(&mut self, v: Dynamic, fds: &mut Vec<OwnedFd>) -> MpResult<Wire> {
        if v.is_shared() || self.path.len() as u32 >= MAX_DEPTH {
            return self.value(&v, fds);
        }
        if v.is_blob() {
            return Ok(Wire::Blob(v.into_blob().unwrap_or_default()));
        }
        if v.is_array() {
            let a = v.into_array().unwrap_or_default();
            if let Some(ints) = all_ints(&a) {
                return Ok(Wire::Ints(ints));
            }
            let mut out = Vec::with_capacity(a.len());
            for (i, x) in a.into_iter().enumerate() {
                self.path.push(Seg::Index(i));
                out.push(self.owned(x, fds)?);
                self.path.pop();
            }
            return Ok(Wire::Array(out));
        }
        if v.is_map() {
            let m = v.cast::<Map>();
            let mut out = Vec::with_capacity(m.len());
            for (k, x) in m {
                self.path.push(Seg::Key(k.to_string()));
                out.push((k.to_string(), self.owned(x, fds)?));
                self.path.pop();
            }
            return Ok(Wire::Map(out));
        }
        self.plain(&v, fds)
    }

    fn value(&mut self, v: &Dynamic, fds: &mut Vec<OwnedFd>) -> MpResult<Wire> {
        if self.path.len() as u32 >= MAX_DEPTH {
            return Err(self.fail(format!("value nested deeper than {MAX_DEPTH} levels cannot be sent")));
        }
        if v.is_shared() {
            let Some(inner) = v.read_lock::<Dynamic>() else {
                return Err(self.fail("a value that is being modified cannot be sent".into()));
            };
            let addr = &*inner as *const Dynamic as usize;
            if self.open.contains(&addr) {
                return Err(self.fail("a shared-reference cycle cannot be sent".into()));
            }
            if let Some(id) = self.shared.get(&addr) {
                return Ok(Wire::SharedRef(*id));
            }
            let id = self.shared.len() as u32;
            self.shared.insert(addr, id);
            self.open.push(addr);
            let value = self.plain(&inner, fds);
            self.open.pop();
            return Ok(Wire::Shared { id, value: Box::new(value?) });
        }
        self.plain(v, fds)
    }

    fn plain(&mut self, v: &Dynamic, fds: &mut Vec<OwnedFd>) -> MpResult<Wire> {
        let t = v.type_id();
        if t == TypeId::of::<rhai::INT>() {
            Ok(Wire::Int(v.as_int().unwrap_or_default()))
        } else if t == TypeId::of::<()>() {
            Ok(Wire::Unit)
        } else if let Ok(b) = v.as_bool() {
            Ok(Wire::Bool(b))
        } else if let Ok(i) = v.as_int() {
            Ok(Wire::Int(i))
        } else if let Ok(f) = v.as_float() {
            Ok(Wire::Float(f))
        } else if let Ok(c) = v.as_char() {
            Ok(Wire::Char(c))
        } else if let Some(s) = v.read_lock::<ImmutableString>() {
            Ok(Wire::Str(s.to_string()))
        } else if let Some(b) = v.read_lock::<Blob>() {
            Ok(Wire::Blob(b.clone()))
        } else if let Some(a) = v.read_lock::<Array>() {
            if let Some(ints) = all_ints(&a) {
                return Ok(Wire::Ints(ints));
            }
            let mut out = Vec::with_capacity(a.len());
            for (i, x) in a.iter().enumerate() {
                self.path.push(Seg::Index(i));
                out.push(self.value(x, fds)?);
                self.path.pop();
            }
            Ok(Wire::Array(out))
        } else if let Some(m) = v.read_lock::<Map>() {
            let mut out = Vec::with_capacity(m.len());
            for (k, x) in m.iter() {
                self.path.push(Seg::Key(k.to_string()));
                out.push((k.to_string(), self.value(x, fds)?));
                self.path.pop();
            }
            Ok(Wire::Map(out))
        } else if let Some(f) = v.read_lock::<FnPtr>() {
            self.fn_ptr(&f, fds)
        } else if let Some(codec) = codec_for_type(t) {
            let mut w = if self.remote { Writer::remote() } else { Writer::new() };
            codec.encode(v, &mut w).map_err(|e| match e.kind {
                // The OS refused (out of descriptors for a handle's copy): an OSError still,
                // saying where.
                crate::base::error::ErrorKind::OSError => {
                    MpError { message: format!("{} (at {})", e.message, self.where_()), ..e }
                }
                _ => self.fail(e.message),
            })?;
            let packet = w.finish();
            if self.remote && !packet.fds.is_empty() {
                let instead = match codec.elsewhere() {
                    "" => String::new(),
                    e => format!(": use {e} instead"),
                };
                return Err(self.fail(format!(
                    "a {} lives in this host's memory and cannot be sent to another machine or MPI rank{instead}",
                    codec.kind()
                )));
            }
            let first = fds.len() as u32;
            fds.extend(packet.fds);
            Ok(Wire::Handle {
                kind: codec.kind().to_string(),
                data: packet.bytes,
                fds: (first..fds.len() as u32).collect(),
            })
        } else {
            let name = short_type_name(v.type_name());
            Err(self.fail(format!("a value of type '{name}' cannot be sent to another process")))
        }
    }

    fn fn_ptr(&mut self, f: &FnPtr, fds: &mut Vec<OwnedFd>) -> MpResult<Wire> {
        // A function that came with code goes on with that code; any other carries this
        // process's session, if it has one (see `code.rs`).
        let (name, units) = match code::wrapped(f.fn_name()) {
            Some((name, units)) => (name, Some(units)),
            None if !f.fn_name().starts_with("anon$") && is_native(f) => {
                return Err(self.fail(format!(
                    "native function pointer '{}' cannot be sent (a Rust closure exists in this process only)",
                    f.fn_name()
                )))
            }
            None => (f.fn_name().to_string(), code::session()),
        };
        // The code is decided before the curried values are written: the decoder meets the
        // pointer first, so it must load the code the captured closures may refer to.
        let units = match units {
            None => None,
            Some(units) if self.last_units.as_ref().is_some_and(|l| Rc::ptr_eq(l, &units) || **l == *units) => {
                Some(None)
            }
            Some(units) => {
                let list = code::outgoing(&units, &mut self.sent_units);
                self.last_units = Some(units);
                Some(Some(list))
            }
        };
        let mut curry = Vec::with_capacity(f.curry().len());
        for (i, x) in f.curry().iter().enumerate() {
            self.path.push(Seg::Captured(i));
            curry.push(self.value(x, fds)?);
            self.path.pop();
        }
        Ok(match units {
            None => Wire::Fn { name, curry },
            Some(None) => Wire::FnSame { name, curry },
            Some(Some(units)) => Wire::FnCode { name, curry, units },
        })
    }
}

/// A non-empty array's items when every one is a plain (not shared) int: such an array
/// travels as one block of words (`Wire::Ints`), checked and collected in one pass.
fn all_ints(a: &Array) -> Option<Vec<i64>> {
    if a.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(a.len());
    for x in a {
        match x.as_int() {
            Ok(i) if !x.is_shared() => out.push(i),
            _ => return None,
        }
    }
    Some(out)
}

/// Whether a function pointer wraps a Rust closure (`FnPtr::from_fn`), which cannot be
/// sent. Rhai only shows this in the pointer's Debug form (`Fn#(..)`), so read just its
/// first bytes, without formatting the curried values.
fn is_native(f: &FnPtr) -> bool {
    struct Head(Vec<u8>);
    impl std::fmt::Write for Head {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.extend_from_slice(s.as_bytes());
            if self.0.len() >= 3 {
                Err(std::fmt::Error)
            } else {
                Ok(())
            }
        }
    }
    let mut head = Head(Vec::new());
    let _ = std::fmt::write(&mut head, format_args!("{f:?}"));
    head.0.starts_with(b"Fn#")
}

fn is_ident(k: &str) -> bool {
    k.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// `rhai_mp_stdlib::process::Process` → `Process`.
fn short_type_name(name: &str) -> &str {
    let base = name.split('<').next().unwrap_or(name);
    base.rsplit("::").next().unwrap_or(base)
}

impl FromWire {
    /// `f` with its curried values rebuilt.
    fn curried(&mut self, mut f: FnPtr, curry: Vec<Wire>, fds: &mut [Option<OwnedFd>]) -> MpResult<Dynamic> {
        let mut values = Vec::with_capacity(curry.len());
        for x in curry {
            values.push(self.value(x, fds)?);
        }
        f.set_curry(values);
        Ok(f.into())
    }
}

/// Rebuilds values from trees for one message.
#[derive(Default)]
pub(crate) struct FromWire {
    shared: Vec<Dynamic>,
    /// The code of the last `FnCode` (for `FnSame`).
    last_code: Option<Rc<code::Loaded>>,
}

impl FromWire {
    /// Rebuilds `w`; its handles take their descriptors from `fds` (by index).
    pub(crate) fn value(&mut self, w: Wire, fds: &mut [Option<OwnedFd>]) -> MpResult<Dynamic> {
        Ok(match w {
            Wire::Unit => Dynamic::UNIT,
            Wire::Bool(b) => b.into(),
            Wire::Int(i) => i.into(),
            Wire::Float(f) => f.into(),
            Wire::Char(c) => c.into(),
            Wire::Str(s) => s.into(),
            Wire::Blob(b) => Dynamic::from_blob(b),
            Wire::Ints(items) => items.into_iter().map(Dynamic::from_int).collect::<Array>().into(),
            Wire::Array(items) => {
                let mut a = Array::with_capacity(items.len());
                for x in items {
                    a.push(self.value(x, fds)?);
                }
                a.into()
            }
            Wire::Map(items) => {
                let mut m = Map::new();
                for (k, x) in items {
                    m.insert(k.into(), self.value(x, fds)?);
                }
                m.into()
            }
            Wire::Fn { name, curry } => {
                let f = code::resolve(&name)?;
                self.curried(f, curry, fds)?
            }
            Wire::FnCode { name, curry, units } => {
                let loaded = code::load(units)?;
                self.last_code = Some(loaded.clone());
                let f = code::wrap(&name, &loaded)?;
                self.curried(f, curry, fds)?
            }
            Wire::FnSame { name, curry } => {
                let loaded =
                    self.last_code.clone().ok_or_else(|| serr("malformed message: code named before it came"))?;
                let f = code::wrap(&name, &loaded)?;
                self.curried(f, curry, fds)?
            }
            Wire::Shared { id, value } => {
                if id as usize != self.shared.len() {
                    return Err(serr(format!("malformed message: shared value #{id} out of order")));
                }
                self.shared.push(Dynamic::UNIT);
                let v = self.value(*value, fds)?.into_shared();
                self.shared[id as usize] = v.clone();
                v
            }
            Wire::SharedRef(id) => self
                .shared
                .get(id as usize)
                .filter(|v| v.is_shared())
                .cloned()
                .ok_or_else(|| serr(format!("malformed message: unknown shared value #{id}")))?,
            Wire::Handle { kind, data, fds: indexes } => {
                let codec = codec_for_kind(&kind)
                    .ok_or_else(|| serr(format!("no codec for '{kind}' values in this process")))?;
                let mut owned = Vec::with_capacity(indexes.len());
                for i in indexes {
                    let fd = fds
                        .get_mut(i as usize)
                        .and_then(Option::take)
                        .ok_or_else(|| serr(format!("malformed message: file descriptor #{i} missing")))?;
                    owned.push(fd);
                }
                let mut r = Reader::new(&data, owned);
                let v = codec.decode(&mut r)?;
                r.finish()?;
                v
            }
        })
    }
}
