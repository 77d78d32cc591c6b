//! Python's pickles, for the plain values a Connection made by `Listener` / `Client` carries
//! (`send(v)` is Python's `send_bytes(pickle.dumps(v))`, `recv()` its `pickle.loads`).
//!
//! **Written**: protocol 3, which every Python 3 reads: `()` is `None`, bools, ints (`int`),
//! floats, strings (`str`), blobs (`bytes`), arrays (`list`), maps (`dict` with `str` keys);
//! a char is a one-character `str`. Nothing is memoized (a Rhai value has no shared parts).
//! Any other value (a handle, a closure, a timestamp) is a `SerializationError` naming it and
//! where it is (`obj[2].key`), and nothing is sent.
//!
//! **Read**: protocols 2 to 5 (and the protocol-1 opcodes they share), as Python 3.8–3.14
//! write them: `None`, bools, ints that fit in 64 bits, floats, `str`, `bytes` (and
//! `bytearray`, as a blob; also protocol 2's `_codecs.encode(.., "latin1")` form), lists and
//! tuples (arrays), dicts (maps: `int`, `float` and `bool` keys become their string form, as a
//! manager's `to_map()` gives them). Shared references (`[x, x]`) become copies; a value
//! that refers to itself, a class or function reference (an object of a custom class, a set,
//! a `complex`, a `datetime` …), an int over 64 bits, a `str` that is not valid Unicode, or
//! two keys with one string form is a `SerializationError` naming it.
//!
//! The decoder never panics and never allocates more than its input can justify: every length
//! is checked against the bytes left before anything is copied; the value is built in an
//! arena of nodes as the pickle's stack machine runs, then sized (shared references
//! expanded, cycles found, depth measured) before a single Rhai value is made, so a pickle
//! whose references would expand to more than 64 times its size (or than the machine can
//! hold: `MemoryError`) is refused, not an abort.

use rhai::{Array, Blob, Dynamic, ImmutableString, Map, FLOAT, INT};
use rhai_mp_core::prelude::{MpError, MpResult};
use std::collections::HashMap;

/// Values nested deeper than this are not sent nor received (Python's own pickler stops
/// near 1000 levels too).
pub(crate) const MAX_DEPTH: usize = 1000;

/// How many times its pickle's size a received value may take once its shared references
/// are copied (see `Decoder::check`).
const EXPANSION: u128 = 64;

/// The protocol written.
const PROTOCOL: u8 = 3;

/// What a connection to another program carries, for error messages.
const CARRIES: &str =
    "a Listener or Client connection carries (), bools, ints, floats, strings, blobs, arrays and maps";

mod op {
    pub(super) const MARK: u8 = b'(';
    pub(super) const STOP: u8 = b'.';
    pub(super) const POP: u8 = b'0';
    pub(super) const POP_MARK: u8 = b'1';
    pub(super) const DUP: u8 = b'2';
    pub(super) const BININT: u8 = b'J';
    pub(super) const BININT1: u8 = b'K';
    pub(super) const BININT2: u8 = b'M';
    pub(super) const NONE: u8 = b'N';
    pub(super) const REDUCE: u8 = b'R';
    pub(super) const BINSTRING: u8 = b'T';
    pub(super) const SHORT_BINSTRING: u8 = b'U';
    pub(super) const BINUNICODE: u8 = b'X';
    pub(super) const APPEND: u8 = b'a';
    pub(super) const GLOBAL: u8 = b'c';
    pub(super) const DICT: u8 = b'd';
    pub(super) const EMPTY_DICT: u8 = b'}';
    pub(super) const APPENDS: u8 = b'e';
    pub(super) const BINGET: u8 = b'h';
    pub(super) const LONG_BINGET: u8 = b'j';
    pub(super) const LIST: u8 = b'l';
    pub(super) const EMPTY_LIST: u8 = b']';
    pub(super) const BINPUT: u8 = b'q';
    pub(super) const LONG_BINPUT: u8 = b'r';
    pub(super) const SETITEM: u8 = b's';
    pub(super) const TUPLE: u8 = b't';
    pub(super) const EMPTY_TUPLE: u8 = b')';
    pub(super) const SETITEMS: u8 = b'u';
    pub(super) const BINFLOAT: u8 = b'G';
    pub(super) const PROTO: u8 = 0x80;
    pub(super) const TUPLE1: u8 = 0x85;
    pub(super) const TUPLE2: u8 = 0x86;
    pub(super) const TUPLE3: u8 = 0x87;
    pub(super) const NEWTRUE: u8 = 0x88;
    pub(super) const NEWFALSE: u8 = 0x89;
    pub(super) const LONG1: u8 = 0x8a;
    pub(super) const LONG4: u8 = 0x8b;
    pub(super) const BINBYTES: u8 = b'B';
    pub(super) const SHORT_BINBYTES: u8 = b'C';
    pub(super) const SHORT_BINUNICODE: u8 = 0x8c;
    pub(super) const BINUNICODE8: u8 = 0x8d;
    pub(super) const BINBYTES8: u8 = 0x8e;
    pub(super) const EMPTY_SET: u8 = 0x8f;
    pub(super) const ADDITEMS: u8 = 0x90;
    pub(super) const FROZENSET: u8 = 0x91;
    pub(super) const STACK_GLOBAL: u8 = 0x93;
    pub(super) const MEMOIZE: u8 = 0x94;
    pub(super) const FRAME: u8 = 0x95;
    pub(super) const BYTEARRAY8: u8 = 0x96;
    pub(super) const NEXT_BUFFER: u8 = 0x97;
    pub(super) const READONLY_BUFFER: u8 = 0x98;
}

fn serr(msg: String) -> MpError {
    MpError::new(rhai_mp_core::prelude::ErrorKind::SerializationError, msg)
}

/// A step of the path to a value inside the one sent or received.
enum Seg {
    Index(usize),
    Key(String),
}

