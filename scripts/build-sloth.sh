#!/usr/bin/env bash
# Builds the pinned Sloth release with `go install`, cached by version under
# ${OBSCTL_CACHE:-~/.cache/obsctl}/sloth-<version>/sloth. Idempotent: when the binary exists it only
# prints its path. Used by the differential tests (tests/differential) and the benchmarks (bench/sloth.py).
# stdout: the binary's absolute path, nothing else. Progress goes to stderr.
# Env: OBSCTL_CACHE, OBSCTL_SLOTH_VERSION (default v0.16.0).
set -euo pipefail
version=${OBSCTL_SLOTH_VERSION:-v0.16.0}
module=github.com/slok/sloth/cmd/sloth
cache=${OBSCTL_CACHE:-$HOME/.cache/obsctl}
dir=$cache/sloth-$version
bin=$dir/sloth
log() { printf '[build-sloth] %s\n' "$*" >&2; }
if [ -x "$bin" ]; then printf '%s\n' "$bin"; exit 0; fi
command -v go >/dev/null || { log "go not found in PATH; install Go to build Sloth"; exit 127; }
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if [ -x "$bin" ]; then printf '%s\n' "$bin"; exit 0; fi
work=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "go install $module@$version (a cold build takes a few minutes)"
start=$SECONDS
GOBIN=$work GOFLAGS="-buildvcs=false${GOFLAGS:+ $GOFLAGS}" go install "$module@$version" >&2
[ -x "$work/sloth" ] || { log "go install finished but $work/sloth is missing"; exit 1; }
mv -f "$work/sloth" "$bin"
log "built in $((SECONDS - start))s"
printf '%s\n' "$bin"
