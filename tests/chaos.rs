//! Chaos tests (issue 11): one test per primitive family. Each round runs a script whose
//! processes work on the family's primitives, and SIGKILLs one of them (a process the
//! script announced) at a random moment; the round then checks that the script ended on its
//! own (every wait is bounded: a hang kills the group and fails), that nothing was lost or
//! duplicated beyond the one item a dying consumer may hold, that no process, descriptor
//! or `/dev/shm` entry leaked, and that each takeover of a Lock whose holder died printed
//! exactly one warning.
//!
//! Random only in when and whom it kills: the assertions are the same whatever the timing.
//! The RNG is a splitmix64 seeded from `CHAOS_SEED` (or the clock); every failure message
//! starts with the seed, the round and the start method, so
//! `CHAOS_SEED=<seed> cargo test --release --test integration chaos::<family>` replays the
//! same kills (at the same offsets). `CHAOS_ROUNDS` (default 3: one per start method) raises
//! the number of rounds for long local runs.
//!
//! The script protocol: `pid <role> <pid>` announces a process the harness may kill (by
//! role) and must see gone at the end; `go` starts the kill timer; `exit <pid> <code>` is a
//! child's exit code; `fds <before> <after>` are descriptor counts that must be equal;
//! `takeovers <n>` is how many lock takeovers the processes saw; other lines are the
//! family's own. ARGV[0] is a marker file the harness creates once it has killed (or
//! decided not to): a script that must check something after the kill waits for it.

use crate::common::*;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// splitmix64: small, std-only, and good enough to pick moments and victims.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// The base seed: `CHAOS_SEED`, or the clock (once per test binary).
fn base_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| match std::env::var("CHAOS_SEED") {
        Ok(s) => s.trim().parse().expect("CHAOS_SEED must be an unsigned integer"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64,
    })
}

/// The number of rounds per family: `CHAOS_ROUNDS`, default 3.
fn rounds() -> usize {
    std::env::var("CHAOS_ROUNDS").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(3)
}

/// How long a round's script may run before it counts as hung.
const ROUND_LIMIT: Duration = Duration::from_secs(90);

/// The warning a process prints when it takes over a lock whose holder died.
const WARNING: &str = "rhai-mp: warning: the process holding a ";

/// Helpers every chaos script starts with.
const HEADER: &str = r#"
fn fds() { open_dir("/proc/self/fd").len() }
fn fds_of(pid) { open_dir(`/proc/${pid}/fd`).len() }
// One process started and joined: the forkserver (if any) is up before descriptors are counted.
fn warm() { let p = Process(|| ()); p.start(); p.join(30); }
fn wait_marker() { let m = path(ARGV[0]); for i in 0..3000 { if m.exists { return true } time::sleep(0.01); } false }
fn exits(ps) { for p in ps { print(`exit ${p.pid} ${p.exitcode}`); } }
"#;

/// What a family's round runs.
struct Spec<'a> {
    family: &'a str,
    /// The script, after [`HEADER`].
    src: &'a str,
    /// The roles the harness may kill.
    victims: &'a [&'a str],
    /// Kills happen at a random moment up to this long after `go`.
    max_delay: Duration,
    /// How many processes to kill (one after the other) in a round.
    kills: usize,
}

/// What a round saw.
struct Outcome {
    /// The prefix of every message: seed, family, round, method.
    ctx: String,
    /// The processes killed (role, pid).
    killed: Vec<(String, i32)>,
    /// Every process announced, in order (role, pid).
    pids: Vec<(String, i32)>,
    /// The other stdout lines.
    lines: Vec<String>,
    stderr: String,
}

impl Outcome {
    /// The words after `key` on the first line that starts with it.
    #[track_caller]
    fn get(&self, key: &str) -> Vec<String> {
        let prefix = format!("{key} ");
        match self.lines.iter().find(|l| l.starts_with(&prefix)) {
            Some(l) => l[prefix.len()..].split_whitespace().map(str::to_string).collect(),
            None => panic!("{}no line {key:?} in {:?}\nstderr:\n{}", self.ctx, self.lines, self.stderr),
        }
    }

    #[track_caller]
    fn ints(&self, key: &str) -> Vec<i64> {
        self.get(key).iter().map(|w| w.trim_matches(|c| c == '[' || c == ']' || c == ',').parse().unwrap()).collect()
    }

    /// Announced pids of a role, in order.
    fn role(&self, role: &str) -> Vec<i32> {
        self.pids.iter().filter(|(r, _)| r == role).map(|(_, p)| *p).collect()
    }

    fn was_killed(&self, pid: i32) -> bool {
        self.killed.iter().any(|(_, p)| *p == pid)
    }

    /// The exit codes the script reported (`exit <pid> <code>`).
    fn exits(&self) -> HashMap<i32, String> {
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix("exit "))
            .filter_map(|l| l.split_once(' '))
            .map(|(p, c)| (p.parse().unwrap(), c.to_string()))
            .collect()
    }

    /// Checks every reported exit code: 0, or -9 for a process the harness killed. Returns
    /// the pids that died of the kill.
    #[track_caller]
    fn check_exits(&self) -> Vec<i32> {
        let mut died = Vec::new();
        for (pid, code) in self.exits() {
            if code == "-9" && self.was_killed(pid) {
                died.push(pid);
            } else {
                assert_eq!(code, "0", "{}process {pid} exited with {code}\nstderr:\n{}", self.ctx, self.stderr);
            }
        }
        died
    }
}

/// The entries of /dev/shm.
fn dev_shm() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// Whether `pid` is a live member of process group `pgid` (so not a recycled pid).
fn in_group(pid: i32, pgid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let Some((_, rest)) = stat.rsplit_once(')') else { return false };
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.len() > 2 && f[0] != "Z" && f[0] != "X" && f[2].parse() == Ok(pgid)
}

static ROUND_ID: AtomicUsize = AtomicUsize::new(0);

