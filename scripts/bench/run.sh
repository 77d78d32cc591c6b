#!/usr/bin/env bash
# Benchmarks rhai-mp against CPython's multiprocessing and prints one table.
#
#     scripts/bench/run.sh            # from anywhere; builds nothing
#     RHAI_MP=/path/to/rhai-mp scripts/bench/run.sh
#
# Env: RHAI_MP (binary, default target/release/rhai-mp, relative to the repo
# root), PYTHON (default python3), BENCH_TIMEOUT (seconds per command, default 60).
#
# Each row comes from `bench NAME TARGET RHAI_CMD PY_CMD`: both commands run from
# the repo root and must print, as their last stdout line, "<label> <µs>" (the
# time per operation in microseconds). The row shows both times, the speed-up
# CPython/rhai-mp, and whether it meets TARGET (a minimum ratio such as 30).
# To add a benchmark, write the two programs and add a `bench` line at the end.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 2
RHAI_MP="${RHAI_MP:-target/release/rhai-mp}"
PYTHON="${PYTHON:-python3}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-60}"

if [[ ! -x "$RHAI_MP" ]]; then
    echo "run.sh: no rhai-mp binary at '$RHAI_MP' (relative to $ROOT); build it or set RHAI_MP" >&2
    exit 2
fi
if ! command -v "$PYTHON" >/dev/null; then
    echo "run.sh: '$PYTHON' not found; set PYTHON" >&2
    exit 2
fi

failures=0
misses=0
ROW_FMT="%-24s %14s %14s %10s %8s  %s\n"

# Runs one command (a string, evaluated from the repo root) and echoes the
# number at the end of its last stdout line, or nothing on failure.
measure() {
    local out rc
    out="$(timeout "$BENCH_TIMEOUT" bash -c "$1")"
    rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "run.sh: '$1' failed (exit $rc)" >&2
        return 1
    fi
    out="$(printf '%s\n' "$out" | awk 'NF { last = $NF } END { print last }')"
    if [[ ! "$out" =~ ^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then
        echo "run.sh: '$1' did not end with a number" >&2
        return 1
    fi
    echo "$out"
}

# bench NAME TARGET RHAI_CMD PY_CMD
#   NAME:   row label
#   TARGET: minimum CPython/rhai-mp ratio (a number, e.g. 30), or "-" for none
bench() {
    local name="$1" target="$2" rhai_cmd="$3" py_cmd="$4"
    local py_us rhai_us ratio verdict target_txt
    py_us="$(measure "$py_cmd")" || py_us=""
    rhai_us="$(measure "$rhai_cmd")" || rhai_us=""
    if [[ "$target" == "-" ]]; then target_txt="-"; else target_txt=">= ${target}x"; fi
    if [[ -z "$py_us" || -z "$rhai_us" ]]; then
        failures=$((failures + 1))
        printf "$ROW_FMT" "$name" "${py_us:-ERR}" "${rhai_us:-ERR}" "-" "$target_txt" "ERROR"
        return
    fi
    ratio="$(awk -v a="$py_us" -v b="$rhai_us" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "inf" }')"
    if [[ "$target" == "-" ]]; then
        verdict=""
    elif awk -v r="$ratio" -v t="$target" 'BEGIN { exit !(r == "inf" || r + 0 >= t + 0) }'; then
        verdict="ok"
    else
        verdict="MISS"
        misses=$((misses + 1))
    fi
    printf "$ROW_FMT" "$name" "$py_us" "$rhai_us" "${ratio}x" "$target_txt" "$verdict"
}

echo "rhai-mp: $RHAI_MP ($("$RHAI_MP" --version 2>/dev/null | head -n1)), CPython: $("$PYTHON" --version 2>&1), $(nproc) CPUs"
echo "times are µs per operation (lower is better); ratio = CPython / rhai-mp (higher is better)"
echo
# (µs is two bytes and printf pads bytes, so these two cells get one more)
printf "%-24s %15s %15s %10s %8s  %s\n" "benchmark" "CPython µs" "rhai-mp µs" "ratio" "target" ""
printf "$ROW_FMT" "------------------------" "----------" "----------" "-----" "------" ""

# Process start()+join() of an empty target (scripts/bench/process_start.*).
# Iterations: N_PY_SPAWN for CPython spawn (~100 ms each), N_START for the rest.
N_PY_SPAWN="${N_PY_SPAWN:-20}"
N_START="${N_START:-200}"
for m in spawn fork forkserver; do
    case "$m" in
        spawn) target=30; n_py="$N_PY_SPAWN" ;;
        *)     target=5;  n_py="$N_START" ;;
    esac
    bench "process_start $m" "$target" \
        "'$RHAI_MP' scripts/bench/process_start.rhai $N_START $m" \
        "'$PYTHON' scripts/bench/process_start.py $n_py $m"
done

echo
if [[ $failures -gt 0 ]]; then
    echo "$failures benchmark(s) failed to run"
    exit 1
fi
echo "$misses benchmark(s) below target"
