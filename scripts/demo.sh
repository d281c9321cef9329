#!/usr/bin/env bash
# Installs everything (scripts/setup.sh) and runs obsctl on the sample catalog with embedded defaults:
# `obsctl serve` watching examples/catalog, SQLite state in .obsctl/, file outputs in out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh python apt
export PATH="$PWD/.venv/bin:$PATH"
obsctl validate examples/catalog
exec obsctl serve
