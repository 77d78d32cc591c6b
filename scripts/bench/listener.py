"""Benchmark: round trip over a multiprocessing.connection Listener / Client connection.

    python3 scripts/bench/listener.py N [small|blob] [tcp|unix] [python|rhai]

The CPython twin of listener.rhai: N (argv[1], default 20000) round trips of a small value
([i, "x"], `small`) or of a 1 MiB bytes object (`blob`), over TCP on 127.0.0.1 (`tcp`) or a
Unix socket (`unix`). The main process listens with an authkey; the peer connects with
Client and echoes what it receives until it gets None: a forked multiprocessing.Process
(`python`, the default), or rhai-mp running scripts/bench/listener_echo.rhai (`rhai`: the
binary is $RHAI_MP, default target/release/rhai-mp), which times CPython talking to rhai-mp.
The peer's start and the handshake are not timed; one warm-up round trip, then N timed
ones. Prints one machine-readable line:
"listener_<kind>_<transport> <microseconds per round trip>".
"""
import multiprocessing
import os
import subprocess
import sys
import time
from multiprocessing.connection import Client, Listener

KEY = b"bench"


def echo(address):
    c = Client(address, authkey=KEY)
    while True:
        x = c.recv()
        if x is None:
            break
        c.send(x)
    c.close()


def text(address):
    return address if isinstance(address, str) else "%s:%d" % address


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    kind = sys.argv[2] if len(sys.argv) > 2 else "small"
    transport = sys.argv[3] if len(sys.argv) > 3 else "tcp"
    peer = sys.argv[4] if len(sys.argv) > 4 else "python"
    if transport == "unix":
        address = "/tmp/rhai-mp-bench-listener-py-%d" % os.getpid()
    else:
        address = ("127.0.0.1", 0)
    listener = Listener(address, authkey=KEY)
    if peer == "rhai":
        rhai_mp = os.environ.get("RHAI_MP", "target/release/rhai-mp")
        p = subprocess.Popen([rhai_mp, "scripts/bench/listener_echo.rhai", text(listener.address)])
    else:
        p = multiprocessing.get_context("fork").Process(target=echo, args=(listener.address,))
        p.start()
    c = listener.accept()

    big = bytes([7]) * 1048576
    c.send(0)
    c.recv()
    t0 = time.perf_counter()
    if kind == "blob":
        for i in range(n):
            c.send(big)
            if len(c.recv()) != 1048576:
                raise RuntimeError("wrong echo")
    else:
        for i in range(n):
            c.send([i, "x"])
            if c.recv()[0] != i:
                raise RuntimeError("wrong echo")
    dt = time.perf_counter() - t0
    c.send(None)
    if peer == "rhai":
        p.wait()
    else:
        p.join()
    listener.close()
    print(f"listener_{kind}_{transport} {dt * 1e6 / n:.2f}")
