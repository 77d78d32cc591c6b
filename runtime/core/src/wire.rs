//! The wire format: the one module through which every value crosses a process boundary.
//!
//! A Rhai [`Dynamic`] is converted to a [`Wire`] tree ([`encode`]), the tree is written with
//! bincode 2 (varint integers, little endian), and any file descriptors the value's handles
//! carry travel beside the bytes in a [`Packet`] (sent with `SCM_RIGHTS`, or inherited over
//! `fork`). [`decode`] reverses it. bincode is unmaintained, so it is used only in this file.
//!
//! What crosses: unit, bool, int, float, char, string, blob, array, object map, function
//! pointers and closures *with their captured values*, and handles to objects whose Rust type
//! has a [`HandleCodec`] registered ([`register_codec`]). Shared values (closure captures)
//! keep their sharing: two closures that captured the same variable still share one copy at
//! the other end.
//!
//! What does not cross, with a `SerializationError` naming the value and where it is
//! (`args[1].items[3]`): a type with no codec (Process, Pool, timestamps, host types), a
//! shared-reference cycle, a value nested deeper than [`MAX_DEPTH`], and a native Rust
//! function pointer.
//!
//! Caveats: closures are sent by name (`anon$<hash>`). The name is a hash of the closure's
//! parameters and body, made deterministic across processes by the fixed hashing seed that
//! [`crate::init`] installs; the receiving process must have compiled the same script. The
//! decoder never panics on malformed bytes and never allocates more than the input could
//! hold: it returns a `SerializationError` instead.

use crate::error::{ErrorKind, MpError, MpResult};
use bincode::de::read::BorrowReader;
use bincode::de::{BorrowDecode, BorrowDecoder, Decode};
use bincode::enc::{Encode, Encoder};
use bincode::error::{DecodeError, EncodeError};
use rhai::{Array, Blob, Dynamic, FnPtr, ImmutableString, Map, NativeCallContext, AST};
use std::any::TypeId;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, RwLock};

/// Values nested deeper than this do not cross (and a malicious message cannot overflow the
/// decoder's stack).
pub const MAX_DEPTH: u32 = 512;

/// A value in transit.
#[derive(Debug, Clone, PartialEq)]
pub enum Wire {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Char(char),
    Str(String),
    Blob(Vec<u8>),
    Array(Vec<Wire>),
    Map(Vec<(String, Wire)>),
    /// A function pointer or closure: its name and its curried (captured) values.
    Fn {
        name: String,
        curry: Vec<Wire>,
    },
    /// The first occurrence of a shared value (a closure capture), numbered.
    Shared {
        id: u32,
        value: Box<Wire>,
    },
    /// A later occurrence of the shared value numbered `id`.
    SharedRef(u32),
    /// A runtime object: its codec's kind, the codec's bytes, and the indexes of its file
    /// descriptors in the packet's descriptor list.
    Handle {
        kind: String,
        data: Vec<u8>,
        fds: Vec<u32>,
    },
}

/// Encoded bytes plus the file descriptors that must travel with them.
#[derive(Debug, Default)]
pub struct Packet {
    pub bytes: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

// ---------------------------------------------------------------------------------------
// Handle codecs

/// Converts a runtime object (a queue, a lock, a host type …) to bytes and descriptors and
/// back. Registered once per Rust type with [`register_codec`].
pub trait HandleCodec: Send + Sync + 'static {
    /// A stable name written on the wire, such as `"Queue"`.
    fn kind(&self) -> &'static str;
    /// The Rust type this codec handles.
    fn type_id(&self) -> TypeId;
    /// Writes the object's state; descriptors it needs at the other end go into `fds`
    /// (owned duplicates: the packet closes them once sent).
    fn encode(&self, value: &Dynamic, fds: &mut Vec<OwnedFd>) -> MpResult<Vec<u8>>;
    /// Rebuilds the object from `data` and the descriptors `encode` pushed, in order.
    fn decode(&self, data: &[u8], fds: Vec<OwnedFd>) -> MpResult<Dynamic>;
}

