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
  # Say what is installed (the first run takes a few minutes): one line per package pip fetches
  # or builds, then what it installed.
  echo "setting up .venv: installing kommo-agent${1:+ with its $1 extras} and $(grep -c '==' constraints.txt) pinned packages (first run: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # pip's warnings (setuptools deprecations while building the editable install) go to a log,
  # shown only when the install fails.
  if ! .venv/bin/python -m pip install --progress-bar off -c constraints.txt -e "$spec" 2>.venv/pip-errors.log \
      | sed -un -e 's/^Collecting \([^ ]*\).*/  fetching \1/p' -e 's/^Building wheel for \([^ ]*\).*/  building \1/p' \
               -e 's/^Successfully installed /  installed: /p'; then
    cat .venv/pip-errors.log >&2
    echo "error: installing the dependencies failed (above); is the package index reachable?" >&2
    exit 1
  fi
  touch "$stamp"
  echo "setup done"
fi
# The Jupyter kernel the report notebooks run in (REPORT_KERNEL), inside .venv so papermill and a
# hand-opened Jupyter both find it and it runs this environment's Python.
if [ ! -f .venv/share/jupyter/kernels/kommo-agent/kernel.json ]; then
  .venv/bin/python -m ipykernel install --sys-prefix --name kommo-agent --display-name "Kommo Agent" >/dev/null
fi
