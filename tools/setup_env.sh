#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install hapvr_mm
# with everything its tests need. Usage: source tools/setup_env.sh
#
# torch is installed only when the environment cannot import one already:
#   * a fresh environment gets TORCH_SPEC (default: the pinned CPU build
#     below), from TORCH_INDEX_URL when it is set, e.g.
#       TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 \
#       TORCH_SPEC=torch bash tools/setup_env.sh
#     for a CUDA build;
#   * VENV_SYSTEM_SITE_PACKAGES=1 creates the environment with
#     --system-site-packages, so a torch already installed on the machine
#     (a CUDA image, a cluster module) is used as it is;
#   * an environment that already has torch (any build) keeps it.
# VENV overrides the location (default: .venv in the repository root),
# PYTHON the interpreter that creates it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
DEFAULT_TORCH_SPEC="torch==2.13.0"  # the CPU build tested here
TORCH_SPEC="${TORCH_SPEC:-$DEFAULT_TORCH_SPEC}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment $VENV"
    if [ "${VENV_SYSTEM_SITE_PACKAGES:-0}" = 1 ]; then
        "$PYTHON" -m venv --system-site-packages "$VENV"
    else
        "$PYTHON" -m venv "$VENV"
    fi
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check"
if ! "$VENV/bin/python" -c "import hapvr_mm, mmaction.models" 2>/dev/null; then
    if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
        echo "[setup] keeping the installed torch" \
            "$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
    else
        # torch first, so that the requirements below keep it (and do not
        # pull a different build)
        echo "[setup] installing $TORCH_SPEC${TORCH_INDEX_URL:+ from $TORCH_INDEX_URL}"
        $PIP install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
            "$TORCH_SPEC"
    fi
    echo "[setup] installing hapvr_mm with its requirements"
    $PIP install -q -e "$ROOT[tests]"
fi
export PATH="$VENV/bin:$PATH"
echo "[setup] ready: $("$VENV/bin/python" -c 'import torch, mmengine, mmaction, hapvr_mm; print("torch", torch.__version__, "(CUDA available)" if torch.cuda.is_available() else "(CPU)", "| mmengine", mmengine.__version__, "| mmaction2", mmaction.__version__, "| hapvr_mm", hapvr_mm.__version__)' 2>/dev/null)"
