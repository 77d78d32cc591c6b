//! Synchronization primitives across processes: every method and error, under each start
//! method; owner death; passing them inside values and through pipes and queues.

use crate::common::*;

per_method!(
    locks_serialize_updates,
    primitives_travel_inside_values_and_through_queues,
    a_dead_owner_does_not_deadlock_a_lock,
    semaphore_room,
    events_condition_and_barrier_across_processes,
);

fn locks_serialize_updates(m: &str) {
    let out = run_script(
        r#"
fn locked(v, n) { for i in 0..2000 { hold(v.get_lock(), || v.value += 1); } }
fn with_rlock(v, r) { for i in 0..500 { r.acquire(); r.acquire(); v.value += 1; r.release(); r.release(); } }
fn with_lock(v, l) { for i in 0..500 { l.acquire(); v.value += 1; l.release(); } }
if __name__ == "__main__" {
    let v = Value("i", 0); let v2 = Value("i", 0); let v3 = RawValue("i", 0);
    let r = RLock();
    let l = Lock();
    let ps = [Process(locked, [v, 1]), Process(locked, [v, 1]), Process(with_rlock, [v2, r]), Process(with_rlock, [v2, r]),
              Process(with_lock, [v3, l]), Process(with_lock, [v3, l])];
    for p in ps { p.start(); }
    for p in ps { p.join(); }
    print(`${v.value} ${v2.value} ${v3.value}`);
}
"#,
        m,
    );
    assert_eq!(out.ok(), "4000 1000 1000\n");
}

fn primitives_travel_inside_values_and_through_queues(m: &str) {
    let out = run_script(
        r#"
fn child(bag, q) {
    bag.lock.acquire();
    bag.values[0].value = 41;
    bag.lock.release();
    let more = q.get();
    more.e.set();
    more.s.release();
    more.a[1] = 99;
    more.shm[0] = 7;
}
if __name__ == "__main__" {
    let bag = #{lock: Lock(), values: [Value("q", 0)]};
    let q = Queue();
    let more = #{e: Event(), s: Semaphore(0), a: Array("h", 3), shm: SharedMemory(8)};
    q.put(more);
    let p = Process(child, [bag, q]);
    p.start();
    print(more.e.wait(20));
    print(more.s.acquire(true, 20));
    p.join();
    print(`${bag.values[0].value} ${more.a.to_array()} ${more.shm[0]}`);
    let ends = Pipe();
    ends[0].send([RLock(), Condition(), Barrier(1), BoundedSemaphore(2), RawValue("d", 2), RawArray("c", "ab".to_blob())]);
    let got = ends[1].recv();
    print(got.map(|x| type_of(x)));
    print(got[2].wait());
    print(got[5].to_blob().as_string());
}
"#,
        m,
    );
    assert_eq!(
        out.ok(),
        "true\ntrue\n41 [0, 99, 0] 7\n[\"Lock\", \"Condition\", \"Barrier\", \"Semaphore\", \"Value\", \"SharedArray\"]\n0\nab\n"
    );
}

fn a_dead_owner_does_not_deadlock_a_lock(m: &str) {
    let out = run_script(
        r#"
fn hold_forever(l, r, v, ready) { l.acquire(); r.acquire(); r.acquire(); v.get_lock().acquire(); ready.set(); time::sleep(60); }
if __name__ == "__main__" {
    let l = Lock(); let r = RLock(); let v = Value("i", 1); let ready = Event();
    let p = Process(hold_forever, [l, r, v, ready]);
    p.start();
    ready.wait();
    print(l.acquire(false));
    p.kill();
    p.join();
    print(l.acquire(true, 20));
    print(l.owner_died);
    l.release();
    print(l.owner_died);
    print(r.acquire(true, 20));
    print(r.owner_died);
    r.release();
    hold(v.get_lock(), || v.value += 1);
    print(v.value);
}
"#,
        m,
    );
    assert_eq!(out.ok(), "false\ntrue\ntrue\nfalse\ntrue\ntrue\n2\n");
    assert_eq!(out.stderr.matches("died; MainProcess").count(), 3, "{}", out.stderr);
    assert!(out.stderr.contains("warning: the process holding a Lock (pid "), "{}", out.stderr);
}