type CodecTable = (HashMap<TypeId, Arc<dyn HandleCodec>>, HashMap<&'static str, Arc<dyn HandleCodec>>);

static CODECS: RwLock<Option<CodecTable>> = RwLock::new(None);

/// Registers a codec: values of its type may then cross process boundaries. Registering the
/// same kind twice replaces the earlier codec.
pub fn register_codec(codec: impl HandleCodec) {
    let codec: Arc<dyn HandleCodec> = Arc::new(codec);
    let mut table = CODECS.write().unwrap_or_else(|e| e.into_inner());
    let (by_type, by_kind) = table.get_or_insert_with(Default::default);
    by_type.insert(codec.type_id(), codec.clone());
    by_kind.insert(codec.kind(), codec);
}

fn codec_for_type(id: TypeId) -> Option<Arc<dyn HandleCodec>> {
    let table = CODECS.read().unwrap_or_else(|e| e.into_inner());
    table.as_ref()?.0.get(&id).cloned()
}

fn codec_for_kind(kind: &str) -> Option<Arc<dyn HandleCodec>> {
    let table = CODECS.read().unwrap_or_else(|e| e.into_inner());
    table.as_ref()?.1.get(kind).cloned()
}

/// A codec for plain-data host types: `encode` and `decode` convert the value to and from
/// bytes, with no descriptors. For a host that wants its own type to cross processes.
pub struct DataCodec<T> {
    pub kind: &'static str,
    pub encode: fn(&T) -> Vec<u8>,
    pub decode: fn(&[u8]) -> Option<T>,
}

impl<T: Clone + Send + Sync + 'static> HandleCodec for DataCodec<T> {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn type_id(&self) -> TypeId {
        TypeId::of::<T>()
    }
    fn encode(&self, value: &Dynamic, _fds: &mut Vec<OwnedFd>) -> MpResult<Vec<u8>> {
        let v = value.read_lock::<T>().ok_or_else(|| serr(format!("value is not a {}", self.kind)))?;
        Ok((self.encode)(&v))
    }
    fn decode(&self, data: &[u8], _fds: Vec<OwnedFd>) -> MpResult<Dynamic> {
        (self.decode)(data).map(Dynamic::from).ok_or_else(|| serr(format!("malformed {} value", self.kind)))
    }
}

fn serr(msg: String) -> MpError {
    MpError::new(ErrorKind::SerializationError, msg)
}

// ---------------------------------------------------------------------------------------
// Dynamic -> Wire

/// Where in a value the encoder is, for error messages.
enum Seg {
    Index(usize),
    Key(String),
    Captured(usize),
}

struct ToWire {
    root: String,
    path: Vec<Seg>,
    fds: Vec<OwnedFd>,
    /// Shared cells seen so far (by address of their content) and their ids.
    shared: HashMap<usize, u32>,
    /// Shared cells being encoded right now: meeting one again is a cycle.
    open: Vec<usize>,
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

    fn value(&mut self, v: &Dynamic) -> MpResult<Wire> {
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
            let value = self.plain(&inner);
            self.open.pop();
            return Ok(Wire::Shared { id, value: Box::new(value?) });
        }
        self.plain(v)
    }

    fn plain(&mut self, v: &Dynamic) -> MpResult<Wire> {
        let t = v.type_id();
        if t == TypeId::of::<()>() {
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
            let mut out = Vec::with_capacity(a.len());
            for (i, x) in a.iter().enumerate() {
                self.path.push(Seg::Index(i));
                out.push(self.value(x)?);
                self.path.pop();
            }
            Ok(Wire::Array(out))
        } else if let Some(m) = v.read_lock::<Map>() {
            let mut out = Vec::with_capacity(m.len());
            for (k, x) in m.iter() {
                self.path.push(Seg::Key(k.to_string()));
                out.push((k.to_string(), self.value(x)?));
                self.path.pop();
            }
            Ok(Wire::Map(out))
        } else if let Some(f) = v.read_lock::<FnPtr>() {
            self.fn_ptr(&f)
        } else if let Some(codec) = codec_for_type(t) {
            let first = self.fds.len() as u32;
            let data = codec.encode(v, &mut self.fds).map_err(|e| self.fail(e.message))?;
            let fds = (first..self.fds.len() as u32).collect();
            Ok(Wire::Handle { kind: codec.kind().to_string(), data, fds })
        } else {
            let name = short_type_name(v.type_name());
            Err(self.fail(format!("a value of type '{name}' cannot be sent to another process")))
        }
    }

    fn fn_ptr(&mut self, f: &FnPtr) -> MpResult<Wire> {
        if !f.fn_name().starts_with("anon$") && is_native(f) {
            return Err(self.fail(format!("native function pointer '{}' cannot be sent", f.fn_name())));
        }
        let mut curry = Vec::with_capacity(f.curry().len());
        for (i, x) in f.curry().iter().enumerate() {
            self.path.push(Seg::Captured(i));
            curry.push(self.value(x)?);
            self.path.pop();
        }
        Ok(Wire::Fn { name: f.fn_name().to_string(), curry })
    }
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

