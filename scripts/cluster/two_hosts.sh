#!/usr/bin/env bash
# Runs rhai-mp's MPI mode across two "hosts" on this one machine: two Linux network
# namespaces joined by a veth pair, each with its own hostname and its own sshd, and
# `mpirun` (Open MPI, rsh/ssh launcher) started on the first one.
#
#     sudo scripts/cluster/two_hosts.sh BIN        # BIN: an rhai-mp built with --features mpi
#     sudo scripts/cluster/two_hosts.sh --selftest # no rhai-mp: ranks just echo `hostname`
#
# What it does:
#   1. Makes namespaces rmp-hostA and rmp-hostB (leftovers of an earlier run that was
#      killed: these namespaces, the processes in them and /tmp/rhai-mp-two-hosts.* temp
#      dirs, are removed first; so two runs must not overlap) and a veth pair created
#      directly inside them: rmp-vethA = 10.77.0.1/24 in rmp-hostA, rmp-vethB =
#      10.77.0.2/24 in rmp-hostB, plus `lo` in each. Nothing is added to the machine's
#      own network namespace, so no packet leaves the two namespaces.
#   2. Starts /usr/sbin/sshd in each namespace, in its own UTS namespace with hostname
#      rmp-hostA / rmp-hostB, listening on the namespace address only, with a throw-away
#      host key, client key, sshd_config and ssh_config in a temp dir (root login by key).
#      Both "hosts" see the same filesystem, so BIN is at the same path on both.
#   3. From inside rmp-hostA (hostname rmp-hostA), runs
#          mpirun --hostfile {10.77.0.1 slots=2, 10.77.0.2 slots=1} -n 3 \
#                 BIN scripts/cluster/two_hosts_pool.rhai
#      so rank 0 (the script) and rank 1 (a Pool worker) are on host A and rank 2 (a Pool
#      worker) is on host B. The script maps x -> x*x over 0..40 and prints, per task, the
#      hostname and rank that ran it; this checks every square and that both hostnames
#      did work. --selftest needs no rhai-mp: it runs (a) `sh -c 'echo rank .. $(hostname)'`
#      as the 3 ranks and checks that all report and both hostnames appear, then (b) if
#      mpicc is there, a small MPI C program (built into the temp dir) in which rank 0
#      swaps messages with rank 1 (host A) and rank 2 (host B, over the veth).
#   4. On exit, whatever the reason (success, failure, Ctrl-C, SIGTERM), stops mpirun and
#      everything in the two namespaces (sshd, orted, ranks), deletes the namespaces (and
#      so the veth pair), the temp dir, and /run/sshd if this script created it.
#
# Requirements: Linux, root (ip netns, sshd); iproute2, openssh-server and openssh-client,
# Open MPI 4.x (openmpi-bin: mpirun, orted in PATH; mpicc from libopenmpi-dev is optional,
# for --selftest), util-linux (unshare), coreutils (timeout, mktemp).
#
# Env: MPIRUN_TIMEOUT (seconds for each mpirun, default 120; every other wait is bounded
# too: 15 s for the sshds to come up, ~5 s per step of the cleanup), MPIRUN_EXTRA (more
# mpirun arguments, split on spaces, e.g. "-x RUST_BACKTRACE --mca plm_base_verbose 5").
#
# Exit codes:
#   0  both hosts ran work and every result was right
#   1  the run went wrong: mpirun failed or timed out, or the output is wrong (a missing
#      or wrong square, a host that did no work, ...); the reason is printed on stderr
#   2  usage error, not root, or a missing tool
#   3  the setup failed (namespaces, veth, sshd, ssh between the hosts)
#   130 / 143  interrupted by Ctrl-C / SIGTERM (after cleaning up)

set -euo pipefail

usage() {
    echo "usage: $0 BIN | --selftest" >&2
    echo "  BIN         an rhai-mp binary built with --features mpi" >&2
    echo "  --selftest  check the namespaces/sshd/mpirun setup with 'sh' as the program" >&2
    exit 2
}

