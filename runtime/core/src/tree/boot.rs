//! The boot message: everything a new process needs to become a child — its place in the
//! tree, the script to re-run, and the call it makes (see [`Call`]).
//!
//! The call stays an inner packet until the child has compiled the script: closures in it
//! are looked up among the script's functions.

use crate::base::error::MpResult;
use crate::tree::state::{ChildInfo, ParentInfo, Script, ServerAddr, StartMethod};
use crate::wire::{malformed, Packet, Portable, Reader, Writer};
use rhai::{Array, Dynamic, FnPtr};

/// What the new process is to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A child that runs a target.
    Child,
    /// A forkserver: runs the script's top level once, then forks children on request.
    Server,
}

/// The boot message.
#[derive(Debug)]
pub struct Boot {
    /// Child or server.
    pub mode: Mode,
    /// Its place in the process tree.
    pub info: ChildInfo,
    /// The script whose top level it re-runs (or the REPL entries it compiles).
    pub script: Script,
    /// `ARGV`.
    pub argv: Vec<String>,
    /// The forkserver its own children use, if one runs.
    pub forkserver: Option<ServerAddr>,
    /// The encoded [`Call`] (empty for a server).
    pub call: Packet,
}

/// What a child runs once it is up.
pub enum Call {
    /// Nothing (a process without a target).
    Nothing,
    /// A script function or closure with its arguments.
    Script(FnPtr, Array),
    /// A native entry point of the runtime (a pool worker, a manager's server) with its
    /// own typed arguments, which the entry decodes (see `run::child::register_entry`).
    Native(String, Packet),
}

impl Call {
    /// Whether an encoded call is a native entry's (see [`Call::encode_native`]).
    pub fn is_native(p: &Packet) -> bool {
        p.bytes.first() == Some(&2)
    }

    /// Encodes a script call: the target and the arguments (sharing between them kept).
    pub fn encode_script(target: &Dynamic, args: &Dynamic) -> MpResult<Packet> {
        let mut w = Writer::new();
        w.u8(1);
        w.value(target, "target")?;
        w.value(args, "args")?;
        Ok(w.finish())
    }

    /// Encodes a script call for another machine (an MPI rank): objects that live in this
    /// host's memory are refused with a `SerializationError` naming their equivalent.
    pub fn encode_script_remote(target: &Dynamic, args: &Dynamic) -> MpResult<Vec<u8>> {
        let mut w = Writer::remote();
        w.u8(1);
        w.value(target, "target")?;
        w.value(args, "args")?;
        let p = w.finish();
        if !p.fds.is_empty() {
            return Err(crate::mp_err!(SerializationError, "the call holds objects that live in this host's memory"));
        }
        Ok(p.bytes)
    }

    /// Encodes a native call.
    pub fn encode_native(entry: &str, payload: Packet) -> Packet {
        let mut w = Writer::new();
        w.u8(2);
        w.str(entry);
        w.packet(payload);
        w.finish()
    }

    /// Decodes a call (in the child, once its script is compiled).
    pub fn decode(p: Packet) -> MpResult<Call> {
        if p.bytes.is_empty() {
            return Ok(Call::Nothing);
        }
        let mut r = Reader::new(&p.bytes, p.fds);
        let call = match r.u8()? {
            1 => {
                let target = r.value()?;
                let args = r.value()?.try_cast::<Array>().ok_or_else(|| malformed("the call's arguments"))?;
                if target.is_unit() {
                    Call::Nothing
                } else {
                    Call::Script(target.try_cast::<FnPtr>().ok_or_else(|| malformed("the call's target"))?, args)
                }
            }
            2 => Call::Native(r.string()?, r.packet()?),
            t => return Err(malformed(&format!("call kind {t}"))),
        };
        r.finish()?;
        Ok(call)
    }
}

impl Boot {
    /// Encodes the boot message (its call's descriptors come along).
    pub fn into_packet(self) -> MpResult<Packet> {
        let mut w = Writer::new();
        w.bool(self.mode == Mode::Server);
        w.put(&self.info)?;
        w.put(&self.script)?;
        w.put(&self.argv)?;
        w.put(&self.forkserver)?;
        w.packet(self.call);
        Ok(w.finish())
    }

