//! The authentication handshake of `multiprocessing.connection`, as a state machine fed one
//! frame at a time (so a listener can run many at once without blocking on any).
//!
//! With an `authkey`, each side proves to the other that it knows the key: the listener
//! *delivers* a challenge, then *answers* the client's; the client answers first, then
//! delivers. To deliver: send `#CHALLENGE#` + a message, read the peer's digest, send
//! `#WELCOME#` if it is the HMAC of the message under the key, else `#FAILURE#`. To answer:
//! read the challenge, send the HMAC, read the verdict.
//!
//! The challenge rhai-mp sends is Python 3.12's: `{sha256}` + 40 random bytes. A 3.12+ peer
//! answers `{sha256}` + HMAC-SHA256 over the whole message; a 3.11 peer (which knows only
//! HMAC-MD5) answers a bare 16-byte HMAC-MD5 over it, which is accepted too, as 3.12 does.
//! A challenge rhai-mp answers is either 3.11's (20 bytes, no prefix: a bare HMAC-MD5) or
//! names its digest (`{sha256}`, `{md5}`, `{sha384}`: that HMAC, prefixed). The MACs are
//! RustCrypto's (`hmac`, `sha2`, `md-5`), compared in constant time.

use hmac::{Hmac, Mac};
use rhai_mp_core::base::sys;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{MpError, MpResult};

pub(crate) const CHALLENGE: &[u8] = b"#CHALLENGE#";
pub(crate) const WELCOME: &[u8] = b"#WELCOME#";
pub(crate) const FAILURE: &[u8] = b"#FAILURE#";
/// The random part of a challenge (Python's `MESSAGE_LENGTH`).
const MESSAGE_LENGTH: usize = 40;
/// A handshake frame is at most this long (Python reads them with `recv_bytes(256)`).
pub(crate) const MAX_FRAME: u64 = 256;
/// Python 3.11's challenge (and a bare MD5 answer) have these lengths and no prefix.
const LEGACY_CHALLENGE: usize = 20;
const MD5_LEN: usize = 16;

/// A digest a challenge or an answer names.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Digest {
    Md5,
    Sha256,
    Sha384,
}

fn hmac_of<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> M {
    let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(message);
    m
}

impl Digest {
    fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
        }
    }

    fn mac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        match self {
            Digest::Md5 => hmac_of::<Hmac<md5::Md5>>(key, message).finalize().into_bytes().to_vec(),
            Digest::Sha256 => hmac_of::<Hmac<sha2::Sha256>>(key, message).finalize().into_bytes().to_vec(),
            Digest::Sha384 => hmac_of::<Hmac<sha2::Sha384>>(key, message).finalize().into_bytes().to_vec(),
        }
    }

    fn verify(self, key: &[u8], message: &[u8], mac: &[u8]) -> bool {
        match self {
            Digest::Md5 => hmac_of::<Hmac<md5::Md5>>(key, message).verify_slice(mac).is_ok(),
            Digest::Sha256 => hmac_of::<Hmac<sha2::Sha256>>(key, message).verify_slice(mac).is_ok(),
            Digest::Sha384 => hmac_of::<Hmac<sha2::Sha384>>(key, message).verify_slice(mac).is_ok(),
        }
    }
}

/// Splits a message into the digest it names and the rest (Python's
/// `_get_digest_name_and_payload`): one of 16 or 20 bytes is the legacy form (MD5, no prefix).
fn digest_and_payload(message: &[u8]) -> MpResult<(Option<Digest>, &[u8])> {
    if message.len() == LEGACY_CHALLENGE || message.len() == MD5_LEN {
        return Ok((None, message));
    }
    if message.first() == Some(&b'{') {
        if let Some(close) = message.iter().take(12).position(|&b| b == b'}') {
            let name = &message[1..close];
            let digest = match name {
                b"md5" => Some(Digest::Md5),
                b"sha256" => Some(Digest::Sha256),
                b"sha384" => Some(Digest::Sha384),
                _ => None,
            };
            return match digest {
                Some(d) => Ok((Some(d), &message[close + 1..])),
                None => Err(mp_err!(
                    AuthenticationError,
                    "the peer's handshake names the digest {:?}, which rhai-mp does not use (it uses sha256, md5 and \
                     sha384)",
                    String::from_utf8_lossy(name)
                )),
            };
        }
    }
    Err(mp_err!(
        AuthenticationError,
        "the peer's handshake message ({} bytes) has neither a {{digest}} prefix nor a legacy length",
        message.len()
    ))
}

