//! A TCP manager through a network partition (issue 24, item 9): a server in one network
//! namespace, clients in another, a veth pair between them, and the link cut while calls
//! wait. The namespaces are made by the test and removed when it ends (even when it fails);
//! without `ip netns` (not root, no iproute2) the test says so and passes. The processes
//! talk only inside those namespaces; every wait is bounded, and the only timing asserted
//! is a generous bound that proves a call did not hang.

use crate::common::*;
use std::process::{Child, Command, Stdio};

/// Runs `ip ARGS`; whether it succeeded.
fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Two network namespaces joined by a veth pair (`a` 10.213.77.1, `b` 10.213.77.2);
/// removed (with the pair) when dropped.
struct Namespaces {
    a: String,
    b: String,
}

impl Namespaces {
    /// `None` when network namespaces cannot be made here.
    fn make() -> Option<Namespaces> {
        let tag = std::process::id();
        let ns = Namespaces { a: format!("rmp-srv-{tag}"), b: format!("rmp-cli-{tag}") };
        if !ip(&["netns", "add", &ns.a]) {
            return None;
        }
        let (va, vb) = (format!("rmpa{}", tag % 100_000), format!("rmpb{}", tag % 100_000));
        let ok = ip(&["netns", "add", &ns.b])
            && ip(&["link", "add", &va, "netns", &ns.a, "type", "veth", "peer", "name", &vb, "netns", &ns.b])
            && ip(&["-n", &ns.a, "addr", "add", "10.213.77.1/24", "dev", &va])
            && ip(&["-n", &ns.b, "addr", "add", "10.213.77.2/24", "dev", &vb])
            && ip(&["-n", &ns.a, "link", "set", &va, "up"])
            && ip(&["-n", &ns.b, "link", "set", &vb, "up"])
            && ip(&["-n", &ns.a, "link", "set", "lo", "up"])
            && ip(&["-n", &ns.b, "link", "set", "lo", "up"]);
        assert!(ok, "could not set up the namespaces {} and {}", ns.a, ns.b);
        Some(ns)
    }

    /// Cuts the link: the server's end of the pair goes down (nothing crosses, nothing is
    /// refused: a blackhole).
    fn cut(&self) {
        let va = format!("rmpa{}", std::process::id() % 100_000);
        assert!(ip(&["-n", &self.a, "link", "set", &va, "down"]), "could not cut the link");
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the pair, and so the pair.
        ip(&["netns", "del", &self.a]);
        ip(&["netns", "del", &self.b]);
    }
}

/// A script run in namespace `ns` (`ip netns exec`, which execs the binary: the child's pid
/// is the script's), in its own process group; stdout line by line.
struct InNs {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    _script: TempScript,
}

impl InNs {
    fn start(ns: &str, src: &str, args: &[&str]) -> InNs {
        use std::io::BufRead;
        let script = write_script(src);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(bin()).args(["--start-method", "spawn"]).arg(&script.0).args(args);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.env("RHAI_MP_MANAGER_LIVENESS", "3");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("cannot run ip netns exec");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        InNs { child, lines, _script: script }
    }

    fn line(&self) -> String {
        self.lines.recv_timeout(LIMIT).expect("the script printed no line in time (a call hung?)")
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for InNs {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group of a script this test started.
        unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Through a partition, a proxied queue's `get(true, 1)` used to block for as long as the
/// partition lasted (and for ever through a permanent one), and an untimed `get()` never
/// returned. Now the timed call throws `TimeoutError` (within its timeout and half the
/// liveness bound) and the untimed one `BrokenPipeError` (within the liveness bound,
/// `RHAI_MP_MANAGER_LIVENESS`, 3 s here), each on its own connection, cut while connected.
#[test]
fn manager_calls_through_a_partition_fail_in_bounded_time() {
    let Some(ns) = Namespaces::make() else {
        eprintln!("skipping: network namespaces are not available here (ip netns add failed: needs root and iproute2)");
        return;
    };
    let server = InNs::start(
        &ns.a,
        r#"
if __name__ == "__main__" {
    let m = Manager(#{address: "10.213.77.1:0", authkey: "k"});
    m.register("q", m.Queue());
    print(m.address);
    time::sleep(300);
}
"#,
        &[],
    );
    let address = server.line();
    assert!(address.starts_with("10.213.77.1:"), "{address}");
    let client = InNs::start(
        &ns.b,
        r#"
fn timed(address, ready, cut, out) {
    let m = BaseManager(#{address: address, authkey: "k"});
    m.connect();
    let q = m.get("q");
    q.qsize();
    ready.set();
    cut.wait(60);
    let t0 = time::perf_counter();
    try { q.get(true, 1); out.put("timed: got") } catch (e) {
        out.put(`timed: ${e.type} ${time::perf_counter() - t0 < 20.0}`);
    }
}
if __name__ == "__main__" {
    let ready = Event(); let cut = Event(); let out = Queue();
    let p = Process(timed, [ARGV[0], ready, cut, out]); p.start();
    let m = BaseManager(#{address: ARGV[0], authkey: "k"});
    m.connect();
    let q = m.get("q");
    q.qsize();
    print(`ready ${ready.wait(30)}`);
    print("stop"); os::kill(os::getpid(), "SIGSTOP");
    cut.set();
    let t0 = time::perf_counter();
    try { q.get(); print("untimed: got") } catch (e) {
        print(`untimed: ${e.type} ${time::perf_counter() - t0 < 20.0}`);
    }
    print(out.get(true, 30));
    p.join(30);
    print(`child ${p.exitcode}`);
}
"#,
        &[&address],
    );
    assert_eq!(client.line(), "ready true");
    assert_eq!(client.line(), "stop");
    assert!(eventually(LIMIT, || is_stopped(client.pid())), "the client did not stop");
    ns.cut();
    // SAFETY: kill(2) on the client, which this test started.
    unsafe { libc::kill(client.pid(), libc::SIGCONT) };
    let mut lines = vec![client.line(), client.line(), client.line()];
    lines.sort();
    assert_eq!(lines, ["child 0", "timed: TimeoutError true", "untimed: BrokenPipeError true"]);
    drop(client);
    drop(server);
}
