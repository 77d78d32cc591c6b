"""Benchmark: a TCP manager on 127.0.0.1, used from a connected client.

    python3 scripts/bench/manager_tcp.py N [dict|queue]

The CPython twin of manager_tcp.rhai: starts SyncManager(address=("127.0.0.1", 0),
authkey=b"bench"), then connects a second SyncManager to its address (not timed) and
works through that one. After one warm-up operation, N (argv[1], default 20000) timed
operations with time.perf_counter():

- dict (default): d["k"] = i then d["k"] on a dict proxy, the value read checked;
- queue: q.put(i) then q.get() on a proxied Queue, checked.

Prints one machine-readable line: "manager_tcp_<mode> <microseconds per pair>".
"""
import sys
import time
from multiprocessing.managers import SyncManager


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    mode = sys.argv[2] if len(sys.argv) > 2 else "dict"

    server = SyncManager(address=("127.0.0.1", 0), authkey=b"bench")
    server.start()
    m = SyncManager(address=server.address, authkey=b"bench")
    m.connect()

    if mode == "dict":
        d = m.dict()
        d["k"] = -1
        if d["k"] != -1:
            raise RuntimeError("wrong value")
        t0 = time.perf_counter()
        for i in range(n):
            d["k"] = i
            if d["k"] != i:
                raise RuntimeError("wrong value")
        dt = time.perf_counter() - t0
    elif mode == "queue":
        q = m.Queue()
        q.put(-1)
        if q.get() != -1:
            raise RuntimeError("wrong value")
        t0 = time.perf_counter()
        for i in range(n):
            q.put(i)
            if q.get() != i:
                raise RuntimeError("wrong value")
        dt = time.perf_counter() - t0
    else:
        raise SystemExit(f"unknown mode {mode}: dict or queue")

    server.shutdown()
    print(f"manager_tcp_{mode} {dt * 1e6 / n:.2f}")
