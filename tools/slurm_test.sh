#!/usr/bin/env bash
# Testing on a Slurm cluster, one task per GPU (or per CPU process).
#
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#       bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT \
#       [test.py options]
#
# The variables mean what they mean for tools/slurm_train.sh (GPUS_PER_NODE=0
# runs on CPU with TASKS_PER_NODE tasks per node, PORT sets the rendezvous
# port, PYTHON the interpreter). Every further argument goes to
# tools/test.py, which runs with --launcher slurm.
set -euo pipefail

if [ "$#" -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]" \
        >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
shift 4
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
    "$PYTHON" -u "$TOOLS_DIR/test.py" "$CONFIG" "$CHECKPOINT" \
    --launcher slurm "$@"
