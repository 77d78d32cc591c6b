//! Helpers: write a script to a temporary file, run the binary on it with a time limit, and
//! collect its exit code and output.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The start methods, for tests that run under each.
pub(crate) const METHODS: [&str; 3] = ["spawn", "fork", "forkserver"];

/// How long any one run may take before the test fails (a hang is a failure, not a wait).
pub(crate) const LIMIT: Duration = Duration::from_secs(60);

/// The binary under test. The first call gives SIGINT and SIGQUIT their default action in
/// this test process, so that every rhai-mp it starts begins as at a terminal: a test run
/// started in the background of a non-interactive shell (or under `nohup`) inherits them
/// ignored, and rhai-mp keeps an ignored SIGINT ignored, as Python does — its Ctrl-C
/// tests would then test nothing. (The test that wants it ignored sets that itself.)
pub(crate) fn bin() -> PathBuf {
    default_signals();
    PathBuf::from(env!("CARGO_BIN_EXE_rhai-mp"))
}

/// See [`bin`]: SIGINT and SIGQUIT back to their default action in this process, once.
fn default_signals() {
    static DEFAULT_SIGNALS: std::sync::Once = std::sync::Once::new();
    DEFAULT_SIGNALS.call_once(|| {
        // SAFETY: signal(2) with SIG_DFL installs no handler; nothing in this process relies
        // on these two being ignored.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
        }
    });
}

/// The repository root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A script file that is removed when dropped.
pub(crate) struct TempScript(pub PathBuf);

impl Drop for TempScript {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn write_script(src: &str) -> TempScript {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let path = std::env::temp_dir().join(format!("rhai-mp-test-{}-{n}.rhai", std::process::id()));
    std::fs::write(&path, src).unwrap();
    TempScript(path)
}

#[derive(Debug)]
pub(crate) struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts exit code 0 and returns stdout.
    #[track_caller]
    pub(crate) fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        &self.stdout
    }
}

fn reader(mut r: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = r.read_to_end(&mut s);
        let _ = tx.send(String::from_utf8_lossy(&s).into_owned());
    });
    rx
}

/// Waits at most `limit` for `child` (started in its own process group) to end. Past the
/// limit, kills the whole group (a runaway script may have started many processes), reaps
/// the child and returns `None`: the caller fails.
pub(crate) fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            // SAFETY: kill(2) with a negative pid signals the child's own process group.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for `child` within [`LIMIT`], killing it (and failing) if it takes longer.
pub(crate) fn finish(mut child: Child) -> Out {
    let out = reader(child.stdout.take().unwrap());
    let err = reader(child.stderr.take().unwrap());
    let Some(status) = wait_bounded(&mut child, LIMIT) else {
        panic!(
            "rhai-mp did not finish within {LIMIT:?}; stdout so far: {:?}",
            out.recv_timeout(Duration::from_secs(1)).ok()
        );
    };
    // Orphaned grandchildren could hold the pipes open: don't wait for them forever.
    let stdout =
        out.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| "<stdout held open by a leftover process>".into());
    let stderr =
        err.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| "<stderr held open by a leftover process>".into());
    Out { code: status.code(), stdout, stderr }
}

/// Runs a program with arguments and optional stdin.
pub(crate) fn run_program(program: &Path, args: &[&str], stdin: Option<&str>) -> Out {
    default_signals();
    let mut cmd = Command::new(program);
    // Its own process group, so that a runaway run can be killed whole.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.env("RHAI_MP_HISTORY", std::env::temp_dir().join("rhai-mp-test-history"));
    let mut child = cmd.spawn().expect("cannot run rhai-mp");
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        w.write_all(input.as_bytes()).unwrap();
    }
    finish(child)
}

/// Runs `rhai-mp ARGS`.
pub(crate) fn run(args: &[&str]) -> Out {
    run_program(&bin(), args, None)
}

/// Runs a script (given as source) under a start method, with script arguments.
pub(crate) fn run_script_args(src: &str, method: &str, args: &[&str]) -> Out {
    let script = write_script(src);
    let path = script.0.to_str().unwrap().to_string();
    let mut all = vec!["--start-method", method, path.as_str()];
    all.extend_from_slice(args);
    run(&all)
}

