#!/usr/bin/env bash
# Quick start, command one: install into .venv, write the demo benchmark,
# train a small HAP-VR on it on the CPU and print mAP/uAP before and after.
# Extra arguments go to tools/run_demo.py (e.g. --max-iters 60).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/tools/setup_env.sh"
cd "$ROOT"
exec python tools/run_demo.py "$@"
