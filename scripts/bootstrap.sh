#!/usr/bin/env bash
# Create .venv (if missing) and install the project with the locked versions in constraints.txt.
# Usage: scripts/bootstrap.sh [extra]   e.g. "test" installs the test dependencies too.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    echo "error: '$PY -m venv' failed. On Debian/Ubuntu install it with: apt-get install -y python3-venv" >&2
    exit 1
  fi
fi
spec="."
[ -n "${1:-}" ] && spec=".[$1]"
stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)-${1:-base}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -c constraints.txt -e "$spec"
  touch "$stamp"
fi
# The Jupyter kernel the report notebooks run in (REPORT_KERNEL), inside .venv so papermill and a
# hand-opened Jupyter both find it and it runs this environment's Python.
if [ ! -f .venv/share/jupyter/kernels/kommo-agent/kernel.json ]; then
  .venv/bin/python -m ipykernel install --sys-prefix --name kommo-agent --display-name "Kommo Agent" >/dev/null
fi
