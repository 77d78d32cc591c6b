//! The boot message: everything a new process needs to become a child — its place in the
//! tree, the script to re-run, and the encoded call (target and arguments).
//!
//! It is itself a Rhai object map sent through [`crate::wire`], so there is one format for
//! everything that crosses. The call is an inner encoded blob because it can only be decoded
//! once the child has compiled the script (closures are looked up in its AST); the
//! descriptors of the call's handles travel with the outer packet.

use crate::error::{MpError, MpResult};
use crate::state::{ChildInfo, ParentInfo, Script, StartMethod};
use crate::wire::{self, NoFunctions, Packet};
use rhai::{Array, Dynamic, Map};
use std::os::fd::OwnedFd;

/// What the new process is to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A child that runs a target.
    Child,
    /// A forkserver: runs the script's top level once, then forks children on request.
    Server,
}

#[derive(Debug, Clone)]
pub struct Boot {
    pub mode: Mode,
    pub info: ChildInfo,
    pub script: Script,
    pub argv: Vec<String>,
    pub forkserver: Option<String>,
    /// The encoded `[target, args]` (empty for a server).
    pub call: Vec<u8>,
}

fn strings(v: &[String]) -> Dynamic {
    v.iter().map(|s| Dynamic::from(s.clone())).collect::<Array>().into()
}

impl Boot {
    /// Encodes the boot message; the call's descriptors come along.
    pub fn into_packet(self, call_fds: Vec<OwnedFd>) -> MpResult<Packet> {
        let mut m = Map::new();
        m.insert("mode".into(), (self.mode == Mode::Server).into());
        m.insert(
            "identity".into(),
            self.info.identity.iter().map(|&i| Dynamic::from(i as rhai::INT)).collect::<Array>().into(),
        );
        m.insert("name".into(), self.info.name.into());
        m.insert("daemon".into(), self.info.daemon.into());
        m.insert("parent_pid".into(), (self.info.parent.pid as rhai::INT).into());
        m.insert("parent_name".into(), self.info.parent.name.into());
        m.insert("method".into(), self.info.method.name().into());
        match self.script {
            Script::Source { name, text } => {
                m.insert("script_name".into(), name.into());
                m.insert("script_text".into(), text.into());
            }
            Script::Repl { entries } => {
                m.insert("repl".into(), strings(&entries));
            }
        }
        m.insert("argv".into(), strings(&self.argv));
        m.insert("forkserver".into(), self.forkserver.map_or(Dynamic::UNIT, Dynamic::from));
        m.insert("call".into(), Dynamic::from_blob(self.call));
        let mut packet = wire::encode(&m.into(), "boot")?;
        packet.fds = call_fds;
        Ok(packet)
    }

    pub fn from_bytes(bytes: &[u8]) -> MpResult<Boot> {
        let bad =
            |what: &str| MpError::new(crate::ErrorKind::SerializationError, format!("malformed boot message: {what}"));
        let v = wire::decode(bytes, Vec::new(), &NoFunctions)?;
        let m = v.try_cast::<Map>().ok_or_else(|| bad("not a map"))?;
        let get = |k: &str| m.get(k).cloned().ok_or_else(|| bad(k));
        let string = |k: &str| get(k)?.into_string().map_err(|_| bad(k));
        let strings = |v: Dynamic, k: &str| -> MpResult<Vec<String>> {
            v.try_cast::<Array>()
                .ok_or_else(|| bad(k))?
                .into_iter()
                .map(|x| x.into_string().map_err(|_| bad(k)))
                .collect()
        };
        let script = match m.get("repl") {
            Some(r) => Script::Repl { entries: strings(r.clone(), "repl")? },
            None => Script::Source { name: string("script_name")?, text: string("script_text")? },
        };
        let identity = get("identity")?
            .try_cast::<Array>()
            .ok_or_else(|| bad("identity"))?
            .into_iter()
            .map(|x| x.as_int().map(|i| i as u32).map_err(|_| bad("identity")))
            .collect::<MpResult<Vec<u32>>>()?;
        let fs = get("forkserver")?;
        Ok(Boot {
            mode: if get("mode")?.as_bool().map_err(|_| bad("mode"))? { Mode::Server } else { Mode::Child },
            info: ChildInfo {
                identity,
                name: string("name")?,
                daemon: get("daemon")?.as_bool().map_err(|_| bad("daemon"))?,
                parent: ParentInfo {
                    pid: get("parent_pid")?.as_int().map_err(|_| bad("parent_pid"))? as i32,
                    name: string("parent_name")?,
                },
                method: StartMethod::parse(&string("method")?).ok_or_else(|| bad("method"))?,
            },
            script,
            argv: strings(get("argv")?, "argv")?,
            forkserver: if fs.is_unit() { None } else { Some(fs.into_string().map_err(|_| bad("forkserver"))?) },
            call: get("call")?.try_cast::<rhai::Blob>().ok_or_else(|| bad("call"))?,
        })
    }
}