fn is_ident(k: &str) -> bool {
    k.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_alphanumeric() || c == '_')
}

fn path_text(root: &str, path: &[Seg]) -> String {
    let mut s = root.to_string();
    for seg in path {
        match seg {
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
            Seg::Key(k) if is_ident(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Key(k) => s.push_str(&format!("[{k:?}]")),
        }
    }
    s
}

fn short_type_name(name: &str) -> &str {
    let base = name.split('<').next().unwrap_or(name);
    base.rsplit("::").next().unwrap_or(base)
}

// ---------------------------------------------------------------------------------------
// Writing

/// Appends the pickle of `value` (named `root` in errors) to `out`. On an error `out` may
/// hold part of it: the caller drops it.
pub(crate) fn encode_into(value: &Dynamic, root: &str, out: &mut Vec<u8>) -> MpResult<()> {
    let mut e = Encoder { out, path: Vec::new(), root };
    e.out.extend_from_slice(&[op::PROTO, PROTOCOL]);
    e.value(value)?;
    e.out.push(op::STOP);
    Ok(())
}

/// The pickle of `value` (protocol 3).
pub(crate) fn encode(value: &Dynamic) -> MpResult<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(value, "obj", &mut out)?;
    Ok(out)
}

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    path: Vec<Seg>,
    root: &'a str,
}

impl Encoder<'_> {
    fn fail(&self, what: String) -> MpError {
        serr(format!("{what} (at {})", path_text(self.root, &self.path)))
    }

    fn value(&mut self, v: &Dynamic) -> MpResult<()> {
        if self.path.len() >= MAX_DEPTH {
            return Err(self.fail(format!("a value nested deeper than {MAX_DEPTH} levels cannot be sent")));
        }
        if v.is_unit() {
            self.out.push(op::NONE);
        } else if let Ok(b) = v.as_bool() {
            self.out.push(if b { op::NEWTRUE } else { op::NEWFALSE });
        } else if let Ok(i) = v.as_int() {
            self.int(i);
        } else if let Ok(f) = v.as_float() {
            self.out.push(op::BINFLOAT);
            self.out.extend_from_slice(&f.to_be_bytes());
        } else if let Ok(c) = v.as_char() {
            let mut buf = [0u8; 4];
            self.str(c.encode_utf8(&mut buf))?;
        } else if let Some(s) = v.read_lock::<ImmutableString>() {
            self.str(&s)?;
        } else if let Some(b) = v.read_lock::<Blob>() {
            self.bytes(&b)?;
        } else if let Some(a) = v.read_lock::<Array>() {
            self.out.push(op::EMPTY_LIST);
            for (n, chunk) in a.chunks(1000).enumerate() {
                self.out.push(op::MARK);
                for (i, x) in chunk.iter().enumerate() {
                    self.path.push(Seg::Index(n * 1000 + i));
                    self.value(x)?;
                    self.path.pop();
                }
                self.out.push(op::APPENDS);
            }
        } else if let Some(m) = v.read_lock::<Map>() {
            self.out.push(op::EMPTY_DICT);
            let items: Vec<_> = m.iter().collect();
            for chunk in items.chunks(1000) {
                self.out.push(op::MARK);
                for (k, x) in chunk {
                    self.str(k)?;
                    self.path.push(Seg::Key(k.to_string()));
                    self.value(x)?;
                    self.path.pop();
                }
                self.out.push(op::SETITEMS);
            }
        } else if let Some(f) = v.read_lock::<rhai::FnPtr>() {
            return Err(self.fail(format!(
                "a function pointer or closure ('{}') cannot be sent to another program: {CARRIES}",
                f.fn_name()
            )));
        } else {
            let name = short_type_name(v.type_name());
            return Err(self.fail(format!("a value of type '{name}' cannot be sent to another program: {CARRIES}")));
        }
        Ok(())
    }

    fn int(&mut self, i: INT) {
        if (0..=0xff).contains(&i) {
            self.out.extend_from_slice(&[op::BININT1, i as u8]);
        } else if (0..=0xffff).contains(&i) {
            self.out.push(op::BININT2);
            self.out.extend_from_slice(&(i as u16).to_le_bytes());
        } else if let Ok(small) = i32::try_from(i) {
            self.out.push(op::BININT);
            self.out.extend_from_slice(&small.to_le_bytes());
        } else {
            // The shortest two's complement form, as Python writes it.
            let bytes = i.to_le_bytes();
            let mut n = 8;
            while n > 1 {
                let (top, next) = (bytes[n - 1], bytes[n - 2]);
                if (top == 0 && next & 0x80 == 0) || (top == 0xff && next & 0x80 != 0) {
                    n -= 1;
                } else {
                    break;
                }
            }
            self.out.extend_from_slice(&[op::LONG1, n as u8]);
            self.out.extend_from_slice(&bytes[..n]);
        }
    }

    fn length(&self, len: usize, what: &str) -> MpResult<u32> {
        u32::try_from(len).map_err(|_| {
            self.fail(format!(
                "{what} of {len} bytes cannot be sent: pickle protocol 3, which every Python 3 reads, holds 4 GiB at most"
            ))
        })
    }

    fn str(&mut self, s: &str) -> MpResult<()> {
        let len = self.length(s.len(), "a string")?;
        self.out.push(op::BINUNICODE);
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    fn bytes(&mut self, b: &[u8]) -> MpResult<()> {
        if b.len() < 256 {
            self.out.extend_from_slice(&[op::SHORT_BINBYTES, b.len() as u8]);
        } else {
            let len = self.length(b.len(), "a blob")?;
            self.out.push(op::BINBYTES);
            self.out.extend_from_slice(&len.to_le_bytes());
        }
        self.out.extend_from_slice(b);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Reading

/// The few callables a plain value's pickle names (protocol 2 writes `bytes` with them, and
/// every protocol below 5 writes `bytearray` with them).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    /// `_codecs.encode(text, "latin1")`: protocol 2's `bytes`.
    Encode,
    /// `bytes()`.
    Bytes,
    /// `bytearray()`, `bytearray(b)`.
    Bytearray,
}

#[derive(Debug)]
enum Node {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<u32>),
    Tuple(Vec<u32>),
    Dict(Vec<(u32, u32)>),
    Func(Func),
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Node::None => "None",
            Node::Bool(_) => "bool",
            Node::Int(_) => "int",
            Node::Float(_) => "float",
            Node::Str(_) => "str",
            Node::Bytes(_) => "bytes",
            Node::List(_) => "list",
            Node::Tuple(_) => "tuple",
            Node::Dict(_) => "dict",
            Node::Func(_) => "function",
        }
    }
}

