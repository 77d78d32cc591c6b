//! Typed messages: a [`Portable`] type writes its fields with a [`Writer`] and reads them
//! back with a [`Reader`], in the same order.
//!
//! Fields are fixed-width little-endian numbers, length-prefixed bytes and strings,
//! descriptors (named by their index in the packet's list), nested packets, and Rhai values
//! (as [`Wire`](super::Wire) trees, sharing kept across the values of one message). A
//! [`Reader`] checks every length against what remains and never panics: a malformed
//! message is a `SerializationError`.

use super::bytes::{append_tree, append_tree_apart, tree_prefix, Segment};
use super::tree::{FromWire, ToWire};
use super::{serr, Packet, Segmented};
use crate::base::error::{MpError, MpResult};
use rhai::Dynamic;
use std::os::fd::{BorrowedFd, OwnedFd};

/// A type that crosses process boundaries as a typed message.
pub trait Portable: Sized {
    /// Writes every field.
    fn write(&self, w: &mut Writer) -> MpResult<()>;
    /// Reads the fields `write` wrote.
    fn read(r: &mut Reader) -> MpResult<Self>;
}

/// Builds a message.
#[derive(Default)]
pub struct Writer {
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    /// Large parts kept out of `bytes` (see [`Writer::value_owned`]) and where they go.
    apart: Vec<(usize, Segment)>,
    tree: ToWire,
    remote: bool,
}

impl Writer {
    /// An empty message.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// An empty message for another machine: objects that live in this host's memory (they
    /// cross as descriptors) cannot go there, and say so (`SerializationError`).
    pub fn remote() -> Writer {
        let mut w = Writer { remote: true, ..Writer::default() };
        w.tree.remote = true;
        w
    }

    /// Whether this message goes to another machine (see [`Writer::remote`]).
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// A byte.
    pub fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }

    /// A bool.
    pub fn bool(&mut self, v: bool) {
        self.bytes.push(v as u8);
    }

    /// A 32-bit number.
    pub fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    /// A 64-bit number.
    pub fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    /// A signed 64-bit number.
    pub fn i64(&mut self, v: i64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    /// A float.
    pub fn f64(&mut self, v: f64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.bytes.extend_from_slice(v);
    }

    /// A string.
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }

    /// A descriptor, which the packet carries (never to another machine: a handle's codec
    /// that writes one is refused there, see [`Writer::remote`]).
    pub fn fd(&mut self, fd: OwnedFd) {
        self.u32(self.fds.len() as u32);
        self.fds.push(fd);
    }

    /// A duplicate of a descriptor this process keeps.
    pub fn dup(&mut self, fd: BorrowedFd) -> MpResult<()> {
        self.fd(fd.try_clone_to_owned().map_err(|e| MpError::os("cannot copy a handle's descriptor to send it", e))?);
        Ok(())
    }

    /// A Rhai value; `root` names it in error messages (`"args"`).
    pub fn value(&mut self, v: &Dynamic, root: &str) -> MpResult<()> {
        let tree = self.tree.convert(v, root, &mut self.fds)?;
        append_tree(&tree, &mut self.bytes);
        Ok(())
    }

    /// [`Writer::value`] of a value the caller gives up: its large blobs and blocks of ints
    /// are not copied into the message's bytes but kept apart, to be written straight
    /// where the message goes (see [`Writer::finish_apart`]).
    pub fn value_owned(&mut self, v: Dynamic, root: &str) -> MpResult<()> {
        let tree = self.tree.convert_owned(v, root, &mut self.fds)?;
        append_tree_apart(tree, &mut self.bytes, &mut self.apart);
        Ok(())
    }

    /// A portable value, written in place.
    pub fn put<T: Portable>(&mut self, v: &T) -> MpResult<()> {
        v.write(self)
    }

    /// A whole packet, nested: its bytes and its descriptors.
    pub fn packet(&mut self, p: Packet) {
        self.bytes(&p.bytes);
        self.u32(self.fds.len() as u32);
        self.u32(p.fds.len() as u32);
        self.fds.extend(p.fds);
    }

    /// The message.
    pub fn finish(self) -> Packet {
        self.finish_apart().into_packet()
    }

    /// The message with its large parts still apart.
    pub fn finish_apart(self) -> Segmented {
        Segmented { bytes: self.bytes, fds: self.fds, apart: self.apart }
    }
}

