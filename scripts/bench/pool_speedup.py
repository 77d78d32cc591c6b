"""Benchmark: the speed-up of Pool(2).map() over the same work in a serial loop.

    python3 scripts/bench/pool_speedup.py KIND [N] [REPS]

The CPython twin of pool_speedup.rhai: KIND "trivial" (sq(x) = x * x over
range(N), N default 100000) or "loop1000" (a loop of 1000 iterations per call,
N default 2000); serial: [f(x) for x in xs]; pool: p.map(f, xs) on a warmed-up
Pool(2), default chunksize; the fastest of REPS (default 3) runs of each side.
Last line: "pool_speedup_<KIND> <serial time / pool time>".
"""
import multiprocessing
import sys
import time


def sq(x):
    return x * x


def loop1000(x):
    s = 0
    for i in range(1000):
        s += i ^ x
    return s


if __name__ == "__main__":
    kind = sys.argv[1] if len(sys.argv) > 1 else "trivial"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else (100000 if kind == "trivial" else 2000)
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    multiprocessing.set_start_method("fork", force=True)
    f = {"trivial": sq, "loop1000": loop1000}[kind]
    xs = list(range(n))
    with multiprocessing.Pool(2) as p:
        p.map(f, range(200), 1)
        best_serial = best_pool = None
        for _ in range(reps):
            t0 = time.perf_counter()
            serial = [f(x) for x in xs]
            dt = time.perf_counter() - t0
            best_serial = dt if best_serial is None else min(best_serial, dt)
            t0 = time.perf_counter()
            pooled = p.map(f, xs)
            dt = time.perf_counter() - t0
            best_pool = dt if best_pool is None else min(best_pool, dt)
            if pooled != serial:
                raise RuntimeError("wrong result")
    print(f"pool_speedup serial {best_serial * 1e3:.1f}")
    print(f"pool_speedup pool {best_pool * 1e3:.1f}")
    print(f"pool_speedup_{kind} {best_serial / best_pool:.2f}")
