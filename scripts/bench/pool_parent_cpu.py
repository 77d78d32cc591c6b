"""Benchmark: how much CPU a parent uses while it waits on a pool of heavy tasks.

    python3 scripts/bench/pool_parent_cpu.py [TASKS] [ITERS]

The CPython twin of pool_parent_cpu.rhai: TASKS (default 4) tasks of ITERS
(default 2000000) loop iterations over a warmed-up Pool(2), chunksize 1; the
parent's CPU time (os.times(), all its threads) over the map divided by the
map's wall time. Last line: "pool_parent_cpu <percent of one CPU>".
"""
import multiprocessing
import os
import sys
import time


def task(iters):
    s = 0
    for i in range(iters):
        s += i % 7
    return s


def cpu_seconds():
    t = os.times()
    return t.user + t.system


if __name__ == "__main__":
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    iters = int(sys.argv[2]) if len(sys.argv) > 2 else 2000000
    multiprocessing.set_start_method("fork", force=True)
    with multiprocessing.Pool(2) as p:
        p.map(task, [10, 10, 10, 10], 1)
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        r = p.map(task, [iters] * tasks, 1)
        dt = time.perf_counter() - t0
        c1 = cpu_seconds()
        if len(r) != tasks:
            raise RuntimeError("wrong result")
    print(f"pool_parent_cpu wall {dt * 1000:.0f} ms, parent cpu {(c1 - c0) * 1000:.0f} ms")
    print(f"pool_parent_cpu {(c1 - c0) / dt * 100:.1f}")