fn semaphore_room(m: &str) {
    // Seed 003: a room for two; at most two inside at once.
    let out = run_script(
        r#"
fn enter(room, inside, log) {
    room.acquire();
    let n = hold(inside.get_lock(), || { inside.value += 1; inside.value });
    log.put(n);
    time::sleep(0.02);
    hold(inside.get_lock(), || inside.value -= 1);
    room.release();
}
if __name__ == "__main__" {
    let room = Semaphore(2);
    let inside = Value("i", 0);
    let log = Queue();
    let ps = [];
    for i in 0..6 { let p = Process(enter, [room, inside, log]); p.start(); ps.push(p); }
    for p in ps { p.join(); }
    let most = 0;
    for i in 0..6 { let n = log.get(); if n > most { most = n; } }
    print(`most inside at once: ${most <= 2} ${room.get_value()}`);
}
"#,
        m,
    );
    assert_eq!(out.ok(), "most inside at once: true 2\n");
}

fn events_condition_and_barrier_across_processes(m: &str) {
    let out = run_script(
        r#"
fn waiter(e, c, state, b, log) {
    log.put(`event ${e.wait(20)}`);
    hold(c, || c.wait_for(|| state.value == 1, 20));
    log.put(`condition ${state.value}`);
    log.put(`barrier ${b.wait(20) >= 0}`);
}
if __name__ == "__main__" {
    let e = Event(); let c = Condition(); let state = Value("i", 0); let log = Queue();
    let b = Barrier(3, #{action: || print("released")});
    let ps = [Process(waiter, [e, c, state, b, log]), Process(waiter, [e, c, state, b, log])];
    for p in ps { p.start(); }
    e.set();
    hold(c, || { state.value = 1; c.notify_all(); });
    b.wait(20);
    for p in ps { p.join(); }
    let lines = [];
    for i in 0..6 { lines.push(log.get()); }
    lines.sort();
    print(lines);
}
"#,
        m,
    );
    assert_eq!(
        out.ok(),
        "released\n[\"barrier true\", \"barrier true\", \"condition 1\", \"condition 1\", \"event true\", \"event true\"]\n"
    );
}

#[test]
fn lock_methods_and_errors() {
    let out = run(&[
        "-e",
        r#"
fn show(e) { print(`${e.type}: ${e.message}`); }
let l = Lock();
print(`${l.acquire()} ${l.acquire(false)} ${l.acquire(true, 0.01)} ${l}`.contains("true false false <Lock owner="));
l.release();
try { l.release(); } catch (e) { show(e) }
try { l.acquire(true, -1); } catch (e) { show(e) }
try { l.acquire("yes"); } catch (e) { show(e) }
print(l.acquire(false, 5));
l.release();
let r = RLock();
try { r.release(); } catch (e) { show(e) }
r.acquire(); r.acquire(); r.release();
print(r.acquire(false));
r.release(); r.release();
print(r);
print(hold(l, || 42));
try { hold(l, || throw "inside"); } catch (e) { print(e); }
print(l.acquire(false));
l.release();
print(l.hold(|| "method form"));
try { hold(5, || 1); } catch (e) { show(e) }
let s = Semaphore(); let bs = BoundedSemaphore(2);
print(`${s.get_value()} ${bs.get_value()} ${s} ${bs}`);
bs.acquire(); bs.release();
try { bs.release(); } catch (e) { show(e) }
s.release(); print(s.get_value());
try { Semaphore(-1); } catch (e) { show(e) }
try { Semaphore("x"); } catch (e) { show(e) }
print(hold(s, || s.get_value()));
"#,
    ]);
    assert_eq!(
        out.ok(),
        "true\nValueError: semaphore or lock released too many times\n\
         ValueError: timeout of acquire() must be non-negative, not -1\n\
         TypeError: block of acquire() must be a bool, not string\ntrue\n\
         AssertionError: attempt to release recursive lock not owned by this process\ntrue\n<RLock unlocked>\n42\ninside\ntrue\nmethod form\n\
         TypeError: hold() takes a Lock, RLock, Semaphore or Condition, not i64\n\
         1 2 <Semaphore value=1> <BoundedSemaphore value=2>\n\
         ValueError: semaphore or lock released too many times\n2\n\
         ValueError: semaphore initial value must be >= 0, not -1\n\
         TypeError: value of Semaphore() must be an integer, not string\n1\n"
    );
}

#[test]
fn event_condition_barrier_methods_and_errors() {
    let out = run(&[
        "-e",
        r#"
fn show(e) { print(`${e.type}: ${e.message}`); }
let e = Event();
print(`${e.is_set()} ${e.wait(0.01)} ${e}`);
e.set(); print(`${e.is_set()} ${e.wait()} ${e.wait(0)}`);
e.clear(); print(e.is_set());
try { e.wait(-1); } catch (x) { show(x) }
let c = Condition(Lock());
try { c.wait(); } catch (x) { show(x) }
try { c.notify(); } catch (x) { show(x) }
try { c.notify_all(); } catch (x) { show(x) }
print(hold(c, || c.wait(0.01)));
print(hold(c, || c.wait_for(|| false, 0.01)));
print(hold(c, || c.wait_for(|| true)));
try { hold(c, || c.wait_for(|| 1)); } catch (x) { show(x) }
hold(c, || { c.notify(); c.notify(3); c.notify_all(); });
try { Condition(1); } catch (x) { show(x) }
print(c.acquire(false)); c.release();
print(c);
let b = Barrier(2, #{timeout: 0.05});
print(`${b.parties} ${b.n_waiting} ${b.broken}`);
try { b.wait(); } catch (x) { show(x) }
print(b.broken);
b.reset();
print(b.broken);
b.abort();
try { b.wait(1); } catch (x) { show(x) }
try { Barrier(0); } catch (x) { show(x) }
try { Barrier(2, #{bogus: 1}); } catch (x) { show(x) }
print(Barrier(1).wait());
let boom = Barrier(1, #{action: || throw "action failed"});
try { boom.wait(); } catch (x) { print(x); }
print(boom.broken);
"#,
    ]);
    assert_eq!(
        out.ok(),
        "false false <Event unset>\ntrue true true\nfalse\n\
         ValueError: timeout of wait() must be non-negative, not -1\n\
         AssertionError: must acquire() condition before using wait()\n\
         AssertionError: lock is not owned\nAssertionError: lock is not owned\n\
         false\nfalse\ntrue\n\
         TypeError: the predicate of wait_for() must return a bool, not i64\n\
         TypeError: Condition() takes a Lock or RLock, not i64\ntrue\n<Condition(<Lock unlocked>)>\n\
         2 0 false\nBrokenBarrierError: the barrier is broken\ntrue\nfalse\n\
         BrokenBarrierError: the barrier is broken\n\
         ValueError: a barrier needs at least 1 party, not 0\n\
         ValueError: Barrier() got an unknown option 'bogus' (it takes: action, timeout)\n0\naction failed\ntrue\n"
    );
}

#[test]
fn seed_ticket_purchase_with_a_lock_sells_the_last_ticket_once() {
    for m in METHODS {
        let script = root().join("scripts/seed003_ticket_lock.rhai");
        let out = run(&["--start-method", m, script.to_str().unwrap()]);
        let s = out.ok();
        assert_eq!(s.matches("购票成功").count(), 1, "{m}: {s}");
        assert_eq!(s.matches("抢票失败").count(), 9, "{m}: {s}");
    }
}

#[test]
fn seed_traffic_light_ends_in_bounded_time() {
    // The seed's light and cars loop forever; the port bounds them. It must end by itself.
    let script = root().join("scripts/seed003_event_traffic_light.rhai");
    let out = run(&[script.to_str().unwrap()]);
    let s = out.ok();
    assert!(s.contains("绿灯"), "{s}");
}
