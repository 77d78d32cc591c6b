#!/usr/bin/env bash
# Benchmarks rhai-mp against CPython's multiprocessing (and a C baseline) and
# prints up to three tables.
#
#     scripts/bench/run.sh            # from anywhere; builds nothing but the C baseline
#     RHAI_MP=/path/to/rhai-mp scripts/bench/run.sh
#
# Env: RHAI_MP (binary, default target/release/rhai-mp, relative to the repo
# root), PYTHON (default python3), CC (default cc), BENCH_TIMEOUT (seconds per
# command, default 60), BENCH_REPEAT (runs of each command, the best time
# counts; default 1), BUSY (busy loops to run during every row, default 0:
# e.g. BUSY=2 measures both sides on a machine whose CPUs are also busy),
# BENCH_ROWS (an extended regex: run only the rows whose name matches), and the
# iteration counts listed next to the rows below.
#
# Every benchmark command runs from the repo root and must print, as its last
# stdout line, "<label> <µs>" (the time per operation in microseconds; for
# `speedup` rows, the speed-up instead); its stderr is collected and shown
# after the tables. Five kinds of rows:
#
#   bench NAME TARGET RHAI_CMD PY_CMD
#       rhai-mp vs CPython: both times, the speed-up CPython / rhai-mp, and
#       whether it is >= TARGET (a minimum ratio such as 30, or "-").
#   bench_vs NAME MAXRATIO RHAI_CMD BASE_CMD
#       rhai-mp vs another baseline (e.g. C): both times, the slow-down
#       rhai-mp / baseline, and whether it is <= MAXRATIO (or "-"). A BASE_CMD
#       of "SKIP:<reason>" prints a skipped row (e.g. no C compiler).
#   floor NAME FROM MIN UNIT SCALE
#       an absolute target for rhai-mp alone, computed from the rhai-mp time of
#       the earlier `bench` row named FROM (no new run): value = SCALE / µs,
#       checked against value >= MIN. E.g. µs per MiB -> MB/s with SCALE 1048576.
#   ceiling NAME MAX RHAI_CMD PY_CMD
#       a value (lower is better) each program prints as "<label> <v>", e.g.
#       the parent's CPU percentage while it waits on a pool: rhai-mp's checked
#       against <= MAX (or "-"), the other program's (CPython, or pebble) for
#       information.
#   speedup NAME MIN RHAI_CMD PY_CMD
#       a speed-up (higher is better) that each program measures itself and
#       prints as "<label> <x>" (e.g. serial time / Pool time): both shown,
#       rhai-mp's checked against >= MIN (or "-"), CPython's for information.
#       With BENCH_REPEAT > 1 the largest counts.
#
# Rows of one kind are printed under one table header, so keep the rows of a
# kind together. To add a benchmark, write the programs and add a row next to
# the rows of its kind.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 2
RHAI_MP="${RHAI_MP:-target/release/rhai-mp}"
PYTHON="${PYTHON:-python3}"
CC="${CC:-cc}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-60}"
BENCH_REPEAT="${BENCH_REPEAT:-1}"
BUSY="${BUSY:-0}"
BENCH_ROWS="${BENCH_ROWS:-}"

if [[ ! "$BENCH_REPEAT" =~ ^[1-9][0-9]*$ ]]; then
    echo "run.sh: BENCH_REPEAT must be a positive integer" >&2
    exit 2
fi
if [[ ! "$BUSY" =~ ^[0-9]+$ ]]; then
    echo "run.sh: BUSY must be a number of busy loops (0 or more)" >&2
    exit 2
fi
if [[ ! -x "$RHAI_MP" ]]; then
    echo "run.sh: no rhai-mp binary at '$RHAI_MP' (relative to $ROOT); build it or set RHAI_MP" >&2
    exit 2
fi
if ! command -v "$PYTHON" >/dev/null; then
    echo "run.sh: '$PYTHON' not found; set PYTHON" >&2
    exit 2
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/rhai-mp-bench.XXXXXX")" || exit 2
BUSY_PIDS=()
stop_busy() {
    local p
    for p in "${BUSY_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${BUSY_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    BUSY_PIDS=()
}
trap 'stop_busy; rm -rf "$TMP"' EXIT
# BUSY=N: N busy loops (plain shell loops, each wanting a whole CPU) run during
# every row, for both sides alike: rhai-mp and CPython compete with the same load.
for ((b = 0; b < BUSY; b++)); do
    (exec -a rhai-mp-bench-busy bash -c 'while :; do :; done') &
    BUSY_PIDS+=("$!")
