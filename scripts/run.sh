#!/usr/bin/env bash
# Install what is missing and start everything on the embedded default (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/kommo-agent up "$@"
