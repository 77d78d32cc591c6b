//! One call on a pool (`apply_async`, `map_async`, `imap` …) as the parent tracks it: which
//! chunks were sent and came back, the outcome, the callbacks, and, for `imap`, the items
//! waiting to be handed out and the rest of the input still to be sent.

use rhai::{Dynamic, EvalAltResult, FnPtr, INT};
use rhai_mp_core::prelude::MpError;
use rhai_mp_core::run::remote::RemoteError;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Why a task failed: an error from the worker, or one the parent saw (a lost worker).
#[derive(Debug, Clone)]
pub enum Failure {
    Remote(RemoteError),
    Local(MpError),
}

impl Failure {
    /// The error to throw.
    pub fn to_eval(&self) -> Box<EvalAltResult> {
        match self {
            Failure::Remote(r) => r.to_eval(),
            Failure::Local(e) => e.clone().into(),
        }
    }

    /// The value an `error_callback` receives (what `catch` would).
    pub fn value(&self) -> Dynamic {
        match self {
            Failure::Remote(r) => r.value.clone(),
            Failure::Local(e) => e.to_map().into(),
        }
    }
}

/// What came back for a chunk: one value per item, and the items that threw (their index
/// in the chunk and the error; their value is `()`).
#[derive(Debug, Clone, Default)]
pub struct ChunkResult {
    pub values: Vec<Dynamic>,
    pub errors: Vec<(usize, Failure)>,
}

/// A chunk's outcome: its results, or a failure of the whole chunk (its worker died, it
/// could not be sent …).
pub(super) type ChunkOutcome = Result<ChunkResult, Failure>;

/// What the call does with results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// One task; the outcome is its value.
    Apply,
    /// Chunks; the outcome is all their results, in order.
    Map,
    /// Chunks whose items are handed out one by one, in order or as they come.
    Imap { ordered: bool },
}

/// The input still to be cut into chunks.
#[derive(Debug)]
pub enum Source {
    Items(std::vec::IntoIter<Dynamic>),
    /// `next..end`, end excluded.
    Range {
        next: INT,
        end: INT,
    },
}

impl Source {
    /// How many items are left, if known.
    pub fn len(&self) -> u64 {
        match self {
            Source::Items(it) => it.len() as u64,
            Source::Range { next, end } => (*end as i128 - *next as i128).max(0) as u64,
        }
    }
}

#[derive(Debug)]
pub struct Job {
    pub id: u64,
    pub kind: JobKind,
    /// Chunks sent so far; `all_sent` once the input is used up.
    pub sent: u64,
    pub all_sent: bool,
    /// Which chunks came back (a chunk can come back twice in a rare race; the second is
    /// dropped).
    pub back: Vec<bool>,
    pub back_count: u64,
    /// Map: each chunk's results.
    pub chunks: Vec<Option<Vec<Dynamic>>>,
    /// Apply / Map: the outcome, once known.
    pub outcome: Option<Result<Dynamic, Failure>>,
    pub callback: Option<FnPtr>,
    pub error_callback: Option<FnPtr>,
    /// Imap: chunks that came back but cannot be handed out yet (ordered), by chunk.
    pub waiting: BTreeMap<u64, ChunkOutcome>,
    /// How many items each chunk sent holds.
    pub lens: Vec<u64>,
    pub next_chunk: u64,
    /// Imap: items ready to hand out.
    pub out: VecDeque<Result<Dynamic, Failure>>,
    /// The input still to send (imap sends it as results are read).
    pub source: Option<Source>,
    pub chunksize: u64,
    /// The index of the next item to send.
    pub next_item: u64,
    /// All the items, when known (for a progress bar).
    pub total: Option<u64>,
    /// Each item's time limit in nanoseconds (0: none).
    pub timeout_ns: u64,
    /// Chunks send each item's result as it is done (a bounded call), so that a killed
    /// worker loses none of them and the rest of its chunk can run elsewhere.
    pub stream: bool,
    /// The index of each chunk's first item.
    pub firsts: Vec<u64>,
    /// Streamed chunks: the task kind and payload, to send the rest again after a kill.
    pub keep: HashMap<u64, (super::task::Kind, Dynamic)>,
    /// Streamed chunks: the items back so far.
    pub parts: HashMap<u64, Vec<Option<Result<Dynamic, Failure>>>>,
    /// Whether the call was cancelled.
    pub cancelled: bool,
    /// How many chunks may go ahead of the results read (imap; `None`: the pool's).
    pub ahead_limit: Option<u64>,
    /// A future's done callbacks (they get the future), run once the call is done.
    pub done_callbacks: Vec<FnPtr>,
    /// Imap: the error its input iterator gave midway, handed out after the last item.
    pub tail: Option<Box<EvalAltResult>>,
}

