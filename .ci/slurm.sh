#!/usr/bin/env bash
# CI: rhai-mp's MPI build under Slurm, on this one machine. Installs Debian's Slurm and
# munge (if missing), starts a Slurm cluster of its own, runs the Slurm tests and the
# sbatch example on it, and stops every daemon it started. `.ci/run` calls it, as root:
#
#     .ci/slurm.sh          # from a clone; reuses the MPI tests' build, or makes it
#
# What it does:
#   1. Installs (apt-get, only the packages not installed yet) slurm-wlm, munge, libpmix-dev
#      and the MPI tests' build dependencies (openmpi-bin, libopenmpi-dev, libclang-dev).
#      Slurm's PMIx plugin comes with slurmd (slurm-wlm-basic-plugins: mpi_pmix_v4.so) and
#      is built against Debian's PMIx 4 (libpmix2), the library Debian's Open MPI links; it
#      dlopens the unversioned libpmix.so, which only libpmix-dev ships (without it, steps
#      with `--mpi=pmix` fail). The packages' own services are the system's: munge.service
#      (its own key and socket, not used here) may start; slurmd/slurmctld.service do not
#      (they need /etc/slurm/slurm.conf, which this never writes).
#   2. Stops what a killed earlier run left: every process whose environment names that
#      run's SLURM_CONF, or whose command line names its dir (the daemons, slurmstepd, srun,
#      the tasks, cargo), and removes its /tmp/rhai-mp-slurm.* dir. A dir whose run is still
#      going (its `owner` pid is a live slurm.sh) stops this one instead (exit 3).
#   3. In a new /tmp/rhai-mp-slurm.XXXXXX (config, state, spool, logs; nothing in /etc):
#      munged as user munge with its own key and socket; slurmctld on 127.0.0.1:16817; and
#      one `slurmd -N node1` with 3 CPUs (port 16818). No cgroups: proctrack/linuxproc,
#      task/none. The node is not named after this host, so `mpirun` inside an allocation
#      starts its daemon (orted) on it through `srun`, as on a real cluster. Checks that a
#      `srun -n 3 --mpi=pmix` step runs.
#      CI_SLURM_NODES=3: three `slurmd -N nodeN` of 1 CPU each (ports 16818-16820), which
#      needs Slurm's multiple-slurmd mode (`scontrol show config`: MULTIPLE_SLURMD = Yes;
#      Debian 12's build has it) and gives each node its own TmpFS (DIR/tmp/%n: the nodes'
#      PMIx plugins would otherwise share a directory per step). Not the default: the ranks
#      of different "nodes" talk over Open MPI's TCP BTL with one IP address for all the
#      nodes, and Open MPI 4.1.4's TCP BTL was seen to crash in MPI_Init that way now and
#      then (about 1 job in 50).
#   4. Builds the tests (`cargo test --no-run`; nothing to do when `.ci/run` ran the MPI
#      tests before), then runs `cargo test --release --features mpi --test integration --
#      --ignored mpi::under_slurm --test-threads=1` (tests/mpi.rs): the Pool, Process and
#      Manager tests' scripts under `srun -n 3 --mpi=pmix` and under `salloc -n 3 mpirun
#      -n 3`, a worker rank killed under `srun`, and a wrong PMI plugin (`srun --mpi=none`),
#      which must run nothing and, as singletons, stop with the error naming --mpi=pmix.
#   5. Submits scripts/cluster/slurm_pool.sbatch (the README's example; `bash -n` first)
#      with the binary the tests ran, waits for it (at most 120 s) and checks its output.
#   6. On any exit (success, failure, Ctrl-C, SIGTERM): stops the step running, cancels
#      the cluster's jobs, prints the daemons' logs if anything failed, stops every process
#      of the run (as in 2.: TERM, KILL after 10 s; slurmctld and munged last) and removes
#      the temp dir.
#
# Every step is bounded (timeout); Open MPI's own TCP stays on the loopback interface.
# Env: CI_SLURM_NODES (1, the default, or 3: see 3.); CI_SLURM_TIMEOUT (seconds for the
# tests, default 600); CI_SLURM_BUILD_TIMEOUT (for building them, default 3600);
# CI_SLURM_PORT (slurmctld's port, default 16817; slurmd the next ones).
#
# Exit codes: 0 all passed; 1 a test or check failed; 2 not root, or a tool is missing;
# 3 the cluster did not come up; 130 / 143 interrupted (after cleaning up).

set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$SECONDS

log() { echo "slurm.sh: $*" >&2; }
die() { # die CODE MESSAGE..
    local code=$1
    shift
    echo "slurm.sh: error: $*" >&2
    exit "$code"
}