die() { # die CODE MESSAGE..
    local code=$1
    shift
    echo "two_hosts.sh: error: $*" >&2
    exit "$code"
}

log() { echo "two_hosts.sh: $*" >&2; }

[ $# -eq 1 ] || usage
case $1 in
-h | --help) usage ;;
--selftest) MODE=selftest ;;
*)
    MODE=rhai
    BIN=$(realpath -e -- "$1" 2>/dev/null) || die 2 "BIN '$1' does not exist"
    [ -x "$BIN" ] || die 2 "BIN '$BIN' is not executable"
    ;;
esac

[ "$(id -u)" -eq 0 ] || die 2 "must run as root (network namespaces, sshd)"
for tool in ip unshare timeout mktemp ssh ssh-keygen mpirun orted /usr/sbin/sshd; do
    command -v "$tool" >/dev/null || die 2 "'$tool' not found (see Requirements in $0)"
done

HERE=$(cd "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
SCRIPT=$HERE/two_hosts_pool.rhai
[ "$MODE" = selftest ] || [ -f "$SCRIPT" ] || die 2 "$SCRIPT not found"

NS_A=rmp-hostA
NS_B=rmp-hostB
IF_A=rmp-vethA
IF_B=rmp-vethB
ADDR_A=10.77.0.1
ADDR_B=10.77.0.2
SUBNET=10.77.0.0/24
MPIRUN_TIMEOUT=${MPIRUN_TIMEOUT:-120}

TMP=
MPI_PID=
MADE_RUN_SSHD=

# Kills every process in network namespace $1 (they are all ours: sshd, orted, ranks),
# waits up to ~5 s for them to go, then deletes the namespace (which deletes the veth end
# in it, and so the pair).
remove_ns() {
    local ns=$1 pids
    ip netns list | awk '{print $1}' | grep -qxF -- "$ns" || return 0
    mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null || true)
    if [ ${#pids[@]} -gt 0 ]; then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        for _ in $(seq 50); do
            mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null || true)
            [ ${#pids[@]} -eq 0 ] && break
            sleep 0.1
        done
        [ ${#pids[@]} -eq 0 ] || kill -KILL "${pids[@]}" 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || log "warning: could not delete namespace $ns"
}

cleanup() {
    local rc=$?
    trap - EXIT
    trap '' INT TERM # a second Ctrl-C must not cut the cleanup short (it is bounded)
    set +e
    if [ -n "$MPI_PID" ] && kill -0 "$MPI_PID" 2>/dev/null; then
        # timeout(1) passes the TERM on to mpirun, which stops its ranks and daemons.
        kill -TERM "$MPI_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$MPI_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$MPI_PID" 2>/dev/null
    fi
    remove_ns "$NS_A"
    remove_ns "$NS_B"
    [ -n "$TMP" ] && rm -rf -- "$TMP"
    [ -n "$MADE_RUN_SSHD" ] && rmdir /run/sshd 2>/dev/null
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# Command prefixes that run a command on host A / host B: inside the namespace, in a fresh
# UTS namespace whose hostname is the namespace's name. That is how each "host" gets a
# hostname of its own, which os::hostname() and `hostname` then report. Every step execs,
# so the pid of a background job started with a prefix is the command's own pid.
# shellcheck disable=SC2016 # $0 and $@ are expanded by that sh
ON_A=(ip netns exec "$NS_A" unshare --uts -- sh -c 'hostname "$0" && exec "$@"' "$NS_A")
# shellcheck disable=SC2016,SC2034 # (used through a nameref, by start_sshd)
ON_B=(ip netns exec "$NS_B" unshare --uts -- sh -c 'hostname "$0" && exec "$@"' "$NS_B")

# --- 1. the two hosts -------------------------------------------------------------------

remove_ns "$NS_A" # leftovers of an earlier run
remove_ns "$NS_B"
if ip link show "$IF_A" >/dev/null 2>&1; then ip link del "$IF_A" || true; fi
if ip link show "$IF_B" >/dev/null 2>&1; then ip link del "$IF_B" || true; fi

# Temp dirs of earlier runs that could not clean up (killed with SIGKILL): no run can be
# using them, as a run takes over the namespace names and stops what is in them.
for old in /tmp/rhai-mp-two-hosts.*; do
    [ -d "$old" ] || continue
    [ -e "$old/made_run_sshd" ] && MADE_RUN_SSHD=1 # that run made /run/sshd: remove it too
    rm -rf -- "$old"
done

TMP=$(mktemp -d /tmp/rhai-mp-two-hosts.XXXXXX)
chmod 700 "$TMP"
[ -z "$MADE_RUN_SSHD" ] || touch "$TMP/made_run_sshd"

{
    ip netns add "$NS_A" &&
        ip netns add "$NS_B" &&
        ip link add "$IF_A" netns "$NS_A" type veth peer name "$IF_B" netns "$NS_B" &&
        ip -n "$NS_A" addr add "$ADDR_A/24" dev "$IF_A" &&
        ip -n "$NS_B" addr add "$ADDR_B/24" dev "$IF_B" &&
        ip -n "$NS_A" link set lo up &&
        ip -n "$NS_B" link set lo up &&
        ip -n "$NS_A" link set "$IF_A" up &&
        ip -n "$NS_B" link set "$IF_B" up
} || die 3 "could not create the namespaces and the veth pair"
log "hosts: $NS_A ($IF_A $ADDR_A) <-> $NS_B ($IF_B $ADDR_B)"

# --- 2. sshd on each host ---------------------------------------------------------------

ssh-keygen -q -t ed25519 -N '' -C rhai-mp-two-hosts-host -f "$TMP/host_key" >/dev/null ||
    die 3 "ssh-keygen (host key) failed"
ssh-keygen -q -t ed25519 -N '' -C rhai-mp-two-hosts-client -f "$TMP/client_key" >/dev/null ||
    die 3 "ssh-keygen (client key) failed"
cp "$TMP/client_key.pub" "$TMP/authorized_keys"

cat >"$TMP/ssh_config" <<EOF
Host *
    User root
    Port 22
    IdentityFile $TMP/client_key
    IdentitiesOnly yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    GlobalKnownHostsFile /dev/null
    LogLevel ERROR
    BatchMode yes
    ConnectTimeout 5
EOF

# sshd refuses to start without its privilege-separation directory.
if [ ! -d /run/sshd ]; then
    mkdir -m 755 /run/sshd
    MADE_RUN_SSHD=1
    touch "$TMP/made_run_sshd"
fi

start_sshd() { # start_sshd PREFIX-ARRAY-NAME HOSTNAME ADDRESS
    local -n on=$1
    local name=$2 addr=$3
    cat >"$TMP/sshd_config.$name" <<EOF
ListenAddress $addr:22
HostKey $TMP/host_key
PidFile $TMP/sshd.$name.pid
PermitRootLogin yes
PubkeyAuthentication yes
AuthorizedKeysFile $TMP/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
PrintMotd no
X11Forwarding no
EOF
    /usr/sbin/sshd -t -f "$TMP/sshd_config.$name" || die 3 "bad sshd_config for $name"
    # -D: stay in the foreground (it is killed with its namespace); -E: log to a file.
    "${on[@]}" /usr/sbin/sshd -D -f "$TMP/sshd_config.$name" \
        -E "$TMP/sshd.$name.log" </dev/null &
}
start_sshd ON_A "$NS_A" "$ADDR_A"
start_sshd ON_B "$NS_B" "$ADDR_B"

# Wait (15 s at most in all) until host A can ssh to both hosts; check each one's hostname.
deadline=$((SECONDS + 15))
for addr_name in "$ADDR_A:$NS_A" "$ADDR_B:$NS_B"; do
    addr=${addr_name%%:*}
    want=${addr_name#*:}
    got=
    while [ "$SECONDS" -lt "$deadline" ]; do
        got=$(timeout 5 ip netns exec "$NS_A" ssh -F "$TMP/ssh_config" "$addr" hostname \
            2>"$TMP/ssh.err") && break
        got=
        sleep 0.2
    done
    if [ -z "$got" ]; then
        cat "$TMP/ssh.err" "$TMP"/sshd.*.log >&2 2>/dev/null || true
        die 3 "cannot ssh from $NS_A to $addr (sshd logs above)"
    fi
    [ "$got" = "$want" ] || die 3 "ssh to $addr reached hostname '$got', expected '$want'"
done
log "sshd up on both hosts; $NS_A reaches $ADDR_A ($NS_A) and $ADDR_B ($NS_B)"

# --- 3. mpirun from host A --------------------------------------------------------------

cat >"$TMP/hostfile" <<EOF
$ADDR_A slots=2
$ADDR_B slots=1
EOF

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

# shellcheck disable=SC2054 # the commas are in MCA values
MPIRUN=(
    mpirun
    --hostfile "$TMP/hostfile" -n 3
    --wdir "$(pwd)"
    --mca plm_rsh_agent "ssh -F $TMP/ssh_config"
    # Only the veth subnet, for the runtime's out-of-band channel and for MPI messages;
    # and the plain TCP/shared-memory transports (no UCX/OFI/InfiniBand probing).
    --mca oob_tcp_if_include "$SUBNET"
    --mca btl_tcp_if_include "$SUBNET"
    --mca pml ob1
    --mca btl self,vader,tcp
    -x PATH -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
    -x OMPI_MCA_rmaps_base_oversubscribe
)
# shellcheck disable=SC2206 # split on purpose
[ -z "${MPIRUN_EXTRA:-}" ] || MPIRUN+=($MPIRUN_EXTRA)

# run_mpi PROGRAM [ARGS..]: runs mpirun on host A with PROGRAM as the 3 ranks, bounded by
# MPIRUN_TIMEOUT; shows its output; its stdout is then in $TMP/out. Fails unless it exits 0.
run_mpi() {
    local rc
    log "running (timeout ${MPIRUN_TIMEOUT}s): ${MPIRUN[*]} $*"
    # In the background + `wait`, so that Ctrl-C runs the INT trap at once (timeout(1)
    # puts mpirun in a process group of its own, out of reach of the terminal's SIGINT).
    timeout -k 10 "$MPIRUN_TIMEOUT" "${ON_A[@]}" "${MPIRUN[@]}" "$@" \
        >"$TMP/out" 2>"$TMP/err" </dev/null &
    MPI_PID=$!
    rc=0
    wait "$MPI_PID" || rc=$?
    MPI_PID=
    echo "----- mpirun stdout -----"
    cat "$TMP/out"
    if [ -s "$TMP/err" ]; then
        echo "----- mpirun stderr -----"
        cat "$TMP/err"
    fi
    echo "-------------------------"
    case $rc in
    0) ;;
    124 | 137) die 1 "mpirun timed out after ${MPIRUN_TIMEOUT}s" ;;
    *) die 1 "mpirun exited with $rc" ;;
    esac
}

fail() { die 1 "$*"; }

if [ "$MODE" = selftest ]; then
    # (a) the launch: three ranks, both hosts, no MPI library involved.
    # shellcheck disable=SC2016 # expanded by each rank's sh
    run_mpi sh -c 'echo "rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE on $(hostname)"'
    for r in 0 1 2; do
        grep -qx "rank $r of 3 on rmp-host[AB]" "$TMP/out" || fail "rank $r did not report"
    done
    grep -qx "rank [0-2] of 3 on $NS_A" "$TMP/out" || fail "no rank ran on $NS_A"
    grep -qx "rank [0-2] of 3 on $NS_B" "$TMP/out" || fail "no rank ran on $NS_B"
    log "launch OK: 3 ranks, on both $NS_A and $NS_B"

    # (b) MPI messages between the hosts (MPI_Init, the tcp btl over the veth), with a
    # small C program, if mpicc is there: rank 0 sends each other rank a number and gets
    # back its square and hostname.
    if ! command -v mpicc >/dev/null; then
        log "OK (selftest); mpicc not found, MPI messages between the hosts not checked"
        exit 0
    fi
    cat >"$TMP/ping.c" <<'EOF'
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int rank, size;
    char host[256] = {0};
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    gethostname(host, sizeof host - 1);
    if (rank == 0) {
        for (int r = 1; r < size; r++) {
            long x = 1000 + r, y;
            char other[256];
            MPI_Send(&x, 1, MPI_LONG, r, 0, MPI_COMM_WORLD);
            MPI_Recv(&y, 1, MPI_LONG, r, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Recv(other, sizeof other, MPI_CHAR, r, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            printf("ping %ld -> %ld from rank %d on %s\n", x, y, r, other);
        }
        printf("rank 0 on %s\n", host);
    } else {
        long x, y;
        MPI_Recv(&x, 1, MPI_LONG, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        y = x * x;
        MPI_Send(&y, 1, MPI_LONG, 0, 1, MPI_COMM_WORLD);
        MPI_Send(host, (int)strlen(host) + 1, MPI_CHAR, 0, 2, MPI_COMM_WORLD);
    }
    MPI_Finalize();
    return 0;
}
EOF
    mpicc -O1 -o "$TMP/ping" "$TMP/ping.c" || die 2 "mpicc failed to build the ping program"
    run_mpi "$TMP/ping"
    grep -qx "rank 0 on $NS_A" "$TMP/out" || fail "rank 0 is not on $NS_A"
    grep -qx "ping 1001 -> 1002001 from rank 1 on $NS_A" "$TMP/out" ||
        fail "no right answer from rank 1 on $NS_A"
    grep -qx "ping 1002 -> 1004004 from rank 2 on $NS_B" "$TMP/out" ||
        fail "no right answer from rank 2 on $NS_B"
    log "MPI messages OK: rank 0 on $NS_A <-> ranks 1 ($NS_A) and 2 ($NS_B)"
    log "OK (selftest)"
    exit 0
fi

run_mpi "$BIN" "$SCRIPT"

# The script prints "main: rank 0 of 3 on HOST", one line per task, "task X -> Y on HOST
# rank R", then "hosts: H1 H2 ..." (the distinct hostnames that ran tasks, sorted).
if grep -q "^main: rank 0 of 1 on" "$TMP/out"; then
    fail "every rank ran the script alone (mpi::size() is 1): BIN was built without MPI" \
        "support (cargo build --release --features mpi)"
fi
grep -qx "main: rank 0 of 3 on $NS_A" "$TMP/out" ||
    fail "missing or wrong first line (want 'main: rank 0 of 3 on $NS_A')"
N=40
declare -A seen_host=()
for ((x = 0; x < N; x++)); do
    line=$(grep -E "^task $x -> " "$TMP/out" || true)
    [ -n "$line" ] || fail "no result for task $x"
    [ "$(printf '%s\n' "$line" | wc -l)" -eq 1 ] || fail "task $x reported more than once"
    read -r _ _ _ y _ host _ rank <<<"$line"
    [ "$y" = "$((x * x))" ] || fail "task $x gave '$y', expected $((x * x))"
    case $host in
    "$NS_A" | "$NS_B") ;;
    *) fail "task $x ran on unknown host '$host'" ;;
    esac
    [ "$rank" = 1 ] || [ "$rank" = 2 ] ||
        fail "task $x ran on rank '$rank' (expected a worker: 1 or 2)"
    seen_host[$host]=1
done
[ -n "${seen_host[$NS_A]:-}" ] || fail "no task ran on $NS_A"
[ -n "${seen_host[$NS_B]:-}" ] || fail "no task ran on $NS_B"
grep -qx "hosts: $NS_A $NS_B" "$TMP/out" ||
    fail "missing or wrong summary line (want 'hosts: $NS_A $NS_B')"
log "OK: $N squares right; tasks ran on both $NS_A and $NS_B"
