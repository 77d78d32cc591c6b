//! Value, Array and SharedMemory: every typecode, range and index checks, sharing with
//! children, and no leaks of shared memory or descriptors.

use crate::common::*;
use crate::interpreter::{skip_on_vm, VM_WRITE_BACK};

#[test]
fn values_and_arrays_are_shared_under_every_method() {
    for m in METHODS {
        // Seed 004: n.value = 3.1415927; a[i] = -a[i].
        let out = run_script(
            r#"
fn f(n, a) { n.value = 3.1415927; for i in 0..a.len() { a[i] = -a[i]; } }
if __name__ == "__main__" {
    let num = Value("d", 0.0);
    let arr = Array("i", 0..10);
    let p = Process(f, [num, arr]);
    p.start(); p.join();
    print(num.value);
    print(arr.to_array());
}
"#,
            m,
        );
        assert_eq!(out.ok(), "3.1415927\n[0, -1, -2, -3, -4, -5, -6, -7, -8, -9]\n", "{m}");
    }
}

#[test]
fn typecodes_ranges_and_errors() {
    let out = run(&[
        "-e",
        r#"
fn show(e) { print(`${e.type}: ${e.message}`); }
for tc in ["b", "B", "h", "H", "i", "I", "l", "L", "q", "Q", "c"] {
    let v = Value(tc, 0);
    let lo = if tc == "b" { -128 } else if tc == "h" { -32768 } else if tc == "i" { -2147483648 } else if tc == "l" || tc == "q" { -9223372036854775807 - 1 } else { 0 };
    let hi = if tc == "b" { 127 } else if tc == "B" || tc == "c" { 255 } else if tc == "h" { 32767 } else if tc == "H" { 65535 } else if tc == "i" { 2147483647 } else if tc == "I" { 4294967295 } else { 9223372036854775807 };
    v.value = lo; let a = v.value; v.value = hi; let b = v.value;
    let over = "no";
    if hi < 9223372036854775807 { try { v.value = hi + 1; } catch (e) { over = e.type; } }
    print(`${tc} ${a == lo} ${b == hi} ${over}`);
}
let f = Value("f", 1); f.value = 0.313; print(f.value > 0.31 && f.value < 0.32);
let d = Value("d", 2); print(d.value);
try { Value("i", 1.5); } catch (e) { show(e) }
try { Value("q", "x"); } catch (e) { show(e) }
try { Value("z", 1); } catch (e) { show(e) }
try { Value(1, 1); } catch (e) { show(e) }
try { Value("i", 1, 5); } catch (e) { show(e) }
try { RawValue("i", 1).get_lock(); } catch (e) { show(e) }
try { Value("i", 1, false).get_lock(); } catch (e) { show(e) }
let l = Lock(); print(Value("i", 1, l).get_lock() == ()); 
let a = Array("h", [1, 2, 3]);
print(`${a[0]} ${a[-1]} ${a.len()} ${a}`);
a[-2] = -5;
try { a[3]; } catch (e) { show(e) }
try { a[-4] = 1; } catch (e) { show(e) }
try { a[0] = 40000; } catch (e) { show(e) }
try { a[0] = 1.5; } catch (e) { show(e) }
let sum = 0; for x in a { sum += x; } print(sum);
print(Array("d", 2).to_array());
print(Array("c", "hi!".to_blob()).to_blob().as_string());
print(Array("B", blob(2, 9)).to_array());
print(RawArray("i", [7]));
try { Array("i", -1); } catch (e) { show(e) }
try { Array("i", #{}); } catch (e) { show(e) }
try { Array("b", [1, 300]); } catch (e) { show(e) }
try { RawArray("i", 2).get_lock(); } catch (e) { show(e) }
print(type_of(Array("i", 1).get_lock()));
"#,
    ]);
    assert_eq!(
        out.ok(),
        "b true true ValueError\nB true true ValueError\nh true true ValueError\nH true true ValueError\n\
         i true true ValueError\nI true true ValueError\nl true true no\nL true true no\nq true true no\nQ true true no\nc true true ValueError\n\
         true\n2.0\n\
         TypeError: Value(): typecode 'i' holds integers, not f64\n\
         TypeError: Value(): typecode 'q' holds integers, not string\n\
         TypeError: unknown typecode \"z\" (use one of b B h H i I l L q Q f d c)\n\
         TypeError: typecode of Value() must be a string such as \"i\", not i64\n\
         TypeError: lock of Value() must be true, false or a Lock/RLock, not i64\n\
         ValueError: get_lock() needs a synchronized Value; this one is raw (RawValue or lock = false)\n\
         ValueError: get_lock() needs a synchronized Value; this one is raw (RawValue or lock = false)\n\
         false\n\
         1 3 3 Array('h', [1, 2, 3])\n\
         IndexError: index 3 is out of range for an Array of length 3\n\
         IndexError: index -4 is out of range for an Array of length 3\n\
         ValueError: Array[0]: 40000 is out of range for typecode 'h' (-32768..=32767)\n\
         TypeError: Array[0]: typecode 'h' holds integers, not f64\n\
         -1\n[0.0, 0.0]\nhi!\n[9, 9]\nRawArray('i', [7])\n\
         ValueError: Array() size must be >= 0, not -1\n\
         TypeError: Array() takes a size or an iterable: expected an iterable (array, range, string or blob), not map\n\
         ValueError: Array() item 1: 300 is out of range for typecode 'b' (-128..=127)\n\
         ValueError: get_lock() needs a synchronized Array; this one is raw (RawArray or lock = false)\nLock\n"
    );
}

#[test]
fn unlocked_increments_race_and_locked_ones_do_not() {
    let out = run_script(
        r#"
fn racy(v) { for i in 0..20000 { v.value += 1; } }
fn safe(v) { for i in 0..20000 { hold(v.get_lock(), || v.value += 1); } }
if __name__ == "__main__" {
    for f in [Fn("racy"), Fn("safe")] {
        let v = Value("i", 0);
        let ps = [Process(f, [v]), Process(f, [v])];
        for p in ps { p.start(); } for p in ps { p.join(); }
        print(`${f} ${v.value <= 40000} ${v.value == 40000}`);
    }
}
"#,
        "fork",
    );
    let s = out.ok();
    assert!(s.contains("Fn(racy) true "), "{s}");
    assert!(s.contains("Fn(safe) true true"), "{s}");
}

#[test]
fn shared_memory_anonymous_and_named() {
    // Its script prints `shm.name.starts_with(..)`, which throws on the VM.
    if skip_on_vm("shared_memory::shared_memory_anonymous_and_named", VM_WRITE_BACK) {
        return;
    }
    let name = format!("rhai-mp-test-{}", std::process::id());
    let out = run_script_args(
        r#"
fn show(e) { print(`${e.type}: ${e.message}`); }
fn child(shm, name) {
    shm.write(1, "from child".to_blob());
    let named = SharedMemory(#{name: name});
    named[0] = 42;
    named.close();
}
if __name__ == "__main__" {
    let name = ARGV[0];
    let shm = SharedMemory(32);
    let named = SharedMemory(#{name: name, create: true, size: 16});
    print(`${shm.name.starts_with("rhai-mp-")} ${shm.size} ${named.name} ${named.size}`);
    let p = Process(child, [shm, name]); p.start(); p.join();
    print(shm.read(1, 10).as_string());
    print(named[0]);
    try { SharedMemory(#{name: name, create: true, size: 16}); } catch (e) { print(e.type) }
    try { SharedMemory(#{name: name + "-missing"}); } catch (e) { print(e.type) }
    try { shm.read(30, 5); } catch (e) { show(e) }
    try { shm[32]; } catch (e) { show(e) }
    try { shm[0] = 256; } catch (e) { show(e) }
    try { SharedMemory(0); } catch (e) { show(e) }
    try { SharedMemory(#{size: 4, bogus: 1}); } catch (e) { show(e) }
    shm[-1] = 9; print(shm[31]);
    print(SharedMemory(#{size: 4}).size);
    named.close();
    try { named[0]; } catch (e) { show(e) }
    named.unlink();
    try { named.unlink(); } catch (e) { print(e.type) }
    try { SharedMemory(#{name: name}); } catch (e) { print(e.type) }
}
"#,
        "spawn",
        &[&name],
    );
    assert_eq!(
        out.ok(),
        format!(
            "true 32 {name} 16\nfrom child\n42\nFileExistsError\nFileNotFoundError\n\
             IndexError: range 30..35 is outside the 32 bytes of the SharedMemory\n\
             IndexError: index 32 is out of range for a SharedMemory of 32 bytes\n\
             ValueError: a byte must be 0..=255, not 256\n\
             ValueError: the size of a SharedMemory must be positive, not 0\n\
             ValueError: SharedMemory() got an unknown option 'bogus' (it takes: name, create, size)\n\
             9\n4\nValueError: the SharedMemory is closed in this process\n\
             FileNotFoundError\nFileNotFoundError\n"
        )
    );
}

/// Names in /dev/shm.
fn dev_shm() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn nothing_leaks_even_when_processes_are_killed() {
    let before = dev_shm();
    for m in METHODS {
        let out = run_script(
            r#"
fn fds() { open_dir(path("/proc/self/fd")).len() }
fn busy(l, s, e, v, a, shm, q) { l.acquire(); s.acquire(); q.put(1); e.set(); time::sleep(60); }
if __name__ == "__main__" {
    let start = fds();
    for i in 0..3 {
        let l = Lock(); let s = Semaphore(1); let e = Event(); let v = Value("i", 0); let a = Array("d", 100);
        let shm = SharedMemory(4096); let q = Queue(); let c = Condition(); let b = Barrier(2);
        let p = Process(busy, [l, s, e, v, a, shm, q]);
        p.start();
        e.wait();
        p.kill();
        p.join();
        p.close();
    }
    print(`fds leaked: ${fds() - start}`);
}
"#,
            m,
        );
        assert_eq!(out.ok(), "fds leaked: 0\n", "{m}");
    }
    assert_eq!(before, dev_shm(), "something was left in /dev/shm");
}
