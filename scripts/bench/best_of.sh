#!/usr/bin/env bash
# Runs a benchmark command K times and prints the last stdout line of the
# fastest run (the one whose last line ends with the smallest number).
#
#     scripts/bench/best_of.sh K COMMAND [ARGS..]
#     scripts/bench/best_of.sh 3 target/release/rhai-mp scripts/bench/lock_uncontended.rhai 500000 len
#
# For benchmarks whose time moves from one process to the next much more than
# within one (the interpreter-bound ones: lock_uncontended, value_increment)
# or with the scheduler (event_latency): run.sh uses it, with K = N_BEST, on
# both sides of those rows, so that both get the same treatment. Each run's
# stderr passes through; a run that fails, or whose last line does not end
# with a number, makes the whole command fail (exit 1).
set -u
if [[ $# -lt 2 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: best_of.sh K COMMAND [ARGS..]" >&2
    exit 2
fi
k="$1"
shift
best_line=""
best=""
for ((i = 0; i < k; i++)); do
    out="$("$@")" || { echo "best_of.sh: run $((i + 1)) of '$*' failed" >&2; exit 1; }
    line="$(printf '%s\n' "$out" | awk 'NF { last = $0 } END { print last }')"
    num="$(printf '%s\n' "$line" | awk '{ print $NF }')"
    if [[ ! "$num" =~ ^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then
        echo "best_of.sh: '$*' did not end with a number" >&2
        exit 1
    fi
    if [[ -z "$best" ]] || awk -v a="$num" -v b="$best" 'BEGIN { exit !(a + 0 < b + 0) }'; then
        best="$num"
        best_line="$line"
    fi
done
printf '%s\n' "$best_line"