impl Job {
    pub fn new(id: u64, kind: JobKind) -> Job {
        Job {
            id,
            kind,
            sent: 0,
            all_sent: false,
            back: Vec::new(),
            back_count: 0,
            chunks: Vec::new(),
            outcome: None,
            callback: None,
            error_callback: None,
            waiting: BTreeMap::new(),
            lens: Vec::new(),
            next_chunk: 0,
            out: VecDeque::new(),
            source: None,
            chunksize: 1,
            next_item: 0,
            total: None,
            timeout_ns: 0,
            stream: false,
            firsts: Vec::new(),
            keep: HashMap::new(),
            parts: HashMap::new(),
            cancelled: false,
            ahead_limit: None,
            done_callbacks: Vec::new(),
            tail: None,
        }
    }

    /// Items of a streamed chunk came back, from `offset` on. Returns the callback to run,
    /// if the chunk is now complete and that completes the call. An item that already has
    /// its outcome keeps it (nothing completes twice).
    pub fn part(&mut self, chunk: u64, offset: u64, result: ChunkOutcome) -> Option<(FnPtr, Dynamic)> {
        let c = chunk as usize;
        if c >= self.sent as usize || self.back.get(c).copied().unwrap_or(false) {
            return None;
        }
        let len = self.lens.get(c).copied().unwrap_or(1) as usize;
        let slots = self.parts.entry(chunk).or_insert_with(|| vec![None; len]);
        match result {
            Ok(ChunkResult { values, mut errors }) => {
                errors.sort_by_key(|e| std::cmp::Reverse(e.0));
                for (i, v) in values.into_iter().enumerate() {
                    let r = if errors.last().is_some_and(|e| e.0 == i) { Err(errors.pop().unwrap().1) } else { Ok(v) };
                    if let Some(slot @ None) = slots.get_mut(offset as usize + i) {
                        *slot = Some(r);
                    }
                }
            }
            Err(f) => {
                for slot in slots.iter_mut().skip(offset as usize).filter(|s| s.is_none()) {
                    *slot = Some(Err(f.clone()));
                }
            }
        }
        if slots.iter().any(Option::is_none) {
            return None;
        }
        let mut whole = ChunkResult::default();
        for (i, r) in self.parts.remove(&chunk).unwrap_or_default().into_iter().flatten().enumerate() {
            match r {
                Ok(v) => whole.values.push(v),
                Err(f) => {
                    whole.values.push(Dynamic::UNIT);
                    whole.errors.push((i, f));
                }
            }
        }
        self.keep.remove(&chunk);
        self.chunk_back(chunk, Ok(whole))
    }

    /// A streamed chunk's first item without an outcome (`None`: all have one).
    pub fn first_missing(&self, chunk: u64) -> Option<u64> {
        if self.back.get(chunk as usize).copied().unwrap_or(false) {
            return None;
        }
        match self.parts.get(&chunk) {
            None => Some(0),
            Some(slots) => slots.iter().position(Option::is_none).map(|i| i as u64),
        }
    }

    /// Sent chunks that have not come back.
    pub fn in_flight(&self) -> u64 {
        self.sent - self.back_count
    }

    /// Chunks sent and not yet read by the script: in flight, or back and waiting (imap's
    /// bound on how much of the input goes ahead).
    pub fn ahead(&self) -> u64 {
        let unread = self.waiting.len() as u64 + (self.out.len() as u64).div_ceil(self.chunksize.max(1));
        self.in_flight() + unread
    }

    /// Stops sending input (nobody reads this imap any more).
    pub fn abandon(&mut self) {
        self.source = None;
        self.all_sent = true;
    }

