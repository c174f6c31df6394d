#!/usr/bin/env bash
# Distributed retrieval evaluation with torchrun (mmaction2 conventions).
# Usage: bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args]
# CHECKPOINT may be 'none' for an untrained model. Multi-node: set NNODES,
# NODE_RANK, MASTER_ADDR and PORT.
set -e

CONFIG=$1
CHECKPOINT=$2
NPROC=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
PYTHON=${PYTHON:-python}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

if [ -z "$CONFIG" ] || [ -z "$CHECKPOINT" ] || [ -z "$NPROC" ]; then
    echo "usage: $0 CONFIG CHECKPOINT NPROC [test.py args]" >&2
    exit 2
fi

# torchrun gives each process one OpenMP thread when NPROC > 1; do the same
# for NPROC = 1 so that scores are bit-identical for any process count
# (CPU kernels may round differently with other thread counts).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHONPATH="$ROOT":$PYTHONPATH \
$PYTHON -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$NPROC \
    --master_port=$PORT \
    "$ROOT/tools/test.py" \
    $CONFIG \
    $CHECKPOINT \
    --launcher pytorch \
    ${@:4}
