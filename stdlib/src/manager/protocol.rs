//! The typed protocol between a manager's clients and its server, the same over both
//! transports: one [`Request`] per message, one [`Reply`] back (a request that has to wait
//! — a queue's `get`, a lock's `acquire` — gets its reply when it is done, or when its
//! timeout passes). Both sides use these types; on the wire each is a tag byte and its
//! fields (values through the wire format), so no method travels as a string. The
//! handshake that comes first is `auth.rs`'s.

use super::proxy::Kind;
use rhai::{Array, Dynamic};
use rhai_mp_core::prelude::MpResult;
use rhai_mp_core::wire::{malformed, Portable, Reader, Writer};

/// What a client asks the server.
#[derive(Debug)]
pub(super) enum Request {
    /// Make an object; the reply is its id (or, for a primitive, the primitive itself).
    Create(Create),
    /// Run an operation on the object numbered `id`.
    Call {
        /// The object.
        id: u64,
        /// The operation.
        op: Op,
    },
    /// Stop the server.
    Shutdown,
    /// Publish a value under a name (`m.register(name, obj)`).
    Register(String, Dynamic),
    /// The value published under a name (`m.get(name)`).
    Lookup(String),
    /// The barrier action this connection was told to run ([`Reply::RunAction`]) has
    /// finished: `Ok`, or with the error it threw.
    ActionDone(Result<(), Dynamic>),
    /// Stop waiting: the client was interrupted (Ctrl-C) while its request waits. The reply
    /// to that request is then [`Reply::Cancelled`] (or its result, if it was done first).
    Cancel,
}

impl Request {
    /// How long the server may take over this request before it replies, when the client
    /// knows: a waiting operation's timeout (zero for one that does not block). `None`: as
    /// long as it likes (no timeout, or a barrier's own default), or a request that does
    /// not wait at all (only the connection's liveness bounds those, see `client.rs`).
    pub(super) fn timeout(&self) -> Option<f64> {
        let Request::Call { op, .. } = self else { return None };
        let secs = |block: bool, t: &Timeout| match t {
            _ if !block => Some(0.0),
            Timeout::Secs(s) => Some(*s),
            Timeout::Never | Timeout::Default => None,
        };
        match op {
            Op::Put(_, block, t) | Op::Take(block, t) | Op::Acquire(block, t) => secs(*block, t),
            Op::Wait(t) => secs(true, t),
            _ => None,
        }
    }
}

/// How long a waiting operation may wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Timeout {
    /// No limit.
    Never,
    /// At most this many seconds (finite, non-negative).
    Secs(f64),
    /// The object's own default (a Barrier's `timeout` option; no limit for the others).
    Default,
}

impl Timeout {
    /// A script's timeout: `()` and infinite ones are no limit (see `opts::seconds`).
    pub(super) fn of(v: &Dynamic, func: &str) -> rhai_mp_core::prelude::MpResult<Timeout> {
        Ok(crate::opts::timeout(v, func)?.map_or(Timeout::Never, Timeout::Secs))
    }
}

/// `block` and `timeout` of a proxied queue's or lock's method, positional or in a keyword
/// map (`q.get(#{timeout: 1})`): whether to wait, and how long.
pub(super) fn block_timeout(
    block: &Dynamic,
    timeout: &Dynamic,
    func: &str,
) -> rhai_mp_core::prelude::MpResult<(bool, Timeout)> {
    let given = if timeout.is_unit() { vec![block.clone()] } else { vec![block.clone(), timeout.clone()] };
    let [block, timeout] = crate::opts::keywords(func, ["block", "timeout"], 0, given)?;
    let block = match block {
        Some(b) => crate::opts::arg_bool(&b, func, "block")?,
        None => true,
    };
    let timeout = timeout.unwrap_or(Dynamic::UNIT);
    Ok((block, if block { Timeout::of(&timeout, func)? } else { Timeout::Never }))
}