[ "$(id -u)" -eq 0 ] || die 2 "must run as root (it starts munged, slurmctld and slurmd)"

# 1. The packages.
PKGS=(slurm-wlm munge libpmix-dev openmpi-bin libopenmpi-dev libclang-dev)
TOOLS=(munged mungekey munge unmunge slurmctld slurmd srun salloc sbatch scontrol sinfo squeue
    scancel mpirun runuser timeout)
if command -v dpkg-query >/dev/null && command -v apt-get >/dev/null; then
    WANTED=()
    for p in "${PKGS[@]}"; do
        [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || WANTED+=("$p")
    done
    if [ ${#WANTED[@]} -gt 0 ]; then
        log "installing ${WANTED[*]}"
        timeout 600 apt-get update -q || die 2 "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive timeout 1200 apt-get install -y -q "${WANTED[@]}" ||
            die 2 "apt-get install ${WANTED[*]} failed"
    fi
fi
for t in "${TOOLS[@]}" cargo; do command -v "$t" >/dev/null || die 2 "'$t' not found (install ${PKGS[*]})"; done
log "$(slurmd -V), $(mpirun --version 2>/dev/null | head -n 1)," \
    "libpmix2 $(dpkg-query -W -f='${Version}' libpmix2 2>/dev/null || echo '?')"

# This script's own cluster only: nothing from a Slurm job this may run in.
while read -r v; do
    unset "$v"
done < <(compgen -e | grep -E '^(SLURM|SALLOC|SBATCH|SRUN)_' || true)

# 2. Leftovers of an earlier run that was killed.
run_pids() { # run_pids DIR: the processes of the run in DIR, but this shell (and its subshell)
    local p
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" = $$ ] || [ "$p" = "$BASHPID" ] && continue
        if grep -qsaxzF "SLURM_CONF=$1/slurm.conf" "/proc/$p/environ" ||
            grep -qsaF "$1/" "/proc/$p/cmdline"; then
            echo "$p"
        fi
    done
}
alive() { # alive PID: running, not a zombie (its parent, one of the run's, reaps it or dies)
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != [ZX] ]]
}
stop_pids() { # stop_pids PID.. [-- PID..]: TERM the first ones, wait for all (at most 10 s),
    # KILL what is left
    local pid pids=() left term=1
    for pid in "$@"; do
        if [ "$pid" = -- ]; then
            term=0
        elif [ "$term" = 0 ] || kill -TERM "$pid" 2>/dev/null; then
            pids+=("$pid")
        fi
    done
    for _ in $(seq 100); do
        left=()
        for pid in "${pids[@]}"; do alive "$pid" && left+=("$pid"); done
        pids=("${left[@]}")
        [ ${#pids[@]} -eq 0 ] && return 0
        sleep 0.1
    done
    log "pids ${pids[*]} did not stop within 10 s: KILL"
    kill -KILL "${pids[@]}" 2>/dev/null || true
}
stop_run() { # stop_run DIR: every process of the run in DIR; slurmctld and munged last
    # (slurmctld stops its slurmscriptd itself)
    local pid comm first=() last=() scriptd=()
    for pid in $(run_pids "$1"); do
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
        case $comm in
        slurmctld | munged) last+=("$pid") ;;
        slurmscriptd) scriptd+=("$pid") ;;
        *) first+=("$pid") ;;
        esac
    done
    stop_pids "${first[@]}"
    stop_pids "${last[@]}" -- "${scriptd[@]}"
}
for old in /tmp/rhai-mp-slurm.*; do
    [ -d "$old" ] || continue
    owner=$(cat "$old/owner" 2>/dev/null || true)
    if [[ $owner =~ ^[0-9]+$ ]] && grep -qsaF slurm.sh "/proc/$owner/cmdline"; then
        die 3 "another run (pid $owner) is using $old"
    fi
    log "removing a leftover run: $old"
    stop_run "$old"
    rm -rf "$old"
done

# 3. The cluster.
PORT=${CI_SLURM_PORT:-16817}
TMP=$(mktemp -d /tmp/rhai-mp-slurm.XXXXXX)
chmod 0755 "$TMP" # munged (user munge) must reach its dir inside
echo $$ >"$TMP/owner"
export SLURM_CONF=$TMP/slurm.conf
OK=0

