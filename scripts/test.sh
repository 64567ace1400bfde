#!/usr/bin/env bash
# Run every check: type check, lint, unit and integration tests (real FFmpeg, redis-server,
# S3-compatible server, headless Chromium). Installs what is missing first.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# docker-compose: the suite validates docker/compose.yaml (no Docker engine needed).
# nginx with Debian's RTMP module: the simulcast tests restream to it.
ensure_apt ffmpeg:ffmpeg redis-server:redis-server iproute2:/usr/bin/ss chromium:/usr/bin/chromium docker-compose:docker-compose \
  nginx:/usr/sbin/nginx libnginx-mod-rtmp:/usr/lib/nginx/modules/ngx_rtmp_module.so
ensure_node
ensure_deps
cd "$ROOT"
log "type check"
npx tsc --noEmit -p tsconfig.json
log "lint"
npx eslint --max-warnings=0 .
log "tests"
npx vitest run "$@"
