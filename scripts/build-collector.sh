#!/usr/bin/env bash
# Builds the obsctl test collector (otelcol-obsctl) with the OpenTelemetry Collector Builder from
# collectors/builder-config.yaml, cached by the manifest's hash. Idempotent: when the binary for
# the current manifest exists it only prints its path.
# stdout: the binary's absolute path, nothing else. Progress goes to stderr.
# Env: OBSCTL_CACHE (default ~/.cache/obsctl), OBSCTL_COLLECTOR_MANIFEST (default: the repo's).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
manifest=${OBSCTL_COLLECTOR_MANIFEST:-$here/collectors/builder-config.yaml}
manifest=$(cd "$(dirname "$manifest")" && pwd)/$(basename "$manifest")
cache=${OBSCTL_CACHE:-$HOME/.cache/obsctl}
log() { printf '[build-collector] %s\n' "$*" >&2; }

hash=$(sha256sum "$manifest" | cut -c1-16)
dir=$cache/otelcol/$hash
bin=$dir/otelcol-obsctl
if [ -x "$bin" ]; then printf '%s\n' "$bin"; exit 0; fi

command -v go >/dev/null || { log "go not found in PATH; install Go to build the collector"; exit 127; }
# The builder pin lives in the manifest (so it is part of the hash): "# builder: <module> <version>".
read -r builder_mod builder_ver < <(sed -n 's/^# builder: *\([^ ]*\) *\([^ ]*\) *$/\1 \2/p' "$manifest" | head -n1) || true
if [ -z "${builder_mod:-}" ] || [ -z "${builder_ver:-}" ]; then
  log "no '# builder: <module> <version>' line in $manifest"; exit 2
fi

mkdir -p "$dir"
# Concurrent callers (parallel test sessions) wait for one build instead of racing.
exec 9>"$dir/.lock"
flock 9
if [ -x "$bin" ]; then printf '%s\n' "$bin"; exit 0; fi

export GOFLAGS="-mod=mod${GOFLAGS:+ $GOFLAGS}"
gobin=$cache/otelcol/builder-$builder_ver
if [ ! -x "$gobin/builder" ]; then
  log "go install $builder_mod@$builder_ver"
  mkdir -p "$gobin"
  GOBIN=$gobin go install "$builder_mod@$builder_ver" >&2
fi

work=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "building $(basename "$bin") from $manifest in $work (cold builds take several minutes)"
start=$SECONDS
# output_path in the manifest is relative, so the build lands inside $work.
(cd "$work" && "$gobin/builder" --config="$manifest" >&2)
built=$work/_build/otelcol-obsctl
[ -x "$built" ] || { log "builder finished but $built is missing"; exit 1; }
"$built" --version >&2
# $work is inside $dir, so this mv is a rename on one filesystem: readers never see half a file.
mv -f "$built" "$bin"
log "built in $((SECONDS - start))s, $(du -h "$bin" | cut -f1)"
printf '%s\n' "$bin"
