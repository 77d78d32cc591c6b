"""Benchmark: Queue throughput from one producer process to the parent.

    python3 scripts/bench/queue_throughput.py N [METHOD]

The CPython twin of queue_throughput.rhai: N (argv[1], default 100000)
messages, METHOD (argv[2], default "fork") the start method of the producer.
The producer is started first and put()s the ints 0..N-1 into a Queue as fast
as it can; the parent get()s them all and checks their order. The clock runs
in the parent from the return of the first get() to the return of the last
one, divided by the N-1 messages in between. Prints one machine-readable
line: "queue_throughput <microseconds per message>".
"""
import multiprocessing
import sys
import time


def producer(q, n):
    for i in range(n):
        q.put(i)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    method = sys.argv[2] if len(sys.argv) > 2 else "fork"
    ctx = multiprocessing.get_context(method)

    q = ctx.Queue()
    p = ctx.Process(target=producer, args=(q, n))
    p.start()

    if q.get() != 0:
        raise RuntimeError("wrong first message")
    t0 = time.perf_counter()
    for i in range(1, n):
        if q.get() != i:
            raise RuntimeError(f"wrong message, expected {i}")
    dt = time.perf_counter() - t0
    p.join()

    print(f"queue_throughput {dt * 1e6 / (n - 1):.2f}")
