//! [`Wire`] trees as bytes, with bincode 2 (varint integers, little endian).
//!
//! The decoder checks every length prefix against the bytes that remain and limits the
//! nesting depth, so malformed or hostile input gives an error, never a panic or a huge
//! allocation.

use super::tree::Wire;
use super::{serr, MAX_DEPTH};
use crate::base::error::MpResult;
use bincode::de::read::BorrowReader;
use bincode::de::{BorrowDecode, BorrowDecoder, Decode};
use bincode::enc::{Encode, Encoder};
use bincode::error::{DecodeError, EncodeError};

const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// About how many bytes a tree encodes to (exact but for varints), so that encoding a large
/// value allocates once.
pub(crate) fn size_hint(wire: &Wire) -> usize {
    match wire {
        Wire::Str(s) => s.len() + 10,
        Wire::Blob(b) => b.len() + 10,
        Wire::Array(a) => 10 + a.iter().map(size_hint).sum::<usize>(),
        Wire::Ints(a) => 10 + 8 * a.len(),
        Wire::Map(m) => 10 + m.iter().map(|(k, v)| k.len() + 10 + size_hint(v)).sum::<usize>(),
        Wire::Fn { name, curry } | Wire::FnSame { name, curry } => {
            name.len() + 20 + curry.iter().map(size_hint).sum::<usize>()
        }
        Wire::FnCode { name, curry, units } => {
            name.len()
                + 20
                + curry.iter().map(size_hint).sum::<usize>()
                + units.iter().map(|(_, t)| 20 + t.as_ref().map_or(0, String::len)).sum::<usize>()
        }
        Wire::Shared { value, .. } => 6 + size_hint(value),
        Wire::Handle { kind, data, fds } => kind.len() + data.len() + 5 * fds.len() + 30,
        _ => 10,
    }
}

/// Appends a tree's bytes to `out`.
pub(crate) fn append_tree(wire: &Wire, out: &mut Vec<u8>) {
    out.reserve(size_hint(wire));
    bincode::encode_into_std_write(wire, out, CONFIG).expect("encoding into a Vec cannot fail");
}

/// The smallest blob or block of ints (in bytes) that a message keeps apart from its other
/// bytes (see [`append_tree_apart`]).
pub(crate) const APART_MIN: usize = 64 * 1024;

/// A large part of a message, kept out of its bytes until they are written where they go.
#[derive(Debug)]
pub(crate) enum Segment {
    /// A blob's bytes.
    Bytes(Vec<u8>),
    /// A block of ints, which (on a little-endian machine) are their encoding already.
    Ints(Vec<i64>),
}

impl Segment {
    /// The encoded bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Segment::Bytes(b) => b,
            Segment::Ints(a) => ints_as_le_bytes(a),
        }
    }
}

/// Ints as their little-endian bytes, without a copy.
#[cfg(target_endian = "little")]
fn ints_as_le_bytes(a: &[i64]) -> &[u8] {
    // SAFETY: an i64 is 8 initialized bytes with no padding, a u8 needs no alignment, and
    // the slice covers exactly the array's memory, borrowed for as long as the array is.
    unsafe { std::slice::from_raw_parts(a.as_ptr().cast::<u8>(), std::mem::size_of_val(a)) }
}

#[cfg(not(target_endian = "little"))]
fn ints_as_le_bytes(_: &[i64]) -> &[u8] {
    unreachable!("int blocks are kept apart on little-endian machines only")
}

/// Whether a tree holds a blob or block of ints of [`APART_MIN`] bytes or more (outside
/// function captures and handles).
fn has_big(wire: &Wire) -> bool {
    match wire {
        Wire::Blob(b) => b.len() >= APART_MIN,
        Wire::Ints(a) => cfg!(target_endian = "little") && a.len() >= APART_MIN / 8,
        Wire::Array(a) => a.iter().any(has_big),
        Wire::Map(m) => m.iter().any(|(_, v)| has_big(v)),
        Wire::Shared { value, .. } => has_big(value),
        _ => false,
    }
}