done
# stderr of every benchmark command, appended (O_APPEND: a program that reopens
# /dev/stderr, as pipe_blob.rhai does, cannot overwrite other lines)
ERRLOG="$TMP/stderr.log"
: >"$ERRLOG"

failures=0
misses=0
skips=0
ROW_FMT="%-44s %14s %14s %10s %9s  %s\n"
FLOOR_FMT="%-44s %14s %10s %9s  %s\n"
SPEEDUP_FMT="%-44s %14s %14s %9s  %s\n"
# (µs is two bytes and printf pads bytes, so a cell holding it gets one more)
CURRENT_TABLE=""
declare -A RHAI_US=()   # bench row name -> rhai-mp µs, for `floor`

# Runs one command (a string, evaluated from the repo root) BENCH_REPEAT times
# and echoes the smallest (with a second argument "max": the largest) of the
# numbers at the end of its last stdout line, or nothing on failure.
measure() {
    local out rc i best="" want="${2:-min}"
    for ((i = 0; i < BENCH_REPEAT; i++)); do
        echo "--- $1" >>"$ERRLOG"
        out="$(timeout "$BENCH_TIMEOUT" bash -c "$1" 2>>"$ERRLOG")"
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
        if [[ -z "$best" ]] || awk -v a="$out" -v b="$best" -v w="$want" \
            'BEGIN { exit !(w == "max" ? (a + 0 > b + 0) : (a + 0 < b + 0)) }'; then
            best="$out"
        fi
    done
    echo "$best"
}

# Whether row NAME is left out by BENCH_ROWS.
skip_row() {
    [[ -n "$BENCH_ROWS" && ! "$1" =~ $BENCH_ROWS ]]
}

# Prints the header of a table of KIND (cpython, vs, floor, speedup) unless it is the current one.
table() {
    [[ "$CURRENT_TABLE" == "$1" ]] && return
    [[ -n "$CURRENT_TABLE" ]] && echo
    CURRENT_TABLE="$1"
    case "$1" in
        cpython)
            echo "rhai-mp vs CPython: µs per operation (lower is better); ratio = CPython / rhai-mp (higher is better)"
            echo
            printf "%-44s %15s %15s %10s %9s  %s\n" "benchmark" "CPython µs" "rhai-mp µs" "ratio" "target" ""
            ;;
        vs)
            echo "rhai-mp vs a baseline (a C program, or another rhai-mp program): µs per operation; ratio = rhai-mp / baseline (lower is better)"
            echo
            printf "%-44s %15s %15s %10s %9s  %s\n" "benchmark" "baseline µs" "rhai-mp µs" "ratio" "target" ""
            ;;
        floor)
            echo "rhai-mp absolute targets (higher is better), computed from the rhai-mp time of the row named at the end"
            echo
            printf "$FLOOR_FMT" "benchmark" "rhai-mp" "unit" "target" ""
            printf "$FLOOR_FMT" "--------------------------------------------" "----------" "-----" "------" ""
            return
            ;;
        ceiling)
            echo "Ceilings (lower is better); the target is for rhai-mp, the other program's (CPython, or pebble where the row says so) is for information"
            echo
            printf "$SPEEDUP_FMT" "benchmark" "CPython" "rhai-mp" "target" ""
            printf "$SPEEDUP_FMT" "--------------------------------------------" "-------" "-------" "------" ""
            return
            ;;
        speedup)
            echo "Speed-ups measured by each program itself (higher is better); the target is for rhai-mp, CPython's is for information"
            echo
            printf "$SPEEDUP_FMT" "benchmark" "CPython" "rhai-mp" "target" ""
            printf "$SPEEDUP_FMT" "--------------------------------------------" "-------" "-------" "------" ""
            return
            ;;
    esac
    printf "$ROW_FMT" "--------------------------------------------" "----------" "----------" "-----" "------" ""
}