/// Reads a message.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    fds: Vec<Option<OwnedFd>>,
    tree: FromWire,
}

fn short(what: &str) -> crate::base::error::MpError {
    serr(format!("malformed message: {what} cut short"))
}

impl<'a> Reader<'a> {
    /// A reader over a packet's bytes and descriptors.
    pub fn new(bytes: &'a [u8], fds: Vec<OwnedFd>) -> Reader<'a> {
        Reader { bytes, pos: 0, fds: fds.into_iter().map(Some).collect(), tree: FromWire::default() }
    }

    fn take(&mut self, n: usize, what: &str) -> MpResult<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| short(what))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> MpResult<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A byte.
    pub fn u8(&mut self) -> MpResult<u8> {
        Ok(self.array::<1>("a byte")?[0])
    }

    /// A bool.
    pub fn bool(&mut self) -> MpResult<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(serr(format!("malformed message: {b} is not a bool"))),
        }
    }

    /// A 32-bit number.
    pub fn u32(&mut self) -> MpResult<u32> {
        Ok(u32::from_le_bytes(self.array("a number")?))
    }

    /// A 64-bit number.
    pub fn u64(&mut self) -> MpResult<u64> {
        Ok(u64::from_le_bytes(self.array("a number")?))
    }

    /// A signed 64-bit number.
    pub fn i64(&mut self) -> MpResult<i64> {
        Ok(i64::from_le_bytes(self.array("a number")?))
    }

    /// A float.
    pub fn f64(&mut self) -> MpResult<f64> {
        Ok(f64::from_le_bytes(self.array("a number")?))
    }

    /// Length-prefixed bytes, borrowed from the message.
    pub fn bytes(&mut self) -> MpResult<&'a [u8]> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| short("bytes"))?;
        self.take(n, "bytes")
    }

    /// A string, borrowed from the message.
    pub fn str(&mut self) -> MpResult<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| serr("malformed message: a string is not UTF-8"))
    }

    /// A string.
    pub fn string(&mut self) -> MpResult<String> {
        self.str().map(str::to_string)
    }

    /// A descriptor the packet carried.
    pub fn fd(&mut self) -> MpResult<OwnedFd> {
        let i = self.u32()?;
        self.fds
            .get_mut(i as usize)
            .and_then(Option::take)
            .ok_or_else(|| serr(format!("malformed message: file descriptor #{i} missing")))
    }

    /// A Rhai value.
    pub fn value(&mut self) -> MpResult<Dynamic> {
        let (tree, used) = tree_prefix(&self.bytes[self.pos..])?;
        self.pos += used;
        self.tree.value(tree, &mut self.fds)
    }

    /// A portable value.
    pub fn get<T: Portable>(&mut self) -> MpResult<T> {
        T::read(self)
    }

    /// A nested packet (see [`Writer::packet`]).
    pub fn packet(&mut self) -> MpResult<Packet> {
        let bytes = self.bytes()?.to_vec();
        let first = self.u32()? as usize;
        let count = self.u32()? as usize;
        let end = first.checked_add(count).filter(|&e| e <= self.fds.len()).ok_or_else(|| short("descriptors"))?;
        let mut fds = Vec::with_capacity(count);
        for (i, slot) in self.fds[first..end].iter_mut().enumerate() {
            fds.push(
                slot.take()
                    .ok_or_else(|| serr(format!("malformed message: file descriptor #{} missing", first + i)))?,
            );
        }
        Ok(Packet { bytes, fds })
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    /// Checks that the whole message was read.
    pub fn finish(self) -> MpResult<()> {
        match self.bytes.len() - self.pos {
            0 => Ok(()),
            n => Err(serr(format!("malformed message: {n} trailing bytes"))),
        }
    }
}

