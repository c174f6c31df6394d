#!/usr/bin/env bash
# Testing on a Slurm cluster, one task per GPU (or per CPU process).
#
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#       bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT \
#       [test.py options]
#
# The variables (GPUS, GPUS_PER_NODE=0 for CPU tasks, TASKS_PER_NODE,
# CPUS_PER_TASK, SRUN_ARGS, PORT, PYTHON) are described in
# tools/slurm/srun_tasks.sh, which holds the srun command of both Slurm
# scripts. Every further argument goes to tools/test.py, which runs with
# --launcher slurm.
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
TOOLS_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools/slurm/srun_tasks.sh
source "$TOOLS_DIR/slurm/srun_tasks.sh"
hapvr_srun "$PARTITION" "$JOB_NAME" "$TOOLS_DIR/test.py" "$CONFIG" \
    "$CHECKPOINT" --launcher slurm "$@"