#[derive(Debug)]
enum State {
    /// Sent a challenge (`message`); waiting for the digest. Then answer the peer's (a
    /// listener), or be done (a client).
    Response {
        message: Vec<u8>,
        then_answer: bool,
    },
    /// Waiting for the peer's challenge.
    Challenge {
        then_deliver: bool,
    },
    /// Answered; waiting for `#WELCOME#`.
    Verdict {
        then_deliver: bool,
    },
    Done,
}

/// What a step of the handshake gives.
#[derive(Debug)]
pub(crate) struct Step {
    /// Frames to send now, in order (even when the handshake failed: `#FAILURE#`).
    pub send: Vec<Vec<u8>>,
    /// `Ok(true)`: the handshake is over and both keys agree; `Ok(false)`: go on.
    pub result: MpResult<bool>,
}

/// One side's handshake.
#[derive(Debug)]
pub(crate) struct Handshake {
    key: Vec<u8>,
    state: State,
}

fn challenge() -> MpResult<(Vec<u8>, Vec<u8>)> {
    let random = sys::random_bytes(MESSAGE_LENGTH).map_err(|e| MpError::os("a random challenge", e))?;
    let mut message = b"{sha256}".to_vec();
    message.extend_from_slice(&random);
    let mut frame = CHALLENGE.to_vec();
    frame.extend_from_slice(&message);
    Ok((message, frame))
}

impl Handshake {
    /// The listener's side: delivers a challenge (the frame returned, to send first), then
    /// answers the client's.
    pub(crate) fn listener(key: &[u8]) -> MpResult<(Handshake, Vec<u8>)> {
        let (message, frame) = challenge()?;
        Ok((Handshake { key: key.to_vec(), state: State::Response { message, then_answer: true } }, frame))
    }

    /// The client's side: answers the listener's challenge, then delivers its own.
    pub(crate) fn client(key: &[u8]) -> Handshake {
        Handshake { key: key.to_vec(), state: State::Challenge { then_deliver: true } }
    }

    /// Takes the peer's next frame.
    pub(crate) fn on_frame(&mut self, frame: &[u8]) -> Step {
        let state = std::mem::replace(&mut self.state, State::Done);
        let mut send = Vec::new();
        let result = self.step(state, frame, &mut send);
        Step { send, result }
    }

    fn step(&mut self, state: State, frame: &[u8], send: &mut Vec<Vec<u8>>) -> MpResult<bool> {
        match state {
            State::Response { message, then_answer } => {
                let verdict = digest_and_payload(frame).and_then(|(digest, mac)| {
                    let digest = digest.unwrap_or(Digest::Md5);
                    if digest.verify(&self.key, &message, mac) {
                        Ok(())
                    } else {
                        Err(mp_err!(
                            AuthenticationError,
                            "digest received was wrong: the peer's answer to the authentication challenge ({}) does \
                             not match this authkey",
                            digest.name()
                        ))
                    }
                });
                match verdict {
                    Err(e) => {
                        send.push(FAILURE.to_vec());
                        Err(e)
                    }
                    Ok(()) => {
                        send.push(WELCOME.to_vec());
                        if then_answer {
                            self.state = State::Challenge { then_deliver: false };
                            Ok(false)
                        } else {
                            Ok(true)
                        }
                    }
                }
            }
            State::Challenge { then_deliver } => {
                let Some(message) = frame.strip_prefix(CHALLENGE) else {
                    return Err(mp_err!(
                        AuthenticationError,
                        "protocol error: expected the peer's authentication challenge, got {} bytes that are not one \
                         (does the other side have an authkey?)",
                        frame.len()
                    ));
                };
                if message.len() < LEGACY_CHALLENGE {
                    return Err(mp_err!(AuthenticationError, "challenge too short: {} bytes", message.len()));
                }
                let answer = match digest_and_payload(message)?.0 {
                    None => Digest::Md5.mac(&self.key, message),
                    Some(d) => {
                        let mut a = format!("{{{}}}", d.name()).into_bytes();
                        a.extend(d.mac(&self.key, message));
                        a
                    }
                };
                send.push(answer);
                self.state = State::Verdict { then_deliver };
                Ok(false)
            }
            State::Verdict { then_deliver } => {
                if frame != WELCOME {
                    return Err(mp_err!(
                        AuthenticationError,
                        "digest sent was rejected: the peer does not accept this authkey"
                    ));
                }
                if !then_deliver {
                    return Ok(true);
                }
                let (message, frame) = challenge()?;
                send.push(frame);
                self.state = State::Response { message, then_answer: false };
                Ok(false)
            }
            State::Done => Err(mp_err!(AuthenticationError, "the handshake is over")),
        }
    }
}

