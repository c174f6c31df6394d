#!/usr/bin/env bash
# OpenMMLab's lint: flake8, isort and yapf with the settings of setup.cfg.
#
#   bash tools/lint.sh          # check (exit 1 on any finding)
#   bash tools/lint.sh --fix    # rewrite the files with isort and yapf first
#
# The tools come from requirements/lint.txt (installed into the active
# environment when missing). .pre-commit-config.yaml runs the same three for
# contributors whose machines can fetch pre-commit's hooks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=${PYTHON:-python}
PATHS=(hapvr_mm tools tests benchmarks configs setup.py)
if ! "$PY" -c "import flake8, isort, yapf" 2>/dev/null; then
    echo "[lint] installing requirements/lint.txt"
    "$PY" -m pip install -q --disable-pip-version-check -r requirements/lint.txt
fi
if [ "${1:-}" = "--fix" ]; then
    "$PY" -m isort "${PATHS[@]}"
    "$PY" -m yapf -i -r "${PATHS[@]}"
fi
status=0
echo "[lint] flake8"
"$PY" -m flake8 "${PATHS[@]}" || status=1
echo "[lint] isort"
"$PY" -m isort --check-only --diff "${PATHS[@]}" || status=1
echo "[lint] yapf"
"$PY" -m yapf --diff -r "${PATHS[@]}" || status=1
if [ "$status" = 0 ]; then
    echo "[lint] clean"
fi
exit "$status"
