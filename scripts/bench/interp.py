"""Benchmark: the interpreter alone (no processes), the CPython twin of interp.rhai.

    python3 scripts/bench/interp.py KIND [N] [REPS]

KIND (argv[1]) is the workload, N (argv[2]) its size (default per kind, below) and REPS
(argv[3], default 5) the number of timed runs in this process; the fastest counts. Only the
workload is timed (time.perf_counter around it). Every run's result is checked. The last
line is "interp_<KIND> <microseconds per run>".

    fib        naive recursive fib(N), N default 25 (75025)
    int_loop   s += i % 7 over i in range(N), N default 1000000 (in a function)
    int_loop_top  the same loop at module level (global variables, slower than a
               function's locals in CPython)
    string     N times: s += str(i); s += ","  (then its length), N default 200000
    map_array  N dicts {id, sq, tag} in a list; then the sq of the even ids are summed
               and the tags counted in a dict; N default 100000
"""
import sys
import time


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def int_loop(n):
    s = 0
    for i in range(n):
        s += i % 7
    return s


def string_build(n):
    s = ""
    for i in range(n):
        s += str(i)
        s += ","
    return len(s)


def map_array(n):
    rows = []
    for i in range(n):
        rows.append({"id": i, "sq": i * i, "tag": f"t{i % 10}"})
    total = 0
    counts = {}
    for r in rows:
        if r["id"] % 2 == 0:
            total += r["sq"]
        t = r["tag"]
        counts[t] = counts.get(t, 0) + 1
    return total + len(counts)


def expected(kind, n):
    if kind == "fib":
        a, b = 0, 1
        for _ in range(n):
            a, b = b, a + b
        return a
    if kind in ("int_loop", "int_loop_top"):
        return n // 7 * 21 + sum(range(n % 7))
    if kind == "string":
        return sum(len(str(i)) + 1 for i in range(n))
    if kind == "map_array":
        return sum(i * i for i in range(0, n, 2)) + min(n, 10)
    raise SystemExit(f"unknown kind {kind} (fib, int_loop, string, map_array)")


KINDS = {"fib": (fib, 25), "int_loop": (int_loop, 1000000), "int_loop_top": (None, 1000000), "string": (string_build, 200000),
         "map_array": (map_array, 100000)}

if __name__ == "__main__":
    kind = sys.argv[1] if len(sys.argv) > 1 else "fib"
    if kind not in KINDS:
        expected(kind, 0)
    f, default = KINDS[kind]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else default
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    want = expected(kind, n)
    best = None
    for _ in range(reps):
        t0 = time.perf_counter()
        if f is None:
            s = 0
            for i in range(n):
                s += i % 7
            got = s
        else:
            got = f(n)
        dt = time.perf_counter() - t0
        if got != want:
            raise RuntimeError(f"wrong result for {kind}({n}): {got}, expected {want}")
        if best is None or dt < best:
            best = dt
    print(f"interp_{kind} {best * 1e6:.1f}")