print_logs() {
    local f
    echo "----- sinfo / squeue -----"
    timeout 10 sinfo -N -l 2>&1 || true
    timeout 10 squeue 2>&1 || true
    for f in "$TMP"/munge/munged.log "$TMP"/log/*.log; do
        [ -e "$f" ] || continue
        echo "----- $f (last 40 lines) -----"
        tail -n 40 "$f"
    done
    echo "--------------------------"
}
CHILD= # the step running in the background (see `bounded`), if any
bounded() { # bounded SECONDS CMD..: CMD under timeout, waited for in the background, so
    # that a signal to this script is handled at once (bash defers traps while a
    # foreground command runs)
    local rc=0
    timeout -k 10 "$1" "${@:2}" &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=
    return "$rc"
}
cleanup() {
    local rc=$?
    trap - EXIT
    trap '' INT TERM # a second Ctrl-C must not cut the cleanup short (it is bounded)
    if [ -n "$CHILD" ]; then
        # timeout(1) passes the TERM on to its process group (cargo and the tests); the
        # jobs they started are cancelled below.
        kill -TERM "$CHILD" 2>/dev/null || true
    fi
    if [ -e "$SLURM_CONF" ] && [ -e "$TMP/run/slurmctld.pid" ]; then
        timeout 10 scancel --full --quiet --user=root 2>/dev/null || true
        for _ in $(seq 50); do
            [ -z "$(timeout 5 squeue -h 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    if [ -n "$CHILD" ]; then
        for _ in $(seq 150); do
            kill -0 "$CHILD" 2>/dev/null || break
            sleep 0.1
        done
    fi
    [ "$OK" = 1 ] || print_logs >&2
    stop_run "$TMP"
    rm -rf "$TMP"
    log "cluster stopped, $TMP removed"
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $(seq "$PORT" $((PORT + 3))); do
    port_busy "$p" && die 3 "port $p on 127.0.0.1 is in use (set CI_SLURM_PORT)"
done

mkdir -p "$TMP"/{munge,state,spool,log,run,tmp,out}
chown munge:munge "$TMP/munge"
timeout 30 runuser -u munge -- mungekey --create --keyfile="$TMP/munge/munge.key"
MUNGE_SOCKET=$TMP/munge/munge.socket
timeout 30 runuser -u munge -- munged --socket="$MUNGE_SOCKET" --key-file="$TMP/munge/munge.key" \
    --pid-file="$TMP/munge/munged.pid" --log-file="$TMP/munge/munged.log" \
    --seed-file="$TMP/munge/munged.seed" || die 3 "munged did not start"
timeout 10 munge -n -S "$MUNGE_SOCKET" | timeout 10 unmunge -S "$MUNGE_SOCKET" >/dev/null ||
    die 3 "munge does not work"

HOST=$(hostname -s)
write_conf() { # write_conf NODES (1 or 3)
    cat >"$SLURM_CONF" <<EOF
# A one-machine Slurm cluster for rhai-mp's CI (.ci/slurm.sh), removed after the run.
ClusterName=rhaimp
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$TMP/state
SlurmdSpoolDir=$TMP/spool/%n
TmpFS=$TMP/tmp/%n
SlurmctldPidFile=$TMP/run/slurmctld.pid
SlurmdPidFile=$TMP/run/slurmd-%n.pid
SlurmctldLogFile=$TMP/log/slurmctld.log
SlurmdLogFile=$TMP/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
KillWait=5
EOF
    if [ "$1" = 3 ]; then
        NODES=(node1 node2 node3)
        echo "NodeName=node[1-3] NodeHostname=$HOST NodeAddr=127.0.0.1" \
            "Port=[$((PORT + 1))-$((PORT + 3))] CPUs=1 State=UNKNOWN" >>"$SLURM_CONF"
    else
        NODES=(node1)
        echo "NodeName=node1 NodeHostname=$HOST NodeAddr=127.0.0.1" \
            "Port=$((PORT + 1)) CPUs=3 State=UNKNOWN" >>"$SLURM_CONF"
    fi
    echo "PartitionName=ci Nodes=ALL Default=YES DefaultTime=5 MaxTime=10 State=UP" >>"$SLURM_CONF"
    for n in "${NODES[@]}"; do mkdir -p "$TMP/spool/$n" "$TMP/tmp/$n"; done
}
start_slurmctld() {
    rm -rf "${TMP:?}"/state/*
    timeout 30 slurmctld -f "$SLURM_CONF" || die 3 "slurmctld did not start"
    for _ in $(seq 100); do
        [[ $(timeout 5 scontrol ping 2>/dev/null) == *"is UP"* ]] && return 0
        sleep 0.2
    done
    die 3 "slurmctld does not answer (scontrol ping)"
}

NODES_WANTED=${CI_SLURM_NODES:-1}
case $NODES_WANTED in 1 | 3) ;; *) die 2 "CI_SLURM_NODES must be 1 or 3" ;; esac
write_conf "$NODES_WANTED"
start_slurmctld
# (Whole outputs in variables, not `| grep -q`: with pipefail, a writer cut off by grep fails.)
CONFIG=$(timeout 10 scontrol show config) || die 3 "scontrol show config failed"
MULTIPLE=no
grep -Eq '^MULTIPLE_SLURMD += Yes' <<<"$CONFIG" && MULTIPLE=yes
[ "$NODES_WANTED" = 1 ] || [ "$MULTIPLE" = yes ] ||
    die 3 "CI_SLURM_NODES=3 needs Slurm's multiple-slurmd mode, which this Slurm lacks"
for n in "${NODES[@]}"; do
    timeout 30 slurmd -f "$SLURM_CONF" -N "$n" || die 3 "slurmd -N $n did not start"
done
idle=0
for _ in $(seq 150); do
    idle=$(timeout 5 sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l)
    [ "$idle" -eq "${#NODES[@]}" ] && break
    sleep 0.2
done
[ "$idle" -eq "${#NODES[@]}" ] || die 3 "the nodes did not come up: $idle of ${#NODES[@]} idle"
PLUGINS=$(timeout 10 srun --mpi=list 2>&1) || true
grep -qw pmix <<<"$PLUGINS" || die 3 "Slurm has no PMIx plugin (srun --mpi=list: $PLUGINS)"
timeout 60 srun -n 3 --mpi=pmix true ||
    die 3 "srun -n 3 --mpi=pmix true failed (Slurm's PMIx plugin needs libpmix.so: libpmix-dev)"
log "cluster up in $((SECONDS - START)) s: slurmd ${NODES[*]}" \
    "(multiple-slurmd mode: $MULTIPLE), SLURM_CONF=$SLURM_CONF"

# Open MPI's daemons and ranks talk over TCP: keep that on the loopback interface.
export OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_btl_tcp_if_include=lo

# 4. The tests.
T=$SECONDS
TEST=(cargo test --release --features mpi --test integration)
bounded "${CI_SLURM_BUILD_TIMEOUT:-3600}" "${TEST[@]}" --no-run || die 1 "building the tests failed"
log "tests built in $((SECONDS - T)) s"
T=$SECONDS
bounded "${CI_SLURM_TIMEOUT:-600}" "${TEST[@]}" -- --ignored mpi::under_slurm --test-threads=1 ||
    die 1 "the Slurm tests failed (or timed out)"
log "Slurm tests passed in $((SECONDS - T)) s"

# 5. The sbatch example, with the binary those tests ran.
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/rhai-mp
EXAMPLE=scripts/cluster/slurm_pool.sbatch
bash -n "$EXAMPLE" || die 1 "$EXAMPLE: syntax error"
JOB=$(timeout 30 sbatch --parsable --chdir="$ROOT" --output="$TMP/out/sbatch-%j.out" \
    --export="ALL,RHAI_MP=$BIN" "$EXAMPLE") || die 1 "sbatch $EXAMPLE failed"
# Polled here (`sbatch --wait` polls only every few seconds), for at most 120 s.
STATE=
DEADLINE=$((SECONDS + 120))
while [ "$SECONDS" -lt "$DEADLINE" ]; do
    STATE=$(timeout 5 scontrol -o show job "$JOB" 2>/dev/null | grep -o 'JobState=[A-Z_]*' || true)
    case ${STATE#JobState=} in
    PENDING | CONFIGURING | RUNNING | COMPLETING | "") sleep 0.2 ;;
    *) break ;;
    esac
done
if [ "$STATE" != JobState=COMPLETED ]; then
    cat "$TMP"/out/sbatch-*.out >&2 2>/dev/null || true
    die 1 "the sbatch example (job $JOB) ended with ${STATE:-no state} (wanted COMPLETED)"
fi
OUT=$(cat "$TMP"/out/sbatch-*.out)
check() {
    grep -Eq "$1" <<<"$OUT" || {
        echo "$OUT" >&2
        die 1 "sbatch example: no line matching '$1'"
    }
}
check "^main: rank 0 of 3 on "
check "^task 39 -> 1521 on .* rank [12]$"
check "^hosts: "
[ "$(grep -Ec '^task [0-9]+ -> [0-9]+ on .* rank [12]$' <<<"$OUT")" -eq 40 ] || {
    echo "$OUT" >&2
    die 1 "sbatch example: not 40 tasks on worker ranks"
}
log "sbatch example passed"

OK=1
log "OK in $((SECONDS - START)) s"
