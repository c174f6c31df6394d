#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install hapvr_mm
# with everything its tests need. Usage: source tools/setup_env.sh
# VENV overrides the location (default: .venv in the repository root).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check"
if ! "$VENV/bin/python" -c "import hapvr_mm, mmaction.models" 2>/dev/null; then
    echo "[setup] installing torch (CPU) and hapvr_mm with its requirements"
    # torch first, pinned to the local CPU build, so nothing pulls a CUDA one
    $PIP install -q "torch==2.13.0"
    $PIP install -q -e "$ROOT[tests]"
fi
export PATH="$VENV/bin:$PATH"
echo "[setup] ready: $("$VENV/bin/python" -c 'import torch, mmengine, mmaction, hapvr_mm; print("torch", torch.__version__, "| mmengine", mmengine.__version__, "| mmaction2", mmaction.__version__, "| hapvr_mm", hapvr_mm.__version__)' 2>/dev/null)"
