"""Benchmark: `v.value += 1` under the Value's lock, two processes at once.

    python3 scripts/bench/value_increment.py N [METHOD] [MODE]

The CPython twin of value_increment.rhai: two children (start method METHOD,
default "fork") each do N (argv[1], default 100000) increments of one shared
Value('i', 0), each under the value's own lock (an RLock, the default). MODE
(argv[3]) is how the lock is held: "acquire" (default: l.acquire();
v.value += 1; l.release(), with l = v.get_lock() fetched once) or "with"
(`with l: v.value += 1`). The children meet at a Barrier(2) so that their
start is not timed; each records time.time() after the barrier and after its
loop in a shared RawArray('d', 4). The time is the last end minus the first
start, divided by the 2N increments; the final value is checked. Prints one
machine-readable line: "value_increment <microseconds per increment>".
"""
import multiprocessing
import sys
import time


def worker(v, b, times, k, n, mode):
    l = v.get_lock()
    b.wait()
    t0 = time.time()
    if mode == "with":
        for _ in range(n):
            with l:
                v.value += 1
    else:
        for _ in range(n):
            l.acquire()
            v.value += 1
            l.release()
    t1 = time.time()
    times[2 * k] = t0
    times[2 * k + 1] = t1


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    method = sys.argv[2] if len(sys.argv) > 2 else "fork"
    mode = sys.argv[3] if len(sys.argv) > 3 else "acquire"
    if mode not in ("acquire", "with"):
        raise SystemExit(f"unknown mode {mode}")
    ctx = multiprocessing.get_context(method)

    v = ctx.Value("i", 0)
    b = ctx.Barrier(2)
    times = ctx.RawArray("d", 4)
    ps = [ctx.Process(target=worker, args=(v, b, times, k, n, mode)) for k in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"worker failed: exit code {p.exitcode}")
    if v.value != 2 * n:
        raise RuntimeError(f"wrong count {v.value}, expected {2 * n}")

    start = min(times[0], times[2])
    end = max(times[1], times[3])
    print(f"value_increment {(end - start) * 1e6 / (2 * n):.3f}")
