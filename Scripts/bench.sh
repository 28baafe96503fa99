#!/usr/bin/env bash
# Builds tutela in release mode, installs the load generator, and runs every benchmark area,
# the gateway under wrk included. Extra arguments go to `tutela bench` (for example --json).
set -euo pipefail
cd "$(dirname "$0")/.."

Scripts/install-deps.sh
if ! command -v wrk >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
swift build -c release --product tutela
.build/release/tutela bench --areas crypto,store,policy,pii,audit,disk,gateway "$@"