/// Runs every round of a family; `check` does the family's own assertions.
fn chaos(spec: Spec, check: impl Fn(&Outcome)) {
    let seed = base_seed();
    // Each family has its own stream, so that one can be replayed alone.
    let family_seed = spec.family.bytes().fold(seed, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let mut rng = Rng(family_seed);
    eprintln!("chaos {}: CHAOS_SEED={seed}, {} rounds", spec.family, rounds());
    for round in 0..rounds() {
        let method = METHODS[round % METHODS.len()];
        let ctx = format!("[chaos {} CHAOS_SEED={seed} round {round} {method}] ", spec.family);
        let outcome = run_round(&spec, &ctx, method, &mut rng);
        check(&outcome);
    }
}

fn run_round(spec: &Spec, ctx: &str, method: &str, rng: &mut Rng) -> Outcome {
    let shm_before = dev_shm();
    let n = ROUND_ID.fetch_add(1, Ordering::SeqCst);
    let marker = std::env::temp_dir().join(format!("rhai-mp-test-{}-chaos-{n}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let shm_name = format!("rhai-mp-test-{}-chaos-{n}", std::process::id());
    let src = format!("{HEADER}\n{}", spec.src);
    let mut run = start_script_with(&src, method, &[marker.to_str().unwrap(), &shm_name], |_| {});
    let pgid = run.pid();
    let mut pids: Vec<(String, i32)> = Vec::new();
    let mut lines = Vec::new();
    let mut take = |line: String, pids: &mut Vec<(String, i32)>| {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() == 3 && words[0] == "pid" {
            pids.push((words[1].to_string(), words[2].parse().unwrap()));
        } else {
            lines.push(line);
        }
    };
    // Up to `go`.
    let deadline = Instant::now() + LIMIT;
    loop {
        match run.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l == "go" => break,
            Ok(l) => take(l, &mut pids),
            Err(_) => {
                run.kill_group();
                let (_, err) = run.wait_status(Duration::from_secs(5), ctx);
                panic!("{ctx}the script never said go; pids {pids:?}\nstderr:\n{err}");
            }
        }
    }
    // The kills.
    let mut killed = Vec::new();
    for _ in 0..spec.kills {
        let delay = Duration::from_millis(rng.below(spec.max_delay.as_millis() as u64 + 1));
        let until = Instant::now() + delay;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match run.lines.recv_timeout(left) {
                Ok(l) => take(l, &mut pids),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(left);
                    break;
                }
            }
        }
        while let Ok(l) = run.lines.try_recv() {
            take(l, &mut pids);
        }
        let candidates: Vec<&(String, i32)> = pids
            .iter()
            .filter(|(role, pid)| spec.victims.contains(&role.as_str()) && !killed.iter().any(|(_, k)| k == pid))
            .filter(|(_, pid)| in_group(*pid, pgid))
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let (role, pid) = candidates[rng.below(candidates.len() as u64) as usize].clone();
        // SAFETY: kill(2) on a live member of the script's process group.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        killed.push((role, pid));
    }
    std::fs::write(&marker, "").unwrap();
    let (status, stderr) = run.wait_status(ROUND_LIMIT, ctx);
    let _ = std::fs::remove_file(&marker);
    for l in run.rest() {
        take(l, &mut pids);
    }
    let out = Outcome { ctx: format!("{ctx}killed {killed:?}: "), killed, pids, lines, stderr };
    let ctx = &out.ctx;
    // For --nocapture and long runs: what each round did.
    eprintln!(
        "{ctx}{} processes; {:?}",
        out.pids.len(),
        out.lines.iter().filter(|l| !l.starts_with("exit ")).collect::<Vec<_>>()
    );
    assert_eq!(status.code(), Some(0), "{ctx}{status:?}\nstdout: {:?}\nstderr:\n{}", out.lines, out.stderr);
    // No process left behind.
    for (role, pid) in &out.pids {
        assert!(wait_gone(*pid), "{ctx}{role} {pid} outlived the script");
    }
    let left = wait_group_gone(pgid);
    assert!(left.is_empty(), "{ctx}processes left in the script's group: {left:?}");
    // No descriptor leaked.
    for l in out.lines.iter().filter(|l| l.starts_with("fds ")) {
        let w: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(w[1], w[2], "{ctx}descriptors before and after differ: {l}\nstderr:\n{}", out.stderr);
    }
    // Nothing left in /dev/shm: this round's named block, or any other rhai-mp entry —
    // those of other tests running meanwhile (rhai-mp-test-…) and of other programs aside.
    let new: Vec<String> = dev_shm()
        .difference(&shm_before)
        .filter(|e| e.starts_with(&shm_name) || (e.contains("rhai") && !e.starts_with("rhai-mp-test-")))
        .cloned()
        .collect();
    assert!(new.is_empty(), "{ctx}left in /dev/shm: {new:?}");
    // One warning per takeover.
    let warnings = out.stderr.lines().filter(|l| l.starts_with(WARNING)).count() as i64;
    let takeovers = if out.lines.iter().any(|l| l.starts_with("takeovers ")) { out.ints("takeovers")[0] } else { 0 };
    assert_eq!(warnings, takeovers, "{ctx}owner-death warnings vs takeovers seen\nstderr:\n{}", out.stderr);
    out
}

/// Producers and consumers on a bounded Queue: every item put is got exactly once, except
/// the one a killed consumer may have taken; a killed producer loses only what it did not
/// put; the queue is never wedged.
#[test]
fn queues() {
    queue_chaos("queues", "x", 200000);
}

/// As `queues`, with large items (in memfds beside the log) and items with handles among
/// the small ones: their side-channel messages stay in step whoever is killed.
#[test]
fn queues_with_large_items() {
    // Every third item is large (it travels in a memfd beside the queue's log), and every
    // fifth carries a handle (its descriptors travel on the side channel too).
    let item = "if i % 3 == 0 { #{x: x, b: blob(1100000, 1)} } else if i % 5 == 0 { #{x: x, l: Lock()} } else { x }";
    queue_chaos("queues_large", item, 20000);
}

