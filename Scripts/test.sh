#!/usr/bin/env bash
# Runs the test suite. Extra arguments go to `swift test` (CI passes -Xswiftc -warnings-as-errors
# so that the build it already made is reused).
set -euo pipefail
cd "$(dirname "$0")/.."

Scripts/install-deps.sh
swift test "$@"
