"""Benchmark: CPU-bound tasks, serially in the main process vs over Pool(2).

    python3 scripts/bench/pool_cpu.py [REPORT] [TASKS] [ITERS] [METHOD] [REPS]

The CPython twin of pool_cpu.rhai. TASKS (argv[2], default 8) tasks of ITERS
(argv[3], default 300000) loop iterations each: task k sums i*i % 7 for i in
range(k*ITERS, (k+1)*ITERS). METHOD (argv[4], default "fork") is the start
method of the workers, REPS (argv[5], default 3) the number of timed runs of
each side. A Pool(2) is created and warmed up (a small map with chunksize 1,
so both workers have started); then, REPS times, the tasks run serially in
this process (list(map(task, tasks))) and over the pool (p.map(task, tasks),
default chunksize: one task per chunk here), each timed; both totals are
checked against each other, and the fastest run of each side counts. Prints
"pool_cpu serial <µs per task>" and "pool_cpu pool <µs per task>", then, as
the last (machine-readable) line, by REPORT (argv[1], default "speedup"):

    pool_cpu_speedup <serial time / pool time>     (REPORT "speedup")
    pool_cpu <microseconds per task over the pool> (REPORT "time")
    pool_cpu_ceiling <serial time / two-process time> (REPORT "ceiling")

REPORT "ceiling" runs the tasks over two plain Processes instead of the pool
(each takes every other task and puts its sum in a Queue; a fresh pair per
run, fork included in the time): the speed-up this machine gives two
processes at once, the ceiling for the pool's.
"""
import multiprocessing
import sys
import time


def task(t):
    k, iters = t
    s = 0
    for i in range(k * iters, (k + 1) * iters):
        s += i * i % 7
    return s


def half(tasks, first, q):
    q.put(sum(task(t) for t in tasks[first::2]))


if __name__ == "__main__":
    report = sys.argv[1] if len(sys.argv) > 1 else "speedup"
    n_tasks = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    iters = int(sys.argv[3]) if len(sys.argv) > 3 else 300000
    method = sys.argv[4] if len(sys.argv) > 4 else "fork"
    reps = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    if report not in ("speedup", "time", "ceiling"):
        raise SystemExit(f"unknown report {report} (speedup, time, ceiling)")
    multiprocessing.set_start_method(method, force=True)
    tasks = [(k, iters) for k in range(n_tasks)]

    p = multiprocessing.Pool(2)
    p.map(task, [(k, 1000) for k in range(4)], 1)  # warm-up: both workers up and running

    best_serial = None
    best_pool = None
    for _ in range(reps):
        t0 = time.perf_counter()
        serial = sum(list(map(task, tasks)))
        dt = time.perf_counter() - t0
        if best_serial is None or dt < best_serial:
            best_serial = dt

        t0 = time.perf_counter()
        if report == "ceiling":
            q = multiprocessing.Queue()
            pair = [multiprocessing.Process(target=half, args=(tasks, k, q)) for k in (0, 1)]
            for w in pair:
                w.start()
            pooled = q.get() + q.get()
            for w in pair:
                w.join()
        else:
            pooled = sum(p.map(task, tasks))
        dt = time.perf_counter() - t0
        if best_pool is None or dt < best_pool:
            best_pool = dt

        if serial != pooled:
            raise RuntimeError(f"wrong result: serial {serial}, pool {pooled}")

    p.close()
    p.join()
    print(f"pool_cpu serial {best_serial * 1e6 / n_tasks:.1f}")
    print(f"pool_cpu pool {best_pool * 1e6 / n_tasks:.1f}")
    if report == "speedup":
        print(f"pool_cpu_speedup {best_serial / best_pool:.2f}")
    elif report == "ceiling":
        print(f"pool_cpu_ceiling {best_serial / best_pool:.2f}")
    else:
        print(f"pool_cpu {best_pool * 1e6 / n_tasks:.1f}")