# bench NAME TARGET RHAI_CMD PY_CMD
#   NAME:   row label
#   TARGET: minimum CPython/rhai-mp ratio (a number, e.g. 30), or "-" for none
bench() {
    local name="$1" target="$2" rhai_cmd="$3" py_cmd="$4"
    skip_row "$name" && return
    local py_us rhai_us ratio verdict target_txt
    table cpython
    py_us="$(measure "$py_cmd")" || py_us=""
    rhai_us="$(measure "$rhai_cmd")" || rhai_us=""
    RHAI_US["$name"]="$rhai_us"
    if [[ "$target" == "-" ]]; then target_txt="-"; else target_txt=">= ${target}x"; fi
    if [[ -z "$py_us" || -z "$rhai_us" ]]; then
        failures=$((failures + 1))
        printf "$ROW_FMT" "$name" "${py_us:-ERR}" "${rhai_us:-ERR}" "-" "$target_txt" "ERROR"
        return
    fi
    # (two decimals below 1: the interpreter rows' ratios are around 0.1-0.8)
    ratio="$(awk -v a="$py_us" -v b="$rhai_us" 'BEGIN { if (b > 0) printf (a < b ? "%.2f" : "%.1f"), a / b; else print "inf" }')"
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

# bench_vs NAME MAXRATIO RHAI_CMD BASE_CMD
#   MAXRATIO: maximum rhai-mp/baseline ratio (e.g. 1.5), or "-" for none
#   BASE_CMD: the baseline command, or "SKIP:<reason>" to print a skipped row
bench_vs() {
    local name="$1" maxratio="$2" rhai_cmd="$3" base_cmd="$4"
    skip_row "$name" && return
    local base_us rhai_us ratio verdict target_txt
    table vs
    if [[ "$maxratio" == "-" ]]; then target_txt="-"; else target_txt="<= ${maxratio}x"; fi
    if [[ "$base_cmd" == SKIP:* ]]; then
        skips=$((skips + 1))
        printf "$ROW_FMT" "$name" "-" "-" "-" "$target_txt" "SKIP (${base_cmd#SKIP:})"
        return
    fi
    base_us="$(measure "$base_cmd")" || base_us=""
    rhai_us="$(measure "$rhai_cmd")" || rhai_us=""
    if [[ -z "$base_us" || -z "$rhai_us" ]]; then
        failures=$((failures + 1))
        printf "$ROW_FMT" "$name" "${base_us:-ERR}" "${rhai_us:-ERR}" "-" "$target_txt" "ERROR"
        return
    fi
    ratio="$(awk -v a="$rhai_us" -v b="$base_us" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }')"
    if [[ "$maxratio" == "-" ]]; then
        verdict=""
    elif awk -v r="$ratio" -v t="$maxratio" 'BEGIN { exit !(r != "inf" && r + 0 <= t + 0) }'; then
        verdict="ok"
    else
        verdict="MISS"
        misses=$((misses + 1))
    fi
    printf "$ROW_FMT" "$name" "$base_us" "$rhai_us" "${ratio}x" "$target_txt" "$verdict"
}

# floor NAME FROM MIN UNIT SCALE
#   FROM:  the NAME of an earlier `bench` row; its rhai-mp µs is used (no new run)
#   MIN:   minimum value; SCALE / µs must be >= MIN
#   UNIT:  unit of the value, for the table (e.g. MB/s)
floor() {
    local name="$1" from="$2" min="$3" unit="$4" scale="$5"
    skip_row "$name" && return
    local us="${RHAI_US[$from]:-}" value verdict
    table floor
    if [[ -z "$us" ]]; then
        failures=$((failures + 1))
        printf "$FLOOR_FMT" "$name" "ERR" "$unit" ">= $min" "ERROR (no rhai-mp time in row '$from')"
        return
    fi
    value="$(awk -v s="$scale" -v u="$us" 'BEGIN { if (u > 0) printf "%.1f", s / u; else print "inf" }')"
    if awk -v v="$value" -v m="$min" 'BEGIN { exit !(v == "inf" || v + 0 >= m + 0) }'; then
        verdict="ok"
    else
        verdict="MISS"
        misses=$((misses + 1))
    fi
    printf "$FLOOR_FMT" "$name" "$value" "$unit" ">= $min" "$(printf '%-4s  (from: %s)' "$verdict" "$from")"
}

# speedup NAME MIN RHAI_CMD PY_CMD
#   MIN: minimum rhai-mp speed-up (e.g. 1.8), or "-" for none; CPython's has no target
speedup() {
    local name="$1" min="$2" rhai_cmd="$3" py_cmd="$4"
    skip_row "$name" && return
    local py_x rhai_x verdict target_txt
    table speedup
    py_x="$(measure "$py_cmd" max)" || py_x=""
    rhai_x="$(measure "$rhai_cmd" max)" || rhai_x=""
    if [[ "$min" == "-" ]]; then target_txt="-"; else target_txt=">= ${min}x"; fi
    if [[ -z "$py_x" || -z "$rhai_x" ]]; then
        failures=$((failures + 1))
        printf "$SPEEDUP_FMT" "$name" "${py_x:-ERR}" "${rhai_x:-ERR}" "$target_txt" "ERROR"
        return
    fi
    if [[ "$min" == "-" ]]; then
        verdict=""
    elif awk -v r="$rhai_x" -v t="$min" 'BEGIN { exit !(r + 0 >= t + 0) }'; then
        verdict="ok"
    else
        verdict="MISS"
        misses=$((misses + 1))
    fi
    printf "$SPEEDUP_FMT" "$name" "${py_x}x" "${rhai_x}x" "$target_txt" "$verdict"
}

# ceiling NAME MAX RHAI_CMD PY_CMD
#   programs whose last line is "<label> <value>" with lower better (e.g. a
#   percentage of a CPU); rhai-mp's must be <= MAX, CPython's for information.
#   With BENCH_REPEAT > 1 the smallest counts.
ceiling() {
    local name="$1" max="$2" rhai_cmd="$3" py_cmd="$4"
    local py_v rhai_v verdict max_txt
    skip_row "$name" && return
    table ceiling
    if [[ "$max" == "-" ]]; then max_txt="-"; else max_txt="<= $max"; fi
    py_v="$(measure "$py_cmd")" || py_v=""
    rhai_v="$(measure "$rhai_cmd")" || rhai_v=""
    if [[ -z "$py_v" || -z "$rhai_v" ]]; then
        failures=$((failures + 1))
        printf "$SPEEDUP_FMT" "$name" "${py_v:-ERR}" "${rhai_v:-ERR}" "$max_txt" "ERROR"
        return
    fi
    if [[ "$max" == "-" ]]; then
        verdict=""
    elif awk -v r="$rhai_v" -v t="$max" 'BEGIN { exit !(r + 0 <= t + 0) }'; then
        verdict="ok"
    else
        verdict="MISS"
        misses=$((misses + 1))
    fi
    printf "$SPEEDUP_FMT" "$name" "$py_v" "$rhai_v" "$max_txt" "$verdict"
}

echo "rhai-mp: $RHAI_MP ($("$RHAI_MP" --version 2>/dev/null | head -n1)), CPython: $("$PYTHON" --version 2>&1), $(nproc) CPUs, $BUSY busy loop(s)"
echo

# --- rhai-mp vs CPython -------------------------------------------------------

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

# Round trip of a small int over a duplex Pipe to a child and back
# (scripts/bench/pipe_roundtrip.*). N_ROUNDTRIP round trips (~30-70 µs each).
N_ROUNDTRIP="${N_ROUNDTRIP:-30000}"
bench "pipe_roundtrip" 3 \
    "'$RHAI_MP' scripts/bench/pipe_roundtrip.rhai $N_ROUNDTRIP" \
    "'$PYTHON' scripts/bench/pipe_roundtrip.py $N_ROUNDTRIP"

# One producer process put()s N_QUEUE small ints, the parent get()s them
# (scripts/bench/queue_throughput.*); µs per message.
N_QUEUE="${N_QUEUE:-200000}"
bench "queue_throughput" 3 \
    "'$RHAI_MP' scripts/bench/queue_throughput.rhai $N_QUEUE" \
    "'$PYTHON' scripts/bench/queue_throughput.py $N_QUEUE"

# Ten 10 MiB blobs (Python: bytes) from a child to the parent through a Pipe
# (scripts/bench/pipe_blob.*); µs per MiB. "send": send()/recv() of the blob as
# a value; "send_bytes": send_bytes()/recv_bytes().
for mode in send send_bytes; do
    bench "pipe_blob $mode" 3 \
        "'$RHAI_MP' scripts/bench/pipe_blob.rhai $mode 10" \
        "'$PYTHON' scripts/bench/pipe_blob.py $mode 10"
done

# Big values elsewhere (scripts/bench/big_data.*): ten 10 MiB blobs through a
# Queue from a child; an array of 1M ints as one Pool(1) task's argument
# (pool_arg), and as argument and result (pool_echo); µs per MiB (an int
# counts as 8 bytes).
for mode in queue pool_arg pool_echo; do
    bench "big_data $mode" 3 \
        "'$RHAI_MP' scripts/bench/big_data.rhai $mode 10" \
        "'$PYTHON' scripts/bench/big_data.py $mode 10"
done

# Pool(2).map() of sq(x) = x*x (scripts/bench/pool_map.*): over N_POOL_MAP ints
# with map()'s default chunksize (N / 8 for two workers: few, large messages),
# and over N_POOL_CHUNK1 ints with chunksize 1 (one task and one result message
# per item). The workers are started and warmed up before the clock; each
# program keeps the fastest of 5 (chunksize 1: 3) runs; µs per item.
N_POOL_MAP="${N_POOL_MAP:-100000}"
N_POOL_CHUNK1="${N_POOL_CHUNK1:-20000}"
bench "pool_map" 2 \
    "'$RHAI_MP' scripts/bench/pool_map.rhai $N_POOL_MAP" \
    "'$PYTHON' scripts/bench/pool_map.py $N_POOL_MAP"
bench "pool_map_chunk1" 3 \
    "'$RHAI_MP' scripts/bench/pool_map.rhai $N_POOL_CHUNK1 1 fork 3" \
    "'$PYTHON' scripts/bench/pool_map.py $N_POOL_CHUNK1 1 fork 3"

# Executor submit() + result() round trips, one at a time, over ProcessPoolExecutor(2)
# (scripts/bench/executor_roundtrip.*); µs per round trip.
bench "executor_roundtrip" 5 \
    "'$RHAI_MP' scripts/bench/executor_roundtrip.rhai 2000" \
    "'$PYTHON' scripts/bench/executor_roundtrip.py 2000"

# Pool(2).map() chunksize 1 with a task timeout set (60 s, never reached) against the same
# without (scripts/bench/pool_timeout.rhai): what a timeout costs a task that does not need
# it (target: at most 1.25x the time, i.e. >= 0.8x the speed).
bench_vs "pool_map chunk1 timeout vs none" 1.25 \
    "'$RHAI_MP' scripts/bench/pool_timeout.rhai timeout" \
    "'$RHAI_MP' scripts/bench/pool_timeout.rhai plain"

# Eight CPU-bound tasks of N_POOL_CPU iterations of `s += i * i % 7` each over
# Pool(2).map() (scripts/bench/pool_cpu.*); µs per task over the pool, for
# information (this compares the two interpreters' loops more than the pools).
# The target is the pool_cpu speed-up row at the end.
N_POOL_CPU="${N_POOL_CPU:-300000}"
bench "pool_cpu" - \
    "'$RHAI_MP' scripts/bench/pool_cpu.rhai time 8 $N_POOL_CPU" \
    "'$PYTHON' scripts/bench/pool_cpu.py time 8 $N_POOL_CPU"
bench "pool_cpu (--interpreter vm)" - \
    "'$RHAI_MP' --interpreter vm scripts/bench/pool_cpu.rhai time 8 $N_POOL_CPU" \
    "'$PYTHON' scripts/bench/pool_cpu.py time 8 $N_POOL_CPU"

# The interpreter alone, no processes (scripts/bench/interp.*): naive recursive fib(25),
# a 1M-iteration integer loop in a function and at the top level, a string built by
# 200000 appends, 100000 maps in an array; µs per run, the fastest of 5 in one process
# each (the compile is not timed). Each on both interpreters (issue 27): the targets are
# the VM's (fib within 8x of CPython, the integer loop within 1.3x), the AST's rows are
# for comparison.
for kind in fib int_loop int_loop_top string map_array; do
    case "$kind" in
        fib) target=0.125 ;;
        int_loop | int_loop_top) target=0.77 ;;
        *) target=- ;;
    esac
    bench "interp $kind (ast)" - \
        "'$RHAI_MP' --interpreter ast scripts/bench/interp.rhai $kind" \
        "'$PYTHON' scripts/bench/interp.py $kind"
    bench "interp $kind (vm)" "$target" \
        "'$RHAI_MP' --interpreter vm scripts/bench/interp.rhai $kind" \
        "'$PYTHON' scripts/bench/interp.py $kind"
