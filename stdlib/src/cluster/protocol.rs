//! The messages between rank 0 and the worker ranks of an MPI job: one typed protocol for
//! the one connection each worker rank keeps to rank 0. Frames are TCP frames
//! (`rhai_mp_core::transport::tcp`); values inside are encoded for another machine, so
//! nothing in them refers to this host's memory.
//!
//! - rank 0 → a worker: [`ToRank`] (a pool task, a pool's initializer, a process's call,
//!   "stop what this owner asked for", "the job is over");
//! - a worker → rank 0: [`FromRank`] (it joined, a task's result, a process ended).
//!
//! An *owner* is a pool or a process on rank 0; its number picks out its work.

use rhai_mp_core::prelude::MpResult;
use rhai_mp_core::tree::state::Script;
use rhai_mp_core::wire::{malformed, Portable, Reader, Writer};

/// What rank 0 tells every rank when the job starts (through MPI, before any script runs):
/// where to reach it, the key that proves a connection belongs to the job, and the script.
#[derive(Debug, Clone)]
pub struct Invitation {
    /// Rank 0's addresses (`ip:port`), tried in order.
    pub addresses: Vec<String>,
    /// The job's key (random; it travels through MPI only).
    pub key: Vec<u8>,
    /// The script every rank runs the top level of.
    pub script: Script,
    /// `ARGV`.
    pub argv: Vec<String>,
}

impl Portable for Invitation {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.put(&self.addresses)?;
        w.bytes(&self.key);
        w.put(&self.script)?;
        w.put(&self.argv)
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(Invitation { addresses: r.get()?, key: r.bytes()?.to_vec(), script: r.get()?, argv: r.get()? })
    }
}

/// What rank 0 asks of a worker rank.
#[derive(Debug, PartialEq)]
pub(crate) enum ToRank {
    /// Run a pool task (its bytes are the pool's task format, see `pool/task.rs`).
    Task { owner: u64, task: Vec<u8> },
    /// Run a pool's initializer (an encoded `[function, args]`) before its tasks.
    Init { owner: u64, call: Vec<u8> },
    /// Run a process's call (see `Call::encode_script_remote`) under its name.
    Run { owner: u64, name: String, call: Vec<u8> },
    /// Stop the owner's work: drop its queued tasks, stop its running call as signal `sig`.
    Abort { owner: u64, sig: i32 },
    /// The owner (a pool) cancelled its call `job`: skip its tasks, stop the running one.
    Cancel { owner: u64, job: u64 },
    /// The job is over: leave. `finalize` says whether every rank is still there, so that
    /// `MPI_Finalize` (which waits for all of them) will return; when one was lost, a rank
    /// leaves without it.
    Shutdown { finalize: bool },
}

/// What a worker rank tells rank 0.
#[derive(Debug, PartialEq)]
pub(crate) enum FromRank {
    /// The first message: its rank, and whether the script's top level ran (`code` 0) or
    /// failed (`EXIT_GUARD`, `EXIT_BOOT_FAILED`).
    Joined { rank: u32, code: i32 },
    /// A pool task's result (the pool's result format), or an initializer's failure.
    Done { owner: u64, result: Vec<u8> },
    /// A process's call ended with this exit code.
    Exited { owner: u64, code: i32 },
}

impl Portable for ToRank {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        match self {
            ToRank::Task { owner, task } => {
                w.u8(0);
                w.u64(*owner);
                w.bytes(task);
            }
            ToRank::Init { owner, call } => {
                w.u8(1);
                w.u64(*owner);
                w.bytes(call);
            }
            ToRank::Run { owner, name, call } => {
                w.u8(2);
                w.u64(*owner);
                w.str(name);
                w.bytes(call);
            }
            ToRank::Abort { owner, sig } => {
                w.u8(3);
                w.u64(*owner);
                w.i64(*sig as i64);
            }
            ToRank::Shutdown { finalize } => {
                w.u8(4);
                w.u8(u8::from(*finalize));
            }
            ToRank::Cancel { owner, job } => {
                w.u8(5);
                w.u64(*owner);
                w.u64(*job);
            }
        }
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(match r.u8()? {
            0 => ToRank::Task { owner: r.u64()?, task: r.bytes()?.to_vec() },
            1 => ToRank::Init { owner: r.u64()?, call: r.bytes()?.to_vec() },
            2 => ToRank::Run { owner: r.u64()?, name: r.string()?, call: r.bytes()?.to_vec() },
            3 => ToRank::Abort {
                owner: r.u64()?,
                sig: i32::try_from(r.i64()?).map_err(|_| malformed("a signal number"))?,
            },
            4 => ToRank::Shutdown { finalize: r.u8()? != 0 },
            5 => ToRank::Cancel { owner: r.u64()?, job: r.u64()? },
            t => return Err(malformed(&format!("rank request kind {t}"))),
        })
    }
}

