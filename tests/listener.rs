//! `Listener` and `Client` against real Python peers (`python3 -c`, the standard library
//! only) in both roles: with and without a key, a wrong key on each side, every value kind
//! both ways, a 5 MiB message, 200 messages in a row, several clients beside a stalled one,
//! a custom-class object, garbage and truncated frames; and rhai-mp to rhai-mp over TCP
//! (IPv4, IPv6), Unix paths and abstract names. Every wait is bounded; nothing looks at the
//! clock. The main exchange runs with every python3 the machine has (`python3` on the PATH,
//! Debian's `/usr/bin/python3`, and pyenv's `~/.pyenv/versions/3.*`), so both of CPython's
//! handshakes (3.11's HMAC-MD5 and 3.12's `{sha256}`) are met in both roles.

use crate::common::*;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;

/// The python3 interpreters here, each once, the default one first.
fn pythons() -> Vec<PathBuf> {
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    let mut candidates = vec![PathBuf::from("python3"), PathBuf::from("/usr/bin/python3")];
    if let Some(home) = std::env::var_os("HOME") {
        let dir = PathBuf::from(home).join(".pyenv/versions");
        let mut versions: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path().join("bin/python3")).collect())
            .unwrap_or_default();
        versions.sort();
        candidates.extend(versions);
    }
    for py in candidates {
        // One of each interpreter (pyenv's shim and the version it runs are one).
        let probe = "import os, sys; print(sys.version_info[0], os.path.realpath(sys.executable))";
        let Ok(out) = Command::new(&py).args(["-c", probe]).output() else { continue };
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let Some(exe) = text.strip_prefix("3 ") else { continue };
        if out.status.success() && !found.iter().any(|(e, _)| e == exe) {
            found.push((exe.to_string(), py));
        }
    }
    assert!(!found.is_empty(), "these tests need python3 (.ci/run installs it)");
    found.into_iter().map(|(_, p)| p).collect()
}

fn python() -> PathBuf {
    pythons().swap_remove(0)
}

/// A program started in its own process group, its stdout delivered line by line.
struct Peer {
    child: Child,
    lines: Receiver<String>,
    what: String,
    _script: Option<TempScript>,
}

fn start(mut cmd: Command, what: String, script: Option<TempScript>) -> Peer {
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Peer { child, lines, what, _script: script }
}

/// Starts a Rhai script with arguments.
fn rhai(src: &str, args: &[&str]) -> Peer {
    let script = write_script(src);
    let mut cmd = Command::new(bin());
    cmd.arg(&script.0).args(args);
    start(cmd, "rhai-mp".into(), Some(script))
}

/// Starts Python code (`sys.argv[1:]` are the arguments), bounded by an alarm of its own.
fn py(python: &PathBuf, code: &str, args: &[&str]) -> Peer {
    let code = format!("import signal; signal.alarm(50)\n{code}");
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(code).args(args);
    start(cmd, format!("{}", python.display()), None)
}

impl Peer {
    /// The next line (its first: the address a server listens at).
    #[track_caller]
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(LIMIT) {
            Ok(l) => l,
            Err(_) => {
                let out = self.finish();
                panic!("{} printed no line within {LIMIT:?}; stderr:\n{}", self.what, out.stderr);
            }
        }
    }

    /// Waits (bounded) for the end: exit code, the rest of stdout, stderr.
    fn finish(&mut self) -> Out {
        let mut err = self.child.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut e, &mut s);
                s
            })
        });
        let status = wait_bounded(&mut self.child, LIMIT);
        let mut stdout = String::new();
        while let Ok(l) = self.lines.recv_timeout(std::time::Duration::from_secs(if status.is_some() { 5 } else { 0 }))
        {
            stdout.push_str(&l);
            stdout.push('\n');
        }
        let stderr = err.take().and_then(|h| h.join().ok()).unwrap_or_default();
        if status.is_none() {
            panic!("{} did not end within {LIMIT:?}; stdout:\n{stdout}\nstderr:\n{stderr}", self.what);
        }
        Out { code: status.and_then(|s| s.code()), stdout, stderr }
    }
}