done

# d["k"] = i then d["k"] through a dict proxy of a Manager (two round trips to
# its server process, started before the clock) (scripts/bench/manager_dict.*);
# N_MANAGER_DICT set+get pairs, µs per pair.
N_MANAGER_DICT="${N_MANAGER_DICT:-20000}"
bench "manager_dict" 3 \
    "'$RHAI_MP' scripts/bench/manager_dict.rhai $N_MANAGER_DICT" \
    "'$PYTHON' scripts/bench/manager_dict.py $N_MANAGER_DICT"

# The same pairs through a manager served over TCP on 127.0.0.1, from a second
# manager object connected to its address (as a client on another machine)
# (scripts/bench/manager_tcp.*; CPython: SyncManager(address=("127.0.0.1", 0)));
# and q.put(i) then q.get() on a Queue that manager holds (for information).
N_MANAGER_TCP="${N_MANAGER_TCP:-20000}"
bench "manager_tcp dict" 3 \
    "'$RHAI_MP' scripts/bench/manager_tcp.rhai $N_MANAGER_TCP dict" \
    "'$PYTHON' scripts/bench/manager_tcp.py $N_MANAGER_TCP dict"
bench "manager_tcp queue" - \
    "'$RHAI_MP' scripts/bench/manager_tcp.rhai $N_MANAGER_TCP queue" \
    "'$PYTHON' scripts/bench/manager_tcp.py $N_MANAGER_TCP queue"