/// Two producers (each putting up to `cap` items, item `x` as the Rhai expression `item`)
/// and two consumers on one bounded Queue; one of them is killed.
fn queue_chaos(family: &str, item: &str, cap: u64) {
    let src = r#"
fn producer(q, sent, stop, id, cap) {
    let i = 0;
    while stop[0] == 0 && i < cap {
        let x = id * cap + i;
        q.put(ITEM, true, 30); i += 1; sent[id] = i;
    }
}
fn consumer(q, got) {
    loop {
        let x = q.get(true, 30);
        if x == () { break }
        if type_of(x) == "map" {
            if x.contains("b") && (x.b.len() != 1100000 || x.b[1099999] != 1) { got[x.x] += 100; }
            x = x.x;
        }
        got[x] += 1;
    }
}
fn workload(np, nc, cap) {
    let q = Queue(8);
    let sent = RawArray("q", np); let stop = RawArray("q", 1);
    let got = RawArray("q", np * cap);
    let ps = [];
    for id in 0..np { let p = Process(producer, [q, sent, stop, id, cap]); p.start(); print(`pid producer ${p.pid}`); ps.push(p); }
    let cs = [];
    for c in 0..nc { let p = Process(consumer, [q, got]); p.start(); print(`pid consumer ${p.pid}`); cs.push(p); }
    print("go");
    wait_marker(); time::sleep(0.3); stop[0] = 1;
    for p in ps { p.join(60); }
    for c in 0..nc { q.put((), true, 30); }
    for p in cs { p.join(60); }
    exits(ps + cs);
    let dups = 0; let missing = 0; let beyond = 0;
    for id in 0..np {
        let s = sent[id];
        for i in 0..cap {
            let g = got[id * cap + i];
            if g > 1 { dups += 1 }
            if i < s && g == 0 { missing += 1 }
            if i > s && g > 0 { beyond += 1 }
        }
    }
    print(`result ${dups} ${missing} ${beyond} ${q.qsize()}`);
    print(`sent ${sent.to_array()}`);
}
if __name__ == "__main__" {
    warm();
    let before = fds();
    workload(2, 2, CAP);
    print(`fds ${before} ${fds()}`);
}
"#
    .replace("ITEM", item)
    .replace("CAP", &cap.to_string());
    let spec =
        Spec { family, src: &src, victims: &["producer", "consumer"], max_delay: Duration::from_millis(500), kills: 1 };
    chaos(spec, |o| {
        let ctx = &o.ctx;
        let died = o.check_exits();
        let dead_consumers = o.role("consumer").iter().filter(|p| died.contains(p)).count() as i64;
        let r = o.ints("result");
        let (dups, missing, beyond, left) = (r[0], r[1], r[2], r[3]);
        assert_eq!(dups, 0, "{ctx}items got twice");
        assert_eq!(beyond, 0, "{ctx}items got that were never put");
        assert!(missing <= dead_consumers, "{ctx}{missing} items lost (a dying consumer may hold one)");
        assert!(left <= dead_consumers, "{ctx}{left} items left in the queue");
        // Every live producer put something (a killed one may have died before its first put:
        // the kill may come a moment after go, before a loaded machine ran it).
        let sent = o.ints("sent");
        for (i, pid) in o.role("producer").iter().enumerate() {
            assert!(died.contains(pid) || sent[i] > 0, "{ctx}producer {pid} lived and put nothing");
        }
    });
}

/// Two producers share one end of a pipe, a consumer reads the other: no torn or
/// reordered message, nothing lost from a live producer while the consumer lives; a killed
/// consumer makes the producers' sends fail (BrokenPipeError), not hang.
#[test]
fn pipes() {
    let src = r#"
fn producer(w, r, sent, stop, id, cap) {
    r.close();
    let i = 0;
    while stop[0] == 0 && i < cap {
        try { w.send([id, i, "payload"]); } catch (e) { if e.type != "BrokenPipeError" { sent[2] += 1; } return; }
        i += 1; sent[id] = i;
    }
}
fn consumer(r, w, got, stats, cap) {
    w.close();
    let last = [-1, -1];
    loop {
        let x = ();
        try { x = r.recv(); } catch (e) { if e.type != "EOFError" { stats[1] += 1; } break; }
        if type_of(x) != "array" || x.len() != 3 || x[2] != "payload" { stats[1] += 1; continue; }
        let id = x[0]; let i = x[1];
        if i != last[id] + 1 { stats[0] += 1; }
        last[id] = i;
        got[id * cap + i] += 1;
    }
}
fn workload(cap) {
    let ends = Pipe(false);
    let r = ends[0]; let w = ends[1];
    let sent = RawArray("q", 3); let stop = RawArray("q", 1); let got = RawArray("q", 2 * cap); let stats = RawArray("q", 2);
    let c = Process(consumer, [r, w, got, stats, cap]); c.start(); print(`pid consumer ${c.pid}`);
    let ps = [];
    for id in 0..2 { let p = Process(producer, [w, r, sent, stop, id, cap]); p.start(); print(`pid producer ${p.pid}`); ps.push(p); }
    r.close(); w.close();
    print("go");
    wait_marker(); time::sleep(0.3); stop[0] = 1;
    for p in ps { p.join(60); }
    c.join(60);
    exits(ps + [c]);
    let dups = 0; let missing = 0; let beyond = 0;
    for id in 0..2 {
        let s = sent[id];
        for i in 0..cap {
            let g = got[id * cap + i];
            if g > 1 { dups += 1 }
            if i < s && g == 0 { missing += 1 }
            if i > s && g > 0 { beyond += 1 }
        }
    }
    print(`result ${dups} ${missing} ${beyond} ${stats[0]} ${stats[1]} ${sent[2]}`);
}
if __name__ == "__main__" {
    warm();
    let before = fds();
    workload(200000);
    print(`fds ${before} ${fds()}`);
}
"#;
    let spec = Spec {
        family: "pipes",
        src,
        victims: &["producer", "consumer"],
        max_delay: Duration::from_millis(500),
        kills: 1,
    };
    chaos(spec, |o| {
        let ctx = &o.ctx;
        let died = o.check_exits();
        let consumer_died = o.role("consumer").iter().any(|p| died.contains(p));
        let r = o.ints("result");
        assert_eq!(r[0], 0, "{ctx}messages received twice");
        assert_eq!(r[2], 0, "{ctx}messages received that were never sent");
        assert_eq!(r[3], 0, "{ctx}messages out of order");
        assert_eq!(r[4], 0, "{ctx}torn messages, or errors other than EOFError");
        assert_eq!(r[5], 0, "{ctx}a send failed with another error than BrokenPipeError");
        if !consumer_died {
            assert_eq!(r[1], 0, "{ctx}messages lost");
        }
    });
}

