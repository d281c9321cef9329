#!/usr/bin/env bash
# Installs everything (scripts/setup.sh) and runs the whole test suite: lint, types, layers, tests.
# Under CI=true a test whose real component (Prometheus, Alertmanager, the collector, Backstage,
# PostgreSQL, Chromium) is missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check obsctl tests bench
echo "== mypy (strict)"; mypy
echo "== import contracts"; lint-imports --no-cache
echo "== wheel: build, install into a fresh venv, render the sample catalog from another directory"
python -m pytest -q -p no:cacheprovider tests/packaging
echo "== pytest"
set +e
python -m pytest -q --ignore=tests/packaging "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi
exit "$rc"