    /// Every result is in (imap: though not necessarily handed out).
    pub fn complete(&self) -> bool {
        match self.kind {
            JobKind::Apply | JobKind::Map => self.outcome.is_some(),
            JobKind::Imap { .. } => self.all_sent && self.back_count == self.sent,
        }
    }

    /// A chunk's result came back. Returns the callback to run, if any, with its argument.
    pub fn chunk_back(&mut self, chunk: u64, result: ChunkOutcome) -> Option<(FnPtr, Dynamic)> {
        let c = chunk as usize;
        if c >= self.sent as usize || self.back.get(c).copied().unwrap_or(false) {
            return None;
        }
        if self.back.len() <= c {
            self.back.resize(c + 1, false);
        }
        self.back[c] = true;
        self.back_count += 1;
        // For apply and map, the first error (in item order) is the outcome.
        let first_error = |r: ChunkOutcome| -> Result<Vec<Dynamic>, Failure> {
            let mut r = r?;
            match r.errors.is_empty() {
                true => Ok(r.values),
                false => Err(r.errors.swap_remove(0).1),
            }
        };
        match self.kind {
            JobKind::Apply => {
                let r = first_error(result).map(|mut v| v.pop().unwrap_or(Dynamic::UNIT));
                self.finish(r)
            }
            JobKind::Map => {
                if self.outcome.is_some() {
                    return None;
                }
                match first_error(result) {
                    Err(f) => self.finish(Err(f)),
                    Ok(v) => {
                        if self.chunks.len() <= c {
                            self.chunks.resize(c + 1, None);
                        }
                        self.chunks[c] = Some(v);
                        if self.all_sent && self.back_count == self.sent {
                            let mut all = Vec::with_capacity(self.chunks.iter().flatten().map(Vec::len).sum());
                            for chunk in self.chunks.drain(..) {
                                all.extend(chunk.unwrap_or_default());
                            }
                            self.finish(Ok(Dynamic::from_array(all)))
                        } else {
                            None
                        }
                    }
                }
            }
            JobKind::Imap { ordered } => {
                if ordered {
                    self.waiting.insert(chunk, result);
                    while let Some(r) = self.waiting.remove(&self.next_chunk) {
                        self.hand_out(self.next_chunk, r);
                        self.next_chunk += 1;
                    }
                } else {
                    self.hand_out(chunk, result);
                }
                None
            }
        }
    }

    /// Imap: each item's value or error, at its place; a chunk that failed whole gives its
    /// error once per item.
    fn hand_out(&mut self, chunk: u64, r: ChunkOutcome) {
        match r {
            Ok(ChunkResult { values, mut errors }) => {
                errors.sort_by_key(|e| std::cmp::Reverse(e.0));
                for (i, v) in values.into_iter().enumerate() {
                    if errors.last().is_some_and(|e| e.0 == i) {
                        self.out.push_back(Err(errors.pop().unwrap().1));
                    } else {
                        self.out.push_back(Ok(v));
                    }
                }
            }
            Err(f) => {
                let n = self.lens.get(chunk as usize).copied().unwrap_or(1).max(1);
                for _ in 0..n {
                    self.out.push_back(Err(f.clone()));
                }
            }
        }
    }

    /// Sets the outcome; returns the callback to run with its argument.
    pub fn finish(&mut self, r: Result<Dynamic, Failure>) -> Option<(FnPtr, Dynamic)> {
        if self.outcome.is_some() {
            return None;
        }
        let cb = match &r {
            Ok(v) => self.callback.clone().map(|f| (f, v.clone())),
            Err(e) => self.error_callback.clone().map(|f| (f, e.value())),
        };
        self.outcome = Some(r);
        cb
    }

    /// Fails everything still outstanding (the pool was terminated or is broken).
    pub fn fail_all(&mut self, f: &Failure) -> Option<(FnPtr, Dynamic)> {
        self.keep.clear();
        self.parts.clear();
        match self.kind {
            JobKind::Apply | JobKind::Map => self.finish(Err(f.clone())),
            JobKind::Imap { .. } => {
                self.waiting.clear();
                self.out.push_back(Err(f.clone()));
                self.source = None;
                self.all_sent = true;
                self.back_count = self.sent;
                self.back = vec![true; self.sent as usize];
                None
            }
        }
    }
}