/// Finds the function an anonymous function name refers to in this process.
pub trait FnResolver {
    fn resolve(&self, name: &str) -> Option<FnPtr>;
}

/// A resolver that knows no functions (for messages that carry no closures).
pub struct NoFunctions;

impl FnResolver for NoFunctions {
    fn resolve(&self, _name: &str) -> Option<FnPtr> {
        None
    }
}

impl FnResolver for AST {
    fn resolve(&self, name: &str) -> Option<FnPtr> {
        self.iter_fn_def().find(|f| f.name == name).map(|f| FnPtr::from(f.clone()))
    }
}

/// The functions of the script running in this process, as a native function's context
/// sees them: the resolver for values received while a script runs (`recv`, `get`).
pub struct ContextFns<'a, 'b>(pub &'a NativeCallContext<'b>);

impl FnResolver for ContextFns<'_, '_> {
    fn resolve(&self, name: &str) -> Option<FnPtr> {
        self.0
            .iter_namespaces()
            .find_map(|m| m.iter_script_fn_info().find(|f| f.2 == name).map(|f| FnPtr::from(f.4.clone())))
    }
}

/// A snapshot of the script functions a context sees, for decoding values later, outside
/// any native call (a pool's results read by a `for` loop).
#[derive(Debug, Clone, Default)]
pub struct FnTable(HashMap<String, FnPtr>);

impl FnTable {
    pub fn from_context(ctx: &NativeCallContext) -> FnTable {
        let mut t = HashMap::new();
        for m in ctx.iter_namespaces() {
            for f in m.iter_script_fn_info() {
                t.entry(f.2.to_string()).or_insert_with(|| FnPtr::from(f.4.clone()));
            }
        }
        FnTable(t)
    }
}

impl FnResolver for FnTable {
    fn resolve(&self, name: &str) -> Option<FnPtr> {
        self.0.get(name).cloned()
    }
}

/// Converts a value to its wire form. `root` names it in error messages (`"args"`).
pub fn to_wire(value: &Dynamic, root: &str) -> MpResult<(Wire, Vec<OwnedFd>)> {
    let mut enc =
        ToWire { root: root.to_string(), path: Vec::new(), fds: Vec::new(), shared: HashMap::new(), open: Vec::new() };
    let wire = enc.value(value)?;
    Ok((wire, enc.fds))
}

/// Encodes a value into a packet. `root` names it in error messages (`"args"`).
pub fn encode(value: &Dynamic, root: &str) -> MpResult<Packet> {
    let (wire, fds) = to_wire(value, root)?;
    Ok(Packet { bytes: wire_to_bytes(&wire), fds })
}

/// Encodes several named values as one array (sharing and descriptors are common to all),
/// e.g. `[("target", f), ("args", a)]`.
pub fn encode_parts(parts: &[(&str, &Dynamic)]) -> MpResult<Packet> {
    let mut enc =
        ToWire { root: String::new(), path: Vec::new(), fds: Vec::new(), shared: HashMap::new(), open: Vec::new() };
    let mut items = Vec::with_capacity(parts.len());
    for (root, value) in parts {
        enc.root = root.to_string();
        items.push(enc.value(value)?);
    }
    Ok(Packet { bytes: wire_to_bytes(&Wire::Array(items)), fds: enc.fds })
}

// ---------------------------------------------------------------------------------------
// Wire -> Dynamic

struct FromWire<'a> {
    fds: Vec<Option<OwnedFd>>,
    shared: Vec<Dynamic>,
    resolver: &'a dyn FnResolver,
}

