#!/usr/bin/env bash
# Benchmarks a Pool over MPI worker ranks against mpi4py.futures (both under
# `mpirun -n 3`: rank 0 runs the script, ranks 1 and 2 are the workers) and prints the
# per-task times, the ratio, and MB/s for a big argument.
#
#     scripts/bench/run_mpi.sh            # RHAI_MP: an rhai-mp built with --features mpi
#
# Env: RHAI_MP (default target/release/rhai-mp), PYTHON (default python3, with mpi4py:
# pip install mpi4py), N (tasks, default 20000), MB (argument size, default 10).
# Open MPI as root in a container needs OMPI_ALLOW_RUN_AS_ROOT=1 and
# OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1, and more ranks than cores needs
# OMPI_MCA_rmaps_base_oversubscribe=1: set them in your environment if you need them.
set -eu
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
RHAI_MP="${RHAI_MP:-target/release/rhai-mp}"
PYTHON="${PYTHON:-python3}"
N="${N:-20000}"
MB="${MB:-10}"

rhai=$(timeout 300 mpirun -n 3 "$RHAI_MP" scripts/bench/mpi_pool.rhai "$N" "$MB")
py=$(timeout 300 mpirun -n 3 "$PYTHON" -m mpi4py.futures scripts/bench/mpi_pool.py "$N" "$MB")
val() { echo "$1" | awk -v k="$2" '$1 == k { print $2 }'; }
rt=$(val "$rhai" mpi_pool_task); pt=$(val "$py" mpi_pool_task)
rm=$(val "$rhai" mpi_pool_arg_mbps); pm=$(val "$py" mpi_pool_arg_mbps)
printf '%-22s %12s %12s %10s\n' benchmark rhai-mp mpi4py ratio
printf '%-22s %10s µs %10s µs %9.1fx\n' "Pool().map(sq, N, 1)" "$rt" "$pt" "$(echo "$pt / $rt" | bc -l)"
printf '%-22s %7s MB/s %7s MB/s %9.1fx\n' "${MB} MB argument" "$rm" "$pm" "$(echo "$rm / $pm" | bc -l)"