/// Runs a script (given as source) under a start method.
pub(crate) fn run_script(src: &str, method: &str) -> Out {
    run_script_args(src, method, &[])
}

/// Whether process `pid` is gone (no such process, or a zombie nobody reaped yet).
pub(crate) fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Polls (bounded) until `pid` is gone; returns whether it went.
pub(crate) fn wait_gone(pid: i32) -> bool {
    eventually(Duration::from_secs(20), || is_gone(pid))
}

/// Whether process `pid` is stopped (state `T`).
pub(crate) fn is_stopped(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('T')))
}

/// Polls `cond` every few milliseconds until it holds or `limit` has passed (a bound that
/// turns a hang into a failure, never a measurement); returns whether it held.
pub(crate) fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A script started in its own process group, for tests that signal it while it runs.
pub(crate) struct Running {
    pub child: Child,
    /// Its stdout, line by line.
    pub lines: std::sync::mpsc::Receiver<String>,
    _script: TempScript,
}

/// Starts a script (stderr piped) and delivers its stdout lines as they come.
pub(crate) fn start_script(src: &str, method: &str) -> Running {
    start_script_with(src, method, &[], |_| {})
}

/// [`start_script`] with script arguments, and a hook that may change the command first
/// (its environment, a `pre_exec` …).
pub(crate) fn start_script_with(
    src: &str,
    method: &str,
    args: &[&str],
    configure: impl FnOnce(&mut Command),
) -> Running {
    use std::io::BufRead;
    let script = write_script(src);
    let mut cmd = Command::new(bin());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.args(["--start-method", method, script.0.to_str().unwrap()]).args(args);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    configure(&mut cmd);
    let mut child = cmd.spawn().expect("cannot run rhai-mp");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Running { child, lines, _script: script }
}

impl Running {
    /// The next stdout line, waiting at most [`LIMIT`]; kills the group and fails if none.
    #[track_caller]
    pub(crate) fn line(&mut self) -> String {
        match self.lines.recv_timeout(LIMIT) {
            Ok(l) => l,
            Err(_) => {
                self.kill_group();
                panic!("the script printed no line within {LIMIT:?}");
            }
        }
    }

    /// The rest of stdout, up to its end (bounded by [`LIMIT`]).
    pub(crate) fn rest(&mut self) -> Vec<String> {
        let deadline = Instant::now() + LIMIT;
        let mut out = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            out.push(l);
        }
        out
    }

    /// Sends `signal` to the script's whole process group.
    pub(crate) fn signal_group(&self, signal: i32) {
        // SAFETY: kill(2) with a negative pid signals the child's own process group.
        unsafe { libc::kill(-(self.child.id() as i32), signal) };
    }

    /// SIGKILLs the whole group and reaps the script.
    pub(crate) fn kill_group(&mut self) {
        self.signal_group(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// Waits (within [`LIMIT`]) for the script to end: its exit code and stderr.
    #[track_caller]
    pub(crate) fn wait(&mut self) -> (Option<i32>, String) {
        let (status, err) = self.wait_status(LIMIT, "");
        (status.code(), err)
    }

    /// Waits at most `limit` for the script to end: its exit status and stderr. Past the
    /// limit, kills the group and fails (the message starts with `context`).
    #[track_caller]
    pub(crate) fn wait_status(&mut self, limit: Duration, context: &str) -> (std::process::ExitStatus, String) {
        let err = reader(self.child.stderr.take().unwrap());
        let Some(status) = wait_bounded(&mut self.child, limit) else {
            let err = err.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
            panic!("{context}the script did not end within {limit:?}; stderr:\n{err}");
        };
        (status, err.recv_timeout(Duration::from_secs(20)).unwrap_or_default())
    }

    /// The script's pid (also its process group's id).
    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

/// The live processes (not zombies) of process group `pgid`.
pub(crate) fn group_members(pgid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return found };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // After the command's closing parenthesis: state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[0] != "X" && fields[2].parse() == Ok(pgid) {
            found.push(pid);
        }
    }
    found
}

/// Polls (bounded) until process group `pgid` has no live process; returns those left.
pub(crate) fn wait_group_gone(pgid: i32) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = group_members(pgid);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