impl FromWire<'_> {
    fn value(&mut self, w: Wire) -> MpResult<Dynamic> {
        Ok(match w {
            Wire::Unit => Dynamic::UNIT,
            Wire::Bool(b) => b.into(),
            Wire::Int(i) => i.into(),
            Wire::Float(f) => f.into(),
            Wire::Char(c) => c.into(),
            Wire::Str(s) => s.into(),
            Wire::Blob(b) => Dynamic::from_blob(b),
            Wire::Array(items) => {
                let mut a = Array::with_capacity(items.len());
                for x in items {
                    a.push(self.value(x)?);
                }
                a.into()
            }
            Wire::Map(items) => {
                let mut m = Map::new();
                for (k, x) in items {
                    m.insert(k.into(), self.value(x)?);
                }
                m.into()
            }
            Wire::Fn { name, curry } => {
                let mut f = if name.starts_with("anon$") {
                    self.resolver.resolve(&name).ok_or_else(|| {
                        serr(format!("closure '{name}' is not defined in this process (was the script changed after the parent started?)"))
                    })?
                } else {
                    FnPtr::new(name.as_str()).map_err(|_| serr(format!("'{name}' is not a valid function name")))?
                };
                let mut values = Vec::with_capacity(curry.len());
                for x in curry {
                    values.push(self.value(x)?);
                }
                f.set_curry(values);
                f.into()
            }
            Wire::Shared { id, value } => {
                if id as usize != self.shared.len() {
                    return Err(serr(format!("malformed message: shared value #{id} out of order")));
                }
                self.shared.push(Dynamic::UNIT);
                let v = self.value(*value)?.into_shared();
                self.shared[id as usize] = v.clone();
                v
            }
            Wire::SharedRef(id) => self
                .shared
                .get(id as usize)
                .filter(|v| v.is_shared())
                .cloned()
                .ok_or_else(|| serr(format!("malformed message: unknown shared value #{id}")))?,
            Wire::Handle { kind, data, fds } => {
                let codec = codec_for_kind(&kind)
                    .ok_or_else(|| serr(format!("no codec for '{kind}' values in this process")))?;
                let mut owned = Vec::with_capacity(fds.len());
                for i in fds {
                    let fd = self
                        .fds
                        .get_mut(i as usize)
                        .and_then(Option::take)
                        .ok_or_else(|| serr(format!("malformed message: file descriptor #{i} missing")))?;
                    owned.push(fd);
                }
                codec.decode(&data, owned)?
            }
        })
    }
}

/// Rebuilds a value from its wire form and the descriptors that came with it.
pub fn from_wire(wire: Wire, fds: Vec<OwnedFd>, resolver: &dyn FnResolver) -> MpResult<Dynamic> {
    let mut dec = FromWire { fds: fds.into_iter().map(Some).collect(), shared: Vec::new(), resolver };
    dec.value(wire)
}

/// Decodes a packet's bytes and descriptors into a value.
pub fn decode(bytes: &[u8], fds: Vec<OwnedFd>, resolver: &dyn FnResolver) -> MpResult<Dynamic> {
    from_wire(wire_from_bytes(bytes)?, fds, resolver)
}

// ---------------------------------------------------------------------------------------
// Wire <-> bytes (bincode)

const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// About how many bytes a wire tree encodes to (exact but for varints), so that encoding a
/// large value allocates once.
fn size_hint(wire: &Wire) -> usize {
    match wire {
        Wire::Str(s) => s.len() + 10,
        Wire::Blob(b) => b.len() + 10,
        Wire::Array(a) => 10 + a.iter().map(size_hint).sum::<usize>(),
        Wire::Map(m) => 10 + m.iter().map(|(k, v)| k.len() + 10 + size_hint(v)).sum::<usize>(),
        Wire::Fn { name, curry } => name.len() + 20 + curry.iter().map(size_hint).sum::<usize>(),
        Wire::Shared { value, .. } => 6 + size_hint(value),
        Wire::Handle { kind, data, fds } => kind.len() + data.len() + 5 * fds.len() + 30,
        _ => 10,
    }
}

/// Writes a wire tree as bytes.
pub fn wire_to_bytes(wire: &Wire) -> Vec<u8> {
    let mut out = Vec::with_capacity(size_hint(wire));
    bincode::encode_into_std_write(wire, &mut out, CONFIG).expect("encoding into a Vec cannot fail");
    out
}

