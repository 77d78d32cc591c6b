//! The handshake every connection to a manager's server runs before its first request:
//! each side proves it knows the manager's key, and the key never crosses the wire.
//!
//! 1. The server sends [`Hello`]: a fresh random nonce.
//! 2. The client sends [`Answer`]: HMAC-SHA256(key, "client" ‖ the server's nonce), its own
//!    fresh nonce, and who it is (pid, host: for messages such as a lock's dead owner).
//! 3. The server checks the MAC (in constant time) and sends [`Verdict::Welcome`] with
//!    HMAC-SHA256(key, "server" ‖ the client's nonce), which the client checks in turn, or
//!    [`Verdict::Denied`] and closes the connection.
//!
//! So a client with the wrong key gets `AuthenticationError` and learns nothing about the
//! key; a server that does not know the key (an impostor at the address) is refused by the
//! client. The two directions use different labels, so one side's MAC is never an answer
//! to the other's challenge. This is Python's `deliver_challenge` / `answer_challenge`
//! with SHA-256, in three messages instead of four.

use hmac::{Hmac, Mac};
use rhai_mp_core::prelude::MpResult;
use rhai_mp_core::wire::{malformed, Portable, Reader, Writer};
use sha2::Sha256;

/// The length of a nonce.
pub(crate) const NONCE: usize = 32;
/// The first bytes of a server's hello: a peer that is not a manager's server is told apart.
const MAGIC: &str = "rhai-mp manager 1";
const CLIENT: &[u8] = b"client";
const SERVER: &[u8] = b"server";

/// The server's challenge.
#[derive(Debug)]
pub(crate) struct Hello {
    pub nonce: Vec<u8>,
}

/// The client's answer, and its own challenge.
#[derive(Debug)]
pub(crate) struct Answer {
    pub mac: Vec<u8>,
    pub nonce: Vec<u8>,
    /// The client's pid.
    pub pid: u32,
    /// The client's host name.
    pub host: String,
}

/// The server's decision.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The key is right; here is the server's proof that it knows it too.
    Welcome(Vec<u8>),
    /// The key is wrong.
    Denied,
}

/// A fresh nonce.
pub(crate) fn nonce() -> MpResult<Vec<u8>> {
    rhai_mp_core::base::sys::random_bytes(NONCE).map_err(|e| rhai_mp_core::prelude::MpError::os("a random nonce", e))
}

fn keyed(key: &[u8], label: &[u8], nonce: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(label);
    mac.update(nonce);
    mac
}

impl Hello {
    /// The client's answer to this hello.
    pub(crate) fn answer(&self, key: &[u8]) -> MpResult<Answer> {
        Ok(Answer {
            mac: keyed(key, CLIENT, &self.nonce).finalize().into_bytes().to_vec(),
            nonce: nonce()?,
            pid: rhai_mp_core::base::sys::pid(),
            host: nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
        })
    }
}

impl Answer {
    /// The server's verdict on this answer to `hello`.
    pub(crate) fn verdict(&self, key: &[u8], hello: &Hello) -> Verdict {
        if keyed(key, CLIENT, &hello.nonce).verify_slice(&self.mac).is_err() {
            return Verdict::Denied;
        }
        Verdict::Welcome(keyed(key, SERVER, &self.nonce).finalize().into_bytes().to_vec())
    }
}

impl Verdict {
    /// Whether the server proved it knows the key (answering `answer`'s challenge).
    pub(crate) fn proves(&self, key: &[u8], answer: &Answer) -> bool {
        match self {
            Verdict::Welcome(mac) => keyed(key, SERVER, &answer.nonce).verify_slice(mac).is_ok(),
            Verdict::Denied => false,
        }
    }
}

fn read_nonce(r: &mut Reader) -> MpResult<Vec<u8>> {
    let n = r.bytes()?;
    if n.len() != NONCE {
        return Err(malformed("a handshake nonce"));
    }
    Ok(n.to_vec())
}

impl Portable for Hello {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.str(MAGIC);
        w.bytes(&self.nonce);
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        if r.str()? != MAGIC {
            return Err(malformed("a manager's hello"));
        }
        Ok(Hello { nonce: read_nonce(r)? })
    }
}

