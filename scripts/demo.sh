#!/usr/bin/env bash
# Installs everything (scripts/setup.sh) and runs obsctl on the sample catalog with embedded defaults:
# `obsctl serve` watching examples/catalog, SQLite state in .obsctl/, file outputs in out/. The sample
# settings add only where each team's alerts go: without receivers every service's pages would reach
# nobody, which obsctl refuses to render.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh python apt
export PATH="$PWD/.venv/bin:$PATH"
obsctl --config examples/obsctl.yaml validate examples/catalog
# the write API is closed without a token; the demo's token (any caller on this machine may use it)
export OBSCTL_SERVE__WRITE_TOKENS="${OBSCTL_SERVE__WRITE_TOKENS:-[\"demo-write-token-0001\"]}"
echo "write token for the demo: Authorization: Bearer $(echo "$OBSCTL_SERVE__WRITE_TOKENS" | tr -d '[]\"')"
exec obsctl --config examples/obsctl.yaml serve