/// Workers increment counters under a Lock, an RLock (taken twice), a Value's lock and an
/// Array's lock. A worker killed inside a critical section leaves at most that one update
/// half done; the lock is taken over (one warning each time), nobody hangs.
#[test]
fn locks() {
    let src = r#"
fn worker(l, r, v, a, cnt, done, tk, stop, id) {
    while stop[0] == 0 {
        hold(l, || { if l.owner_died { tk[0] += 1 } cnt[0] += 1; done[id * 4] += 1; });
        r.acquire(); r.acquire();
        if r.owner_died { tk[1] += 1 }
        cnt[1] += 1; done[id * 4 + 1] += 1;
        r.release(); r.release();
        let vl = v.get_lock();
        hold(vl, || { if vl.owner_died { tk[2] += 1 } v.value += 1; done[id * 4 + 2] += 1; });
        let al = a.get_lock();
        hold(al, || { if al.owner_died { tk[3] += 1 } a[0] += 1; done[id * 4 + 3] += 1; });
    }
}
fn workload(nw) {
    let l = Lock(); let r = RLock(); let v = Value("q", 0); let a = Array("q", 1);
    let cnt = RawArray("q", 2); let done = RawArray("q", 4 * nw); let tk = RawArray("q", 4); let stop = RawArray("q", 1);
    let ws = [];
    for id in 0..nw { let p = Process(worker, [l, r, v, a, cnt, done, tk, stop, id]); p.start(); print(`pid worker ${p.pid}`); ws.push(p); }
    print("go");
    wait_marker(); time::sleep(0.3); stop[0] = 1;
    for p in ws { p.join(60); }
    exits(ws);
    // Whoever held a lock when it was killed: take it over here if nobody did.
    hold(l, || if l.owner_died { tk[0] += 1 });
    r.acquire(); if r.owner_died { tk[1] += 1 } r.release();
    let vl = v.get_lock(); hold(vl, || if vl.owner_died { tk[2] += 1 });
    let al = a.get_lock(); hold(al, || if al.owner_died { tk[3] += 1 });
    let totals = [cnt[0], cnt[1], v.value, a[0]];
    let diffs = [];
    for k in 0..4 { let s = 0; for id in 0..nw { s += done[id * 4 + k]; } diffs.push(totals[k] - s); }
    print(`diffs ${diffs}`);
    print(`tk ${tk.to_array()}`);
    print(`takeovers ${tk[0] + tk[1] + tk[2] + tk[3]}`);
    print(`free ${l.acquire(false)} ${r.acquire(false)} ${vl.acquire(false)} ${al.acquire(false)}`);
    print(`counts ${totals}`);
}
if __name__ == "__main__" {
    warm();
    let before = fds();
    workload(3);
    print(`fds ${before} ${fds()}`);
}
"#;
    let spec = Spec { family: "locks", src, victims: &["worker"], max_delay: Duration::from_millis(500), kills: 1 };
    chaos(spec, |o| {
        let ctx = &o.ctx;
        let died = o.check_exits();
        let diffs = o.ints("diffs");
        let tk = o.ints("tk");
        assert!(diffs.iter().all(|d| *d == 0 || *d == 1), "{ctx}updates lost or doubled: {diffs:?}");
        assert!(diffs.iter().sum::<i64>() <= died.len() as i64, "{ctx}half-done updates without a death: {diffs:?}");
        assert!(tk.iter().sum::<i64>() <= died.len() as i64, "{ctx}more takeovers than deaths: {tk:?}");
        for k in 0..4 {
            if diffs[k] == 1 {
                assert_eq!(tk[k], 1, "{ctx}lock {k} was held by the dead worker but never taken over: {tk:?}");
            }
        }
        assert_eq!(o.get("free"), ["true", "true", "true", "true"], "{ctx}a lock is still held");
    });
}

/// Workers share a Semaphore(2): never more than two inside; a worker killed inside keeps
/// its unit (as in Python) and the others go on with one; nobody hangs.
#[test]
fn semaphores() {
    let src = r#"
fn worker(s, inside, cnt, stats, done, stop, id, tk) {
    let l = cnt.get_lock();
    while stop[0] == 0 {
        if !s.acquire(true, 30) { stats[1] += 1; return; }
        inside[id] = 1;
        // How many are inside, counted under a lock (a sum of the flags is no snapshot: read
        // one by one, it can see a worker that left and the one that came in after it).
        hold(l, || { if l.owner_died { tk[0] += 1 } cnt.value += 1; if cnt.value > 2 { stats[0] += 1; } });
        time::sleep(0.001);
        done[id] += 1;
        hold(l, || { if l.owner_died { tk[0] += 1 } cnt.value -= 1; });
        inside[id] = 0;
        s.release();
    }
}
fn workload(nw) {
    let s = Semaphore(2);
    let inside = RawArray("q", nw); let stats = RawArray("q", 2); let done = RawArray("q", nw); let stop = RawArray("q", 1);
    let cnt = Value("q", 0); let tk = RawArray("q", 1);
    let ws = [];
    for id in 0..nw { let p = Process(worker, [s, inside, cnt, stats, done, stop, id, tk]); p.start(); print(`pid worker ${p.pid}`); ws.push(p); }
    print("go");
    wait_marker(); time::sleep(0.3); stop[0] = 1;
    for p in ws { p.join(60); }
    exits(ws);
    print(`stats ${stats[0]} ${stats[1]}`);
    print(`inside ${inside.to_array()}`);
    print(`done ${done.to_array()}`);
    print(`takeovers ${tk[0]}`);
    let v = s.get_value();
    let got = 0;
    while s.acquire(false) { got += 1; }
    print(`value ${v} ${got}`);
}
if __name__ == "__main__" {
    warm();
    let before = fds();
    workload(3);
    print(`fds ${before} ${fds()}`);
}
"#;
    let spec =
        Spec { family: "semaphores", src, victims: &["worker"], max_delay: Duration::from_millis(500), kills: 1 };
    chaos(spec, |o| {
        let ctx = &o.ctx;
        let died = o.check_exits();
        assert_eq!(o.ints("stats"), [0, 0], "{ctx}more than two inside, or an acquire timed out");
        let inside = o.ints("inside");
        let done = o.ints("done");
        let value = o.ints("value");
        assert_eq!(value[0], value[1], "{ctx}get_value() and the units acquirable differ");
        let mut expected = vec![2];
        for (i, pid) in o.role("worker").iter().enumerate() {
            if died.contains(pid) {
                // Flagged inside: it held a unit. Not flagged: it may have held one (killed
                // between acquire and flag, or between unflag and release).
                expected = if inside[i] == 1 { vec![1] } else { vec![1, 2] };
            } else {
                assert!(done[i] > 0, "{ctx}worker {pid} never got in");
                assert_eq!(inside[i], 0, "{ctx}worker {pid} still flagged inside");
            }
        }
        assert!(expected.contains(&value[0]), "{ctx}semaphore value {} (expected {expected:?})", value[0]);
    });
}