/// The objects a manager makes.
#[derive(Debug)]
pub(super) enum Create {
    /// `m.dict()` / `m.dict(init)`.
    Dict(Dynamic),
    /// `m.list()` / `m.list(init)`.
    List(Dynamic),
    /// `m.Namespace()`.
    Namespace,
    /// `m.Value(typecode, value)`.
    Value(Dynamic, Dynamic),
    /// `m.Array(typecode, size_or_items)`.
    Array(Dynamic, Dynamic),
    /// `m.Lock()`, `m.Queue(..)` …: made by the server with the global's arguments (the
    /// kind is a primitive's, not data's).
    Primitive(Kind, Array),
}

/// An operation on a managed object (the proxy methods).
#[derive(Debug)]
pub(crate) enum Op {
    /// `p[key]`.
    GetItem(Dynamic),
    /// `p[key] = value`.
    SetItem(Dynamic, Dynamic),
    /// `d.get(key, default)`.
    Get(Dynamic, Dynamic),
    /// `p.contains(x)`, `x in p`.
    Contains(Dynamic),
    /// `d.keys()` (a list's items, for iteration).
    Keys,
    /// `d.values()`.
    Values,
    /// `d.items()`.
    Items,
    /// `p.len()`.
    Len,
    /// `d.remove(key)`, `l.remove(index)`.
    Remove(Dynamic),
    /// `d.clear()`.
    Clear,
    /// `d.to_map()`, `ns.to_map()`.
    ToMap,
    /// `l.push(v)`.
    Push(Dynamic),
    /// `l.pop()`.
    Pop,
    /// `l.insert(index, v)`.
    Insert(Dynamic, Dynamic),
    /// `l.reverse()`.
    Reverse,
    /// `l.sort()`.
    Sort,
    /// `l.to_array()`.
    ToArray,
    /// What `print(proxy)` shows.
    Repr,
    /// `v.value`.
    GetValue,
    /// `v.value = x`.
    SetValue(Dynamic),
    /// A queue's `put(item, block, timeout)`.
    Put(Dynamic, bool, Timeout),
    /// A queue's `get(block, timeout)`.
    Take(bool, Timeout),
    /// `q.qsize()`.
    QSize,
    /// `q.empty()`.
    IsEmpty,
    /// `q.full()`.
    IsFull,
    /// `q.task_done()`.
    TaskDone,
    /// `q.join()`.
    Join,
    /// `acquire(block, timeout)` of a lock, semaphore or condition.
    Acquire(bool, Timeout),
    /// `release()`.
    Release,
    /// A lock's `owner_died`.
    OwnerDied,
    /// A semaphore's `get_value()`.
    SemValue,
    /// An event's `set()`.
    Set,
    /// An event's `is_set()`.
    IsSet,
    /// `wait(timeout)` of an event, a condition or a barrier.
    Wait(Timeout),
    /// A condition's `notify(n)` (`None`: `notify_all()`).
    Notify(Option<u64>),
    /// A barrier's `reset()`.
    Reset,
    /// A barrier's `abort()`.
    Abort,
    /// A barrier's `parties`.
    Parties,
    /// A barrier's `n_waiting`.
    NWaiting,
    /// A barrier's `broken`.
    Broken,
}

/// The server's answer to a request.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The result.
    Value(Dynamic),
    /// The error a local `catch` would have received.
    Error(Dynamic),
    /// The result, and a warning line for the client's stderr (a lock taken over from a
    /// dead owner).
    Warned(Dynamic, String),
    /// A barrier's last arrival: run this action, then send [`Request::ActionDone`]; the
    /// reply to that is the arrival index (or the error).
    RunAction(Dynamic),
    /// The request was cancelled ([`Request::Cancel`]) before it was done.
    Cancelled,
}

