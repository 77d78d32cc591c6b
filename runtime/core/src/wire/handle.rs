//! Handles: runtime objects (a queue, a lock, a host type …) that cross as their state.
//!
//! A primitive implements [`Handle`] — a [`Portable`] type with a stable `KIND` — and is
//! registered once with [`register_handle`]; one generic adapter turns it into the
//! object-safe [`HandleCodec`] the encoder looks up by Rust type and the decoder by kind.
//! Hosts without a `Portable` impl can register a [`DataCodec`] (plain bytes) or their own
//! [`HandleCodec`].

use super::message::{Portable, Reader, Writer};
use super::serr;
use crate::base::error::MpResult;
use rhai::Dynamic;
use std::any::TypeId;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

/// Converts a runtime object to its state on the wire and back. Object-safe: the registry
/// holds one per type. Implement [`Handle`] instead where you can.
pub trait HandleCodec: Send + Sync + 'static {
    /// A stable name written on the wire, such as `"Queue"`.
    fn kind(&self) -> &'static str;
    /// The Rust type this codec handles.
    fn type_id(&self) -> TypeId;
    /// Writes the object's state (bytes, descriptors, nested values).
    fn encode(&self, value: &Dynamic, w: &mut Writer) -> MpResult<()>;
    /// Rebuilds the object from what `encode` wrote.
    fn decode(&self, r: &mut Reader) -> MpResult<Dynamic>;
    /// What to use instead on another machine, for the error when an object of this kind
    /// that lives in this host's memory is sent to one (`"a manager's m.Queue()"`).
    fn elsewhere(&self) -> &'static str {
        ""
    }
}

/// A Rhai-visible object that can cross a process boundary: its state is [`Portable`].
pub trait Handle: Portable + Clone + 'static {
    /// A stable name written on the wire, such as `"Queue"`.
    const KIND: &'static str;
    /// What to use instead on another machine (see [`HandleCodec::elsewhere`]).
    const ELSEWHERE: &'static str = "";
}

/// The one adapter from a typed [`Handle`] to the registry's [`HandleCodec`].
struct Typed<T>(PhantomData<fn() -> T>);

impl<T: Handle> HandleCodec for Typed<T> {
    fn kind(&self) -> &'static str {
        T::KIND
    }
    fn type_id(&self) -> TypeId {
        TypeId::of::<T>()
    }
    fn encode(&self, value: &Dynamic, w: &mut Writer) -> MpResult<()> {
        let v = value.read_lock::<T>().ok_or_else(|| serr(format!("value is not a {}", T::KIND)))?;
        v.write(w)
    }
    fn decode(&self, r: &mut Reader) -> MpResult<Dynamic> {
        T::read(r).map(Dynamic::from)
    }
    fn elsewhere(&self) -> &'static str {
        T::ELSEWHERE
    }
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

/// Registers a [`Handle`] type.
pub fn register_handle<T: Handle>() {
    register_codec(Typed::<T>(PhantomData));
}

/// The kinds of every codec registered in this process (`"Queue"` …).
pub fn registered_kinds() -> Vec<&'static str> {
    let table = CODECS.read().unwrap_or_else(|e| e.into_inner());
    table.as_ref().map_or_else(Vec::new, |t| t.1.keys().copied().collect())
}

pub(crate) fn codec_for_type(id: TypeId) -> Option<Arc<dyn HandleCodec>> {
    let table = CODECS.read().unwrap_or_else(|e| e.into_inner());
    table.as_ref()?.0.get(&id).cloned()
}

pub(crate) fn codec_for_kind(kind: &str) -> Option<Arc<dyn HandleCodec>> {
    let table = CODECS.read().unwrap_or_else(|e| e.into_inner());
    table.as_ref()?.1.get(kind).cloned()
}

/// A codec for plain-data host types: `encode` and `decode` convert the value to and from
/// bytes, with no descriptors. For a host that wants its own type to cross processes.
pub struct DataCodec<T> {
    /// The kind written on the wire (`"host.Point"`).
    pub kind: &'static str,
    /// The value's bytes.
    pub encode: fn(&T) -> Vec<u8>,
    /// The value from its bytes; `None` if they are malformed.
    pub decode: fn(&[u8]) -> Option<T>,
}

impl<T: Clone + Send + Sync + 'static> HandleCodec for DataCodec<T> {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn type_id(&self) -> TypeId {
        TypeId::of::<T>()
    }
    fn encode(&self, value: &Dynamic, w: &mut Writer) -> MpResult<()> {
        let v = value.read_lock::<T>().ok_or_else(|| serr(format!("value is not a {}", self.kind)))?;
        w.bytes(&(self.encode)(&v));
        Ok(())
    }
    fn decode(&self, r: &mut Reader) -> MpResult<Dynamic> {
        let bytes = r.bytes()?;
        (self.decode)(bytes).map(Dynamic::from).ok_or_else(|| serr(format!("malformed {} value", self.kind)))
    }
}
