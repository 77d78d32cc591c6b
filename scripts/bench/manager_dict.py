"""Benchmark: round-trip latency of a dict proxy of a Manager.

    python3 scripts/bench/manager_dict.py N [METHOD]

The CPython twin of manager_dict.rhai: N (argv[1], default 20000) set+get
pairs, METHOD (argv[2], default "fork") the start method of the manager's
server process (its start is not timed; set with
set_start_method(METHOD, force=True)), then m = Manager() and d = m.dict().
Each pair is d["k"] = i then d["k"] (two round trips to the server), and the
value read is checked. One warm-up set+get, then N timed pairs with
time.perf_counter(); then m.shutdown(). Prints one machine-readable line:
"manager_dict <microseconds per set+get pair>".
"""
import multiprocessing
import sys
import time


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    method = sys.argv[2] if len(sys.argv) > 2 else "fork"
    multiprocessing.set_start_method(method, force=True)

    m = multiprocessing.Manager()
    d = m.dict()

    # warm-up: the server has answered once this returns
    d["k"] = -1
    if d["k"] != -1:
        raise RuntimeError("wrong value")

    t0 = time.perf_counter()
    for i in range(n):
        d["k"] = i
        if d["k"] != i:
            raise RuntimeError("wrong value")
    dt = time.perf_counter() - t0

    m.shutdown()

    print(f"manager_dict {dt * 1e6 / n:.2f}")
