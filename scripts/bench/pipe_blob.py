"""Benchmark: bulk transfer of 10 MiB blobs through a Pipe, child to parent.

    python3 scripts/bench/pipe_blob.py [MODE] [COUNT] [METHOD]

The CPython twin of pipe_blob.rhai (bytes for blobs). MODE (argv[1], default
"send"): "send" sends each blob as an object with send() / recv();
"send_bytes" sends raw bytes with send_bytes() / recv_bytes(). COUNT (argv[2],
default 10) blobs of 10 MiB, METHOD (argv[3], default "fork") the start method
of the child. The child builds its blob, says "ready" and waits for "go"; the
parent starts the clock, says "go", receives the COUNT blobs (checking their
length) and stops the clock. Prints the throughput in MB/s (10^6 bytes per
second) on stderr and one machine-readable line on stdout:
"pipe_blob <microseconds per MiB>".
"""
import multiprocessing
import sys
import time

MIB = 1048576


def sender(conn, mode, count):
    data = bytes([7]) * (10 * MIB)
    conn.send("ready")
    conn.recv()  # "go"
    for _ in range(count):
        if mode == "send":
            conn.send(data)
        else:
            conn.send_bytes(data)
    conn.close()


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "send"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    method = sys.argv[3] if len(sys.argv) > 3 else "fork"
    if mode not in ("send", "send_bytes"):
        raise SystemExit(f"unknown mode {mode}")
    ctx = multiprocessing.get_context(method)

    conn, child_conn = ctx.Pipe()
    p = ctx.Process(target=sender, args=(child_conn, mode, count))
    p.start()
    child_conn.close()
    conn.recv()  # "ready"

    t0 = time.perf_counter()
    conn.send("go")
    total = 0
    for _ in range(count):
        b = conn.recv() if mode == "send" else conn.recv_bytes()
        if len(b) != 10 * MIB:
            raise RuntimeError(f"got {len(b)} bytes")
        total += len(b)
    dt = time.perf_counter() - t0
    p.join()

    print(f"pipe_blob {mode}: {total / dt / 1e6:.0f} MB/s", file=sys.stderr)
    print(f"pipe_blob {dt * 1e6 / (total / MIB):.1f}")
