#!/usr/bin/env bash
# Distributed training with torchrun on one or several nodes.
#
#   bash tools/dist_train.sh CONFIG NPROC [train.py options]
#
# NPROC processes are started on this node (one per GPU; on a machine
# without CUDA they run on CPU with the gloo backend). For several nodes run
# the same command on every node with, from the environment:
#   NNODES       number of nodes                  (default 1)
#   NODE_RANK    rank of this node, 0..NNODES-1   (default 0)
#   MASTER_ADDR  address of node 0               (default 127.0.0.1)
#   PORT         rendezvous port on node 0        (default 29500)
# TORCHRUN names the torchrun command (default: torchrun).
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: $0 CONFIG NPROC [train.py options]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
TORCHRUN=${TORCHRUN:-torchrun}
TOOLS_DIR=$(cd "$(dirname "$0")" && pwd)

PYTHONPATH="$(dirname "$TOOLS_DIR")${PYTHONPATH:+:$PYTHONPATH}" \
exec $TORCHRUN \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$NPROC" \
    "$TOOLS_DIR/train.py" \
    "$CONFIG" \
    --launcher pytorch "$@"