/// Reads a wire tree from bytes; never panics, whatever the bytes.
pub fn wire_from_bytes(bytes: &[u8]) -> MpResult<Wire> {
    let ctx = Limits { depth: 0, max_len: bytes.len() };
    match bincode::borrow_decode_from_slice_with_context::<_, Wire, _>(bytes, CONFIG, ctx) {
        Ok((wire, used)) if used == bytes.len() => Ok(wire),
        Ok((_, used)) => Err(serr(format!("malformed message: {} trailing bytes", bytes.len() - used))),
        Err(e) => Err(serr(format!("malformed message: {e}"))),
    }
}

/// Decoding limits: nesting depth, and the input size that bounds every length prefix.
struct Limits {
    depth: u32,
    max_len: usize,
}

const T_UNIT: u8 = 0;
const T_BOOL: u8 = 1;
const T_INT: u8 = 2;
const T_FLOAT: u8 = 3;
const T_CHAR: u8 = 4;
const T_STR: u8 = 5;
const T_BLOB: u8 = 6;
const T_ARRAY: u8 = 7;
const T_MAP: u8 = 8;
const T_FN: u8 = 9;
const T_SHARED: u8 = 10;
const T_SHARED_REF: u8 = 11;
const T_HANDLE: u8 = 12;

impl Encode for Wire {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        match self {
            Wire::Unit => T_UNIT.encode(e),
            Wire::Bool(b) => (T_BOOL, b).encode(e),
            Wire::Int(i) => (T_INT, i).encode(e),
            Wire::Float(f) => (T_FLOAT, f).encode(e),
            Wire::Char(c) => (T_CHAR, c).encode(e),
            Wire::Str(s) => (T_STR, s).encode(e),
            Wire::Blob(b) => (T_BLOB, b).encode(e),
            Wire::Array(a) => (T_ARRAY, a).encode(e),
            Wire::Map(m) => (T_MAP, m).encode(e),
            Wire::Fn { name, curry } => (T_FN, name, curry).encode(e),
            Wire::Shared { id, value } => (T_SHARED, id, value).encode(e),
            Wire::SharedRef(id) => (T_SHARED_REF, id).encode(e),
            Wire::Handle { kind, data, fds } => (T_HANDLE, kind, data, fds).encode(e),
        }
    }
}

fn length<'de, D: BorrowDecoder<'de, Context = Limits>>(d: &mut D) -> Result<usize, DecodeError> {
    let len = u64::decode(d)?;
    if len > d.context().max_len as u64 {
        return Err(DecodeError::Other("length prefix larger than the message"));
    }
    Ok(len as usize)
}

fn bytes<'de, D: BorrowDecoder<'de, Context = Limits>>(d: &mut D) -> Result<Vec<u8>, DecodeError> {
    let len = length(d)?;
    Ok(d.borrow_reader().take_bytes(len)?.to_vec())
}

fn string<'de, D: BorrowDecoder<'de, Context = Limits>>(d: &mut D) -> Result<String, DecodeError> {
    String::from_utf8(bytes(d)?).map_err(|e| DecodeError::Utf8 { inner: e.utf8_error() })
}

fn list<'de, D: BorrowDecoder<'de, Context = Limits>, T>(
    d: &mut D,
    mut item: impl FnMut(&mut D) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let len = length(d)?;
    let mut out = Vec::with_capacity(len.min(1024));
    for _ in 0..len {
        out.push(item(d)?);
    }
    Ok(out)
}