# Round trips over a Listener / Client connection (CPython's wire: frames and pickles;
# scripts/bench/listener.*): a small value ([i, "x"]) and a 1 MiB blob, over TCP on
# 127.0.0.1 and a Unix socket. "listener" rows: rhai-mp to rhai-mp against CPython to
# CPython (>= 2x); "listener_mixed" rows: CPython's listener with rhai-mp's echo
# (listener_echo.rhai) in the rhai-mp column, for information. N_LISTENER_SMALL /
# N_LISTENER_BLOB round trips.
N_LISTENER_SMALL="${N_LISTENER_SMALL:-20000}"
N_LISTENER_BLOB="${N_LISTENER_BLOB:-300}"
for kind in small blob; do
    if [[ "$kind" == small ]]; then n="$N_LISTENER_SMALL"; else n="$N_LISTENER_BLOB"; fi
    for transport in tcp unix; do
        bench "listener $kind $transport" 2 \
            "'$RHAI_MP' scripts/bench/listener.rhai $n $kind $transport" \
            "'$PYTHON' scripts/bench/listener.py $n $kind $transport"
        bench "listener_mixed $kind $transport" - \
            "RHAI_MP='$RHAI_MP' '$PYTHON' scripts/bench/listener.py $n $kind $transport rhai" \
            "'$PYTHON' scripts/bench/listener.py $n $kind $transport"
    done