    /// Decodes a boot message.
    pub fn from_packet(p: Packet) -> MpResult<Boot> {
        let mut r = Reader::new(&p.bytes, p.fds);
        let boot = Boot {
            mode: if r.bool()? { Mode::Server } else { Mode::Child },
            info: r.get()?,
            script: r.get()?,
            argv: r.get()?,
            forkserver: r.get()?,
            call: r.packet()?,
        };
        r.finish()?;
        Ok(boot)
    }
}

impl Portable for ChildInfo {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.put(&self.identity)?;
        w.str(&self.name);
        w.bool(self.daemon);
        w.i64(self.parent.pid as i64);
        w.str(&self.parent.name);
        w.str(self.method.name());
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(ChildInfo {
            identity: r.get()?,
            name: r.string()?,
            daemon: r.bool()?,
            parent: ParentInfo { pid: r.i64()? as i32, name: r.string()? },
            method: StartMethod::parse(r.str()?).ok_or_else(|| malformed("the start method"))?,
        })
    }
}

impl Portable for ServerAddr {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.str(&self.name);
        w.bytes(&self.key);
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(ServerAddr { name: r.string()?, key: r.bytes()?.to_vec() })
    }
}

impl Portable for Script {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        match self {
            Script::Source { name, text } => {
                w.u8(0);
                w.str(name);
                w.str(text);
            }
            Script::Session => w.u8(1),
        }
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        match r.u8()? {
            0 => Ok(Script::Source { name: r.string()?, text: r.string()? }),
            1 => Ok(Script::Session),
            t => Err(malformed(&format!("script kind {t}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Real boot messages: a script call (spawn), a native call (a REPL child of a
    /// forkserver), a forkserver's.
    fn samples() -> Vec<Vec<u8>> {
        let info = |method| ChildInfo {
            identity: vec![1, 2],
            name: "Process-1:2".into(),
            daemon: false,
            parent: ParentInfo { pid: 42, name: "MainProcess".into() },
            method,
        };
        let script = Script::Source { name: "x.rhai".into(), text: "fn f(x, y) { x + y }".into() };
        let target = Dynamic::from(FnPtr::new("f").unwrap());
        let args = Dynamic::from_array(vec![Dynamic::from(1_i64), Dynamic::from("two"), Dynamic::from(2.5)]);
        let calls = [
            Call::encode_script(&target, &args).unwrap(),
            Call::encode_native("pool-worker", Packet { bytes: vec![1, 2, 3], fds: Vec::new() }),
            Packet::default(),
        ];
        let mut out = Vec::new();
        for (i, call) in calls.into_iter().enumerate() {
            let boot = Boot {
                mode: if i == 2 { Mode::Server } else { Mode::Child },
                info: info([StartMethod::Spawn, StartMethod::ForkServer, StartMethod::Fork][i]),
                script: if i == 1 { Script::Session } else { script.clone() },
                argv: vec!["arg".into()],
                forkserver: (i != 0).then(|| ServerAddr { name: "rhai-mp-fs-1".into(), key: vec![7; 32] }),
                call,
            };
            out.push(boot.into_packet().unwrap().bytes);
        }
        out
    }

    /// Decodes a boot message and its call, as a child does; never panics.
    fn decode_all(bytes: &[u8]) {
        if let Ok(boot) = Boot::from_packet(Packet { bytes: bytes.to_vec(), fds: Vec::new() }) {
            let _ = Call::decode(boot.call);
        }
    }

    #[test]
    fn boot_messages_roundtrip() {
        for bytes in samples() {
            let boot = Boot::from_packet(Packet { bytes: bytes.clone(), fds: Vec::new() }).unwrap();
            let again = Boot { call: Packet { bytes: boot.call.bytes.clone(), fds: Vec::new() }, ..boot };
            assert_eq!(again.into_packet().unwrap().bytes, bytes);
        }
    }

    #[test]
    fn fuzz_seeds() {
        crate::base::seeds::write_fuzz_seeds("boot_message", "boot", &samples());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            decode_all(&bytes);
        }

        #[test]
        fn mutated_boot_messages_never_panic(
            which in 0usize..3,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let mut bytes = samples().swap_remove(which);
            for (i, b) in flips {
                let n = bytes.len();
                bytes[i % n] = b;
            }
            decode_all(&bytes);
            bytes.truncate(cut % (bytes.len() + 1));
            decode_all(&bytes);
        }
    }
}