fn put<T: Encode>(v: &T, out: &mut Vec<u8>) {
    bincode::encode_into_std_write(v, out, CONFIG).expect("encoding into a Vec cannot fail");
}

/// Appends a tree's bytes to `out` as [`append_tree`] does, except that the bytes of each
/// large blob or block of ints are not copied: the tree gives them up, and they go to
/// `apart` with the position in `out` where they belong. `out` with every part put back
/// where it belongs is exactly what [`append_tree`] writes.
pub(crate) fn append_tree_apart(wire: Wire, out: &mut Vec<u8>, apart: &mut Vec<(usize, Segment)>) {
    if !has_big(&wire) {
        return append_tree(&wire, out);
    }
    match wire {
        Wire::Blob(b) => {
            put(&(T_BLOB, b.len() as u64), out);
            apart.push((out.len(), Segment::Bytes(b)));
        }
        Wire::Ints(a) => {
            put(&(T_INTS, a.len() as u64), out);
            apart.push((out.len(), Segment::Ints(a)));
        }
        Wire::Array(a) => {
            put(&(T_ARRAY, a.len() as u64), out);
            for x in a {
                append_tree_apart(x, out, apart);
            }
        }
        Wire::Map(m) => {
            put(&(T_MAP, m.len() as u64), out);
            for (k, x) in m {
                put(&k, out);
                append_tree_apart(x, out, apart);
            }
        }
        Wire::Shared { id, value } => {
            put(&(T_SHARED, id), out);
            append_tree_apart(*value, out, apart);
        }
        other => append_tree(&other, out),
    }
}

/// A tree's bytes.
pub fn tree_to_bytes(wire: &Wire) -> Vec<u8> {
    let mut out = Vec::new();
    append_tree(wire, &mut out);
    out
}

/// Reads a tree from the start of `bytes`; returns it and how many bytes it took. Never
/// panics, whatever the bytes.
pub(crate) fn tree_prefix(bytes: &[u8]) -> MpResult<(Wire, usize)> {
    let ctx = Limits { depth: 0, max_len: bytes.len() };
    bincode::borrow_decode_from_slice_with_context::<_, Wire, _>(bytes, CONFIG, ctx)
        .map_err(|e| serr(format!("malformed message: {e}")))
}

/// Reads a tree that fills `bytes` exactly.
pub fn tree_from_bytes(bytes: &[u8]) -> MpResult<Wire> {
    match tree_prefix(bytes)? {
        (wire, used) if used == bytes.len() => Ok(wire),
        (_, used) => Err(serr(format!("malformed message: {} trailing bytes", bytes.len() - used))),
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
const T_FN_CODE: u8 = 13;
const T_FN_SAME: u8 = 14;
const T_INTS: u8 = 15;

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
            Wire::Ints(a) => {
                (T_INTS, a.len() as u64).encode(e)?;
                ints(a, e)
            }
            Wire::Map(m) => (T_MAP, m).encode(e),
            Wire::Fn { name, curry } => (T_FN, name, curry).encode(e),
            Wire::FnCode { name, curry, units } => (T_FN_CODE, name, curry, units).encode(e),
            Wire::FnSame { name, curry } => (T_FN_SAME, name, curry).encode(e),
            Wire::Shared { id, value } => (T_SHARED, id, value).encode(e),
            Wire::SharedRef(id) => (T_SHARED_REF, id).encode(e),
            Wire::Handle { kind, data, fds } => (T_HANDLE, kind, data, fds).encode(e),
        }
    }
}