/// The values Python sends, and what rhai-mp makes of each (its `type_of`).
const PY_VALUES: &str = r#"
VALUES = [None, True, False, 0, -1, 255, 256, 65535, 65536, 2**31 - 1, -2**31, 2**31, 2**63 - 1, -2**63,
          1.5, -0.0, 1e300, float('inf'), '', 'hé€😀', b'', b'\x00\xff' * 200, bytearray(b'ab'), [],
          [1, [2, [3]]], (), (1, 'a'), {}, {'a': 1, 'b': {'c': [None]}}, {7: 'int', 2.5: 'float', False: 'bool'},
          'x' * 300, list(range(2000)), {str(i): i for i in range(1500)}]

def rhai_view(v):
    if isinstance(v, (list, tuple)):
        return [rhai_view(x) for x in v]
    if isinstance(v, dict):
        return {(k if isinstance(k, str) else str(k).lower()): rhai_view(x) for k, x in v.items()}
    if isinstance(v, bytearray):
        return bytes(v)
    return v

# What the Rhai side sends (RHAI_VALUES there), as Python sees it.
EXPECTED = [None, True, 42, -(1 << 62), 2.5, 'héllo', b'\x07\x07\x07', [1, [2]], {'a': 1, 'b c': [None]}, 'z',
            [], {}, b'']

def exchange(c):
    c.send(VALUES)
    echo = c.recv()
    assert echo == rhai_view(VALUES), (echo, rhai_view(VALUES))
    assert repr(echo[15]) == '-0.0'
    mine = c.recv()
    assert mine == EXPECTED, mine
    print('python ok', flush=True)
"#;

/// What the Rhai side receives, by `type_of`.
const RHAI_TYPES: &str = "[\"()\", \"bool\", \"bool\", \"i64\", \"i64\", \"i64\", \"i64\", \"i64\", \"i64\", \"i64\", \
     \"i64\", \"i64\", \"i64\", \"i64\", \"f64\", \"f64\", \"f64\", \"f64\", \"string\", \"string\", \"blob\", \"blob\", \
     \"blob\", \"array\", \"array\", \"array\", \"array\", \"map\", \"map\", \"map\", \"string\", \"array\", \"map\"]";