impl Portable for Answer {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.bytes(&self.mac);
        w.bytes(&self.nonce);
        w.u32(self.pid);
        w.str(&self.host);
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        let mac = r.bytes()?;
        if mac.len() > 64 {
            return Err(malformed("a handshake MAC"));
        }
        let mac = mac.to_vec();
        let nonce = read_nonce(r)?;
        let pid = r.u32()?;
        let host = r.str()?;
        if host.len() > 255 {
            return Err(malformed("a host name"));
        }
        Ok(Answer { mac, nonce, pid, host: host.to_string() })
    }
}

impl Portable for Verdict {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        match self {
            Verdict::Welcome(mac) => {
                w.u8(1);
                w.bytes(mac);
            }
            Verdict::Denied => w.u8(0),
        }
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        Ok(match r.u8()? {
            1 => {
                let mac = r.bytes()?;
                if mac.len() > 64 {
                    return Err(malformed("a handshake MAC"));
                }
                Verdict::Welcome(mac.to_vec())
            }
            0 => Verdict::Denied,
            t => return Err(malformed(&format!("a handshake verdict {t}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_key_passes_both_ways() {
        let hello = Hello { nonce: nonce().unwrap() };
        let answer = hello.answer(b"key").unwrap();
        let verdict = answer.verdict(b"key", &hello);
        assert!(matches!(verdict, Verdict::Welcome(_)));
        assert!(verdict.proves(b"key", &answer));
        // A server with another key does not prove anything.
        let impostor = Answer { ..hello.answer(b"key").unwrap() };
        assert!(!Verdict::Welcome(vec![0; 32]).proves(b"key", &impostor));
    }

    #[test]
    fn a_wrong_key_is_denied() {
        let hello = Hello { nonce: nonce().unwrap() };
        let answer = hello.answer(b"wrong").unwrap();
        assert!(matches!(answer.verdict(b"key", &hello), Verdict::Denied));
        // An empty key differs from any other.
        assert!(matches!(hello.answer(b"").unwrap().verdict(b"key", &hello), Verdict::Denied));
    }

    fn samples() -> Vec<Vec<u8>> {
        use rhai_mp_core::wire::encode_message;
        let hello = Hello { nonce: nonce().unwrap() };
        let answer = hello.answer(b"key").unwrap();
        let verdict = answer.verdict(b"key", &hello);
        vec![
            encode_message(&hello).unwrap().bytes,
            encode_message(&answer).unwrap().bytes,
            encode_message(&verdict).unwrap().bytes,
            encode_message(&Verdict::Denied).unwrap().bytes,
        ]
    }

    /// Writes the samples as the fuzz target's seeds when `RHAI_MP_FUZZ_SEEDS` names a
    /// directory (how `runtime/fuzz/corpus/manager_handshake/` was made).
    #[test]
    fn fuzz_seeds() {
        let Some(dir) = std::env::var_os("RHAI_MP_FUZZ_SEEDS") else { return };
        let dir = std::path::Path::new(&dir).join("manager_handshake");
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in samples().iter().enumerate() {
            std::fs::write(dir.join(format!("handshake-{i}")), seed).unwrap();
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..160)) {
            let _ = crate::manager::decode_handshake(&bytes);
        }

        #[test]
        fn mutated_messages_never_panic(
            which in 0usize..4,
            flips in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..6),
            cut in proptest::prelude::any::<usize>(),
        ) {
            let mut bytes = samples().swap_remove(which);
            for (i, b) in flips {
                let n = bytes.len();
                bytes[i % n] = b;
            }
            let _ = crate::manager::decode_handshake(&bytes);
            bytes.truncate(cut % (bytes.len() + 1));
            let _ = crate::manager::decode_handshake(&bytes);
        }
    }

    #[test]
    fn a_reflected_mac_is_refused() {
        // The server's proof for nonce N is not the client's answer for N.
        let hello = Hello { nonce: nonce().unwrap() };
        let server_mac = keyed(b"key", SERVER, &hello.nonce).finalize().into_bytes().to_vec();
        let forged = Answer { mac: server_mac, nonce: nonce().unwrap(), pid: 1, host: String::new() };
        assert!(matches!(forged.verdict(b"key", &hello), Verdict::Denied));
    }
}