/// Waiters pass a sequence of Events, each set once every live waiter waits on it: a
/// waiter killed while waiting changes nothing for the others; no wait times out.
#[test]
fn events() {
    let src = r#"
fn waiter(evs, reached, timeouts, id) {
    for k in 0..evs.len() {
        reached[id] = k;
        if !evs[k].wait(30) { timeouts[0] += 1; }
    }
    reached[id] = evs.len();
}
fn workload(nw, rounds) {
    let evs = []; for k in 0..rounds { evs.push(Event()); }
    let reached = RawArray("q", nw); let timeouts = RawArray("q", 1);
    let ws = [];
    for id in 0..nw { let p = Process(waiter, [evs, reached, timeouts, id]); p.start(); print(`pid waiter ${p.pid}`); ws.push(p); }
    print("go");
    let marker = path(ARGV[0]);
    let after = -1;
    for k in 0..rounds {
        // Once the kill is done, a few more rounds in step, then all the rest at once.
        if after < 0 && marker.exists { after = k; }
        if after < 0 || k < after + 20 {
            for id in 0..nw {
                for t in 0..6000 { if reached[id] >= k || !ws[id].is_alive() { break } time::sleep(0.002); }
            }
            time::sleep(0.005);
        }
        evs[k].set();
    }
    for p in ws { p.join(60); }
    exits(ws);
    print(`reached ${reached.to_array()}`);
    print(`timeouts ${timeouts[0]}`);
    print(`set ${evs.filter(|e| e.is_set()).len()}`);
}
if __name__ == "__main__" {
    warm();
    let before = fds();
    workload(3, 200);
    print(`fds ${before} ${fds()}`);
}
"#;
    let spec = Spec { family: "events", src, victims: &["waiter"], max_delay: Duration::from_millis(500), kills: 1 };
    chaos(spec, |o| {
        let ctx = &o.ctx;
        let died = o.check_exits();
        assert_eq!(o.ints("timeouts"), [0], "{ctx}a wait timed out");
        assert_eq!(o.ints("set"), [200], "{ctx}");
        let reached = o.ints("reached");
        for (i, pid) in o.role("waiter").iter().enumerate() {
            if !died.contains(pid) {
                assert_eq!(reached[i], 200, "{ctx}waiter {pid} did not pass every event");
            }
        }
    });
}

/// Producers hand items to consumers through a Condition (notify one per item,
/// notify_all at the end): every item is taken once, except one a killed consumer may hold;
/// a killed holder's lock is taken over (one warning); notify never waits for the dead.
#[test]
fn conditions() {
    let src = r#"
// st: [next to put, next to take, done]
fn producer(c, l, st, tk, stop) {
    while stop[0] == 0 {
        hold(c, || {
            if l.owner_died { tk[0] += 1 }
            st[0] += 1;
            c.notify();
        });
    }
}
fn consumer(c, l, st, got, tk, stalls) {
    loop {
        let stop = hold(c, || {
            if l.owner_died { tk[0] += 1 }
            while st[1] >= st[0] && st[2] == 0 {
                if !c.wait(30) { stalls[0] += 1; }
                // wait() released the lock: the flag tells about this reacquisition only.
                if l.owner_died { tk[0] += 1 }
            }
            if st[1] < st[0] { let k = st[1]; st[1] = k + 1; got[k] += 1; false } else { true }
        });
        if stop { break }
    }
}
fn workload(np, nc, cap) {
    let l = RLock(); let c = Condition(l);
    let st = RawArray("q", 3); let got = RawArray("q", cap); let tk = RawArray("q", 1); let stalls = RawArray("q", 1);
    let stop = RawArray("q", 1);
    let ps = [];
    for i in 0..np { let p = Process(producer, [c, l, st, tk, stop]); p.start(); print(`pid producer ${p.pid}`); ps.push(p); }
    let cs = [];
    for i in 0..nc { let p = Process(consumer, [c, l, st, got, tk, stalls]); p.start(); print(`pid consumer ${p.pid}`); cs.push(p); }
    print("go");
    // Producers stop once the kill is done (or when the items would not fit).
    wait_marker();
    for t in 0..30 { if st[0] > cap - 20000 { break } time::sleep(0.01); }
    stop[0] = 1;
    for p in ps { p.join(60); }
    hold(c, || { if l.owner_died { tk[0] += 1 } st[2] = 1; c.notify_all(); });
    for p in cs { p.join(60); }
    exits(ps + cs);
    hold(c, || if l.owner_died { tk[0] += 1 });
    let dups = 0; let missing = 0; let beyond = 0;
    for k in 0..cap {
        if got[k] > 1 { dups += 1 }
        if k < st[0] && got[k] == 0 { missing += 1 }
        if k >= st[0] && got[k] > 0 { beyond += 1 }
    }
    print(`result ${dups} ${missing} ${beyond} ${st[0]} ${st[1]} ${stalls[0]}`);
    print(`takeovers ${tk[0]}`);
}
if __name__ == "__main__" {
    warm();
    let before = fds();
    workload(2, 2, 400000);
    print(`fds ${before} ${fds()}`);
}
"#;
    let spec = Spec {
        family: "conditions",
        src,
        victims: &["producer", "consumer"],
        max_delay: Duration::from_millis(500),
        kills: 1,
    };
    chaos(spec, |o| {
        let ctx = &o.ctx;
        let died = o.check_exits();
        let dead_consumers = o.role("consumer").iter().filter(|p| died.contains(p)).count() as i64;
        let r = o.ints("result");
        let (dups, missing, beyond, put, taken, stalls) = (r[0], r[1], r[2], r[3], r[4], r[5]);
        assert_eq!(dups, 0, "{ctx}items taken twice");
        assert_eq!(beyond, 0, "{ctx}items taken that were never put");
        assert_eq!(stalls, 0, "{ctx}a wait timed out (a lost notification)");
        assert!(missing <= dead_consumers, "{ctx}{missing} items lost");
        assert_eq!(taken, put, "{ctx}items left untaken");
        assert!(put > 0, "{ctx}nothing was put");
        assert!(o.ints("takeovers")[0] <= died.len() as i64, "{ctx}more takeovers than deaths");
    });
}