done

# The benchmarks below are noisier from one process to the next than within
# one (interpreter-bound loops; scheduler-bound round trips): each side runs
# N_BEST times (default 3) through scripts/bench/best_of.sh, which keeps the
# fastest run.
N_BEST="${N_BEST:-3}"
BEST="scripts/bench/best_of.sh $N_BEST"

# Two processes each do N_INCR `v.value += 1` under the Value's lock
# (l.acquire(); v.value += 1; l.release()), contended (scripts/bench/value_increment.*);
# µs per increment. (The `hold(l, || v.value += 1)` form is much slower; run
# value_increment.rhai N fork hold to see it.)
N_INCR="${N_INCR:-100000}"
bench "value_increment" 1.5 \
    "$BEST '$RHAI_MP' scripts/bench/value_increment.rhai $N_INCR" \
    "$BEST '$PYTHON' scripts/bench/value_increment.py $N_INCR"

# acquire() + release() of an uncontended Lock in one process
# (scripts/bench/lock_uncontended.*); µs per iteration, for information (the
# target is the "vs 2 no-op native calls" row below).
N_LOCK="${N_LOCK:-500000}"
bench "lock_uncontended" - \
    "$BEST '$RHAI_MP' scripts/bench/lock_uncontended.rhai $N_LOCK lock" \
    "$BEST '$PYTHON' scripts/bench/lock_uncontended.py $N_LOCK lock"

