#!/usr/bin/env bash
# A sweep on a real one-node Slurm cluster on this machine, end to end:
#   installs Debian's slurm-wlm and munge when absent, starts munged, slurmctld and slurmd
#   (as root, no systemd, config written here), submits a smoke-budget sweep (LeNet-5 /
#   MNIST, 2 seeds x 2 pruning rates) as a job array, cancels one array task mid-run,
#   resubmits the unfinished runs, and checks that `safs report` gives the same table as the
#   same sweep run by the local backend. Every daemon it started is stopped by PID at exit,
#   also on failure.
#
#   bash scripts/slurm_e2e.sh [SAFS_BINARY]      (default: target/release/safs)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
safs=$(realpath "${1:-$repo/target/release/safs}")
[ -x "$safs" ] || { echo "slurm_e2e: no safs binary at $safs (cargo build --release -p safs)" >&2; exit 1; }
work=$(mktemp -d /tmp/safs-slurm-e2e.XXXXXX)
pids=()

cleanup() {
    local rc=$?
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [ "$rc" -ne 0 ]; then
        echo "slurm_e2e: FAILED (rc $rc); logs in $work" >&2
        tail -n 20 "$work"/*.log 2>/dev/null >&2 || true
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT

log() { echo "slurm_e2e: $*"; }

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
    local limit=$1; shift
    local t0=$SECONDS
    until "$@" >/dev/null 2>&1; do
        if [ $((SECONDS - t0)) -ge "$limit" ]; then
            echo "slurm_e2e: timed out after ${limit}s waiting for: $*" >&2
            return 1
        fi
        sleep 1
    done
}

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge >"$work/apt.log" 2>&1 \
        || { apt-get update >>"$work/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge >>"$work/apt.log" 2>&1; }
fi

# munge: a key of our own, its socket in the work folder.
mkdir -p "$work/munge"
chmod 700 "$work/munge"
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$work/munge/munge.key"
sock="$work/munge/munge.socket"
munged --force --key-file="$work/munge/munge.key" --socket="$sock" \
    --pid-file="$work/munge/munged.pid" --log-file="$work/munged.log" --seed-file="$work/munge/seed"
wait_for 10 test -s "$work/munge/munged.pid"
pids+=("$(cat "$work/munge/munged.pid")")

# slurm: one node, this machine, every path under the work folder.
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
mkdir -p "$work/state" "$work/spool"
cat >"$work/slurm.conf" <<EOF
ClusterName=safs-e2e
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
SlurmctldPort=26817
SlurmdPort=26818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=e2e Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$work/slurm.conf"
slurmctld -D -f "$SLURM_CONF" >"$work/slurmctld.out" 2>&1 &
pids+=("$!")
slurmd -D -f "$SLURM_CONF" >"$work/slurmd.out" 2>&1 &
pids+=("$!")
wait_for 60 bash -c "sinfo -h -o %T | grep -qE '^(idle|mixed)'"
log "one-node cluster up ($host, $cpus cpus)"

# The sweep: smoke budget, 2 seeds x 2 pruning rates.
cat >"$work/sweep.toml" <<EOF
name = "e2e"
experiments = ["$repo/experiments/lenet5_mnist.toml"]

[[axes]]
field = "budget"
values = ["smoke"]

[[axes]]
field = "seed"
values = [0, 1]

[[axes]]
field = "prune.rate"
values = [0.9, 0.99]

[resources]
cpus = 1
time = "00:30:00"

[slurm]
max_parallel = 2
EOF

job_done() { [ -z "$(squeue -h -j "$1" 2>/dev/null)" ]; }
submit() {
    local out
    out=$("$safs" sweep submit "$work/sweep.toml" -o "$work/slurm")
    echo "$out" >&2
    echo "$out" | sed -n 's/^submitted job \([0-9]*\):.*/\1/p'
}

job=$(submit)
[ -n "$job" ] || { echo "slurm_e2e: no job id from safs sweep submit" >&2; exit 1; }
log "job array $job submitted"
# Cancel array task 1 once it runs (mid-run: a smoke run takes several seconds).
wait_for 300 bash -c "squeue -h -j ${job}_1 -o %T | grep -q RUNNING"
"$safs" sweep status "$work/sweep.toml" -o "$work/slurm" | tee "$work/status0.txt"
grep -qE '^ +1 .*\[slurm: running\]' "$work/status0.txt" \
    || { echo "slurm_e2e: sweep status does not show task 1 running in the queue" >&2; exit 1; }
sleep 2
scancel "${job}_1"
log "cancelled array task ${job}_1"
wait_for 900 job_done "$job"
"$safs" sweep status "$work/sweep.toml" -o "$work/slurm" | tee "$work/status1.txt"
grep -qE '^ +1 +(pending|started) ' "$work/status1.txt" \
    || { echo "slurm_e2e: the cancelled task 1 is not left unfinished" >&2; exit 1; }
[ "$(grep -c ' done ' "$work/status1.txt")" -eq 3 ] \
    || { echo "slurm_e2e: expected the 3 other tasks done" >&2; exit 1; }

job2=$(submit)
log "resubmitted the unfinished runs as job $job2"
grep -q "^$job2 1\$" "$work/slurm/slurm_jobs.txt" \
    || { echo "slurm_e2e: the resubmission is not of task 1 alone" >&2; exit 1; }
wait_for 900 job_done "$job2"
"$safs" sweep status "$work/sweep.toml" -o "$work/slurm" | tee "$work/status2.txt"
[ "$(grep -c ' done ' "$work/status2.txt")" -eq 4 ] \
    || { echo "slurm_e2e: not every task done after the resubmission" >&2; exit 1; }

log "the same sweep on the local backend"
"$safs" sweep run "$work/sweep.toml" -o "$work/local" --parallel 2 >"$work/local.log" 2>&1
"$safs" report "$work/slurm" >"$work/report_slurm.txt"
"$safs" report "$work/local" >"$work/report_local.txt"
# The tables must agree; only the lines naming the sweep folder differ.
diff <(grep -v "^written" "$work/report_slurm.txt") <(grep -v "^written" "$work/report_local.txt") \
    || { echo "slurm_e2e: Slurm and local reports differ" >&2; exit 1; }
cmp "$work/slurm/runs_long.csv" "$work/local/runs_long.csv" \
    || { echo "slurm_e2e: runs_long.csv differs" >&2; exit 1; }
log "OK: Slurm (with a cancelled and resubmitted task) and local give the same table"
