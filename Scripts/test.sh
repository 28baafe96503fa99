#!/usr/bin/env bash
# Runs the test suite. Extra arguments go to `swift build` and `swift test` (CI passes
# -Xswiftc -warnings-as-errors so that the build it already made is reused). The tutela
# executable is built too: the audit crash test runs it as a separate process and kills it.
set -euo pipefail
cd "$(dirname "$0")/.."

Scripts/install-deps.sh
# The suites run in parallel and together hold up to about 1,700 descriptors (database files
# of some 200 test installations at once): raise the common default soft limit of 1,024 to
# the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
    echo "warning: at most $(ulimit -n) open files; the tests may fail to open databases (raise the hard limit)" >&2
fi
swift build --build-tests "$@"
swift test "$@"
