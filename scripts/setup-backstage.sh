#!/usr/bin/env bash
# Installs the Backstage catalog backend used by the integration tests (tests/backstage).
# node_modules is built once per lockfile with `npm ci` into
#   ${OBSCTL_CACHE:-$HOME/.cache/obsctl}/backstage/<first 16 hex of sha256(package-lock.json)>/
# and tests/backstage/node_modules is made a symlink to it. Idempotent; a cache hit is instant.
# Needs node, npm, and g++/make/python3 (better-sqlite3 is compiled against /usr/include/node).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
app="$here/tests/backstage"
log() { printf '[setup-backstage] %s\n' "$*" >&2; }

for tool in node npm sha256sum; do
  command -v "$tool" >/dev/null || { log "missing '$tool' on PATH"; exit 1; }
done

hash=$(sha256sum "$app/package-lock.json" | cut -c1-16)
root="${OBSCTL_CACHE:-$HOME/.cache/obsctl}/backstage"
dest="$root/$hash"
link="$app/node_modules"

# Point tests/backstage/node_modules at the cached tree (replacing a stale link or a plain
# directory left by a manual `npm install`).
link_cache() {
  if [ "$(readlink "$link" 2>/dev/null || true)" = "$dest/node_modules" ]; then return; fi
  if [ -e "$link" ] || [ -L "$link" ]; then
    log "replacing $link"
    rm -rf "$link"
  fi
  ln -s "$dest/node_modules" "$link"
}

if [ -f "$dest/.complete" ]; then
  link_cache
  exit 0
fi

mkdir -p "$root"
# Serialise concurrent installs of the same cache (two sessions, or pytest workers).
exec 9>"$root/.lock"
flock 9
if [ ! -f "$dest/.complete" ]; then
  stage="$root/.stage-$hash-$$"
  trap 'rm -rf "$stage"' EXIT
  rm -rf "$stage"
  mkdir -p "$stage"
  cp "$app/package.json" "$app/package-lock.json" "$stage/"
  log "npm ci into $dest (compiles better-sqlite3; takes about 3 minutes)"
  start=$(date +%s)
  # nodedir: build the native module against the local Node headers instead of downloading them.
  (cd "$stage" && npm_config_nodedir=/usr npm ci --no-audit --no-fund --loglevel=warn >&2)
  # Fail now rather than in the first test if the native module did not build.
  (cd "$stage" && node -e "new (require('better-sqlite3'))(':memory:').close()")
  touch "$stage/.complete"
  rm -rf "$dest"
  mv "$stage" "$dest"
  trap - EXIT
  log "installed in $(( $(date +%s) - start )) s"
fi
link_cache
log "ready: $link -> $dest/node_modules"
