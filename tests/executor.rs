//! `ProcessPoolExecutor`, `Future`, `as_completed` and `futures::wait`, under each start
//! method and from a host. Every wait is bounded; no assertion looks at the clock.

use crate::common::*;

per_method!(the_executor_does_what_concurrent_futures_does, wait_returns_when_asked);

const SCRIPT: &str = r#"
fn sq(x) { x * x }
if __name__ == "__main__" {
  let ex = ProcessPoolExecutor(#{max_workers: 2, mp_context: ARGV[0]});
  print(ex.submit(sq, [7]).result());
  let fs = [];
  for i in 0..5 { fs.push(ex.submit(|x| { time::sleep(0.02 * (5 - x)); x }, [i])) }
  let seen = [];
  for g in as_completed(fs, 30) { seen.push(g.result()) }
  seen.sort();
  print(seen);
  let slow = ex.submit(|| time::sleep(1e9));
  let t0 = 0;
  while !slow.running() { time::sleep(0.01); t0 += 1; if t0 > 1000 { throw "never ran" } }
  print(`${slow.cancel()} ${slow.cancelled()} ${slow.done()}`);
  try { slow.result() } catch (e) { print(e.type) }
  print(ex.submit(|| throw "boom").exception());
  print(ex.submit(|| loop {}, [], #{timeout: 0.2}).exception().type);
  let h = ex.submit(|| 5);
  h.add_done_callback(|f| print(`callback ${f.result()}`));
  h.result();
  ex.submit(|| 1).result();
  let all = []; for x in ex.map(sq, 0..6, #{chunksize: 2, buffersize: 2}) { all.push(x) } print(all);
  try { let it = ex.map(|x| time::sleep(1e9), [1], #{timeout: 0.2}); it.next() } catch (e) { print(e.type) }
  try { ex.submit(|| time::sleep(0.5)).result(0) } catch (e) { print(e.type) }
  ex.shutdown(#{wait: true, cancel_futures: true});
  try { ex.submit(|| 1) } catch (e) { print(e.type) }
  let ex2 = ProcessPoolExecutor(1);
  let p = ex2.submit(|| time::sleep(1e9));
  let q = ex2.submit(|| 2);
  ex2.terminate_workers();
  print(`${p.exception().type} ${q.exception().type}`);
  try { ex2.submit(|| 1) } catch (e) { print(e.type) }
  let ex3 = ProcessPoolExecutor(1);
  let lost = ex3.submit(|| os::kill(os::getpid(), "SIGKILL"));
  print(lost.exception().type);
  print(ex3.submit(|| 3).result());
  ex3.kill_workers();
}
"#;

fn the_executor_does_what_concurrent_futures_does(m: &str) {
    let out = run_script_args(SCRIPT, m, &[m]);
    let want = "49\n[0, 1, 2, 3, 4]\ntrue true true\nCancelledError\nboom\nTimeoutError\ncallback 5\n[0, 1, 4, 9, 16, 25]\nTimeoutError\nTimeoutError\nRuntimeError\nBrokenProcessPool BrokenProcessPool\nBrokenProcessPool\nWorkerLostError\n3\n";
    assert_eq!(out.ok(), want, "{}", out.stderr);
}

fn wait_returns_when_asked(m: &str) {
    let out = run_script(
        r#"
if __name__ == "__main__" {
  let ex = ProcessPoolExecutor(2);
  let slow = ex.submit(|| time::sleep(1e9));
  let quick = ex.submit(|| 1);
  let r = futures::wait([slow, quick], #{return_when: "FIRST_COMPLETED"});
  print(`${r.done.len()} ${r.not_done.len()}`);
  let bad = ex.submit(|| throw "x");
  let r = futures::wait([slow, bad], #{return_when: "FIRST_EXCEPTION"});
  print(`${r.done.len()} ${r.not_done.len()}`);
  let r = futures::wait([slow], #{timeout: 0.1});
  print(`${r.done.len()} ${r.not_done.len()}`);
  slow.cancel();
  let r = futures::wait([slow, quick, bad]);
  print(`${r.done.len()} ${r.not_done.len()}`);
  try { futures::wait([1]) } catch (e) { print(e.type) }
  try { futures::wait([], #{return_when: "SOMETIMES"}) } catch (e) { print(e.type) }
  try { for f in as_completed([ex.submit(|| time::sleep(1e9))], 0.1) { print(f) } } catch (e) { print(e.type) }
  ex.kill_workers();
}
"#,
        m,
    );
    assert_eq!(out.ok(), "1 1\n1 1\n0 1\n3 0\nTypeError\nValueError\nTimeoutError\n", "{}", out.stderr);
}
