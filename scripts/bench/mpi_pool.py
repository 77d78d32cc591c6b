"""Benchmark: mpi4py.futures, the twin of mpi_pool.rhai.

    mpirun -n 3 python3 -m mpi4py.futures scripts/bench/mpi_pool.py N [MB] [REPS]

Rank 0 runs this script; the other ranks serve an MPIPoolExecutor (2 workers with -n 3).
It times executor.map(sq, range(N), chunksize=1) REPS times (the fastest counts) and
executor.submit(len, blob) of an MB-megabyte bytes object. Prints:

    mpi_pool_task <microseconds per task>
    mpi_pool_arg_mbps <MB/s of the big argument>
"""
import sys
import time

from mpi4py.futures import MPIPoolExecutor


def sq(x):
    return x * x


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    mb = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    with MPIPoolExecutor() as ex:
        list(ex.map(sq, range(200), chunksize=1))
        best = None
        for _ in range(reps):
            t0 = time.perf_counter()
            r = list(ex.map(sq, range(n), chunksize=1))
            dt = time.perf_counter() - t0
            assert len(r) == n and r[-1] == (n - 1) ** 2
            best = dt if best is None else min(best, dt)
        print(f"mpi_pool_task {best * 1e6 / n:.3f}")
        big = bytes([7]) * (mb * 1000000)
        best = None
        for _ in range(reps):
            t0 = time.perf_counter()
            assert ex.submit(len, big).result() == mb * 1000000
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        print(f"mpi_pool_arg_mbps {mb / best:.0f}")
