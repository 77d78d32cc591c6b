//! `globals()` (the contract's "Per-process globals"): a pool's or executor's initializer
//! sets what every task of that worker reads; a spawn child starts with empty globals, a
//! fork child with a copy of its parent's, and no process sees another's writes; the
//! handle sent to a child arrives as a plain map; the dict-like methods and their errors;
//! the REPL keeps them across entries — under each start method.

use crate::common::*;

per_method!(
    initializers_set_what_every_task_reads,
    each_process_has_its_own,
    the_handle_is_dict_like,
    the_repl_keeps_them,
);

const HEADER: &str = r#"
fn init(b) { let g = globals(); g.base = b; g.count = 0; }
fn task(x) { let g = globals(); g.count += 1; g.base + x }
fn seen(x) { [globals().get("base", "none"), "count" in globals()] }
"#;

fn script(body: &str) -> String {
    format!("{HEADER}\nif __name__ == \"__main__\" {{\n{body}\n}}\n")
}

fn initializers_set_what_every_task_reads(m: &str) {
    let out = run_script(
        &script(
            r#"
    let p = Pool(#{processes: 2, initializer: init, initargs: [10]});
    print(p.map(task, 0..6, 1));
    print(p.map(seen, [0, 1], 1));
    // Each worker counts its own tasks: the counts add up to the tasks run.
    let counts = p.map(|x| { time::sleep(0.05); globals().count }, 0..4, 1);
    print(counts.len());
    p.close(); p.join();
    print(globals().len());
    let ex = ProcessPoolExecutor(#{max_workers: 2, initializer: init, initargs: [100]});
    print(ex.submit(task, [1]).result());
    print(ex.submit(seen, [0]).result());
    ex.shutdown();
    print("base" in globals());
"#,
        ),
        m,
    );
    assert_eq!(
        out.ok(),
        "[10, 11, 12, 13, 14, 15]\n[[10, true], [10, true]]\n4\n0\n101\n[100, true]\nfalse\n",
        "{m}: {}",
        out.stderr
    );
}

fn each_process_has_its_own(m: &str) {
    // The top level sets `top` in every process that runs it (spawn and forkserver children
    // re-run it, as Python re-imports the module); only the main process sets `main`.
    let out = run_script(
        r#"
globals().set("top", 1);
fn report(q) {
    let g = globals();
    q.put([g.get("main", "none"), g.get("top", "none")]);
    g.main = "child";
    g.mine = 1;
}
if __name__ == "__main__" {
    let g = globals();
    g.main = "parent";
    let q = Queue();
    let c = Process(report, [q]);
    c.start();
    print(q.get(true, 30));
    c.join(30);
    print(c.exitcode);
    print(g.main);
    print("mine" in g);
    // Sent to a child, the handle arrives as a copy: a plain map (spawn, forkserver).
    let c2 = Process(|q, h| { h.extra = 1; q.put([type_of(h), h.main, h.len()]) }, [q, globals()]);
    c2.start();
    print(q.get(true, 30));
    c2.join(30);
    print(g.keys());
}
"#,
        m,
    );
    let child_sees = if m == "fork" { "[\"parent\", 1]" } else { "[\"none\", 1]" };
    // A fork child inherits its arguments instead of receiving them: there the handle is
    // the child's own globals (a copy of the parent's at the fork), as in Python.
    let sent = if m == "fork" { "Globals" } else { "map" };
    assert_eq!(
        out.ok(),
        format!("{child_sees}\n0\nparent\nfalse\n[\"{sent}\", \"parent\", 3]\n[\"main\", \"top\"]\n"),
        "{m}: {}",
        out.stderr
    );
}

fn the_handle_is_dict_like(m: &str) {
    let out = run_script(
        r#"
let g = globals();
g.base = 10;
g["other"] = "x";
g.base += 1;
print(globals()["base"]);
print(globals().base);
print(["base" in globals(), "nope" in globals(), 3 in g]);
print([g.get("base"), g.get("nope"), g.get("nope", 0)]);
print([g.keys(), g.values(), g.len()]);
print(g);
for k in ["nope"] {
    try { print(globals()[k]) } catch (e) { print(`${e.type} ${e.key} ${e.message}`) }
}
try { print(globals().missing) } catch (e) { print(`${e.type} ${e.key}`) }
try { g[1] = 2 } catch (e) { print(e.type) }
try { g.pop("nope") } catch (e) { print(e.type) }
print([g.pop("other"), g.pop("other", "gone"), g.remove("nope"), g.remove("base"), g.len()]);
globals().update(#{a: 1, b: [2]});
globals().set("c", 3);
let m = globals().to_map();
m.a = 100;
print([type_of(m), m.len(), globals().a]);
globals().clear();
print(globals().len());
// Sent (a queue encodes what it is given), the handle is a copy: a plain map.
let q = Queue();
g.n = 1;
q.put(globals());
let got = q.get(true, 10);
print([type_of(got), got.n]);
g.me = globals();
try { q.put(globals()) } catch (e) { print(e.type) }
q.put(globals().get("n"));
print(q.get(true, 10));
"#,
        m,
    );
    assert_eq!(
        out.ok(),
        "11\n11\n[true, false, false]\n[11, (), 0]\n[[\"base\", \"other\"], [11, \"x\"], 2]\n\
         #{\"base\": 11, \"other\": \"x\"}\nKeyError nope \"nope\" is not in globals()\nKeyError missing\n\
         TypeError\nKeyError\n[\"x\", \"gone\", (), 11, 0]\n[\"map\", 3, 1]\n0\n[\"map\", 1]\nSerializationError\n1\n",
        "{m}: {}",
        out.stderr
    );
}

fn the_repl_keeps_them(m: &str) {
    let out = run_program(
        &bin(),
        &["--start-method", m],
        Some(
            "let g = globals();\ng.base = 5;\nfn task(x) { globals().base + x }\nprint(task(1));\nprint(globals().base);\n\
             fn init(b) { globals().set(\"base\", b) }\nlet p = Pool(#{processes: 1, initializer: init, initargs: [7]});\n\
             print(p.map(task, [1, 2]));\nprint(globals().base);\np.terminate();\nglobals().base = 1\nprint(\"after\")\n",
        ),
    );
    assert_eq!(out.ok(), "6\n5\n[8, 9]\n5\nafter\n", "{m}: {}", out.stderr);
    // The assignment Rhai cannot parse is reported with the way to write it.
    assert!(
        out.stderr.contains("SyntaxError") && out.stderr.contains("hint: Rhai cannot assign to `globals().x`"),
        "{}",
        out.stderr
    );
}
