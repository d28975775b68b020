#!/usr/bin/env bash
# Install test dependencies, lint (ruff), make sure a Redis answers (start the bundled one if not), run pytest
# in two processes (pytest-xdist; each test file stays in one process, so module fixtures are built once).
# PYTEST_WORKERS=0 runs in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
.venv/bin/ruff check --quiet .
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
.venv/bin/python scripts/ensure_redis.py "$REDIS_URL"
workers=${PYTEST_WORKERS:-2}
parallel=()
if [ "$workers" != "0" ]; then parallel=(-n "$workers" --dist loadfile); fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider "${parallel[@]}" "$@"
