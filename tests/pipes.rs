//! Pipe and Connection: every method and error, under each start method where behaviour
//! could differ; atomic messages with many readers and writers; large messages.

use crate::common::*;

per_method!(
    values_round_trip_through_a_child,
    one_way_pipes_and_end_of_stream,
    connections_travel_through_pipes_and_queues,
    many_readers_and_writers_never_tear_messages,
    large_messages,
    reused_big_messages,
    big_values_are_read_in_place,
);

fn values_round_trip_through_a_child(m: &str) {
    let out = run_script(
        r#"
fn echo(conn) {
    loop {
        let v = conn.recv();
        if v == "stop" { break; }
        conn.send(v);
    }
    conn.close();
}
if __name__ == "__main__" {
    let ends = Pipe();
    let p = Process(echo, [ends[1]]);
    p.start();
    ends[1].close();
    let k = 3;
    let values = [(), true, 7, -2.5, 'é', "text", blob(3, 1), [1, [2]], #{a: #{b: ()}}, |x| x + k];
    for v in values {
        ends[0].send(v);
        let back = ends[0].recv();
        if type_of(v) == "Fn" { print(`closure: ${back.call(1)}`); } else { print(`${back == v} ${back}`); }
    }
    ends[0].send("stop");
    try { ends[0].recv(); } catch (e) { print(e.type); }
    print(ends[0].poll());
    p.join();
}
"#,
        m,
    );
    let s = out.ok();
    assert_eq!(s.matches("true ").count(), 9, "{s}");
    assert!(s.contains("closure: 4"), "{s}");
    assert!(s.ends_with("EOFError\ntrue\n"), "{s}");
}

fn one_way_pipes_and_end_of_stream(m: &str) {
    let out = run_script(
        r#"
fn produce(w) {
    for i in 0..3 { w.send(`item ${i}`); }
    w.send_bytes("raw".to_blob());
    w.close();
}
if __name__ == "__main__" {
    let ends = Pipe(false);
    let r = ends[0]; let w = ends[1];
    print(`${r} ${w}`.contains("readonly") && `${w}`.contains("writeonly"));
    try { r.send(1); } catch (e) { print(`${e.type}: ${e.message}`); }
    try { w.recv(); } catch (e) { print(`${e.type}: ${e.message}`); }
    try { w.poll(); } catch (e) { print(`${e.type}: ${e.message}`); }
    let p = Process(produce, [w]);
    p.start();
    w.close();
    print(r.poll(()));
    for i in 0..3 { print(r.recv()); }
    print(r.recv_bytes().as_string());
    print(`at end: poll=${r.poll(5)}`);
    try { r.recv(); } catch (e) { print(`${e.type}`); }
    try { r.recv_bytes(); } catch (e) { print(`${e.type}`); }
    p.join();
    r.close();
    print(r.closed);
    try { r.recv(); } catch (e) { print(`${e.type}: ${e.message}`); }
    try { r.fileno(); } catch (e) { print(`${e.type}: ${e.message}`); }
    r.close();
}
"#,
        m,
    );
    assert_eq!(
        out.ok(),
        "true\nOSError: connection is read-only\nOSError: connection is write-only\nOSError: connection is write-only\ntrue\n\
         item 0\nitem 1\nitem 2\nraw\nat end: poll=true\nEOFError\nEOFError\ntrue\nOSError: handle is closed\nOSError: handle is closed\n"
    );
}

fn connections_travel_through_pipes_and_queues(m: &str) {
    let out = run_script(
        r#"
fn relay(control) {
    // Receives a connection through a pipe and a queue through that connection.
    let conn = control.recv();
    let q = conn.recv();
    q.put(`via ${current_process().name}`);
    conn.send("done");
}
if __name__ == "__main__" {
    let control = Pipe();
    let data = Pipe();
    let q = Queue();
    let p = Process(relay, [control[1]]);
    p.start();
    control[0].send(data[1]);
    data[0].send(q);
    print(data[0].recv());
    print(q.get());
    p.join();
    let qq = Queue();
    qq.put(data);
    let again = qq.get();
    again[1].send("through a queue");
    print(again[0].recv());
}
"#,
        m,
    );
    assert_eq!(out.ok(), "done\nvia Process-1\nthrough a queue\n");
}

fn many_readers_and_writers_never_tear_messages(m: &str) {
    // Four writers share one end, three readers share the other; sizes straddle the
    // inline/memfd boundary. Every message must arrive exactly once and intact.
    let out = run_script(
        r#"
fn writer(w, id) {
    for i in 0..150 {
        let size = if i % 50 == 0 { 70000 } else { (i * 37) % 3000 };
        w.send(#{id: id, i: i, pad: blob(size, id), size: size});
    }
}
fn reader(r, results) {
    let seen = [];
    loop {
        let msg = r.recv();
        if msg == () { break; }
        let ok = msg.pad.len() == msg.size && (msg.size == 0 || (msg.pad[0] == msg.id && msg.pad[-1] == msg.id));
        if !ok { print(`torn: ${msg.id}/${msg.i}`); }
        seen.push(`${msg.id}/${msg.i}`);
    }
    results.put(seen);
}
if __name__ == "__main__" {
    let ends = Pipe();
    let results = Queue();
    let readers = [];
    for r in 0..3 { let p = Process(reader, [ends[0], results]); p.start(); readers.push(p); }
    let writers = [];
    for id in 0..4 { let p = Process(writer, [ends[1], id]); p.start(); writers.push(p); }
    for p in writers { p.join(); }
    for r in 0..3 { ends[1].send(()); }
    let all = [];
    for r in 0..3 { all += results.get(); }
    for p in readers { p.join(); }
    all.sort();
    all.dedup();
    print(`distinct ${all.len()}`);
}
"#,
        m,
    );
    let s = out.ok();
    assert!(!s.contains("torn"), "{s}");
    assert!(s.ends_with("distinct 600\n"), "{s}");
}

fn large_messages(m: &str) {
    let out = run_script(
        r#"
fn echo(conn) { let b = conn.recv_bytes(); conn.send_bytes(b); let v = conn.recv(); conn.send(v.len()); }
if __name__ == "__main__" {
    let ends = Pipe();
    let p = Process(echo, [ends[1]]);
    p.start();
    let big = blob(64 * 1024 * 1024 + 3, 0x5a);
    big[12345] = 7;
    ends[0].send_bytes(big);
    let back = ends[0].recv_bytes();
    print(`${back.len()} ${back[12345]} ${back[-1]}`);
    let items = [];
    for i in 0..100000 { items.push(i); }
    ends[0].send(items);
    print(ends[0].recv());
    p.join();
}
"#,
        m,
    );
    assert_eq!(out.ok(), "67108867 7 90\n100000\n");
}

/// Big messages reuse the sender's memfds (written through a kept mapping once read):
/// sizes that shrink and grow again, many in flight at once, all arrive intact; and int
/// arrays (sent as one block of words) keep their extremes.
fn reused_big_messages(m: &str) {
    let out = run_script(
        r#"
fn sink(conn) {
    let sum = 0;
    loop {
        let b = conn.recv_bytes();
        if b.len() == 0 { break; }
        let n = b.len();
        if b[0] != n % 251 || b[n / 2] != n % 7 || b[n - 1] != n % 13 { print(`bad ${n}`); }
        sum += n;
    }
    conn.send(sum);
    let xs = conn.recv();
    conn.send([xs.len(), xs[0], xs[1], xs[2], xs[-1], type_of(xs[3])]);
}
if __name__ == "__main__" {
    let ends = Pipe();
    let p = Process(sink, [ends[1]]);
    p.start();
    let total = 0;
    for n in [300000, 100000, 5000000, 70000, 300001, 5000000, 2000000, 90000, 6000000, 100000] {
        let b = blob(n, n % 251);
        b[n / 2] = n % 7;
        b[n - 1] = n % 13;
        ends[0].send_bytes(b);
        total += n;
    }
    ends[0].send_bytes(blob());
    print(ends[0].recv() == total);
    let xs = [];
    for i in 0..200000 { xs.push(i * 3 - 100); }
    xs[0] = 9223372036854775807;
    xs[1] = -9223372036854775807 - 1;
    xs[2] = 0;
    ends[0].send(xs);
    print(ends[0].recv());
    p.join();
}
"#,
        m,
    );
    assert_eq!(out.ok(), "true\n[200000, 9223372036854775807, -9223372036854775808, 0, 599897, \"i64\"]\n");
}

/// Values with large blobs and int arrays (sent with `send`: copied once into a memfd,
/// decoded in place from it on the other side, its mapping kept for the next) arrive
/// intact, again and again, with shared parts and handles inside, and raw bytes between.
fn big_values_are_read_in_place(m: &str) {
    let out = run_script(
        r#"
fn echo(conn) {
    loop {
        let v = conn.recv();
        if v == () { break; }
        conn.send(v);
        conn.send_bytes(blob(200000, 4));
    }
}
if __name__ == "__main__" {
    let ends = Pipe();
    let p = Process(echo, [ends[1]]);
    p.start();
    let c = ends[0];
    let ok = 0;
    for round in 0..6 {
        let n = 100000 + round * 700000;
        let b = blob(n, round);
        b[n - 1] = 77;
        let ints = [];
        ints.pad(n / 8, round);
        ints[0] = -9223372036854775807 - 1;
        let inner = Pipe(false);
        let v = #{b: b, again: [b, 1.5], ints: ints, conn: inner[1], s: "x"};
        c.send(v);
        let back = c.recv();
        if back.b == b && back.again[0] == b && back.again[1] == 1.5 && back.ints == ints && back.s == "x" {
            ok += 1;
        }
        back.conn.send(round);
        if inner[0].recv() != round { print("conn lost"); }
        if c.recv_bytes().len() != 200000 { print("bytes lost"); }
    }
    c.send(());
    p.join();
    print(ok);
}
"#,
        m,
    );
    assert_eq!(out.ok(), "6\n");
}

#[test]
fn bytes_methods_and_their_errors() {
    let out = run_script(
        r#"
fn show(e) { print(`${e.type}: ${e.message}`); }
let ends = Pipe();
let a = ends[0]; let b = ends[1];
b.send_bytes("abcdefgh".to_blob(), 2, 3);
print(a.recv_bytes().as_string());
b.send_bytes("abcdefgh".to_blob(), 5);
print(a.recv_bytes().as_string());
try { b.send_bytes("abc".to_blob(), 4); } catch (e) { show(e) }
try { b.send_bytes("abc".to_blob(), 1, 5); } catch (e) { show(e) }
try { b.send_bytes("abc".to_blob(), -1); } catch (e) { show(e) }
try { b.send_bytes("abc".to_blob(), 0, -1); } catch (e) { show(e) }
try { b.send_bytes("abc"); } catch (e) { show(e) }
b.send_bytes("hello world".to_blob());
try { a.recv_bytes(3); } catch (e) { show(e) }
print(a.recv_bytes(11).as_string());
try { a.recv_bytes(-1); } catch (e) { show(e) }
let buf = blob(4);
b.send_bytes("abcdefgh".to_blob());
try { buf.recv_bytes_into(a); } catch (e) { print(`${e.type} ${e.data.as_string()}`); }
b.send_bytes("xy".to_blob());
print(buf.recv_bytes_into(a, 2));
print(buf);
try { buf.recv_bytes_into(a, 5); } catch (e) { show(e) }
try { buf.recv_bytes_into(a, -1); } catch (e) { show(e) }
try { buf.recv_bytes_into("a"); } catch (e) { show(e) }
b.send(42);
print(type_of(a.recv_bytes()));
b.send_bytes(blob(2, 1));
print(a.recv());
print(type_of(a.fileno()));
print(a.poll(0.01));
try { a.poll(-1); } catch (e) { show(e) }
try { a.poll("x"); } catch (e) { show(e) }
try { b.send(timestamp()); } catch (e) { show(e) }
a.close();
try { b.send(1); } catch (e) { show(e) }
"#,
        "spawn",
    );
    let want = "cde\nfgh\n\
         ValueError: buffer length 3 < offset 4\n\
         ValueError: buffer length 3 < offset 1 + size 5\n\
         ValueError: offset is negative\n\
         ValueError: size is negative\n\
         TypeError: data of send_bytes() must be a blob, not string\n\
         OSError: bad message length: the message has 11 bytes, more than maxlength 3 (it stays unread)\n\
         hello world\n\
         ValueError: negative maxlength\n\
         BufferTooShort abcdefgh\n\
         2\n\
         [00007879]\n\
         ValueError: offset 5 too large for a buffer of 4 bytes\n\
         ValueError: offset is negative\n\
         TypeError: recv_bytes_into() reads from a Connection, not string\n\
         blob\n\
         [0101]\n\
         i64\n\
         false\n\
         ValueError: timeout of poll() must be non-negative, not -1\n\
         TypeError: timeout of poll() must be a number of seconds or (), not string\n\
         SerializationError: a value of type 'timestamp' cannot be sent to another process (at obj)\n\
         BrokenPipeError: [Errno 32] Broken pipe: the other end of the connection is closed\n";
    assert_eq!(out.ok(), want);
}

#[test]
fn seed_poll_examples_behave_as_on_linux() {
    // Seed 003's "strange poll()": after the producer closes, poll() says true and recv()
    // throws EOFError (on Linux, not BrokenPipeError).
    let out = run_script(
        r#"
fn produce(right) { for i in 0..3 { right.send("bun"); } right.close(); }
fn consume(left) {
    loop {
        try {
            let ready = left.poll(());
            let goods = left.recv();
            print(`consumed ${goods} (poll ${ready})`);
        } catch (e) {
            print(`${e.type} after poll`);
            left.close();
            break;
        }
    }
}
if __name__ == "__main__" {
    let ends = Pipe();
    let p = Process(produce, [ends[1]]);
    let c = Process(consume, [ends[0]]);
    p.start(); c.start();
    ends[0].close(); ends[1].close();
    p.join(); c.join();
}
"#,
        "spawn",
    );
    assert_eq!(
        out.ok(),
        "consumed bun (poll true)\nconsumed bun (poll true)\nconsumed bun (poll true)\nEOFError after poll\n"
    );
}

#[test]
fn no_descriptors_leak() {
    // Open descriptors before and after pipes, queues and children come and go.
    let out = run_script(
        r#"
fn fds() { open_dir(path("/proc/self/fd")).len() }
fn use_them(conn, q) { conn.send(q.get()); }
if __name__ == "__main__" {
    let before = fds();
    for i in 0..20 {
        let ends = Pipe();
        let q = Queue();
        q.put(i);
        let p = Process(use_them, [ends[1], q]);
        p.start();
        ends[0].recv();
        p.join();
        p.close();
        let s = SimpleQueue(); s.put(ends); s.get();
        ends[0].close(); ends[1].close();
        let j = JoinableQueue(); j.put(1); j.get(); j.task_done();
        wait([q, j], 0);
    }
    print(`leaked ${fds() - before}`);
}
"#,
        "spawn",
    );
    assert_eq!(out.ok(), "leaked 0\n");
}
