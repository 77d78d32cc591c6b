"""Benchmark: round-trip latency of a small int over a duplex Pipe.

    python3 scripts/bench/pipe_roundtrip.py N [METHOD]

The CPython twin of pipe_roundtrip.rhai: N (argv[1], default 10000) round
trips, METHOD (argv[2], default "fork") the start method of the one child
(its start is not timed). The parent sends an int on its end of Pipe(), the
child sends it back; the parent checks the echo. One warm-up round trip, then
N timed ones with time.perf_counter(); a negative int stops the child. Prints
one machine-readable line: "pipe_roundtrip <microseconds per round trip>".
"""
import multiprocessing
import sys
import time


def echo(conn):
    while True:
        x = conn.recv()
        if x < 0:
            break
        conn.send(x)
    conn.close()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    method = sys.argv[2] if len(sys.argv) > 2 else "fork"
    ctx = multiprocessing.get_context(method)

    conn, child_conn = ctx.Pipe()
    p = ctx.Process(target=echo, args=(child_conn,))
    p.start()
    child_conn.close()

    # warm-up: the child is running once this returns
    conn.send(0)
    conn.recv()

    t0 = time.perf_counter()
    for i in range(n):
        conn.send(i)
        if conn.recv() != i:
            raise RuntimeError("wrong echo")
    dt = time.perf_counter() - t0

    conn.send(-1)
    p.join()

    print(f"pipe_roundtrip {dt * 1e6 / n:.2f}")
