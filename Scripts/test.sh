#!/usr/bin/env bash
# Runs the test suite. Extra arguments go to `swift build` and `swift test` (CI passes
# -Xswiftc -warnings-as-errors so that the build it already made is reused). The tutela
# executable is built too: the audit crash test runs it as a separate process and kills it.
set -euo pipefail
cd "$(dirname "$0")/.."

Scripts/install-deps.sh
swift build --build-tests "$@"
swift test "$@"
