"""Benchmark: latency of Process start()+join() of an empty target, per start method.

    python3 scripts/bench/process_start.py N METHOD

The CPython twin of process_start.rhai: N (argv[1], default 100) iterations,
METHOD (argv[2], default "spawn") one of spawn, fork, forkserver. Does one
warm-up start+join (this also starts the fork server under forkserver), then
times N sequential start+join pairs with time.perf_counter() and prints one
machine-readable line: "<method> <microseconds per start+join>".
"""
import multiprocessing
import sys
import time


def noop():
    pass


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    method = sys.argv[2] if len(sys.argv) > 2 else "spawn"
    ctx = multiprocessing.get_context(method)

    # warm-up
    p = ctx.Process(target=noop)
    p.start()
    p.join()

    t0 = time.perf_counter()
    for _ in range(n):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
    dt = time.perf_counter() - t0

    print(f"{method} {dt * 1e6 / n:.1f}")
