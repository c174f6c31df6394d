#!/usr/bin/env bash
# The srun part shared by tools/slurm_train.sh and tools/slurm_test.sh.
# Sourced by them; defines hapvr_srun.
#
#   hapvr_srun PARTITION JOB_NAME SCRIPT [script arguments]
#
# runs "$PYTHON -u SCRIPT [script arguments]" as GPUS Slurm tasks, with the
# repository on PYTHONPATH. Environment (defaults in brackets):
#   GPUS           number of tasks (processes) in all               [8]
#   GPUS_PER_NODE  GPUs (and tasks) per node; 0 runs on CPU: no --gres is
#                  asked for and TASKS_PER_NODE tasks run per node   [8]
#   TASKS_PER_NODE tasks per node when GPUS_PER_NODE=0           [GPUS]
#   CPUS_PER_TASK  CPUs of each task                                 [5]
#   SRUN_ARGS      more srun options, e.g. "--quotatype=auto"
#   PORT           rendezvous port of the job             [29500, torch's]
#   PYTHON         the Python interpreter                       [python]

hapvr_srun() {
    local partition=$1 job_name=$2
    shift 2
    local gpus=${GPUS:-8}
    local gpus_per_node=${GPUS_PER_NODE:-8}
    local cpus_per_task=${CPUS_PER_TASK:-5}
    local srun_args=${SRUN_ARGS:-""}
    local python=${PYTHON:-python}
    local tasks_per_node
    local gres_args=()
    if [ "$gpus_per_node" -gt 0 ]; then
        tasks_per_node=$gpus_per_node
        gres_args=(--gres="gpu:$gpus_per_node")
    else
        tasks_per_node=${TASKS_PER_NODE:-$gpus}
    fi
    if [ -n "${PORT:-}" ]; then
        export MASTER_PORT=$PORT
    fi
    local repo
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"

    # shellcheck disable=SC2086  # srun_args is a list of options
    exec srun -p "$partition" \
        --job-name="$job_name" \
        "${gres_args[@]}" \
        --ntasks="$gpus" \
        --ntasks-per-node="$tasks_per_node" \
        --cpus-per-task="$cpus_per_task" \
        --kill-on-bad-exit=1 \
        $srun_args \
        "$python" -u "$@"
}
