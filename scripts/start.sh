#!/usr/bin/env bash
# Start Tributary with embedded defaults: its own redis-server child, media under ./data,
# an API key printed at first start. Every TRIBUTARY_* variable in the environment is honoured.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_apt ffmpeg:ffmpeg redis-server:redis-server
ensure_node
ensure_deps
cd "$ROOT"
exec node src/main.ts "$@"
