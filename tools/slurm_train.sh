#!/usr/bin/env bash
# Training on a Slurm cluster, one task per GPU (or per CPU process).
#
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#       bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] \
#       [train.py options]
#
# The variables (GPUS, GPUS_PER_NODE=0 for CPU tasks, TASKS_PER_NODE,
# CPUS_PER_TASK, SRUN_ARGS, PORT, PYTHON) are described in
# tools/slurm/srun_tasks.sh, which holds the srun command of both Slurm
# scripts.
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
TOOLS_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools/slurm/srun_tasks.sh
source "$TOOLS_DIR/slurm/srun_tasks.sh"
hapvr_srun "$PARTITION" "$JOB_NAME" "$TOOLS_DIR/train.py" "$CONFIG" \
    "${WORK_DIR_ARGS[@]}" --launcher slurm "$@"
