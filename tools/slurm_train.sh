#!/usr/bin/env bash
# Training on a Slurm cluster, one task per GPU (or per CPU process).
#
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#       bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] \
#       [train.py options]
#
#   GPUS           number of tasks (processes) in all          (default 8)
#   GPUS_PER_NODE  GPUs (and tasks) per node; 0 trains on CPU: no --gres
#                  is asked for and TASKS_PER_NODE tasks run per node
#                                                              (default 8)
#   TASKS_PER_NODE tasks per node when GPUS_PER_NODE=0     (default GPUS)
#   CPUS_PER_TASK  CPUs of each task                           (default 5)
#   SRUN_ARGS      more srun options, e.g. "--quotatype=auto"
#   PORT           rendezvous port of the job (default 29500, torch's)
#   PYTHON         the Python interpreter                 (default python)
# WORK_DIR may be left out (the config's or ./work_dirs/<config name>);
# every further argument goes to tools/train.py, which runs with
# --launcher slurm.
set -euo pipefail

if [ "$#" -lt 3 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py options]" \
        >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
shift 3
WORK_DIR_ARGS=()
if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    WORK_DIR_ARGS=(--work-dir "$1")
    shift
fi
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}
if [ "$GPUS_PER_NODE" -gt 0 ]; then
    TASKS_PER_NODE=$GPUS_PER_NODE
    GRES_ARGS=(--gres="gpu:$GPUS_PER_NODE")
else
    TASKS_PER_NODE=${TASKS_PER_NODE:-$GPUS}
    GRES_ARGS=()
fi
if [ -n "${PORT:-}" ]; then
    export MASTER_PORT=$PORT
fi
TOOLS_DIR=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$(dirname "$TOOLS_DIR")${PYTHONPATH:+:$PYTHONPATH}"

# shellcheck disable=SC2086  # SRUN_ARGS is a list of options
exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    "${GRES_ARGS[@]}" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$TASKS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "$PYTHON" -u "$TOOLS_DIR/train.py" "$CONFIG" "${WORK_DIR_ARGS[@]}" \
    --launcher slurm "$@"