impl Portable for Request {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        match self {
            Request::Create(c) => {
                w.u8(0);
                w.put(c)
            }
            Request::Call { id, op } => {
                w.u8(1);
                w.u64(*id);
                w.put(op)
            }
            Request::Shutdown => {
                w.u8(2);
                Ok(())
            }
            Request::Register(name, v) => {
                w.u8(3);
                w.str(name);
                w.value(v, "obj")
            }
            Request::Lookup(name) => {
                w.u8(4);
                w.str(name);
                Ok(())
            }
            Request::ActionDone(Ok(())) => {
                w.u8(5);
                Ok(())
            }
            Request::ActionDone(Err(e)) => {
                w.u8(6);
                w.value(e, "the action's error")
            }
            Request::Cancel => {
                w.u8(7);
                Ok(())
            }
        }
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        match r.u8()? {
            0 => Ok(Request::Create(r.get()?)),
            1 => Ok(Request::Call { id: r.u64()?, op: r.get()? }),
            2 => Ok(Request::Shutdown),
            3 => Ok(Request::Register(r.string()?, r.value()?)),
            4 => Ok(Request::Lookup(r.string()?)),
            5 => Ok(Request::ActionDone(Ok(()))),
            6 => Ok(Request::ActionDone(Err(r.value()?))),
            7 => Ok(Request::Cancel),
            t => Err(malformed(&format!("manager request kind {t}"))),
        }
    }
}

impl Portable for Timeout {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        match self {
            Timeout::Never => w.u8(0),
            Timeout::Secs(s) => {
                w.u8(1);
                w.f64(*s);
            }
            Timeout::Default => w.u8(2),
        }
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(match r.u8()? {
            0 => Timeout::Never,
            1 => match r.f64()? {
                s if s.is_finite() && s >= 0.0 => Timeout::Secs(s),
                s => return Err(malformed(&format!("timeout {s}"))),
            },
            2 => Timeout::Default,
            t => return Err(malformed(&format!("timeout kind {t}"))),
        })
    }
}

impl Portable for Create {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        match self {
            Create::Dict(init) => {
                w.u8(0);
                w.value(init, "init")
            }
            Create::List(init) => {
                w.u8(1);
                w.value(init, "init")
            }
            Create::Namespace => {
                w.u8(2);
                Ok(())
            }
            Create::Value(tc, v) => {
                w.u8(3);
                w.value(tc, "typecode")?;
                w.value(v, "value")
            }
            Create::Array(tc, init) => {
                w.u8(4);
                w.value(tc, "typecode")?;
                w.value(init, "init")
            }
            Create::Primitive(p, args) => {
                w.u8(5);
                w.u8(*p as u8);
                w.value(&Dynamic::from_array(args.clone()), "args")
            }
        }
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(match r.u8()? {
            0 => Create::Dict(r.value()?),
            1 => Create::List(r.value()?),
            2 => Create::Namespace,
            3 => Create::Value(r.value()?, r.value()?),
            4 => Create::Array(r.value()?, r.value()?),
            5 => {
                let p = r.u8()?;
                let p =
                    Kind::from_u8(p).filter(|k| !k.is_data()).ok_or_else(|| malformed(&format!("primitive {p}")))?;
                let args = r.value()?.try_cast::<Array>().ok_or_else(|| malformed("a constructor's arguments"))?;
                Create::Primitive(p, args)
            }
            t => return Err(malformed(&format!("manager object kind {t}"))),
        })
    }
}

