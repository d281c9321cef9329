#!/usr/bin/env bash
# Installs everything obsctl and its test suite need, idempotently:
#   Debian packages (Prometheus, Alertmanager, PostgreSQL, Chromium), the Python virtualenv,
#   the Backstage catalog backend (npm, cached by lockfile hash) and the OpenTelemetry
#   collector (built with the collector builder, cached by manifest hash) and Sloth (the pinned
#   release, built with go install, cached by version: the differential tests' reference).
# Usage: scripts/setup.sh [python] [apt] [backstage] [collector] [sloth]   (no argument: all)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export OBSCTL_CACHE=${OBSCTL_CACHE:-$HOME/.cache/obsctl}
mkdir -p "$OBSCTL_CACHE"
want=${*:-python apt backstage collector sloth}
has() { [[ " $want " == *" $1 "* ]]; }
log() { printf '[setup] %s\n' "$*" >&2; }

if has apt; then
  missing=()
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v chromium >/dev/null || missing+=(chromium)
  if ((${#missing[@]})); then
    if [ "$(id -u)" != 0 ]; then log "need root to install: ${missing[*]}"; exit 1; fi
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if has python; then
  py=${PYTHON:-python3}
  [ -x .venv/bin/python ] || { log "creating .venv"; "$py" -m venv .venv; }
  stamp=.venv/.obsctl-deps-$(sha256sum pyproject.toml | cut -c1-16)
  if [ ! -f "$stamp" ]; then
    log "pip install -e .[dev]"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    rm -f .venv/.obsctl-deps-*; touch "$stamp"
  fi
fi

if has backstage && [ -x scripts/setup-backstage.sh ]; then scripts/setup-backstage.sh; fi
if has collector && [ -x scripts/build-collector.sh ]; then scripts/build-collector.sh; fi
if has sloth && [ -x scripts/build-sloth.sh ]; then scripts/build-sloth.sh >/dev/null; fi
log "ready"
