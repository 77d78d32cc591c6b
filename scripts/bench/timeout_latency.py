"""Benchmark twin of timeout_latency.rhai with pebble (pip install pebble): how long after
a task's deadline its TimeoutError arrives, and until the pool runs the next task (pebble
kills and replaces the worker). Prints the same lines, the one LAST (argv[2]: "latency",
the default, or "ready") names last, for run.sh.

    python3 scripts/bench/timeout_latency.py [REPS] [LAST]
"""
import sys
import time
from concurrent.futures import TimeoutError as FutTimeout

import pebble


def spin():
    while True:
        pass


def one():
    return 1


if __name__ == "__main__":
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    t = 0.05
    lat, ready = [], []
    with pebble.ProcessPool(max_workers=1) as p:
        p.schedule(one).result()
        for _ in range(reps):
            t0 = time.perf_counter()
            try:
                p.schedule(spin, timeout=t).result()
            except (FutTimeout, TimeoutError):
                pass
            t1 = time.perf_counter()
            p.schedule(one).result()
            t2 = time.perf_counter()
            lat.append((t1 - t0 - t) * 1000)
            ready.append((t2 - t0 - t) * 1000)
    lat.sort()
    ready.sort()
    lines = [f"timeout_latency_loop {lat[reps // 2]}", f"timeout_ready_loop {ready[reps // 2]}"]
    if len(sys.argv) > 2 and sys.argv[2] == "ready":
        print(lines[0], lines[1], sep="\n")
    else:
        print(lines[1], lines[0], sep="\n")
