"""Benchmark: Pool.map of a trivial function over Pool(2).

    python3 scripts/bench/pool_map.py N [CHUNKSIZE] [METHOD] [REPS]

The CPython twin of pool_map.rhai: N (argv[1], default 100000) items,
CHUNKSIZE (argv[2], default "default": map() picks it, N / (4 * 2) rounded
up for two workers) and METHOD (argv[3], default "fork") the start method of
the workers, REPS (argv[4], default 5) timed runs. A Pool(2) is created and
warmed up with a small map (200 items, chunksize 1, so both workers have
started and run tasks); then each run times p.map(sq, range(N)) (with
chunksize CHUNKSIZE unless it is "default") and checks the result; the
fastest run counts, divided by N. Prints one machine-readable line:
"pool_map <microseconds per item>" (label "pool_map_chunk<CHUNKSIZE>" with an
explicit chunksize).
"""
import multiprocessing
import sys
import time


def sq(x):
    return x * x


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    chunk = sys.argv[2] if len(sys.argv) > 2 else "default"
    method = sys.argv[3] if len(sys.argv) > 3 else "fork"
    reps = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    multiprocessing.set_start_method(method, force=True)
    label = "pool_map" if chunk == "default" else f"pool_map_chunk{chunk}"

    p = multiprocessing.Pool(2)
    p.map(sq, range(200), 1)  # warm-up: both workers up and running

    best = None
    for _ in range(reps):
        t0 = time.perf_counter()
        if chunk == "default":
            r = p.map(sq, range(n))
        else:
            r = p.map(sq, range(n), int(chunk))
        dt = time.perf_counter() - t0
        if len(r) != n or r[n - 1] != (n - 1) * (n - 1) or r[n // 2] != (n // 2) * (n // 2):
            raise RuntimeError("wrong result")
        if best is None or dt < best:
            best = dt

    p.close()
    p.join()
    print(f"{label} {best * 1e6 / n:.3f}")