impl Portable for Op {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        let simple = |tag: u8, w: &mut Writer| {
            w.u8(tag);
            Ok(())
        };
        let (tag, args): (u8, &[&Dynamic]) = match self {
            Op::GetItem(k) => (0, &[k]),
            Op::SetItem(k, v) => (1, &[k, v]),
            Op::Get(k, d) => (2, &[k, d]),
            Op::Contains(k) => (3, &[k]),
            Op::Keys => (4, &[]),
            Op::Values => (5, &[]),
            Op::Items => (6, &[]),
            Op::Len => (7, &[]),
            Op::Remove(k) => (8, &[k]),
            Op::Clear => (9, &[]),
            Op::ToMap => (10, &[]),
            Op::Push(v) => (11, &[v]),
            Op::Pop => (12, &[]),
            Op::Insert(i, v) => (13, &[i, v]),
            Op::Reverse => (14, &[]),
            Op::Sort => (15, &[]),
            Op::ToArray => (16, &[]),
            Op::Repr => (17, &[]),
            Op::GetValue => (18, &[]),
            Op::SetValue(v) => (19, &[v]),
            Op::Put(v, block, timeout) => {
                w.u8(20);
                w.value(v, "item")?;
                w.bool(*block);
                return w.put(timeout);
            }
            Op::Take(block, timeout) => {
                w.u8(21);
                w.bool(*block);
                return w.put(timeout);
            }
            Op::QSize => return simple(22, w),
            Op::IsEmpty => return simple(23, w),
            Op::IsFull => return simple(24, w),
            Op::TaskDone => return simple(25, w),
            Op::Join => return simple(26, w),
            Op::Acquire(block, timeout) => {
                w.u8(27);
                w.bool(*block);
                return w.put(timeout);
            }
            Op::Release => return simple(28, w),
            Op::OwnerDied => return simple(29, w),
            Op::SemValue => return simple(30, w),
            Op::Set => return simple(31, w),
            Op::IsSet => return simple(32, w),
            Op::Wait(timeout) => {
                w.u8(33);
                return w.put(timeout);
            }
            Op::Notify(n) => {
                w.u8(34);
                w.bool(n.is_some());
                w.u64(n.unwrap_or(0));
                return Ok(());
            }
            Op::Reset => return simple(35, w),
            Op::Abort => return simple(36, w),
            Op::Parties => return simple(37, w),
            Op::NWaiting => return simple(38, w),
            Op::Broken => return simple(39, w),
        };
        w.u8(tag);
        for a in args {
            w.value(a, "args")?;
        }
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(match r.u8()? {
            0 => Op::GetItem(r.value()?),
            1 => Op::SetItem(r.value()?, r.value()?),
            2 => Op::Get(r.value()?, r.value()?),
            3 => Op::Contains(r.value()?),
            4 => Op::Keys,
            5 => Op::Values,
            6 => Op::Items,
            7 => Op::Len,
            8 => Op::Remove(r.value()?),
            9 => Op::Clear,
            10 => Op::ToMap,
            11 => Op::Push(r.value()?),
            12 => Op::Pop,
            13 => Op::Insert(r.value()?, r.value()?),
            14 => Op::Reverse,
            15 => Op::Sort,
            16 => Op::ToArray,
            17 => Op::Repr,
            18 => Op::GetValue,
            19 => Op::SetValue(r.value()?),
            20 => Op::Put(r.value()?, r.bool()?, r.get()?),
            21 => Op::Take(r.bool()?, r.get()?),
            22 => Op::QSize,
            23 => Op::IsEmpty,
            24 => Op::IsFull,
            25 => Op::TaskDone,
            26 => Op::Join,
            27 => Op::Acquire(r.bool()?, r.get()?),
            28 => Op::Release,
            29 => Op::OwnerDied,
            30 => Op::SemValue,
            31 => Op::Set,
            32 => Op::IsSet,
            33 => Op::Wait(r.get()?),
            34 => {
                let all = !r.bool()?;
                let n = r.u64()?;
                Op::Notify(if all { None } else { Some(n) })
            }
            35 => Op::Reset,
            36 => Op::Abort,
            37 => Op::Parties,
            38 => Op::NWaiting,
            39 => Op::Broken,
            t => return Err(malformed(&format!("manager operation {t}"))),
        })
    }
}