const RHAI_EXCHANGE: &str = r#"
fn rhai_values() { [(), true, 42, -(1 << 62), 2.5, "héllo", blob(3, 7), [1, [2]], #{a: 1, "b c": [()]}, 'z', [], #{}, blob()] }
fn exchange(c) {
    let v = c.recv();
    print(v.map(|x| type_of(x)));
    print(`${v[29]} ${v[22]} ${v[17]} ${v[12]} ${v[13]}`);
    c.send(v);
    c.send(rhai_values());
}
fn options(address) {
    let o = #{address: address};
    if ARGV.len() > 1 && ARGV[1] != "" { o.authkey = ARGV[1]; }
    o
}
"#;

const PY_CLIENT: &str = r#"
import sys
from multiprocessing.connection import Client
def addr(a):
    if a.startswith('/') or a.startswith('\0'):
        return a
    h, p = a.rsplit(':', 1)
    return (h.strip('[]'), int(p))
key = sys.argv[2].encode() if len(sys.argv) > 2 and sys.argv[2] else None
c = Client(addr(sys.argv[1]), authkey=key)
exchange(c)
"#;

const PY_LISTENER: &str = r#"
import sys
from multiprocessing.connection import Listener
key = sys.argv[2].encode() if len(sys.argv) > 2 and sys.argv[2] else None
a = sys.argv[1]
l = Listener(a if a.startswith('/') else ('127.0.0.1', 0), authkey=key)
print(l.address if isinstance(l.address, str) else '%s:%d' % l.address, flush=True)
c = l.accept()
exchange(c)
"#;

fn check_rhai_side(out: &str) {
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(RHAI_TYPES), "{out}");
    assert_eq!(lines.next(), Some("#{\"2.5\": \"float\", \"7\": \"int\", \"false\": \"bool\"} [6162] inf 9223372036854775807 -9223372036854775808"), "{out}");
}

/// rhai-mp listens, Python connects: every value kind both ways.
fn rhai_listens(python: &PathBuf, address: &str, key: &str) {
    let mut server = rhai(
        &format!(
            "{RHAI_EXCHANGE}
let l = Listener(options(ARGV[0]));
print(l.address);
let c = l.accept();
exchange(c);
c.close(); l.close();"
        ),
        &[address, key],
    );
    let at = server.line();
    let mut client = py(python, &format!("{PY_VALUES}{PY_CLIENT}"), &[&at, key]);
    let c = client.finish();
    let s = server.finish();
    assert_eq!(
        c.code,
        Some(0),
        "{} as client ({address}, key {key:?}):\n{}\nrhai-mp:\n{}",
        python.display(),
        c.stderr,
        s.stderr
    );
    assert_eq!(c.stdout, "python ok\n");
    assert_eq!(s.code, Some(0), "{}", s.stderr);
    check_rhai_side(&s.stdout);
}

/// Python listens, rhai-mp connects.
fn python_listens(python: &PathBuf, address: &str, key: &str) {
    let mut server = py(python, &format!("{PY_VALUES}{PY_LISTENER}"), &[address, key]);
    let at = server.line();
    let mut client = rhai(&format!("{RHAI_EXCHANGE}\nlet c = Client(options(ARGV[0]));\nexchange(c);"), &[&at, key]);
    let c = client.finish();
    let s = server.finish();
    assert_eq!(
        s.code,
        Some(0),
        "{} as listener (key {key:?}):\n{}\nrhai-mp:\n{}",
        python.display(),
        s.stderr,
        c.stderr
    );
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    check_rhai_side(&c.stdout);
}

fn temp_path(tag: &str) -> String {
    std::env::temp_dir().join(format!("rhai-mp-test-{tag}-{}", std::process::id())).to_string_lossy().into_owned()
}

#[test]
fn every_value_kind_both_ways_with_and_without_a_key() {
    let py = python();
    for key in ["", "secret key"] {
        rhai_listens(&py, "127.0.0.1:0", key);
        python_listens(&py, "tcp", key);
    }
    // Unix paths both ways.
    rhai_listens(&py, &temp_path("values-a"), "k");
    python_listens(&py, &temp_path("values-b"), "k");
}

#[test]
fn every_python_here_in_both_roles() {
    for py in pythons().iter().skip(1) {
        rhai_listens(py, "127.0.0.1:0", "k");
        python_listens(py, "tcp", "k");
    }
}

#[test]
fn wrong_keys_fail_on_both_sides_and_the_listener_goes_on() {
    let python = python();
    // rhai-mp listens with "k"; a Python client with another key, then one with it.
    let mut server = rhai(
        r#"
let l = Listener(#{address: "127.0.0.1:0", authkey: "k"});
print(l.address);
try { l.accept(); print("accepted?"); } catch (e) { print(`${e.type} ${e.message.contains("digest received was wrong")}`); }
let c = l.accept();
print(c.recv());
"#,
        &[],
    );
    let at = server.line();
    let code = r#"
import sys
from multiprocessing.connection import Client, AuthenticationError
h, p = sys.argv[1].rsplit(':', 1)
try:
    Client((h, int(p)), authkey=b'wrong')
    print('no error')
except AuthenticationError as e:
    print('AuthenticationError')
c = Client((h, int(p)), authkey=b'k')
c.send('second client')
"#;
    let mut client = py(&python, code, &[&at]);
    let c = client.finish();
    assert_eq!(c.stdout, "AuthenticationError\n", "{}", c.stderr);
    let s = server.finish();
    assert_eq!(s.stdout, "AuthenticationError true\nsecond client\n", "{}", s.stderr);

    // Python listens with b"k"; rhai-mp connects with another key, with none, then with it.
    let code = r#"
from multiprocessing.connection import Listener, AuthenticationError
l = Listener(('127.0.0.1', 0), authkey=b'k')
print('%s:%d' % l.address, flush=True)
for i in range(2):
    try:
        l.accept()
        print('accepted?', flush=True)
    except (AuthenticationError, EOFError) as e:
        print(type(e).__name__, flush=True)
c = l.accept()
c.send(c.recv() + 1)
"#;
    let mut server = py(&python, code, &[]);
    let at = server.line();
    let mut client = rhai(
        r#"
try { Client(ARGV[0], #{authkey: "wrong"}); print("connected?"); } catch (e) { print(`${e.type}: ${e.message}`); }
let c = Client(ARGV[0]);
try { c.recv(); } catch (e) { print(e.type); }
c.close();
let c = Client(ARGV[0], #{authkey: blob(1, 107)});
c.send(41);
print(c.recv());
"#,
        &[&at],
    );
    let c = client.finish();
    assert_eq!(
        c.stdout,
        "AuthenticationError: digest sent was rejected: the peer does not accept this authkey\nAuthenticationError\n42\n",
        "{}",
        c.stderr
    );
    let s = server.finish();
    assert_eq!(s.stdout, "AuthenticationError\nEOFError\n", "{}", s.stderr);
}

#[test]
fn big_messages_and_many_in_a_row_over_a_unix_socket() {
    let python = python();
    let path = temp_path("big");
    let mut server = rhai(
        r#"
let l = Listener(ARGV[0], #{authkey: "k"});
print(l.address);
let c = l.accept();
let b = c.recv_bytes();
print(`${b.len()} ${b[0]} ${b[b.len() - 1]}`);
c.send_bytes(b);
let v = c.recv();
print(`${type_of(v)} ${v.len()}`);
c.send(v);
let sum = 0;
for i in 0..200 { let m = c.recv(); sum += m[0]; c.send([i, m[1] + "!"]); }
print(sum);
let short = blob(10);
try { short.recv_bytes_into(c); } catch (e) { print(`${e.type} ${e.data.len()}`); }
c.close();
l.close();
"#,
        &[&path],
    );
    let at = server.line();
    assert!(std::path::Path::new(&at).exists(), "the socket file {at} is there while listening");
    let code = r#"
import sys
from multiprocessing.connection import Client
c = Client(sys.argv[1], authkey=b'k')
big = bytes(range(256)) * (5 * 1024 * 1024 // 256)
c.send_bytes(big)
assert c.recv_bytes() == big
c.send(big)
assert c.recv() == big
for i in range(200):
    c.send((i, 'm%d' % i))
for i in range(200):
    assert c.recv() == [i, 'm%d!' % i]
c.send_bytes(b'x' * 11)
print('python ok')
"#;
    let mut client = py(&python, code, &[&at]);
    let c = client.finish();
    let s = server.finish();
    assert_eq!(c.stdout, "python ok\n", "{}\n{}", c.stderr, s.stderr);
    assert_eq!(s.stdout, format!("5242880 0 255\nblob 5242880\n19900\nBufferTooShort 11\n"));
    assert!(!std::path::Path::new(&at).exists(), "close() removes the socket file");
}

#[test]
fn several_clients_while_one_stalls_mid_handshake_and_one_mid_message() {
    let python = python();
    let mut server = rhai(
        r#"
let l = Listener(#{address: "127.0.0.1:0", authkey: "k", backlog: 8});
print(l.address);
let conns = [];
while conns.len() < 3 {
    if wait([l], 30).len() == 1 { conns.push(l.accept()); }
}
print("three accepted");
let names = [];
for c in conns { names.push(c.recv()); }
names.sort();
print(names);
// One sends half a message and stops: wait() names only the others, and poll() says no.
for c in conns { c.send("go"); }
let ready = [];
let pending = conns;
while ready.len() < 2 {
    for c in wait(pending, 30) {
        ready.push(c.recv());
        pending = pending.filter(|x| x.fileno() != c.fileno());
    }
}
ready.sort();
print(ready);
print(wait(pending, 0.2).len());
print(pending[0].poll());
pending[0].send("bye");
"#,
        &[],
    );
    let at = server.line();
    // A raw client that sends half of a handshake answer and then nothing.
    let (host, port) = at.rsplit_once(':').unwrap();
    let mut stalled = std::net::TcpStream::connect((host, port.parse::<u16>().unwrap())).unwrap();
    std::io::Write::write_all(&mut stalled, &[0, 0, 0, 40, 1, 2, 3]).unwrap();
    let code = r#"
import sys, time, threading
from multiprocessing.connection import Client
h, p = sys.argv[1].rsplit(':', 1)
def one(name, half):
    c = Client((h, int(p)), authkey=b'k')
    c.send(name)
    assert c.recv() == 'go'
    if half:
        c._send(b'\x00\x00\x01\x00' + b'partial')   # a header for 256 bytes, then 7
        assert c.recv() == 'bye'
    else:
        c.send(name + ' done')
ts = [threading.Thread(target=one, args=(n, n == 'c')) for n in 'abc']
for t in ts: t.start()
for t in ts: t.join()
print('python ok')
"#;
    let mut client = py(&python, code, &[&at]);
    let c = client.finish();
    let s = server.finish();
    drop(stalled);
    assert_eq!(c.stdout, "python ok\n", "{}\n{}", c.stderr, s.stderr);
    assert_eq!(
        s.stdout,
        format!("three accepted\n[\"a\", \"b\", \"c\"]\n[\"a done\", \"b done\"]\n0\nfalse\n"),
        "{}",
        s.stderr
    );
}

#[test]
fn objects_rhai_mp_cannot_read_and_garbage_frames() {
    let python = python();
    let mut server = rhai(
        r#"
fn t(f) { let r = "no error"; try { f.call(); } catch (e) { r = `${e.type}: ${e.message}`; } r }
let l = Listener("127.0.0.1:0");
print(l.address);
let c = l.accept();
print(t(|| c.recv()));         // a Point
print(c.recv());               // the connection goes on
print(t(|| c.recv()));         // a set
print(t(|| c.recv()));         // 2**64
print(t(|| c.recv()));         // a cycle
print(t(|| c.recv()));         // send_bytes(b'hello')
print(t(|| c.recv_bytes(3)));  // 10 bytes: stays unread
print(c.recv_bytes().len());
print(t(|| c.send([1, Queue()])));
print(t(|| c.send(|x| x)));
c.send("still usable");
print(t(|| c.recv()));         // the peer closed
print(t(|| c.recv()));
c.close();
print(t(|| c.recv()));
// Garbage: a bad length, then a torn frame.
let g = l.accept();
print(t(|| g.recv()));
print(t(|| g.recv()));
let g = l.accept();
print(t(|| g.recv()));
"#,
        &[],
    );
    let at = server.line();
    let code = r#"
import sys, socket, struct
from multiprocessing.connection import Client
h, p = sys.argv[1].rsplit(':', 1)
class Point:
    def __init__(self, x, y): self.x, self.y = x, y
c = Client((h, int(p)))
c.send(Point(1, 2))
c.send('after the point')
c.send({1, 2})
c.send(2**64)
a = []; a.append(a)
c.send(a)
c.send_bytes(b'hello')
c.send_bytes(b'0123456789')
assert c.recv() == 'still usable'
c.close()
s = socket.create_connection((h, int(p)))
s.sendall(struct.pack('!i', -7))
s.close()
s = socket.create_connection((h, int(p)))
s.sendall(struct.pack('!i', 100) + b'only part')
s.close()
print('python ok')
"#;
    let mut client = py(&python, code, &[&at]);
    let c = client.finish();
    let s = server.finish();
    assert_eq!(c.stdout, "python ok\n", "{}\n{}", c.stderr, s.stderr);
    let lines: Vec<&str> = s.stdout.lines().collect();
    assert_eq!(lines.len(), 16, "{}\n{}", s.stdout, s.stderr);
    let expect = [
        (0, "SerializationError: ", "__main__.Point"),
        (1, "after the point", ""),
        (2, "SerializationError: ", "a Python set"),
        (3, "SerializationError: ", "72 bits"),
        (4, "SerializationError: ", "contains itself"),
        (5, "SerializationError: ", "not a pickle"),
        (6, "OSError: ", "maxlength 3"),
        (7, "10", ""),
        (8, "SerializationError: ", "'Queue' cannot be sent to another program"),
        (9, "SerializationError: ", "closure"),
        (10, "EOFError: ", ""),
        (11, "EOFError: ", ""),
        (12, "OSError: ", "closed"),
        (13, "OSError: ", "bad message length"),
        (14, "OSError: ", "bad message length"),
        (15, "OSError: ", "got end of file during message"),
    ];
    for (i, start, has) in expect {
        assert!(lines[i].starts_with(start) && lines[i].contains(has), "line {i}: {:?}\n{}", lines[i], s.stdout);
    }
}

/// rhai-mp on both ends, in two processes of one script (a Process child connects): TCP on
/// IPv4 and IPv6, a Unix path, an abstract name; a Listener connection passed to a child.
fn rhai_to_rhai(method: &str) {
    let path = temp_path(&format!("r2r-{method}"));
    let out = run_script_args(
        r#"
fn echo(address, key) {
    let c = Client(address, #{authkey: key});
    c.send(c.recv() * 2);
}
fn relay(conn) { conn.send(conn.recv() + 1); }
if __name__ == "__main__" {
    for a in ["127.0.0.1:0", "[::1]:0", ARGV[0], "@rhai-mp-test-" + os::getpid()] {
        let l = Listener(#{address: a, authkey: "k"});
        let p = Process(echo, [l.address, "k"]);
        p.start();
        let c = l.accept();
        c.send(21);
        print(`${c.recv()} ${type_of(l.last_accepted)}`);
        p.join();
        l.close();
    }
    // A connection crosses to a child as a Pipe end does.
    let l = Listener("127.0.0.1:0");
    let c = Client(l.address);
    let s = l.accept();
    let p = Process(relay, [s]);
    p.start();
    c.send(1);
    print(c.recv());
    p.join();
    // A Listener does not cross.
    try { Process(relay, [l]).start(); } catch (e) { print(e.type); }
}
"#,
        method,
        &[&path],
    );
    assert_eq!(out.ok(), "42 string\n42 string\n42 string\n42 string\n2\nSerializationError\n", "{}", out.stderr);
    assert!(!std::path::Path::new(&path).exists());
}

per_method!(rhai_to_rhai);

#[test]
fn bad_arguments_and_nothing_listening() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = run_script_args(
        r#"
fn t(f) { let r = "no error"; try { f.call(); } catch (e) { r = e.type; } r }
print(t(|| Client(ARGV[0])));
print(t(|| Client("/nonexistent/rhai-mp.sock")));
print(t(|| Client("@rhai-mp-nobody-listens-here")));
print(t(|| Listener("host:port")));
print(t(|| Listener("")));
print(t(|| Listener("@")));
print(t(|| Listener(#{address: "127.0.0.1:0", colour: 1})));
print(t(|| Listener(#{address: "127.0.0.1:0", authkey: 5})));
print(t(|| Listener(5)));
print(t(|| Client(#{authkey: "k"})));
print(t(|| Listener("/nonexistent-dir/x.sock")));
let l = Listener("127.0.0.1:0");
print(t(|| Listener(l.address)));
print(l.last_accepted);
print(l.to_string().starts_with("<Listener address=127.0.0.1:"));
print(wait([l], 0).len());
l.close(); l.close();
print(l);
print(t(|| l.accept()));
print(t(|| wait([l], 0)));
let a = Listener();
print(a.address.contains("rhai-mp-listener-"));
"#,
        "spawn",
        &[&format!("127.0.0.1:{free}")],
    );
    assert_eq!(
        out.ok(),
        "ConnectionRefusedError\nConnectionRefusedError\nConnectionRefusedError\nValueError\nValueError\nValueError\n\
         ValueError\nTypeError\nTypeError\nValueError\nOSError\nOSError\n\ntrue\n0\n<Listener closed>\nOSError\nOSError\n\
         true\n",
        "{}",
        out.stderr
    );
}

/// The example pair: scripts/talk_listener_producer.py starts scripts/talk_listener_pool.rhai and
/// hands it five jobs; the Pool's results come back checked.
#[test]
fn the_example_pair_runs() {
    let mut cmd = Command::new(python());
    cmd.current_dir(root()).env("RHAI_MP", bin()).args(["scripts/talk_listener_producer.py", "--spawn"]);
    let mut p = start(cmd, "talk_listener_producer.py".into(), None);
    let out = p.finish();
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("job 5: 200 results") && out.stdout.ends_with("server: served 5 jobs\n"),
        "{}",
        out.stdout
    );
}