/// Feeds `bytes`, cut into frames by its first bytes, to both sides' handshakes; never
/// panics (the fuzz target's body).
pub(crate) fn feed(bytes: &[u8]) -> usize {
    let mut steps = 0;
    for client in [false, true] {
        let mut h = if client { Handshake::client(b"key") } else { Handshake::listener(b"key").unwrap().0 };
        let mut rest = bytes;
        while let Some((&n, tail)) = rest.split_first() {
            let n = (n as usize).min(tail.len());
            let (frame, more) = tail.split_at(n);
            rest = more;
            steps += 1;
            if h.on_frame(frame).result.is_err() {
                break;
            }
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhai_mp_core::prelude::ErrorKind;

    /// Runs a listener's and a client's handshake against each other; returns each side's
    /// outcome.
    fn run(listener_key: &[u8], client_key: &[u8]) -> (MpResult<bool>, MpResult<bool>) {
        let (mut l, first) = Handshake::listener(listener_key).unwrap();
        let mut c = Handshake::client(client_key);
        let mut to_client = vec![first];
        let mut to_listener: Vec<Vec<u8>> = Vec::new();
        let (mut lr, mut cr) = (Ok(false), Ok(false));
        for _ in 0..10 {
            for f in std::mem::take(&mut to_client) {
                if cr.as_ref().is_ok_and(|d| !d) {
                    let s = c.on_frame(&f);
                    to_listener.extend(s.send);
                    cr = s.result;
                }
            }
            for f in std::mem::take(&mut to_listener) {
                if lr.as_ref().is_ok_and(|d| !d) {
                    let s = l.on_frame(&f);
                    to_client.extend(s.send);
                    lr = s.result;
                }
            }
        }
        (lr, cr)
    }

    #[test]
    fn the_same_key_passes_both_ways() {
        let (l, c) = run(b"key", b"key");
        assert!(l.unwrap() && c.unwrap());
    }

    #[test]
    fn a_wrong_key_fails_both_sides() {
        let (l, c) = run(b"key", b"other");
        assert_eq!(l.unwrap_err().kind, ErrorKind::AuthenticationError);
        assert_eq!(c.unwrap_err().kind, ErrorKind::AuthenticationError);
    }

    #[test]
    fn python_311_answers_and_challenges_are_understood() {
        // A 3.11 client answers the listener's challenge with a bare HMAC-MD5.
        let (mut l, first) = Handshake::listener(b"k").unwrap();
        let message = &first[CHALLENGE.len()..];
        let s = l.on_frame(&Digest::Md5.mac(b"k", message));
        assert_eq!(s.send, vec![WELCOME.to_vec()]);
        assert!(!s.result.unwrap());
        // A 3.11 listener's challenge: 20 bytes, no prefix; the answer is a bare MD5.
        let mut c = Handshake::client(b"k");
        let mut legacy = CHALLENGE.to_vec();
        legacy.extend_from_slice(&[7; 20]);
        let s = c.on_frame(&legacy);
        assert_eq!(s.send, vec![Digest::Md5.mac(b"k", &[7; 20])]);
    }

    #[test]
    fn garbage_is_an_authentication_error() {
        let mut c = Handshake::client(b"k");
        assert!(c.on_frame(b"\x80\x04N.").result.is_err());
        let mut c = Handshake::client(b"k");
        assert!(c.on_frame(b"#CHALLENGE#{sha3_256}0123456789012345678901234567890123456789").result.is_err());
        let (mut l, _) = Handshake::listener(b"k").unwrap();
        let s = l.on_frame(b"nonsense of some length");
        assert_eq!(s.send, vec![FAILURE.to_vec()]);
        assert!(s.result.is_err());
    }

    /// Writes seeds for the fuzz target when `RHAI_MP_FUZZ_SEEDS` names a directory (how
    /// `runtime/fuzz/corpus/listener_handshake/` was made): real frames of both sides, each
    /// after its length byte.
    #[test]
    fn fuzz_seeds() {
        let Some(dir) = std::env::var_os("RHAI_MP_FUZZ_SEEDS") else { return };
        let dir = std::path::Path::new(&dir).join("listener_handshake");
        std::fs::create_dir_all(&dir).unwrap();
        let (mut l, first) = Handshake::listener(b"key").unwrap();
        let mut c = Handshake::client(b"key");
        let answer = c.on_frame(&first).send;
        let after = l.on_frame(&answer[0]).send;
        let cut = |frames: &[Vec<u8>]| -> Vec<u8> {
            frames.iter().flat_map(|f| std::iter::once(f.len() as u8).chain(f.iter().copied())).collect()
        };
        let mut legacy = CHALLENGE.to_vec();
        legacy.extend_from_slice(&[3; 20]);
        let seeds = [cut(&[first.clone(), WELCOME.to_vec()]), cut(&answer), cut(&after), cut(&[legacy])];
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("handshake-{i}")), seed).unwrap();
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        #[test]
        fn any_frames_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            feed(&bytes);
        }
    }
}