/// An array of ints as one block of 8-byte little-endian words (written a few KiB at a
/// time): far faster to write and read than a varint per item, for arrays of millions.
fn ints<E: Encoder>(a: &[i64], e: &mut E) -> Result<(), EncodeError> {
    use bincode::enc::write::Writer;
    let mut buf = [0u8; 4096];
    for chunk in a.chunks(buf.len() / 8) {
        for (word, x) in buf.chunks_exact_mut(8).zip(chunk) {
            word.copy_from_slice(&x.to_le_bytes());
        }
        e.writer().write(&buf[..chunk.len() * 8])?;
    }
    Ok(())
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
            T_INTS => {
                let len = length(d)?;
                let bytes =
                    d.borrow_reader().take_bytes(len.checked_mul(8).ok_or(DecodeError::Other("too many ints"))?)?;
                Wire::Ints(
                    bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default())).collect(),
                )
            }
            T_MAP => Wire::Map(list(d, |d| Ok((string(d)?, Wire::borrow_decode(d)?)))?),
            T_FN => Wire::Fn { name: string(d)?, curry: list(d, Wire::borrow_decode)? },
            T_FN_CODE => Wire::FnCode {
                name: string(d)?,
                curry: list(d, Wire::borrow_decode)?,
                units: list(d, |d| {
                    let hash = u64::decode(d)?;
                    let text = match u8::decode(d)? {
                        0 => None,
                        1 => Some(string(d)?),
                        _ => return Err(DecodeError::Other("bad option tag")),
                    };
                    Ok((hash, text))
                })?,
            },
            T_FN_SAME => Wire::FnSame { name: string(d)?, curry: list(d, Wire::borrow_decode)? },
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
    use crate::wire::{decode, encode};
    use proptest::prelude::*;
    use rhai::{Array, Dynamic};

    fn roundtrip(w: &Wire) -> Wire {
        tree_from_bytes(&tree_to_bytes(w)).unwrap()
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
        assert!(tree_from_bytes(&bytes).is_err());
    }

    #[test]
    fn huge_length_prefix_is_an_error() {
        let mut bytes = vec![T_BLOB, 253];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(tree_from_bytes(&bytes).is_err());
    }

    #[test]
    fn values_roundtrip_through_dynamic() {
        let engine = rhai::Engine::new();
        let v: Dynamic = engine.eval("#{a: [1, 2.5, 'x', \"s\", (), true], b: blob(3, 7)}").unwrap();
        let p = encode(&v, "v").unwrap();
        let back = decode(&p.bytes, p.fds).unwrap();
        assert_eq!(format!("{v:?}"), format!("{back:?}"));
    }

    #[test]
    fn unsendable_value_names_its_place() {
        let engine = rhai::Engine::new();
        let v: Dynamic = engine.eval("[1, #{items: [0, 1, 2, timestamp()]}]").unwrap();
        let err = encode(&v, "args").unwrap_err();
        assert_eq!(err.kind, crate::base::error::ErrorKind::SerializationError);
        assert!(err.message.contains("args[1].items[3]"), "{}", err.message);
        assert!(err.message.contains("timestamp"), "{}", err.message);
    }

    #[test]
    fn shared_cycle_is_refused() {
        let a: Dynamic = Array::new().into();
        let a = a.into_shared();
        let mut inner = a.clone();
        inner.write_lock::<Array>().unwrap().push(a.clone());
        let err = encode(&a, "args").unwrap_err();
        assert!(err.message.contains("cycle"), "{}", err.message);
    }

    #[test]
    fn a_value_given_up_encodes_to_the_same_bytes_with_its_big_parts_apart() {
        let engine = rhai::Engine::new();
        let script = "let big = blob(70000, 3); let ints = []; ints.pad(9000, 5); ints[7] = -1;
                      let captured = blob(70000, 1); let f = |x| x + captured.len();
                      [big, #{ints: ints, small: blob(5, 1), nested: [[big], 2.5, \"s\"]}, f, [1, 2], ints]";
        let v: Dynamic = engine.eval(script).unwrap();
        let whole = encode(&v, "v").unwrap().bytes;
        let apart = crate::wire::encode_owned(v.clone(), "v").unwrap();
        // The four blobs and int blocks of 64 KiB or more are apart, each between two runs
        // of other bytes (none after the last); the blob captured by the closure (shared
        // with the script's variable) is not given up.
        assert_eq!(apart.pieces().len(), 2 * 4);
        assert_eq!(apart.len(), whole.len());
        let joined = apart.into_packet().bytes;
        assert_eq!(joined, whole);
        // Small values have no parts apart.
        let small: Dynamic = engine.eval("[1, blob(10, 2), #{a: 1}]").unwrap();
        let apart = crate::wire::encode_owned(small.clone(), "v").unwrap();
        assert_eq!(apart.pieces().len(), 1);
        assert_eq!(apart.into_packet().bytes, encode(&small, "v").unwrap().bytes);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn pieces_join_to_the_whole_encoding(sizes in proptest::collection::vec((0usize..3, 0usize..80_000), 0..6)) {
            let mut items = Array::new();
            for (kind, n) in sizes {
                items.push(match kind {
                    0 => Dynamic::from_blob(vec![n as u8; n]),
                    1 => Dynamic::from_array(vec![Dynamic::from_int(n as i64); n / 8 + 1]),
                    _ => {
                        let mut m = rhai::Map::new();
                        m.insert("b".into(), Dynamic::from_blob(vec![1; n]));
                        m.into()
                    }
                });
            }
            let v = Dynamic::from_array(items);
            let whole = encode(&v, "v").unwrap().bytes;
            prop_assert_eq!(crate::wire::encode_owned(v, "v").unwrap().into_packet().bytes, whole);
        }
    }

    /// Real encoded values: every tag, sharing, a handle, a closure with captures.
    fn samples() -> Vec<Vec<u8>> {
        let engine = rhai::Engine::new();
        let v: Dynamic = engine.eval("#{a: [1, -2, 2.5, 'x', \"s\", (), true], b: blob(3, 7), c: #{d: []}}").unwrap();
        let shared = Wire::Shared { id: 0, value: Box::new(Wire::Array(vec![Wire::Int(1)])) };
        let mut proxy = 1_u64.to_le_bytes().to_vec();
        proxy.push(0);
        for field in [&b"rhai-mp-manager-1"[..], b"key"] {
            proxy.extend_from_slice(&(field.len() as u64).to_le_bytes());
            proxy.extend_from_slice(field);
        }
        let trees = [
            Wire::Fn { name: "anon$1234".into(), curry: vec![shared, Wire::SharedRef(0), Wire::Str("k".into())] },
            Wire::Handle { kind: "Queue".into(), data: vec![0, 1, 0, 0, 0, 9], fds: vec![0, 1, 2] },
            // A manager's proxy: its state is data only (object id, kind, address, key).
            Wire::Handle { kind: "Proxy".into(), data: proxy, fds: Vec::new() },
            Wire::Array(vec![Wire::Float(f64::NAN), Wire::Int(i64::MIN), Wire::Char('包'), Wire::Unit]),
            Wire::Ints(vec![0, -1, i64::MAX, i64::MIN, 300]),
        ];
        let mut out = vec![encode(&v, "v").unwrap().bytes];
        out.extend(trees.iter().map(tree_to_bytes));
        out
    }

    #[test]
    fn fuzz_seeds() {
        for s in samples() {
            assert!(tree_from_bytes(&s).is_ok());
        }
        crate::base::seeds::write_fuzz_seeds("wire_decode", "value", &samples());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = tree_from_bytes(&bytes);
            let _ = decode(&bytes, Vec::new());
        }

        #[test]
        fn mutated_messages_never_panic(seed in any::<u64>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let w = Wire::Map(vec![("k".into(), Wire::Array(vec![Wire::Int(seed as i64), Wire::Str("abc".into()), Wire::Handle { kind: "Q".into(), data: vec![1, 2], fds: vec![0] }]))]);
            let mut bytes = tree_to_bytes(&w);
            for (i, b) in flips {
                let n = bytes.len();
                bytes[i % n] = b;
            }
            let _ = tree_from_bytes(&bytes);
        }
    }
}