/// Decodes a pickle into a Rhai value.
pub(crate) fn decode(data: &[u8]) -> MpResult<Dynamic> {
    let mut d =
        Decoder { data, pos: 0, at: 0, nodes: Vec::new(), stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() };
    let root = d.run()?;
    d.check(root)?;
    let mut path = Vec::new();
    d.to_dynamic(root, &mut path)
}

/// Decodes a pickle the caller gives up: one that is a single `bytes` object (what
/// `send(blob)` and Python's `send(b"..")` make) becomes a blob in the message's own
/// vector, moved down in place rather than copied into a new one.
pub(crate) fn decode_owned(mut data: Vec<u8>) -> MpResult<Dynamic> {
    if let Some((start, end)) = lone_bytes(&data) {
        data.truncate(end);
        data.drain(..start);
        return Ok(Dynamic::from_blob(data));
    }
    decode(&data)
}

/// Where the bytes are in a pickle of one `bytes` object and nothing else.
fn lone_bytes(d: &[u8]) -> Option<(usize, usize)> {
    if d.len() < 4 || d[0] != op::PROTO || d[1] < 3 || d[1] > 5 {
        return None;
    }
    let mut i = 2;
    if d[i] == op::FRAME {
        i += 9;
    }
    let (start, len) = match *d.get(i)? {
        op::SHORT_BINBYTES => (i + 2, *d.get(i + 1)? as usize),
        op::BINBYTES => (i + 5, u32::from_le_bytes(d.get(i + 1..i + 5)?.try_into().ok()?) as usize),
        op::BINBYTES8 => (i + 9, usize::try_from(u64::from_le_bytes(d.get(i + 1..i + 9)?.try_into().ok()?)).ok()?),
        _ => return None,
    };
    let end = start.checked_add(len)?;
    let rest = d.get(end..)?;
    match rest {
        [op::STOP, ..] | [op::MEMOIZE, op::STOP, ..] | [op::BINPUT, _, op::STOP, ..] => Some((start, end)),
        _ => None,
    }
}

/// The start of the pickle of a lone blob, whose bytes then follow, and its end (`send`
/// writes a big blob from where it is, without copying it into the message first).
pub(crate) fn blob_head(len: usize) -> Option<([u8; 7], [u8; 1])> {
    let n = u32::try_from(len).ok()?.to_le_bytes();
    Some(([op::PROTO, PROTOCOL, op::BINBYTES, n[0], n[1], n[2], n[3]], [op::STOP]))
}

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    /// Where the current opcode starts (for messages).
    at: usize,
    nodes: Vec<Node>,
    stack: Vec<u32>,
    marks: Vec<usize>,
    memo: HashMap<u64, u32>,
}

impl<'a> Decoder<'a> {
    fn malformed(&self, what: &str) -> MpError {
        serr(format!("malformed pickle: {what} (at byte {} of the message)", self.at))
    }

    fn refuse(&self, what: &str) -> MpError {
        serr(format!(
            "the message holds {what}, which has no Rhai counterpart (a Listener or Client connection receives \
             None, bools, ints, floats, str, bytes, lists, tuples and dicts; at byte {} of the pickle)",
            self.at
        ))
    }

    fn take(&mut self, n: u64) -> MpResult<&'a [u8]> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return Err(self.malformed(&format!("{n} bytes announced, {left} left")));
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn u8(&mut self) -> MpResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> MpResult<[u8; N]> {
        let s = self.take(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn line(&mut self) -> MpResult<&'a str> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.malformed("a line without its end"));
        };
        self.pos += n + 1;
        std::str::from_utf8(&rest[..n]).map_err(|_| self.malformed("a line that is not UTF-8"))
    }

    fn push(&mut self, node: Node) {
        self.stack.push(self.nodes.len() as u32);
        self.nodes.push(node);
    }

