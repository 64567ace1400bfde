#!/usr/bin/env bash
# Longer fuzz runs than the test suite's: the RTMP listener (mutated handshakes, chunk streams,
# AMF messages) and the HTTP API (random, malformed, oversized, hostile requests on every route),
# each while a real stream is live.
#   ./scripts/fuzz.sh [cases] [seed]      default: 20000 cases, a random seed (printed; replay with it)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_apt ffmpeg:ffmpeg redis-server:redis-server
ensure_node
ensure_deps
cd "$ROOT"
cases="${1:-20000}"
seed="${2:-$RANDOM$RANDOM}"
log "fuzzing with $cases cases per target, seed $seed"
FUZZ_CASES="$cases" FUZZ_SEED="$seed" npx vitest run --testTimeout=3600000 \
  test/integration/rtmp-fuzz.test.ts test/integration/api-fuzz.test.ts
