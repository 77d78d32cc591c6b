//! The REPL through a real pseudo-terminal, as a person uses it. On a terminal rustyline
//! behaves differently from a pipe — raw mode while a line is read, its own SIGINT handler
//! while the editor exists — so Ctrl-C, history keys and the progress bar are tested here
//! (`repl.rs` drives the REPL through a pipe). A statement prints a marker before it waits,
//! and Ctrl-C is sent once the marker is there: the terminal is back in cooked mode then,
//! so the key is a SIGINT to the session's process group, as at a real terminal. Every
//! expectation waits at most [`WAIT`].

use crate::common::*;
use expectrl::{ControlCode, Session};
use std::process::Command;
use std::time::Duration;

/// The longest any expectation waits (a broken build fails instead of hanging).
const WAIT: Duration = Duration::from_secs(30);

/// A REPL session on a pseudo-terminal; killed (with its process group) when dropped.
struct Repl {
    s: Session,
    _history: TempScript,
}

impl Repl {
    fn start(method: &str) -> Repl {
        let history = write_script("");
        let mut cmd = Command::new(bin());
        cmd.args(["--start-method", method]).env("RHAI_MP_HISTORY", &history.0).env("TERM", "xterm");
        let mut s = Session::spawn(cmd).expect("cannot start the REPL on a pty");
        s.set_expect_timeout(Some(WAIT));
        let mut r = Repl { s, _history: history };
        r.expect(">> ");
        r
    }

    /// Waits for `text`; returns what came before it.
    #[track_caller]
    fn expect(&mut self, text: &str) -> String {
        match self.s.expect(text) {
            Ok(c) => String::from_utf8_lossy(c.before()).into_owned(),
            Err(e) => panic!("the REPL did not show {text:?}: {e}"),
        }
    }

    /// Types a line.
    fn line(&mut self, text: &str) {
        self.s.send_line(text).unwrap();
    }

    /// Types a line that prints `marker` and then waits, presses Ctrl-C once the marker is
    /// shown, and returns what the REPL printed up to its next prompt.
    #[track_caller]
    fn interrupt(&mut self, code: &str, marker: &str) -> String {
        self.line(code);
        // The echo of the typed line contains the marker too: wait for the printed one.
        self.expect(&format!("\n{marker}"));
        self.s.send(ControlCode::EndOfText).unwrap();
        self.expect(">> ")
    }

    fn pid(&self) -> i32 {
        self.s.get_process().pid().as_raw()
    }
}

impl Drop for Repl {
    fn drop(&mut self) {
        let pid = self.pid();
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

#[track_caller]
fn interrupted(out: &str, what: &str) {
    assert!(out.contains("KeyboardInterrupt"), "{what}: Ctrl-C did not stop it with KeyboardInterrupt:\n{out}");
    assert!(!out.contains("WorkerLostError"), "{what}: {out}");
}

fn ctrl_c_stops_every_kind_of_wait(method: &str) {
    let mut r = Repl::start(method);
    r.line("let n = 41;");
    r.expect(">> ");
    r.line("let q = Queue();");
    r.expect(">> ");
    interrupted(&r.interrupt(r#"print("getting"); q.get()"#, "getting"), "q.get()");
    interrupted(&r.interrupt(r#"print("sleeping"); time::sleep(30)"#, "sleeping"), "time::sleep");
    interrupted(&r.interrupt(r#"let c = 0; print("looping"); while true { c += 1 }"#, "looping"), "a loop");
    interrupted(
        &r.interrupt(r#"let l = Lock(); l.acquire(); print("locking"); l.acquire()"#, "locking"),
        "lock.acquire",
    );
    interrupted(&r.interrupt(r#"let e = Event(); print("waiting"); e.wait()"#, "waiting"), "ev.wait");
    interrupted(
        &r.interrupt(
            r#"fn nap() { time::sleep(30) } let p = Process(nap); p.start(); print("joining"); p.join()"#,
            "joining",
        ),
        "p.join",
    );
    interrupted(
        &r.interrupt(
            r#"fn slow(x) { time::sleep(30); x } let pool = Pool(2); print("mapping"); pool.map(slow, [1, 2])"#,
            "mapping",
        ),
        "pool.map",
    );
    // The session kept its state, and goes on.
    r.line("print(`n is ${n + 1}`)");
    r.expect("n is 42");
    r.expect(">> ");
    r.line("print(c > 0)");
    r.expect("true");
    r.expect(">> ");
    r.line("print(Pool(2).map(|x| x * 10, [1, 2]))");
    r.expect("[10, 20]");
    r.expect(">> ");
    // Ctrl-C at an empty prompt says how to leave; a second one leaves.
    r.s.send(ControlCode::EndOfText).unwrap();
    r.expect("To leave");
    r.s.send(ControlCode::EndOfText).unwrap();
    r.s.expect(expectrl::Eof).expect("a second Ctrl-C at an empty prompt leaves the REPL");
}

per_method!(ctrl_c_stops_every_kind_of_wait);

#[test]
fn ctrl_c_drops_a_half_typed_statement() {
    let mut r = Repl::start("spawn");
    r.line("let a = [1,");
    r.expect(".. ");
    r.s.send(ControlCode::EndOfText).unwrap();
    r.expect(">> ");
    r.line("print(\"fresh\")");
    r.expect("\nfresh");
    r.expect(">> ");
}

#[test]
fn history_multi_line_input_help_and_errors() {
    let mut r = Repl::start("spawn");
    r.line("let a = [1,");
    r.expect(".. ");
    r.line(" 2, 3];");
    r.expect(">> ");
    r.line("print(`len ${a.len()}`)");
    r.expect("\nlen 3");
    r.expect(">> ");
    // Up arrow brings the last line back; Enter runs it again.
    r.s.send("\x1b[A").unwrap();
    r.s.send("\r").unwrap();
    r.expect("\nlen 3");
    r.expect(">> ");
    r.line(":help");
    r.expect("rhai-mp REPL");
    r.expect(">> ");
    // An error in the REPL's own process quotes its line.
    r.line("let b = [1]; b[5]");
    let out = r.expect(">> ");
    assert!(out.contains("IndexError"), "{out}");
    assert!(out.contains("<input>:1:") && out.contains("| let b = [1]; b[5]"), "the error quotes its line:\n{out}");
    r.line(":quit");
    r.s.expect(expectrl::Eof).expect(":quit leaves the REPL");
}

#[test]
fn a_progress_bar_is_drawn_on_the_terminal() {
    let mut r = Repl::start("spawn");
    r.line("fn sq(x) { x * x }");
    r.expect(">> ");
    r.line("let pool = Pool(2); let n = 0; for x in pool.imap(sq, 0..200).progress() { n += x } print(`sum ${n}`)");
    let out = r.expect("sum 2646700");
    assert!(out.contains("200/200"), "the bar reached its end on the terminal:\n{out}");
    r.expect(">> ");
}
