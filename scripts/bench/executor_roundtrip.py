"""Benchmark twin of executor_roundtrip.rhai: ProcessPoolExecutor(2) submit() + result()
round trips, one at a time. Prints `executor_roundtrip <microseconds per round trip>`."""
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def inc(x):
    return x + 1


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    method = sys.argv[2] if len(sys.argv) > 2 else "fork"
    with ProcessPoolExecutor(2, mp_context=mp.get_context(method)) as ex:
        for i in range(200):
            ex.submit(inc, i).result()
        t0 = time.perf_counter()
        s = 0
        for i in range(n):
            s += ex.submit(inc, i).result()
        dt = time.perf_counter() - t0
        assert s == n * (n + 1) // 2
        print(f"executor_roundtrip {dt / n * 1e6}")
