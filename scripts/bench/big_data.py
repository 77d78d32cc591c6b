"""Benchmark: big values through a Queue and as a Pool task's argument or result.

    python3 scripts/bench/big_data.py MODE [COUNT]

The CPython twin of big_data.rhai (bytes for blobs, lists of ints). MODE:
"queue" (a child puts COUNT 10 MiB bytes objects into a Queue, the parent gets
them), "pool_arg" (COUNT p.apply(len, (xs,)) on a Pool(1), xs a list of 1M
ints), "pool_echo" (COUNT p.apply(echo, (xs,)) returning its argument: 1M ints
each way, 16 MB a call). A list of 1M ints counts as 8 MB. Prints the MB/s on
stderr and "big_data_<MODE> <microseconds per MiB>" on stdout.
"""
import multiprocessing
import sys
import time

MIB = 1048576
N_INTS = 1000000


def producer(q, count):
    data = bytes([7]) * (10 * MIB)
    q.put("ready")
    for _ in range(count):
        q.put(data)


def length(xs):
    return len(xs)


def echo(xs):
    return xs


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "queue"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    multiprocessing.set_start_method("fork", force=True)
    total = 0
    if mode == "queue":
        q = multiprocessing.Queue()
        p = multiprocessing.Process(target=producer, args=(q, count))
        p.start()
        q.get()
        t0 = time.perf_counter()
        for _ in range(count):
            b = q.get()
            if len(b) != 10 * MIB:
                raise RuntimeError(f"got {len(b)} bytes")
            total += len(b)
        dt = time.perf_counter() - t0
        p.join()
    elif mode == "pool_arg":
        xs = list(range(N_INTS))
        with multiprocessing.Pool(1) as p:
            p.apply(length, ([1, 2],))
            t0 = time.perf_counter()
            for _ in range(count):
                if p.apply(length, (xs,)) != N_INTS:
                    raise RuntimeError("wrong length")
                total += 8 * N_INTS
            dt = time.perf_counter() - t0
    elif mode == "pool_echo":
        xs = list(range(N_INTS))
        with multiprocessing.Pool(1) as p:
            p.apply(echo, ([1, 2],))
            t0 = time.perf_counter()
            for _ in range(count):
                back = p.apply(echo, (xs,))
                if len(back) != N_INTS or back[-1] != N_INTS - 1:
                    raise RuntimeError("wrong result")
                total += 16 * N_INTS
            dt = time.perf_counter() - t0
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(f"big_data {mode}: {total / dt / 1e6:.0f} MB/s", file=sys.stderr)
    print(f"big_data_{mode} {dt * 1e6 / (total / MIB):.1f}")