/// Three parties pass a Barrier (with an action) round after round; when one is killed the
/// parent aborts the barrier, the others get BrokenBarrierError; after reset() three new
/// parties pass again although a dead party was counted in the broken round.
#[test]
fn barriers() {
    let src = r#"
// flags: [stop asked, last round (set by the action, so that every party agrees)]
fn party(b, passed, broken, flags, id) {
    loop {
        try { b.wait(60); } catch (e) { if e.type == "BrokenBarrierError" { broken[id] = 1; } else { broken[id] = 2; } return; }
        passed[id] += 1;
        if flags[1] == 1 { return; }
    }
}
fn start(b, passed, broken, flags, role) {
    let ps = [];
    for id in 0..3 { let p = Process(party, [b, passed, broken, flags, id]); p.start(); print(`pid ${role} ${p.pid}`); ps.push(p); }
    ps
}
fn workload() {
    let acts = RawArray("q", 1); let flags = RawArray("q", 2);
    let b = Barrier(3, #{action: || { acts[0] += 1; flags[1] = flags[0]; }});
    let passed = RawArray("q", 3); let broken = RawArray("q", 3);
    let ps = start(b, passed, broken, flags, "party");
    print("go");
    wait_marker(); time::sleep(0.3); flags[0] = 1;
    // A dead party never arrives: break the barrier for the others.
    let aborted = false;
    for t in 0..12000 {
        if ps.all(|p| !p.is_alive()) { break }
        if !aborted && ps.some(|p| p.exitcode == -9) { b.abort(); aborted = true; }
        time::sleep(0.005);
    }
    for p in ps { p.join(30); }
    exits(ps);
    print(`passed ${passed.to_array()}`);
    print(`broken ${broken.to_array()}`);
    print(`acts ${acts[0]}`);
    // The barrier recovers: new parties pass it (five rounds).
    b.reset();
    let before = acts[0];
    flags[0] = 0; flags[1] = 0;
    let passed2 = RawArray("q", 3); let broken2 = RawArray("q", 3);
    let qs = start(b, passed2, broken2, flags, "party2");
    for t in 0..6000 { if acts[0] - before >= 4 { break } time::sleep(0.005); }
    flags[0] = 1;
    for p in qs { p.join(60); }
    exits(qs);
    print(`phase2 ${passed2.to_array()} ${broken2.to_array()} ${acts[0] - before} ${b.broken}`);
}
if __name__ == "__main__" {
    warm();
    let before = fds();
    workload();
    print(`fds ${before} ${fds()}`);
}
"#;
    let spec = Spec { family: "barriers", src, victims: &["party"], max_delay: Duration::from_millis(500), kills: 1 };
    chaos(spec, |o| {
        let ctx = &o.ctx;
        let died = o.check_exits();
        let passed = o.ints("passed");
        let broken = o.ints("broken");
        let acts = o.ints("acts")[0];
        let parties = o.role("party");
        assert!(broken.iter().all(|b| *b != 2), "{ctx}a wait threw something else than BrokenBarrierError");
        if died.is_empty() {
            assert!(passed.iter().all(|p| *p == passed[0] && *p > 0), "{ctx}passed {passed:?}");
            assert_eq!(broken, [0, 0, 0], "{ctx}");
            assert_eq!(acts, passed[0], "{ctx}");
        } else {
            // The survivors passed the same rounds, then broke.
            let survivors: Vec<usize> = (0..3).filter(|i| !died.contains(&parties[*i])).collect();
            let s = passed[survivors[0]];
            for &i in &survivors {
                assert_eq!(passed[i], s, "{ctx}survivors passed different rounds: {passed:?}");
                assert_eq!(broken[i], 1, "{ctx}survivor {i} did not break: {broken:?}");
            }
            let dead = (0..3).find(|i| died.contains(&parties[*i])).unwrap();
            assert!(
                passed[dead] == s || passed[dead] + 1 == s,
                "{ctx}the dead party passed {} rounds, the others {s}",
                passed[dead]
            );
            assert!(acts == s || acts == s + 1, "{ctx}the action ran {acts} times for {s} rounds");
        }
        let p2 = o.get("phase2");
        let n = &p2[6];
        assert_eq!(
            p2,
            [
                format!("[{n},"),
                format!("{n},"),
                format!("{n}]"),
                "[0,".into(),
                "0,".into(),
                "0]".into(),
                n.clone(),
                "false".into()
            ],
            "{ctx}"
        );
    });
}

/// Pool workers are killed while map and imap run: only the task a dead worker held
/// fails (WorkerLostError), no task runs twice, the pool replaces the worker and works on,
/// and terminate() leaves no process.
#[test]
fn pools() {
    let src = r#"
fn task(x, ran) { ran[x] += 1; time::sleep(0.005); x * x }
fn squares(a, b) { let r = []; for x in a..b { r.push(x * x); } r }
fn pids(p) { let ps = []; for x in p.map(|x| { time::sleep(0.005); os::getpid() }, 0..30, 1) { if !ps.contains(x) { ps.push(x) } } ps }
fn workload(batches) {
    let ran = RawArray("q", batches * 30);
    let p = Pool(3);
    for pid in pids(p) { print(`pid worker ${pid}`); }
    print("go");
    let marker = path(ARGV[0]);
    let failed = []; let calls = 0; let after = -1;
    // map and imap in turn, on batches of new items, until two calls after the kill.
    for k in 0..batches {
        if after < 0 && marker.exists { after = k; }
        if after >= 0 && k >= after + 2 { break }
        calls += 1;
        let a = k * 30; let b = a + 30;
        try {
            let r = [];
            if k % 2 == 0 { r = p.map(|x| task(x, ran), a..b, 1); } else { for x in p.imap(|x| task(x, ran), a..b) { r.push(x); } }
            if r != squares(a, b) { print(`wrong result ${k}`); }
        } catch (e) { failed.push(`${k}:${e.type}`); }
    }
    // The pool still works, with the replacement worker.
    print(`after ${p.map(|x| x * x, 0..20, 1) == squares(0, 20)}`);
    for pid in pids(p) { print(`pid worker ${pid}`); }
    p.terminate();
    print(`failed ${failed.len()} ${failed}`);
    // Per call: how many items ran twice, and how many never ran.
    let twice = 0; let never = [];
    for k in 0..calls {
        let n = 0;
        for x in k * 30..(k + 1) * 30 { if ran[x] > 1 { twice += 1 } if ran[x] == 0 { n += 1 } }
        never.push(n);
    }
    print(`twice ${twice}`);
    print(`never ${never}`);
}
if __name__ == "__main__" {
    warm();
    let before = fds();
    workload(200);
    print(`fds ${before} ${fds()}`);
}
"#;
    let spec = Spec { family: "pools", src, victims: &["worker"], max_delay: Duration::from_millis(500), kills: 1 };
    chaos(spec, |o| {
        let ctx = &o.ctx;
        assert!(!o.lines.iter().any(|l| l.starts_with("wrong")), "{ctx}{:?}", o.lines);
        assert_eq!(o.get("after"), ["true"], "{ctx}the pool does not work after the kill");
        let failed = o.get("failed");
        let n: usize = failed[0].parse().unwrap();
        assert!(n <= o.killed.len(), "{ctx}more calls failed than workers were killed: {failed:?}");
        // Which calls failed: "[\"3:WorkerLostError\"]".
        let failed_calls: Vec<usize> = failed[1..]
            .iter()
            .map(|w| w.trim_matches(|c| "[]\",".contains(c)))
            .filter(|w| !w.is_empty())
            .map(|w| {
                let (k, t) = w.split_once(':').unwrap();
                assert_eq!(t, "WorkerLostError", "{ctx}a call failed with {t}");
                k.parse().unwrap()
            })
            .collect();
        assert_eq!(o.ints("twice"), [0], "{ctx}tasks ran twice");
        for (k, never) in o.ints("never").iter().enumerate() {
            if !failed_calls.contains(&k) {
                assert_eq!(*never, 0, "{ctx}call {k} succeeded without running every task");
            }
        }
    });
}

/// Pool workers are killed while timed tasks run (tasks stuck in a loop or a sleep among
/// short ones, under a per-call timeout on `imap` and the pool's `task_timeout` on
/// `apply_async`): every item ends with exactly one outcome (its value, `TimeoutError` or
/// `WorkerLostError`; a stuck one never its value), none runs twice, an item with a value
/// ran once, nothing fails without a kill but the stuck items' timeouts, and the pool goes
/// on (results and timeouts alike) after the kills.
#[test]
fn timed_pools() {
    let src = r#"
fn task(x, ran) {
    ran[x] += 1;
    if x % 8 == 3 { loop {} }
    if x % 8 == 6 { time::sleep(1e9) }
    time::sleep(0.005);
    x * x
}
fn pids(p) { let ps = []; for x in p.map(|x| { time::sleep(0.005); os::getpid() }, 0..30, 1) { if !ps.contains(x) { ps.push(x) } } ps }
fn outcome(e) {
    if e.type != "TimeoutError" && e.type != "WorkerLostError" { throw e }
    e.type
}
fn workload(batches, n) {
    let ran = RawArray("q", batches * n);
    let p = Pool(#{processes: 3, task_timeout: 0.1});
    for pid in pids(p) { print(`pid worker ${pid}`); }
    print("go");
    let marker = path(ARGV[0]);
    let calls = 0; let after = -1;
    let wrong = 0; let stuck_values = 0; let timeouts = 0; let lost = 0; let lost_short = 0;
    let twice = 0; let not_once = 0;
    // imap (chunks of 3, a timeout per call) and apply_async (the pool's task_timeout) in
    // turn, on batches of new items, until two calls after the kills.
    for k in 0..batches {
        if after < 0 && marker.exists { after = k; }
        if after >= 0 && k >= after + 2 { break }
        calls += 1;
        let a = k * n; let b = a + n;
        let got = [];
        if k % 2 == 0 {
            let it = p.imap(|x| task(x, ran), a..b, #{chunksize: 3, timeout: 0.1});
            loop {
                try { got.push(it.next(30)) } catch (e) {
                    if e.type == "StopIteration" { break }
                    got.push(outcome(e));
                }
            }
        } else {
            let rs = [];
            for x in a..b { rs.push(p.apply_async(|x| task(x, ran), [x])); }
            for r in rs { try { got.push(r.get(30)) } catch (e) { got.push(outcome(e)) } }
        }
        if got.len() != n { print(`lost outcomes ${k} ${got.len()}`); }
        for i in 0..got.len() {
            let x = a + i;
            let g = got[i];
            let stuck = x % 8 == 3 || x % 8 == 6;
            if type_of(g) == "i64" {
                if g != x * x { wrong += 1 }
                if stuck { stuck_values += 1 }
                if ran[x] != 1 { not_once += 1 }
            } else if g == "TimeoutError" {
                timeouts += 1;
            } else {
                lost += 1;
                if !stuck { lost_short += 1 }
            }
            if ran[x] > 1 { twice += 1 }
        }
    }
    // The pool still works: results, and a timeout that stops a stuck task.
    let ok = true;
    let sq = p.map(|x| x * x, 0..20, 1);
    for x in 0..20 { if sq[x] != x * x { ok = false } }
    let t = "none";
    try { p.apply(|| loop {}, [], #{timeout: 0.1}) } catch (e) { t = e.type }
    print(`after ${ok} ${t}`);
    p.terminate();
    print(`calls ${calls}`);
    print(`wrong ${wrong}`);
    print(`stuck_values ${stuck_values}`);
    print(`twice ${twice}`);
    print(`not_once ${not_once}`);
    print(`timeouts ${timeouts}`);
    print(`lost ${lost} ${lost_short}`);
}
if __name__ == "__main__" {
    warm();
    let before = fds();
    workload(100, 24);
    print(`fds ${before} ${fds()}`);
}
"#;
    let spec =
        Spec { family: "timed_pools", src, victims: &["worker"], max_delay: Duration::from_millis(500), kills: 2 };
    chaos(spec, |o| {
        let ctx = &o.ctx;
        assert!(!o.lines.iter().any(|l| l.starts_with("lost outcomes")), "{ctx}{:?}", o.lines);
        assert_eq!(o.get("after"), ["true", "TimeoutError"], "{ctx}the pool does not work after the kills");
        for key in ["wrong", "stuck_values", "twice", "not_once"] {
            assert_eq!(o.ints(key), [0], "{ctx}{key}: {:?}", o.lines);
        }
        // The stuck items (6 of 24 per call) failed (none got a value, above), by their
        // timeout or with their worker.
        assert!(o.ints("calls")[0] >= 2 && o.ints("timeouts")[0] > 0, "{ctx}{:?}", o.lines);
        if o.killed.is_empty() {
            assert_eq!(o.ints("lost"), [0, 0], "{ctx}WorkerLostError without a kill");
        }
    });
}

/// Clients push to a managed list while one of them — or the server — is killed: a killed
/// client's pushes are a prefix of its own (the last one may land or not), the others' are
/// all there, nothing twice; a killed server gives BrokenPipeError to everyone, no hang.
#[test]
fn managers() {
    let src = r#"
fn client(l, sent, broken, stop, id, cap) {
    let i = 0;
    while stop[0] == 0 && i < cap {
        try { l.push(id * cap + i); } catch (e) { broken[id] = if e.type == "BrokenPipeError" { 1 } else { 2 }; return; }
        i += 1; sent[id] = i;
    }
}
fn workload(nc, cap) {
    let mgr = Manager();
    let l = mgr.list();
    print(`pid server ${mgr.pid}`);
    let sent = RawArray("q", nc); let broken = RawArray("q", nc); let stop = RawArray("q", 1);
    // The fewest of a few readings: the server may have a file open for a moment (reading
    // /proc/loadavg while it polls), and one reading would count it.
    let server_fds = fds_of(mgr.pid);
    for t in 0..5 { time::sleep(0.005); let n = fds_of(mgr.pid); if n < server_fds { server_fds = n; } }
    let cs = [];
    for id in 0..nc { let p = Process(client, [l, sent, broken, stop, id, cap]); p.start(); print(`pid client ${p.pid}`); cs.push(p); }
    print("go");
    wait_marker(); time::sleep(0.3); stop[0] = 1;
    for p in cs { p.join(60); }
    exits(cs);
    print(`sent ${sent.to_array()}`);
    print(`broken ${broken.to_array()}`);
    try {
        let items = l.to_array();
        let counts = [];
        let order = 0;
        for id in 0..nc {
            let mine = items.filter(|x| x / cap == id);
            counts.push(mine.len());
            for i in 0..mine.len() { if mine[i] != id * cap + i { order += 1; } }
        }
        print(`items ${items.len()} ${order} ${counts}`);
        // Wait (bounded) for the server to see the clients' connections close.
        for t in 0..2000 { if fds_of(mgr.pid) <= server_fds { break } time::sleep(0.01); }
        print(`server fds ${server_fds} ${fds_of(mgr.pid)}`);
    } catch (e) {
        print(`server gone ${e.type}`);
    }
    mgr.shutdown();
}
if __name__ == "__main__" {
    warm();
    let before = fds();
    workload(3, 1000000);
    print(`fds ${before} ${fds()}`);
}
"#;
    let spec = Spec {
        family: "managers",
        src,
        victims: &["client", "server"],
        max_delay: Duration::from_millis(500),
        kills: 1,
    };
    chaos(spec, |o| {
        let ctx = &o.ctx;
        let died = o.check_exits();
        let server_killed = o.killed.iter().any(|(r, _)| r == "server");
        let sent = o.ints("sent");
        let broken = o.ints("broken");
        let clients = o.role("client");
        assert!(broken.iter().all(|b| *b != 2), "{ctx}a call failed with another error than BrokenPipeError");
        if server_killed {
            assert_eq!(o.get("server"), ["gone", "BrokenPipeError"], "{ctx}");
            assert_eq!(broken, [1, 1, 1], "{ctx}a client did not see the server die");
        } else {
            assert_eq!(broken, [0, 0, 0], "{ctx}a client lost the server");
            let items = o.ints("items");
            let (total, order, counts) = (items[0], items[1], &items[2..]);
            assert_eq!(order, 0, "{ctx}a client's items are not a prefix of its own, in order");
            assert_eq!(total, counts.iter().sum::<i64>(), "{ctx}");
            for (i, pid) in clients.iter().enumerate() {
                if died.contains(pid) {
                    assert!(
                        counts[i] == sent[i] || counts[i] == sent[i] + 1,
                        "{ctx}killed client: {} items, {} sent",
                        counts[i],
                        sent[i]
                    );
                } else {
                    assert_eq!(counts[i], sent[i], "{ctx}client {pid} lost items");
                }
            }
            let fds = o.get("server");
            assert_eq!(fds[1], fds[2], "{ctx}the server kept descriptors of its dead clients");
        }
    });
}

/// The script starts and joins processes (each with a daemon grandchild, and all attached
/// to a named SharedMemory) while the harness kills children and grandchildren: every join
/// returns, exit codes are 0 or -9 for the killed, no grandchild outlives its parent, the
/// named block is unlinked, no descriptor leaks.
#[test]
fn processes() {
    let src = r#"
fn sleeper() { time::sleep(30) }
fn child(name, i) {
    let g = Process(sleeper, #{daemon: true});
    g.start();
    print(`pid grandchild ${g.pid}`);
    let s = SharedMemory(#{name: name});
    s[i % s.size] = 1;
    time::sleep(0.05 + 0.01 * (i % 7));
}
fn workload(name) {
    let shm = SharedMemory(#{name: name, create: true, size: 64});
    let seen = 0;
    let marker = path(ARGV[0]);
    let after = -1;
    print("go");
    for it in 0..100 {
        if after < 0 && marker.exists { after = it; }
        if after >= 0 && it >= after + 2 { break }
        let ps = [];
        for k in 0..3 {
            let p = Process(child, [name, it * 3 + k]);
            p.start();
            print(`pid child ${p.pid}`);
            ps.push(p);
        }
        for p in ps { p.join(30); }
        exits(ps);
        seen += ps.len();
    }
    print(`joined ${seen}`);
    shm.close();
    shm.unlink();
}
if __name__ == "__main__" {
    warm();
    let before = fds();
    workload(ARGV[1]);
    print(`fds ${before} ${fds()}`);
}
"#;
    let spec = Spec {
        family: "processes",
        src,
        victims: &["child", "grandchild"],
        max_delay: Duration::from_millis(300),
        kills: 3,
    };
    chaos(spec, |o| {
        let ctx = &o.ctx;
        let died = o.check_exits();
        assert!(died.len() <= o.killed.len(), "{ctx}");
        let joined = o.ints("joined")[0];
        assert_eq!(o.exits().len() as i64, joined, "{ctx}");
        assert_eq!(o.role("child").len() as i64, joined, "{ctx}");
        // Each child announced its grandchild, unless it was killed first.
        assert!(o.role("grandchild").len() as i64 >= joined - died.len() as i64, "{ctx}");
    });
}