# Ping-pong between two processes with two Events, set/wait/clear
# (scripts/bench/event_latency.*); µs per round trip, for information (the
# target is the "event RTT vs pipe RTT" row below).
N_EVENT="${N_EVENT:-20000}"
bench "event_latency" - \
    "$BEST '$RHAI_MP' scripts/bench/event_latency.rhai $N_EVENT" \
    "$BEST '$PYTHON' scripts/bench/event_latency.py $N_EVENT"

# --- rhai-mp vs C ---------------------------------------------------------------

# pipe_roundtrip against a C ping-pong of a 4-byte int between two processes
# (scripts/bench/pipe_pingpong.c, built here with $CC -O2): over two pipes (the
# target), and, for reference, over a SOCK_SEQPACKET socketpair, the transport
# rhai-mp's Pipe() uses.
if command -v "$CC" >/dev/null; then
    if "$CC" -O2 -o "$TMP/pipe_pingpong" scripts/bench/pipe_pingpong.c 2>>"$ERRLOG"; then
        c_pipe="'$TMP/pipe_pingpong' $N_ROUNDTRIP pipe"
        c_seqpacket="'$TMP/pipe_pingpong' $N_ROUNDTRIP seqpacket"
    else
        echo "run.sh: '$CC -O2 scripts/bench/pipe_pingpong.c' failed" >&2
        c_pipe="false"            # counted as a failure
        c_seqpacket="false"
    fi
else
    c_pipe="SKIP:no $CC"
    c_seqpacket="SKIP:no $CC"
fi
bench_vs "pipe_roundtrip vs C pipes" 1.5 \
    "'$RHAI_MP' scripts/bench/pipe_roundtrip.rhai $N_ROUNDTRIP" "$c_pipe"
bench_vs "pipe_roundtrip vs C seqpacket" - \
    "'$RHAI_MP' scripts/bench/pipe_roundtrip.rhai $N_ROUNDTRIP" "$c_seqpacket"

# --- rhai-mp vs rhai-mp --------------------------------------------------------

# An uncontended Lock's acquire() + release() against a loop body of two no-op
# native calls in the same engine, `a.len(); a.len()` on a 2-item array: the
# same call shape (a method call on a variable, no argument), so the ratio is
# what the lock adds to calling two native methods. Loop overhead is in both;
# nothing is subtracted. `type_of(x)` twice (a plain function call instead of
# a method call) is shown for reference, without a target.
bench_vs "lock acquire+release vs 2 no-op native calls" 1.3 \
    "$BEST '$RHAI_MP' scripts/bench/lock_uncontended.rhai $N_LOCK lock" \
    "$BEST '$RHAI_MP' scripts/bench/lock_uncontended.rhai $N_LOCK len"
bench_vs "lock acquire+release vs 2 type_of()" - \
    "$BEST '$RHAI_MP' scripts/bench/lock_uncontended.rhai $N_LOCK lock" \
    "$BEST '$RHAI_MP' scripts/bench/lock_uncontended.rhai $N_LOCK type_of"

# Event ping-pong round trip against the pipe round trip (pipe_roundtrip.rhai),
# both with N_EVENT round trips: event RTT / pipe RTT.
bench_vs "event RTT vs pipe RTT" 2.0 \
    "$BEST '$RHAI_MP' scripts/bench/event_latency.rhai $N_EVENT" \
    "$BEST '$RHAI_MP' scripts/bench/pipe_roundtrip.rhai $N_EVENT"

# --- rhai-mp absolute targets ---------------------------------------------------

# pipe_blob throughput in MB/s (10^6 bytes/s): 1048576 bytes per MiB / µs per MiB.
floor "pipe_blob send MB/s" "pipe_blob send" 2000 "MB/s" 1048576
floor "pipe_blob send_bytes MB/s" "pipe_blob send_bytes" 2000 "MB/s" 1048576
floor "big_data queue MB/s" "big_data queue" 2000 "MB/s" 1048576
floor "big_data pool_arg MB/s" "big_data pool_arg" 500 "MB/s" 1048576
floor "big_data pool_echo MB/s" "big_data pool_echo" 500 "MB/s" 1048576

# --- speed-ups ------------------------------------------------------------------