impl Portable for FromRank {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        match self {
            FromRank::Joined { rank, code } => {
                w.u8(0);
                w.u32(*rank);
                w.i64(*code as i64);
            }
            FromRank::Done { owner, result } => {
                w.u8(1);
                w.u64(*owner);
                w.bytes(result);
            }
            FromRank::Exited { owner, code } => {
                w.u8(2);
                w.u64(*owner);
                w.i64(*code as i64);
            }
        }
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        let code = |r: &mut Reader| i32::try_from(r.i64()?).map_err(|_| malformed("an exit code"));
        Ok(match r.u8()? {
            0 => FromRank::Joined { rank: r.u32()?, code: code(r)? },
            1 => FromRank::Done { owner: r.u64()?, result: r.bytes()?.to_vec() },
            2 => FromRank::Exited { owner: r.u64()?, code: code(r)? },
            t => return Err(malformed(&format!("rank message kind {t}"))),
        })
    }
}

/// One message as a TCP frame.
pub(crate) fn frame<T: Portable>(msg: &T) -> MpResult<Vec<u8>> {
    let bytes = rhai_mp_core::wire::encode_remote(msg)?;
    rhai_mp_core::transport::tcp::frame(&bytes)
        .map_err(|e| rhai_mp_core::prelude::MpError::os("a message to a rank", e))
}

/// Decodes `bytes` as each message type (for the fuzz target): how many decoded.
#[doc(hidden)]
pub(crate) fn decode_all(bytes: &[u8]) -> usize {
    use rhai_mp_core::wire::decode_message;
    decode_message::<ToRank>(bytes, Vec::new()).is_ok() as usize
        + decode_message::<FromRank>(bytes, Vec::new()).is_ok() as usize
        + decode_message::<Invitation>(bytes, Vec::new()).is_ok() as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhai_mp_core::wire::decode_message;

    #[test]
    fn messages_round_trip() {
        for m in [
            ToRank::Task { owner: 1, task: vec![1, 2] },
            ToRank::Init { owner: 2, call: vec![] },
            ToRank::Run { owner: 3, name: "Process-1".into(), call: vec![9] },
            ToRank::Abort { owner: 4, sig: 15 },
            ToRank::Shutdown { finalize: true },
            ToRank::Shutdown { finalize: false },
            ToRank::Cancel { owner: 4, job: 9 },
        ] {
            let b = rhai_mp_core::wire::encode_remote(&m).unwrap();
            assert_eq!(decode_message::<ToRank>(&b, Vec::new()).unwrap(), m);
        }
        for m in [
            FromRank::Joined { rank: 2, code: 0 },
            FromRank::Done { owner: 1, result: vec![3] },
            FromRank::Exited { owner: 5, code: -15 },
        ] {
            let b = rhai_mp_core::wire::encode_remote(&m).unwrap();
            assert_eq!(decode_message::<FromRank>(&b, Vec::new()).unwrap(), m);
        }
    }

    /// Seeds for the fuzz target `rank_messages` (see `runtime/fuzz/README.md`).
    #[test]
    fn fuzz_seeds() {
        let Some(dir) = std::env::var_os("RHAI_MP_FUZZ_SEEDS") else { return };
        let dir = std::path::Path::new(&dir).join("rank_messages");
        std::fs::create_dir_all(&dir).unwrap();
        let seeds = [
            rhai_mp_core::wire::encode_remote(&ToRank::Task { owner: 1, task: vec![1; 40] }).unwrap(),
            rhai_mp_core::wire::encode_remote(&ToRank::Abort { owner: 1, sig: 15 }).unwrap(),
            rhai_mp_core::wire::encode_remote(&ToRank::Shutdown { finalize: false }).unwrap(),
            rhai_mp_core::wire::encode_remote(&FromRank::Joined { rank: 2, code: 0 }).unwrap(),
            rhai_mp_core::wire::encode_remote(&Invitation {
                addresses: vec!["10.0.0.1:5000".into()],
                key: vec![7; 32],
                script: rhai_mp_core::tree::state::Script::Source { name: "x.rhai".into(), text: "print(1)".into() },
                argv: vec!["a".into()],
            })
            .unwrap(),
        ];
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("rank-{i}")), s).unwrap();
        }
    }

    proptest::proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = decode_message::<ToRank>(&bytes, Vec::new());
            let _ = decode_message::<FromRank>(&bytes, Vec::new());
            let _ = decode_message::<Invitation>(&bytes, Vec::new());
        }
    }
}
