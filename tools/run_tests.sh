#!/usr/bin/env bash
# Quick start, command two: install everything into .venv and run the tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/tools/setup_env.sh"
cd "$ROOT"
exec python -m pytest -q -p no:cacheprovider tests "$@"
