#!/usr/bin/env bash
# A single-node Slurm "cluster" on this machine, to try tools/slurm_*.sh.
#
#   bash tools/slurm/local_cluster.sh install   # apt: slurm-wlm + munge
#   bash tools/slurm/local_cluster.sh start     # munged, slurmctld, slurmd
#   eval "$(bash tools/slurm/local_cluster.sh env)"   # export SLURM_CONF
#   GPUS=2 GPUS_PER_NODE=0 CPUS_PER_TASK=1 \
#       bash tools/slurm_train.sh local demo CONFIG WORK_DIR
#   bash tools/slurm/local_cluster.sh status    # sinfo + squeue
#   bash tools/slurm/local_cluster.sh stop      # stop the three daemons
#   bash tools/slurm/local_cluster.sh clean     # stop, delete the state dir
#
# Everything (munge key and socket, slurm.conf, state, spool, pid and log
# files) lives in $SLURM_LOCAL_DIR (default ${TMPDIR:-/tmp}/hapvr_slurm);
# nothing under /etc is changed by `start`. It must run as root (slurmd
# starts job steps as the submitting user), needs no sudo, no systemd, no
# cgroups and no accounting database: the node is `hostname -s` with
# CPUs=$(nproc) (ignoring OMP_NUM_THREADS), process tracking by /proc (proctrack/linuxproc) and no task
# binding (task/none). Settings from the environment:
#   SLURM_LOCAL_DIR         state directory            (see above)
#   SLURM_LOCAL_PARTITION   partition name             (default: local)
#   SLURM_LOCAL_CTLD_PORT   slurmctld port             (default: 6817)
#   SLURM_LOCAL_SLURMD_PORT slurmd port                (default: 6818)
#   SLURM_LOCAL_TIMEOUT     seconds to wait for `idle` (default: 60)
set -euo pipefail

ROOT=${SLURM_LOCAL_DIR:-${TMPDIR:-/tmp}/hapvr_slurm}
PARTITION=${SLURM_LOCAL_PARTITION:-local}
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-6818}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
CONF=$ROOT/slurm.conf
NODE=$(hostname -s)

# processors of this machine: GNU nproc honours OMP_NUM_THREADS, which a
# test run may set to 1, and a 1-CPU node cannot run a 2-task job
cpus() {
    env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc
}

die() {
    echo "local_cluster.sh: $*" >&2
    exit 1
}

need_root() {
    if [ "$(id -u)" != 0 ]; then
        die "$1 needs root (slurmd launches job steps as the submitting" \
            "user and munged/slurmd need root-owned files); run it as root"
    fi
}

need_binaries() {
    local missing=""
    for bin in munged slurmctld slurmd srun sinfo scontrol; do
        command -v "$bin" >/dev/null 2>&1 || missing="$missing $bin"
    done
    [ -z "$missing" ] || die "missing:$missing; run '$0 install' first"
}

cmd_install() {
    need_root install
    if command -v slurmctld >/dev/null 2>&1 &&
        command -v munged >/dev/null 2>&1; then
        echo "slurm-wlm and munge are already installed"
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # the packages' postinst scripts try to start the daemons through
    # invoke-rc.d; where there is no init system that is refused and harmless
    apt-get install -y -qq --no-install-recommends slurm-wlm munge
}

write_conf() {
    cat >"$CONF" <<CONF
# written by tools/slurm/local_cluster.sh: one node, no cgroups, no accounting
ClusterName=hapvrlocal
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$ROOT/munge/munge.socket
StateSaveLocation=$ROOT/state
SlurmdSpoolDir=$ROOT/spool
SlurmctldPidFile=$ROOT/run/slurmctld.pid
SlurmdPidFile=$ROOT/run/slurmd.pid
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
ReturnToService=2
InactiveLimit=0
KillWait=5
MinJobAge=30
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(cpus) State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
}

pid_alive() {
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

cmd_start() {
    need_root start
    need_binaries
    if pid_alive "$ROOT/run/slurmctld.pid"; then
        die "a local cluster already runs from $ROOT ('$0 stop' first)"
    fi
    mkdir -p "$ROOT"/{munge,state,spool,log,run}
    chmod 700 "$ROOT/munge"
    if [ ! -s "$ROOT/munge/munge.key" ]; then
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$ROOT/munge/munge.key" --force
        else
            dd if=/dev/urandom of="$ROOT/munge/munge.key" bs=1024 count=1 \
                status=none
        fi
        chmod 400 "$ROOT/munge/munge.key"
    fi
    munged --force \
        --key-file="$ROOT/munge/munge.key" \
        --socket="$ROOT/munge/munge.socket" \
        --pid-file="$ROOT/munge/munged.pid" \
        --seed-file="$ROOT/munge/munged.seed" \
        --log-file="$ROOT/log/munged.log"
    write_conf
    export SLURM_CONF=$CONF
    slurmctld -f "$CONF"
    slurmd -f "$CONF"
    local waited=0 state=""
    while [ "$waited" -lt "$TIMEOUT" ]; do
        state=$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -n1 || true)
        case "$state" in
        idle* | mix* | alloc*) break ;;
        down* | drain* | drng*)
            scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true
            ;;
        esac
        sleep 1
        waited=$((waited + 1))
    done
    case "$state" in
    idle* | mix* | alloc*) ;;
    *)
        tail -n 20 "$ROOT/log/slurmctld.log" "$ROOT/log/slurmd.log" >&2 || true
        die "node $NODE is '${state:-unknown}' after ${TIMEOUT}s (logs above)"
        ;;
    esac
    echo "local Slurm cluster up in ${waited}s: node $NODE ($(cpus) CPUs)," \
        "partition $PARTITION"
    echo "export SLURM_CONF=$CONF"
}

stop_pidfile() {
    local pidfile=$1 name=$2 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$name ($pid) did not stop in 10 s, sending SIGKILL" >&2
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

cmd_stop() {
    if [ -f "$CONF" ] && command -v scancel >/dev/null 2>&1; then
        SLURM_CONF=$CONF scancel --full --quiet --partition="$PARTITION" \
            2>/dev/null || true
    fi
    stop_pidfile "$ROOT/run/slurmd.pid" slurmd
    stop_pidfile "$ROOT/run/slurmctld.pid" slurmctld
    stop_pidfile "$ROOT/munge/munged.pid" munged
    echo "local Slurm cluster in $ROOT stopped"
}

cmd_clean() {
    cmd_stop
    rm -rf "$ROOT"
}

cmd_status() {
    [ -f "$CONF" ] || die "no cluster configured in $ROOT ('$0 start')"
    SLURM_CONF=$CONF sinfo
    SLURM_CONF=$CONF squeue
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
clean) cmd_clean ;;
status) cmd_status ;;
env) echo "export SLURM_CONF=$CONF" ;;
*)
    echo "usage: $0 install|start|stop|clean|status|env" >&2
    exit 2
    ;;
esac