# The pool_cpu tasks run serially in the main process and over Pool(2).map(),
# in the same program (scripts/bench/pool_cpu.*): serial time / pool time. Two
# workers on two free CPUs approach 2x; rhai-mp must reach 1.8x (it needs at
# least two CPUs), CPython's is for information.
speedup "pool_cpu Pool(2) vs serial" 1.8 \
    "'$RHAI_MP' scripts/bench/pool_cpu.rhai speedup 8 $N_POOL_CPU" \
    "'$PYTHON' scripts/bench/pool_cpu.py speedup 8 $N_POOL_CPU"

# The same tasks over two plain Processes (every other task each, no pool):
# the speed-up this machine gives two processes at once, the ceiling for the
# row above (on a shared VM often well below 2). For information.
speedup "pool_cpu two Processes vs serial (ceiling)" - \
    "'$RHAI_MP' scripts/bench/pool_cpu.rhai ceiling 8 $N_POOL_CPU" \
    "'$PYTHON' scripts/bench/pool_cpu.py ceiling 8 $N_POOL_CPU"

# Pool(2).map(f, xs) with the default chunksize against a serial loop over the
# same xs in the same program (scripts/bench/pool_speedup.*): f trivial
# (x * x, N_POOL_TRIVIAL items, >= 1.8x) and f running a loop of 1000
# iterations (N_POOL_LOOP items, >= 1.9x).
N_POOL_TRIVIAL="${N_POOL_TRIVIAL:-100000}"
N_POOL_LOOP="${N_POOL_LOOP:-2000}"
speedup "pool_map trivial Pool(2) vs serial" 1.8 \
    "'$RHAI_MP' scripts/bench/pool_speedup.rhai trivial $N_POOL_TRIVIAL" \
    "'$PYTHON' scripts/bench/pool_speedup.py trivial $N_POOL_TRIVIAL"
speedup "pool_map loop1000 Pool(2) vs serial" 1.9 \
    "'$RHAI_MP' scripts/bench/pool_speedup.rhai loop1000 $N_POOL_LOOP" \
    "'$PYTHON' scripts/bench/pool_speedup.py loop1000 $N_POOL_LOOP"

# --- ceilings -------------------------------------------------------------------

# Time from a task's deadline to its TimeoutError, and to the pool's next result (a worker
# ready again), for a task stuck in a loop (scripts/bench/timeout_latency.*), in ms, the
# median of N_TIMEOUT_LATENCY; the twin is pebble's ProcessPool.schedule(timeout=) (pip
# install pebble; without it the row fails). rhai-mp's latency must be < 50 ms; the
# ready time has no target.
N_TIMEOUT_LATENCY="${N_TIMEOUT_LATENCY:-10}"
ceiling "timeout deadline -> TimeoutError (ms, pebble)" 50 \
    "'$RHAI_MP' scripts/bench/timeout_latency.rhai $N_TIMEOUT_LATENCY latency" \
    "'$PYTHON' scripts/bench/timeout_latency.py $N_TIMEOUT_LATENCY latency"
ceiling "timeout deadline -> worker ready (ms, pebble)" - \
    "'$RHAI_MP' scripts/bench/timeout_latency.rhai $N_TIMEOUT_LATENCY ready" \
    "'$PYTHON' scripts/bench/timeout_latency.py $N_TIMEOUT_LATENCY ready"

# The CPU a parent uses while it waits on Pool(2).map() of four heavy tasks
# (scripts/bench/pool_parent_cpu.*), in percent of one CPU: it must never
# compete with its workers (rhai-mp <= 2%; CPython's for information).
ceiling "pool parent CPU while waiting (% of a CPU)" 2 \
    "'$RHAI_MP' scripts/bench/pool_parent_cpu.rhai" \
    "'$PYTHON' scripts/bench/pool_parent_cpu.py"

echo
if [[ -s "$ERRLOG" ]] && grep -qv '^--- ' "$ERRLOG"; then
    echo "stderr of the benchmark commands:"
    awk '/^--- / { cmd = $0; next } { if (cmd != "") { print cmd; cmd = "" } print "    " $0 }' "$ERRLOG"
    echo
fi
if [[ $failures -gt 0 ]]; then
    echo "$failures benchmark(s) failed to run"
    exit 1
fi
if [[ $skips -gt 0 ]]; then
    echo "$misses benchmark(s) below target, $skips skipped"
else
    echo "$misses benchmark(s) below target"
fi