/// Encodes a typed message.
pub fn encode_message<T: Portable>(v: &T) -> MpResult<Packet> {
    let mut w = Writer::new();
    v.write(&mut w)?;
    Ok(w.finish())
}

/// Encodes a typed message for another machine (see [`Writer::remote`]): its bytes.
pub fn encode_remote<T: Portable>(v: &T) -> MpResult<Vec<u8>> {
    let mut w = Writer::remote();
    v.write(&mut w)?;
    let packet = w.finish();
    if !packet.fds.is_empty() {
        return Err(serr(
            "this message holds objects that live in this host's memory: it cannot go to another machine",
        ));
    }
    Ok(packet.bytes)
}

/// Decodes a typed message that fills the packet.
pub fn decode_message<T: Portable>(bytes: &[u8], fds: Vec<OwnedFd>) -> MpResult<T> {
    let mut r = Reader::new(bytes, fds);
    let v = T::read(&mut r)?;
    r.finish()?;
    Ok(v)
}

macro_rules! portable_number {
    ($($t:ident),*) => {$(
        impl Portable for $t {
            fn write(&self, w: &mut Writer) -> MpResult<()> {
                w.$t(*self);
                Ok(())
            }
            fn read(r: &mut Reader) -> MpResult<Self> {
                r.$t()
            }
        }
    )*};
}

portable_number!(u8, u32, u64, i64, f64, bool);

impl Portable for String {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.str(self);
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        r.string()
    }
}

impl Portable for Dynamic {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.value(self, "value")
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        r.value()
    }
}

impl<T: Portable> Portable for Option<T> {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        match self {
            None => w.u8(0),
            Some(v) => {
                w.u8(1);
                v.write(w)?;
            }
        }
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        match r.u8()? {
            0 => Ok(None),
            1 => T::read(r).map(Some),
            b => Err(serr(format!("malformed message: option tag {b}"))),
        }
    }
}

impl<T: Portable> Portable for Vec<T> {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.u64(self.len() as u64);
        for x in self {
            x.write(w)?;
        }
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        let n = r.u64()?;
        // Every item takes at least a byte: a count larger than what is left is malformed.
        if n > r.rest().len() as u64 {
            return Err(short("a list"));
        }
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            out.push(T::read(r)?);
        }
        Ok(out)
    }
}

impl<A: Portable, B: Portable> Portable for (A, B) {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        self.0.write(w)?;
        self.1.write(w)
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok((A::read(r)?, B::read(r)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, PartialEq)]
    struct Sample {
        a: u64,
        name: String,
        tags: Vec<u32>,
        extra: Option<(bool, f64)>,
    }

    impl Portable for Sample {
        fn write(&self, w: &mut Writer) -> MpResult<()> {
            w.u64(self.a);
            w.str(&self.name);
            w.put(&self.tags)?;
            w.put(&self.extra)
        }
        fn read(r: &mut Reader) -> MpResult<Self> {
            Ok(Sample { a: r.u64()?, name: r.string()?, tags: r.get()?, extra: r.get()? })
        }
    }

    #[test]
    fn typed_messages_roundtrip() {
        let s = Sample { a: 7, name: "hé".into(), tags: vec![1, 2, 3], extra: Some((true, 0.5)) };
        let p = encode_message(&s).unwrap();
        assert_eq!(decode_message::<Sample>(&p.bytes, p.fds).unwrap(), s);
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut p = encode_message(&5u64).unwrap();
        p.bytes.push(0);
        assert!(decode_message::<u64>(&p.bytes, Vec::new()).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn typed_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_message::<Sample>(&bytes, Vec::new());
            let mut r = Reader::new(&bytes, Vec::new());
            let _ = r.packet();
        }
    }
}