impl Portable for Reply {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        match self {
            Reply::Value(v) => {
                w.u8(0);
                w.value(v, "the reply")
            }
            Reply::Error(e) => {
                w.u8(1);
                w.value(e, "the error")
            }
            Reply::Warned(v, warning) => {
                w.u8(2);
                w.value(v, "the reply")?;
                w.str(warning);
                Ok(())
            }
            Reply::RunAction(f) => {
                w.u8(3);
                w.value(f, "the barrier's action")
            }
            Reply::Cancelled => {
                w.u8(4);
                Ok(())
            }
        }
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(match r.u8()? {
            0 => Reply::Value(r.value()?),
            1 => Reply::Error(r.value()?),
            2 => Reply::Warned(r.value()?, r.string()?),
            3 => Reply::RunAction(r.value()?),
            4 => Reply::Cancelled,
            t => return Err(malformed(&format!("manager reply kind {t}"))),
        })
    }
}

impl From<rhai_mp_core::prelude::MpError> for Reply {
    fn from(e: rhai_mp_core::prelude::MpError) -> Reply {
        Reply::Error(e.to_map().into())
    }
}

impl From<rhai_mp_core::prelude::MpResult<Dynamic>> for Reply {
    fn from(r: rhai_mp_core::prelude::MpResult<Dynamic>) -> Reply {
        match r {
            Ok(v) => Reply::Value(v),
            Err(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rhai_mp_core::wire::{decode_message, encode_message};

    /// Real requests, one of each shape: creations, calls with values, shutdown.
    fn samples() -> Vec<Vec<u8>> {
        let engine = rhai::Engine::new();
        let map: Dynamic = engine.eval("#{a: 1, b: [2.5, \"x\", ()], c: blob(2)}").unwrap();
        let requests = [
            Request::Create(Create::Dict(map.clone())),
            Request::Create(Create::List(Dynamic::from_array(vec![1_i64.into(), 'c'.into()]))),
            Request::Create(Create::Namespace),
            Request::Create(Create::Value("i".into(), 5_i64.into())),
            Request::Create(Create::Array("d".into(), 4_i64.into())),
            Request::Create(Create::Primitive(Kind::Barrier, vec![2_i64.into(), map.clone()])),
            Request::Call { id: 1, op: Op::SetItem("k".into(), map) },
            Request::Call { id: 2, op: Op::Get(0.25.into(), Dynamic::UNIT) },
            Request::Call { id: 3, op: Op::Insert((-1_i64).into(), true.into()) },
            Request::Call { id: u64::MAX, op: Op::Repr },
            Request::Shutdown,
        ];
        requests.iter().map(|r| encode_message(r).unwrap().bytes).collect()
    }

    fn decode(bytes: &[u8]) -> MpResult<Request> {
        crate::registry::register_machinery();
        decode_message::<Request>(bytes, Vec::new())
    }

    #[test]
    fn requests_roundtrip() {
        for bytes in samples() {
            let r = decode(&bytes).unwrap();
            assert_eq!(encode_message(&r).unwrap().bytes, bytes, "{r:?}");
        }
    }

    /// Writes the samples as the fuzz target's seeds when `RHAI_MP_FUZZ_SEEDS` names a
    /// directory (how `runtime/fuzz/corpus/manager_request/` was made).
    #[test]
    fn fuzz_seeds() {
        let Some(dir) = std::env::var_os("RHAI_MP_FUZZ_SEEDS") else { return };
        let dir = std::path::Path::new(&dir).join("manager_request");
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in samples().iter().enumerate() {
            std::fs::write(dir.join(format!("request-{i}")), seed).unwrap();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(r) = decode(&bytes) {
                // What decodes encodes back to a request that decodes the same.
                let again = encode_message(&r).unwrap().bytes;
                prop_assert_eq!(encode_message(&decode(&again).unwrap()).unwrap().bytes, again);
            }
        }

        #[test]
        fn mutated_requests_never_panic(
            which in 0usize..11,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
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
    }
}
