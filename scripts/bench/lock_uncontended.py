"""Benchmark: an uncontended Lock's acquire() + release().

    python3 scripts/bench/lock_uncontended.py N [MODE]

The CPython twin of lock_uncontended.rhai: one process, no children. After
N // 10 warm-up iterations, times 25 batches of N // 25 (N: argv[1], default
500000) iterations of a loop whose body is, by MODE (argv[2]): "lock" (default: l.acquire();
l.release() with l = multiprocessing.Lock()) or "len" (len(a); len(a) with
a = [1, 2]). Prints one machine-readable line "<label> <microseconds per
iteration>" (lock_uncontended or noop_len) from the fastest batch. Nothing is
subtracted.
"""
import multiprocessing
import sys
import time


def body(mode, n):
    l = multiprocessing.Lock()
    a = [1, 2]
    if mode == "lock":
        for _ in range(n):
            l.acquire()
            l.release()
    elif mode == "len":
        for _ in range(n):
            len(a)
            len(a)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500000
    mode = sys.argv[2] if len(sys.argv) > 2 else "lock"
    label = "lock_uncontended" if mode == "lock" else f"noop_{mode}"

    body(mode, n // 10)  # warm-up
    batch = n // 25
    best = None
    for _ in range(25):
        t0 = time.perf_counter()
        body(mode, batch)
        dt = time.perf_counter() - t0
        if best is None or dt < best:
            best = dt

    print(f"{label} {best * 1e6 / batch:.3f}")