    fn pop(&mut self) -> MpResult<u32> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.malformed("an opcode takes the value under a mark"));
        }
        self.stack.pop().ok_or_else(|| self.malformed("an opcode finds the stack empty"))
    }

    fn top(&self) -> MpResult<u32> {
        match self.stack.last() {
            Some(&id) if self.marks.last().is_none_or(|&m| m < self.stack.len()) => Ok(id),
            _ => Err(self.malformed("an opcode finds the stack empty")),
        }
    }

    /// The items since the last mark, which goes.
    fn pop_mark(&mut self) -> MpResult<Vec<u32>> {
        let Some(m) = self.marks.pop() else {
            return Err(self.malformed("an opcode looks for a mark that is not there"));
        };
        Ok(self.stack.split_off(m))
    }

    fn string(&self, bytes: &[u8]) -> MpResult<String> {
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.refuse("a str that is not valid Unicode (a lone surrogate: Rhai strings are UTF-8)"))
    }

    fn get(&mut self, key: u64) -> MpResult<()> {
        let Some(&id) = self.memo.get(&key) else {
            return Err(self.malformed(&format!("memo entry {key} is read before it is written")));
        };
        self.stack.push(id);
        Ok(())
    }

    fn put(&mut self, key: u64) -> MpResult<()> {
        let id = self.top()?;
        self.memo.insert(key, id);
        Ok(())
    }

    fn int_bytes(&self, b: &[u8]) -> MpResult<i64> {
        if b.is_empty() {
            return Ok(0);
        }
        let negative = b[b.len() - 1] & 0x80 != 0;
        let fill = if negative { 0xff } else { 0 };
        // Bytes above the eighth must only extend the sign.
        if b.len() > 8 && (b[8..].iter().any(|&x| x != fill) || (b[7] & 0x80 != 0) != negative) {
            return Err(self.refuse(&format!(
                "an int of {} bits, more than a Rhai int holds (64 bits, -2**63 to 2**63-1)",
                b.len() * 8
            )));
        }
        let mut a = [fill; 8];
        let n = b.len().min(8);
        a[..n].copy_from_slice(&b[..n]);
        Ok(i64::from_le_bytes(a))
    }

    fn global(&self, module: &str, name: &str) -> MpResult<Func> {
        match (module, name) {
            ("_codecs", "encode") => Ok(Func::Encode),
            ("__builtin__" | "builtins", "bytes") => Ok(Func::Bytes),
            ("__builtin__" | "builtins", "bytearray") => Ok(Func::Bytearray),
            ("__builtin__" | "builtins", "set" | "frozenset") => Err(self.refuse(&format!("a Python {name}"))),
            _ => Err(self.refuse(&format!("an object of Python class (or a reference to) {module}.{name}"))),
        }
    }

    fn reduce(&mut self) -> MpResult<()> {
        let args = self.pop()?;
        let func = self.pop()?;
        let Node::Func(f) = self.nodes[func as usize] else {
            return Err(self.malformed(&format!("REDUCE calls a {}", self.nodes[func as usize].kind())));
        };
        let Node::Tuple(args) = &self.nodes[args as usize] else {
            return Err(self.malformed("REDUCE's arguments are not a tuple"));
        };
        let args: Vec<&Node> = args.iter().map(|&a| &self.nodes[a as usize]).collect();
        let bytes = match (f, args.as_slice()) {
            (Func::Bytes | Func::Bytearray, []) => Vec::new(),
            (Func::Bytes | Func::Bytearray, [Node::Bytes(b)]) => b.clone(),
            (Func::Encode | Func::Bytearray, [Node::Str(s), Node::Str(enc)]) if enc == "latin1" || enc == "latin-1" => {
                let mut out = Vec::with_capacity(s.len());
                for c in s.chars() {
                    let c = u32::from(c);
                    if c > 0xff {
                        return Err(self.malformed("latin-1 text with a character over 255"));
                    }
                    out.push(c as u8);
                }
                out
            }
            _ => return Err(self.malformed("a call to bytes, bytearray or _codecs.encode with unexpected arguments")),
        };
        self.push(Node::Bytes(bytes));
        Ok(())
    }

    /// Runs the pickle's opcodes up to STOP; returns the value left.
    fn run(&mut self) -> MpResult<u32> {
        if self.data.first() != Some(&op::PROTO) {
            let head: Vec<String> = self.data.iter().take(8).map(|b| format!("{b:02x}")).collect();
            return Err(serr(format!(
                "the message is not a pickle of protocol 2 or later (it starts with bytes {}; a message sent with \
                 send_bytes is read with recv_bytes)",
                if head.is_empty() { "(none: it is empty)".to_string() } else { head.join(" ") }
            )));
        }
        loop {
            self.at = self.pos;
            let Some(&code) = self.data.get(self.pos) else {
                return Err(self.malformed("the pickle ends without its STOP opcode"));
            };
            self.pos += 1;
            match code {
                op::PROTO => {
                    let v = self.u8()?;
                    if v > 5 {
                        return Err(serr(format!(
                            "the message is a pickle of protocol {v}, newer than rhai-mp reads (2 to 5)"
                        )));
                    }
                }
                op::FRAME => {
                    let n = u64::from_le_bytes(self.le::<8>()?);
                    if n > (self.data.len() - self.pos) as u64 {
                        return Err(self.malformed(&format!("a frame of {n} bytes, more than are left")));
                    }
                }
                op::STOP => return self.pop(),
                op::MARK => self.marks.push(self.stack.len()),
                op::POP => {
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                op::POP_MARK => {
                    self.pop_mark()?;
                }
                op::DUP => {
                    let id = self.top()?;
                    self.stack.push(id);
                }
                op::NONE => self.push(Node::None),
                op::NEWTRUE => self.push(Node::Bool(true)),
                op::NEWFALSE => self.push(Node::Bool(false)),
                op::BININT => {
                    let v = i32::from_le_bytes(self.le::<4>()?);
                    self.push(Node::Int(v as i64))
                }
                op::BININT1 => {
                    let v = self.u8()?;
                    self.push(Node::Int(v as i64))
                }
                op::BININT2 => {
                    let v = u16::from_le_bytes(self.le::<2>()?);
                    self.push(Node::Int(v as i64))
                }
                op::LONG1 | op::LONG4 => {
                    let n =
                        if code == op::LONG1 { self.u8()? as u64 } else { u32::from_le_bytes(self.le::<4>()?) as u64 };
                    let b = self.take(n)?;
                    let v = self.int_bytes(b)?;
                    self.push(Node::Int(v))
                }
                op::BINFLOAT => {
                    let v = f64::from_be_bytes(self.le::<8>()?);
                    self.push(Node::Float(v))
                }
                op::SHORT_BINUNICODE | op::BINUNICODE | op::BINUNICODE8 => {
                    let n = match code {
                        op::SHORT_BINUNICODE => self.u8()? as u64,
                        op::BINUNICODE => u32::from_le_bytes(self.le::<4>()?) as u64,
                        _ => u64::from_le_bytes(self.le::<8>()?),
                    };
                    let b = self.take(n)?;
                    let s = self.string(b)?;
                    self.push(Node::Str(s))
                }
                op::SHORT_BINSTRING | op::BINSTRING => {
                    // Python 2's str: Python 3 reads it as ASCII text by default.
                    let n = if code == op::SHORT_BINSTRING {
                        self.u8()? as u64
                    } else {
                        i32::from_le_bytes(self.le::<4>()?).max(-1) as u64
                    };
                    let b = self.take(n)?;
                    if !b.is_ascii() {
                        return Err(self.refuse("a Python 2 str that is not ASCII"));
                    }
                    let s = self.string(b)?;
                    self.push(Node::Str(s))
                }
                op::SHORT_BINBYTES | op::BINBYTES | op::BINBYTES8 | op::BYTEARRAY8 => {
                    let n = match code {
                        op::SHORT_BINBYTES => self.u8()? as u64,
                        op::BINBYTES => u32::from_le_bytes(self.le::<4>()?) as u64,
                        _ => u64::from_le_bytes(self.le::<8>()?),
                    };
                    let b = self.take(n)?.to_vec();
                    self.push(Node::Bytes(b))
                }
                op::EMPTY_LIST => self.push(Node::List(Vec::new())),
                op::EMPTY_TUPLE => self.push(Node::Tuple(Vec::new())),
                op::EMPTY_DICT => self.push(Node::Dict(Vec::new())),
                op::LIST => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items))
                }
                op::TUPLE => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items))
                }
                op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                    let n = (code - op::TUPLE1 + 1) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Node::Tuple(items))
                }
                op::DICT => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.push(Node::Dict(pairs))
                }
                op::APPEND => {
                    let v = self.pop()?;
                    let list = self.top()?;
                    self.extend(list, vec![v])?;
                }
                op::APPENDS => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.extend(list, items)?;
                }
                op::SETITEM => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let dict = self.top()?;
                    self.set_items(dict, vec![(k, v)])?;
                }
                op::SETITEMS => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    let dict = self.top()?;
                    self.set_items(dict, pairs)?;
                }
                op::BINPUT => {
                    let k = self.u8()? as u64;
                    self.put(k)?
                }
                op::LONG_BINPUT => {
                    let k = u32::from_le_bytes(self.le::<4>()?) as u64;
                    self.put(k)?
                }
                op::MEMOIZE => {
                    let k = self.memo.len() as u64;
                    self.put(k)?
                }
                op::BINGET => {
                    let k = self.u8()? as u64;
                    self.get(k)?
                }
                op::LONG_BINGET => {
                    let k = u32::from_le_bytes(self.le::<4>()?) as u64;
                    self.get(k)?
                }
                op::GLOBAL => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let f = self.global(module, name)?;
                    self.push(Node::Func(f))
                }
                op::STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Node::Str(module), Node::Str(name)) =
                        (&self.nodes[module as usize], &self.nodes[name as usize])
                    else {
                        return Err(self.malformed("STACK_GLOBAL's module and name are not strings"));
                    };
                    let f = self.global(module, name)?;
                    self.push(Node::Func(f))
                }
                op::REDUCE => self.reduce()?,
                op::EMPTY_SET | op::ADDITEMS | op::FROZENSET => return Err(self.refuse("a Python set")),
                op::NEXT_BUFFER | op::READONLY_BUFFER => {
                    return Err(self.refuse("an out-of-band buffer (pickle protocol 5's buffer_callback)"))
                }
                b'P' | b'Q' => return Err(self.refuse("a persistent id")),
                0x82..=0x84 => return Err(self.refuse("an object of the copyreg extension registry")),
                0x81 | 0x92 | b'b' | b'o' | b'i' => {
                    return Err(self.malformed(&format!("opcode {code:#04x} builds an object without its class")))
                }
                b'I' | b'L' | b'F' | b'S' | b'V' | b'p' | b'g' => {
                    return Err(serr(format!(
                        "the message is a pickle of protocol 0 (text opcode {:?} at byte {}), which rhai-mp does not \
                         read: it reads protocols 2 to 5",
                        code as char, self.at
                    )))
                }
                other => return Err(self.malformed(&format!("unknown opcode {other:#04x}"))),
            }
        }
    }

    fn pairs(&self, items: Vec<u32>) -> MpResult<Vec<(u32, u32)>> {
        if items.len() % 2 != 0 {
            return Err(self.malformed("a dict's items come in an odd number"));
        }
        Ok(items.chunks(2).map(|p| (p[0], p[1])).collect())
    }

    fn extend(&mut self, list: u32, items: Vec<u32>) -> MpResult<()> {
        match &mut self.nodes[list as usize] {
            Node::List(l) => {
                l.extend(items);
                Ok(())
            }
            other => {
                let kind = other.kind();
                Err(self.malformed(&format!("APPEND to a {kind}")))
            }
        }
    }

    fn set_items(&mut self, dict: u32, pairs: Vec<(u32, u32)>) -> MpResult<()> {
        match &mut self.nodes[dict as usize] {
            Node::Dict(d) => {
                d.extend(pairs);
                Ok(())
            }
            other => {
                let kind = other.kind();
                Err(self.malformed(&format!("SETITEM on a {kind}")))
            }
        }
    }

    fn children(&self, id: u32) -> Vec<u32> {
        match &self.nodes[id as usize] {
            Node::List(l) | Node::Tuple(l) => l.clone(),
            Node::Dict(d) => d.iter().flat_map(|&(k, v)| [k, v]).collect(),
            _ => Vec::new(),
        }
    }

    /// Before any Rhai value is made: no cycle, not too deep, and the expanded value (shared
    /// references copied) fits in memory.
    fn check(&self, root: u32) -> MpResult<()> {
        const OPEN: u8 = 1;
        const DONE: u8 = 2;
        let n = self.nodes.len();
        let mut state = vec![0u8; n];
        let mut size = vec![0u128; n];
        let mut depth = vec![0usize; n];
        // (node, its children, the next child to visit)
        let mut walk: Vec<(u32, Vec<u32>, usize)> = vec![(root, self.children(root), 0)];
        state[root as usize] = OPEN;
        while let Some((id, kids, next)) = walk.last_mut() {
            if let Some(&kid) = kids.get(*next) {
                *next += 1;
                match state[kid as usize] {
                    OPEN => {
                        return Err(serr(format!(
                        "the message holds a {} that contains itself (a cycle): Rhai values cannot refer to themselves",
                        self.nodes[kid as usize].kind()
                    )))
                    }
                    DONE => {}
                    _ => {
                        state[kid as usize] = OPEN;
                        let grand = self.children(kid);
                        walk.push((kid, grand, 0));
                    }
                }
                continue;
            }
            let id = *id as usize;
            let kids = std::mem::take(kids);
            walk.pop();
            let own: u128 = match &self.nodes[id] {
                Node::Str(s) => s.len() as u128,
                Node::Bytes(b) => b.len() as u128,
                Node::Dict(d) => 64 * d.len() as u128,
                _ => 0,
            };
            size[id] = kids.iter().fold(16 + own, |acc, &k| acc.saturating_add(size[k as usize]));
            depth[id] = 1 + kids.iter().map(|&k| depth[k as usize]).max().unwrap_or(0);
            state[id] = DONE;
        }
        if depth[root as usize] > MAX_DEPTH {
            return Err(serr(format!("the message holds a value nested deeper than {MAX_DEPTH} levels")));
        }
        // Shared references become copies: a small pickle whose references nest (x = [x, x] ..)
        // would expand without end. Plain values take at most a few tens of times their
        // pickle's size; past EXPANSION times (and 64 MiB) it is refused.
        let total = size[root as usize];
        let bound = (64u128 << 20) + EXPANSION * self.data.len() as u128;
        if total > bound {
            return Err(serr(format!(
                "the message's shared references would expand it to {total} bytes, more than {EXPANSION} times its \
                 {} bytes: Rhai values have no shared parts, each reference becomes a copy",
                self.data.len()
            )));
        }
        rhai_mp_core::base::limits::allocation(total, "the received value (its shared references copied)")?;
        Ok(())
    }

    fn fail_at(&self, path: &[Seg], what: String) -> MpError {
        serr(format!("{what} (at {} of the received value)", path_text("obj", path)))
    }

    fn key(&self, id: u32, path: &[Seg]) -> MpResult<String> {
        match &self.nodes[id as usize] {
            Node::Str(s) => Ok(s.clone()),
            Node::Int(i) => Ok(i.to_string()),
            Node::Float(f) => Ok(Dynamic::from(*f as FLOAT).to_string()),
            Node::Bool(b) => Ok(b.to_string()),
            other => Err(self.fail_at(
                path,
                format!(
                    "a dict key of type {} cannot be a Rhai map key (str, int, float and bool keys can)",
                    other.kind()
                ),
            )),
        }
    }

    fn to_dynamic(&self, id: u32, path: &mut Vec<Seg>) -> MpResult<Dynamic> {
        Ok(match &self.nodes[id as usize] {
            Node::None => Dynamic::UNIT,
            Node::Bool(b) => Dynamic::from_bool(*b),
            Node::Int(i) => Dynamic::from_int(*i as INT),
            Node::Float(f) => Dynamic::from_float(*f as FLOAT),
            Node::Str(s) => Dynamic::from(s.clone()),
            Node::Bytes(b) => Dynamic::from_blob(b.clone()),
            Node::List(items) | Node::Tuple(items) => {
                let mut out = Array::with_capacity(items.len());
                for (i, &x) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    out.push(self.to_dynamic(x, path)?);
                    path.pop();
                }
                Dynamic::from_array(out)
            }
            Node::Dict(pairs) => {
                let mut out = Map::new();
                for &(k, v) in pairs {
                    let key = self.key(k, path)?;
                    path.push(Seg::Key(key.clone()));
                    let value = self.to_dynamic(v, path)?;
                    path.pop();
                    if out.insert(key.as_str().into(), value).is_some() {
                        // Python's dict had two keys with one string form (1 and "1").
                        let same = pairs.iter().filter(|(k2, _)| self.key(*k2, path).is_ok_and(|s| s == key));
                        let kinds: Vec<&str> = same.map(|(k2, _)| self.nodes[*k2 as usize].kind()).collect();
                        return Err(self.fail_at(
                            path,
                            format!(
                                "the dict has keys of types {} that are all {key:?} in a Rhai map (keys are strings)",
                                kinds.join(" and ")
                            ),
                        ));
                    }
                }
                Dynamic::from_map(out)
            }
            Node::Func(f) => {
                let name = match f {
                    Func::Encode => "_codecs.encode",
                    Func::Bytes => "bytes",
                    Func::Bytearray => "bytearray",
                };
                return Err(self.fail_at(path, format!("a reference to the Python callable {name} is not a value")));
            }
        })
    }
}

