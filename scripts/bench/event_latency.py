"""Benchmark: round-trip latency between two processes signalling with two
Events (ping-pong with set/wait/clear).

    python3 scripts/bench/event_latency.py N [METHOD]

The CPython twin of event_latency.rhai: one child (start method METHOD,
default "fork"; its start is not timed) loops ping.wait(); ping.clear();
pong.set(). The parent does, N (argv[1], default 10000) times: ping.set();
pong.wait(); pong.clear(). One warm-up round trip, then N timed ones with
time.perf_counter(); a third Event, stop, set before a last ping, ends the
child. Prints one machine-readable line:
"event_latency <microseconds per round trip>".
"""
import multiprocessing
import sys
import time


def echo(ping, pong, stop):
    while True:
        ping.wait()
        ping.clear()
        if stop.is_set():
            break
        pong.set()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    method = sys.argv[2] if len(sys.argv) > 2 else "fork"
    ctx = multiprocessing.get_context(method)

    ping = ctx.Event()
    pong = ctx.Event()
    stop = ctx.Event()
    p = ctx.Process(target=echo, args=(ping, pong, stop))
    p.start()

    # warm-up: the child is running once this returns
    ping.set()
    pong.wait()
    pong.clear()

    t0 = time.perf_counter()
    for _ in range(n):
        ping.set()
        pong.wait()
        pong.clear()
    dt = time.perf_counter() - t0

    stop.set()
    ping.set()
    p.join()
    if p.exitcode != 0:
        raise RuntimeError(f"echo process failed: exit code {p.exitcode}")

    print(f"event_latency {dt * 1e6 / n:.2f}")