impl<'de> BorrowDecode<'de, Limits> for Wire {
    fn borrow_decode<D: BorrowDecoder<'de, Context = Limits>>(d: &mut D) -> Result<Self, DecodeError> {
        if d.context().depth >= MAX_DEPTH {
            return Err(DecodeError::Other("value nested too deeply"));
        }
        d.context().depth += 1;
        let tag = u8::decode(d)?;
        let wire = match tag {
            T_UNIT => Wire::Unit,
            T_BOOL => Wire::Bool(bool::decode(d)?),
            T_INT => Wire::Int(i64::decode(d)?),
            T_FLOAT => Wire::Float(f64::decode(d)?),
            T_CHAR => Wire::Char(char::decode(d)?),
            T_STR => Wire::Str(string(d)?),
            T_BLOB => Wire::Blob(bytes(d)?),
            T_ARRAY => Wire::Array(list(d, Wire::borrow_decode)?),
            T_MAP => Wire::Map(list(d, |d| Ok((string(d)?, Wire::borrow_decode(d)?)))?),
            T_FN => Wire::Fn { name: string(d)?, curry: list(d, Wire::borrow_decode)? },
            T_SHARED => Wire::Shared { id: u32::decode(d)?, value: Box::new(Wire::borrow_decode(d)?) },
            T_SHARED_REF => Wire::SharedRef(u32::decode(d)?),
            T_HANDLE => Wire::Handle { kind: string(d)?, data: bytes(d)?, fds: list(d, u32::decode)? },
            _ => return Err(DecodeError::Other("unknown value tag")),
        };
        d.context().depth -= 1;
        Ok(wire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(w: &Wire) -> Wire {
        wire_from_bytes(&wire_to_bytes(w)).unwrap()
    }

    #[test]
    fn scalars_roundtrip() {
        for w in [
            Wire::Unit,
            Wire::Bool(true),
            Wire::Int(-5),
            Wire::Int(i64::MAX),
            Wire::Float(0.25),
            Wire::Char('包'),
            Wire::Str("hé".into()),
            Wire::Blob(vec![0, 255]),
        ] {
            assert_eq!(roundtrip(&w), w);
        }
    }

    #[test]
    fn nested_roundtrip() {
        let w = Wire::Map(vec![(
            "a".into(),
            Wire::Array(vec![
                Wire::Int(1),
                Wire::Fn {
                    name: "f".into(),
                    curry: vec![Wire::Shared { id: 0, value: Box::new(Wire::Int(2)) }, Wire::SharedRef(0)],
                },
            ]),
        )]);
        assert_eq!(roundtrip(&w), w);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut bytes = [T_ARRAY, 1].repeat(100_000);
        bytes.push(T_UNIT);
        assert!(wire_from_bytes(&bytes).is_err());
    }

    #[test]
    fn huge_length_prefix_is_an_error() {
        let mut bytes = vec![T_BLOB, 253];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(wire_from_bytes(&bytes).is_err());
    }

    #[test]
    fn values_roundtrip_through_dynamic() {
        let engine = rhai::Engine::new();
        let v: Dynamic = engine.eval("#{a: [1, 2.5, 'x', \"s\", (), true], b: blob(3, 7)}").unwrap();
        let p = encode(&v, "v").unwrap();
        let back = decode(&p.bytes, p.fds, &NoFunctions).unwrap();
        assert_eq!(format!("{v:?}"), format!("{back:?}"));
    }

    #[test]
    fn unsendable_value_names_its_place() {
        let engine = rhai::Engine::new();
        let v: Dynamic = engine.eval("[1, #{items: [0, 1, 2, timestamp()]}]").unwrap();
        let err = encode(&v, "args").unwrap_err();
        assert_eq!(err.kind, ErrorKind::SerializationError);
        assert!(err.message.contains("args[1].items[3]"), "{}", err.message);
        assert!(err.message.contains("timestamp"), "{}", err.message);
    }

    #[test]
    fn shared_cycle_is_refused() {
        let mut engine = rhai::Engine::new();
        engine.register_fn("wrap", |x: Dynamic| -> Dynamic { x });
        let a: Dynamic = Array::new().into();
        let a = a.into_shared();
        let mut inner = a.clone();
        inner.write_lock::<Array>().unwrap().push(a.clone());
        let err = encode(&a, "args").unwrap_err();
        assert!(err.message.contains("cycle"), "{}", err.message);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = wire_from_bytes(&bytes);
        }

        #[test]
        fn mutated_messages_never_panic(seed in any::<u64>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let w = Wire::Map(vec![("k".into(), Wire::Array(vec![Wire::Int(seed as i64), Wire::Str("abc".into()), Wire::Handle { kind: "Q".into(), data: vec![1, 2], fds: vec![0] }]))]);
            let mut bytes = wire_to_bytes(&w);
            for (i, b) in flips {
                let n = bytes.len();
                bytes[i % n] = b;
            }
            let _ = wire_from_bytes(&bytes);
        }
    }
}