/// Decodes `bytes` as a received pickle; a value that decodes must encode (unless it holds
/// what cannot be sent, such as a string over 4 GiB) and decode again to the same text
/// (the fuzz target's body). Returns whether it decoded.
pub(crate) fn round_trip(bytes: &[u8]) -> bool {
    let Ok(v) = decode(bytes) else { return false };
    if let Ok(again) = encode(&v) {
        let back = decode(&again).expect("what rhai-mp writes, it reads");
        assert_eq!(back.to_string(), v.to_string(), "a decoded value re-encodes to itself");
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(v: Dynamic) -> Dynamic {
        decode(&encode(&v).unwrap()).unwrap()
    }

    #[test]
    fn plain_values_round_trip() {
        for v in [
            Dynamic::UNIT,
            Dynamic::TRUE,
            Dynamic::FALSE,
            Dynamic::from_int(0),
            Dynamic::from_int(255),
            Dynamic::from_int(256),
            Dynamic::from_int(65536),
            Dynamic::from_int(-1),
            Dynamic::from_int(i32::MAX as INT + 1),
            Dynamic::from_int(i64::MIN),
            Dynamic::from_int(i64::MAX),
            Dynamic::from_float(-0.5),
            Dynamic::from("héllo"),
            Dynamic::from_blob(vec![0, 1, 255]),
            Dynamic::from_blob(vec![7; 300]),
        ] {
            let back = round(v.clone());
            assert_eq!(back.to_string(), v.to_string());
            assert_eq!(back.type_name(), v.type_name());
        }
        let a: Array = vec![Dynamic::from_int(1), Dynamic::from("x"), Dynamic::from_array(vec![])];
        assert_eq!(round(Dynamic::from_array(a)).to_string(), "[1, \"x\", []]");
        let mut m = Map::new();
        m.insert("a b".into(), Dynamic::from_int(2));
        assert_eq!(round(Dynamic::from_map(m)).to_string(), "#{\"a b\": 2}");
        assert_eq!(round(Dynamic::from_char('é')).to_string(), "é");
    }

    #[test]
    fn what_cannot_cross_is_named() {
        let v = Dynamic::from_array(vec![Dynamic::from_int(1), Dynamic::from(std::time::Instant::now())]);
        let e = encode(&v).unwrap_err();
        assert!(e.message.contains("obj[1]"), "{}", e.message);
    }

    // What Python 3.12 writes for `[None, True, 1, -1, 300, 70000, 2**40, -2**63, 1.5, 'hé',
    // b'ab', b'', (1,), {'a': 1}, bytearray(b'x'), bytearray()]` at protocols 2 to 5.
    pub(super) const PYTHON: [&[u8]; 4] = [
        b"\x80\x02]q\x00(N\x88K\x01J\xff\xff\xff\xffM,\x01Jp\x11\x01\x00\x8a\x06\x00\x00\x00\x00\x00\x01\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80G?\xf8\x00\x00\x00\x00\x00\x00X\x03\x00\x00\x00h\xc3\xa9q\x01c_codecs\nencode\nq\x02X\x02\x00\x00\x00abq\x03X\x06\x00\x00\x00latin1q\x04\x86q\x05Rq\x06c__builtin__\nbytes\nq\x07)Rq\x08K\x01\x85q\t}q\nX\x01\x00\x00\x00aq\x0bK\x01sc__builtin__\nbytearray\nq\x0ch\x02X\x01\x00\x00\x00xq\rh\x04\x86q\x0eRq\x0f\x85q\x10Rq\x11h\x0c)Rq\x12e.",
        b"\x80\x03]q\x00(N\x88K\x01J\xff\xff\xff\xffM,\x01Jp\x11\x01\x00\x8a\x06\x00\x00\x00\x00\x00\x01\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80G?\xf8\x00\x00\x00\x00\x00\x00X\x03\x00\x00\x00h\xc3\xa9q\x01C\x02abq\x02C\x00q\x03K\x01\x85q\x04}q\x05X\x01\x00\x00\x00aq\x06K\x01scbuiltins\nbytearray\nq\x07C\x01xq\x08\x85q\tRq\nh\x07)Rq\x0be.",
        b"\x80\x04\x95r\x00\x00\x00\x00\x00\x00\x00]\x94(N\x88K\x01J\xff\xff\xff\xffM,\x01Jp\x11\x01\x00\x8a\x06\x00\x00\x00\x00\x00\x01\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80G?\xf8\x00\x00\x00\x00\x00\x00\x8c\x03h\xc3\xa9\x94C\x02ab\x94C\x00\x94K\x01\x85\x94}\x94\x8c\x01a\x94K\x01s\x8c\x08builtins\x94\x8c\tbytearray\x94\x93\x94C\x01x\x94\x85\x94R\x94h\t)R\x94e.",
        b"\x80\x05\x95a\x00\x00\x00\x00\x00\x00\x00]\x94(N\x88K\x01J\xff\xff\xff\xffM,\x01Jp\x11\x01\x00\x8a\x06\x00\x00\x00\x00\x00\x01\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80G?\xf8\x00\x00\x00\x00\x00\x00\x8c\x03h\xc3\xa9\x94C\x02ab\x94C\x00\x94K\x01\x85\x94}\x94\x8c\x01a\x94K\x01s\x96\x01\x00\x00\x00\x00\x00\x00\x00x\x94\x96\x00\x00\x00\x00\x00\x00\x00\x00\x94e.",
    ];

    #[test]
    fn what_python_writes_reads_at_every_protocol() {
        for p in PYTHON {
            let v = decode(p).unwrap();
            assert_eq!(
                v.to_string(),
                "[(), true, 1, -1, 300, 70000, 1099511627776, -9223372036854775808, 1.5, \"hé\", [6162], [], [1], #{\"a\": 1}, [78], []]",
            );
        }
    }

    #[test]
    fn a_lone_blob_is_read_in_place() {
        for b in [vec![], vec![1, 2, 3], vec![9; 70_000]] {
            let p = encode(&Dynamic::from_blob(b.clone())).unwrap();
            assert!(lone_bytes(&p).is_some());
            assert_eq!(decode_owned(p).unwrap().into_blob().unwrap(), b);
        }
        // Python's protocol 4 and 5 forms (FRAME, MEMOIZE).
        let v = decode_owned(b"\x80\x04\x95\x08\x00\x00\x00\x00\x00\x00\x00C\x03abc\x94.".to_vec()).unwrap();
        assert_eq!(v.into_blob().unwrap(), b"abc");
        // Anything else goes the long way (and a short length is no lone blob).
        assert!(lone_bytes(b"\x80\x03C\x05ab.").is_none());
        assert!(decode_owned(b"\x80\x03C\x05ab.".to_vec()).is_err());
        let (head, tail) = blob_head(2).unwrap();
        let mut p = head.to_vec();
        p.extend_from_slice(b"xy");
        p.extend_from_slice(&tail);
        assert_eq!(decode(&p).unwrap().into_blob().unwrap(), b"xy");
    }

    #[test]
    fn refusals_name_what() {
        // pickle.dumps(Point(1, 2), 4) for a class Point in __main__
        let point = b"\x80\x04\x95*\x00\x00\x00\x00\x00\x00\x00\x8c\x08__main__\x94\x8c\x05Point\x94\x93\x94)\x81\x94}\x94(\x8c\x01x\x94K\x01\x8c\x01y\x94K\x02ub.";
        let e = decode(point).unwrap_err();
        assert!(e.message.contains("__main__.Point"), "{}", e.message);
        // a = []; a.append(a)
        let cycle = b"\x80\x04\x95\x06\x00\x00\x00\x00\x00\x00\x00]\x94h\x00a.";
        assert!(decode(cycle).unwrap_err().message.contains("contains itself"));
        // 2**64
        let big = b"\x80\x04\x95\x0c\x00\x00\x00\x00\x00\x00\x00\x8a\t\x00\x00\x00\x00\x00\x00\x00\x00\x01.";
        assert!(decode(big).unwrap_err().message.contains("72 bits"));
        // {1: 'a', '1': 'b'}
        let clash = b"\x80\x04\x95\x13\x00\x00\x00\x00\x00\x00\x00}\x94(K\x01\x8c\x01a\x94\x8c\x011\x94\x8c\x01b\x94u.";
        assert!(decode(clash).unwrap_err().message.contains("\"1\""));
        assert!(decode(b"hello").unwrap_err().message.contains("not a pickle"));
        assert!(decode(b"").unwrap_err().message.contains("empty"));
        // {1, 2}
        assert!(decode(b"\x80\x04\x8f\x94(K\x01K\x02\x90.").unwrap_err().message.contains("set"));
    }

    #[test]
    fn shared_references_are_copied_but_bounded() {
        // x = [1]; [x, x]
        let v = decode(b"\x80\x04]\x94(]\x94K\x01ah\x01e.").unwrap();
        assert_eq!(v.to_string(), "[[1], [1]]");
        // a = [0]; 200 times a = [a, a]: 2**200 lists once expanded.
        let mut p = vec![0x80, 4, b']', b'K', 0, b'a', 0x94];
        for i in 0..200u32 {
            p.extend_from_slice(b"](j");
            p.extend_from_slice(&i.to_le_bytes());
            p.push(b'j');
            p.extend_from_slice(&i.to_le_bytes());
            p.extend_from_slice(&[b'e', 0x94]);
        }
        p.push(b'.');
        let e = decode(&p).unwrap_err();
        assert!(e.message.contains("shared references would expand"), "{}", e.message);
        // 5000 nested lists
        let mut deep = vec![0x80, 4];
        deep.extend(std::iter::repeat_n(b']', 5000));
        deep.extend(std::iter::repeat_n(b'a', 4999));
        deep.push(b'.');
        assert!(decode(&deep).unwrap_err().message.contains("deeper"));
    }

    pub(super) fn samples() -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = PYTHON.iter().map(|p| p.to_vec()).collect();
        let mut m = Map::new();
        m.insert("k".into(), Dynamic::from_array(vec![Dynamic::from_float(2.5), Dynamic::from_blob(vec![1; 300])]));
        out.push(encode(&Dynamic::from_map(m)).unwrap());
        out.push(encode(&Dynamic::from_int(-(1 << 40))).unwrap());
        out
    }

    /// Writes the samples as the fuzz target's seeds when `RHAI_MP_FUZZ_SEEDS` names a
    /// directory (how `runtime/fuzz/corpus/pickle/` was made).
    #[test]
    fn fuzz_seeds() {
        let Some(dir) = std::env::var_os("RHAI_MP_FUZZ_SEEDS") else { return };
        let dir = std::path::Path::new(&dir).join("pickle");
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in samples().iter().enumerate() {
            std::fs::write(dir.join(format!("pickle-{i}")), seed).unwrap();
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let mut with_proto = vec![0x80, 4];
            with_proto.extend_from_slice(&bytes);
            let _ = decode(&bytes);
            let _ = decode(&with_proto);
        }

        #[test]
        fn mutated_pickles_never_panic(
            which in 0usize..6,
            flips in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..6),
            cut in proptest::prelude::any::<usize>(),
        ) {
            let mut bytes = samples().swap_remove(which);
            for (i, b) in flips {
                let n = bytes.len();
                bytes[i % n] = b;
            }
            let _ = decode(&bytes);
            bytes.truncate(cut % (bytes.len() + 1));
            let _ = decode(&bytes);
        }

        #[test]
        fn ints_and_strings_round_trip(i in proptest::prelude::any::<i64>(), s in ".{0,40}", f in proptest::prelude::any::<f64>()) {
            let v = Dynamic::from_array(vec![Dynamic::from_int(i), Dynamic::from(s.clone()), Dynamic::from_float(f)]);
            let back = decode(&encode(&v).unwrap()).unwrap().into_array().unwrap();
            proptest::prop_assert_eq!(back[0].as_int().unwrap(), i);
            proptest::prop_assert_eq!(back[1].clone().into_string().unwrap(), s);
            proptest::prop_assert_eq!(back[2].as_float().unwrap().to_bits(), f.to_bits());
        }
    }
}
