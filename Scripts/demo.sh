#!/usr/bin/env bash
# Sets Tutela up on the embedded default (SQLite in ./tutela-data, keys in ./Keys) and imports a
# generated sample data set. Safe to run again: an existing installation is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

Scripts/install-deps.sh
echo "Building tutela (release) …" >&2
swift build -c release --product tutela >&2
tutela=".build/release/tutela"

if [[ -f tutela-data/tutela.sqlite ]]; then
    echo "Using the existing installation in ./tutela-data" >&2
else
    "$tutela" init
fi

"$tutela" data sample --customers "${DEMO_CUSTOMERS:-1000}" --out tutela-data/sample --overwrite >/dev/null
"$tutela" data import customers tutela-data/sample/customers.csv
"$tutela" data import interactions tutela-data/sample/interactions.jsonl
"$tutela" data import conversations tutela-data/sample/conversations.jsonl
"$tutela" data import consents tutela-data/sample/consents.csv
rm -rf tutela-data/sample

echo
"$tutela" keys list
echo
echo "One customer as stored for an administrator without a purpose (classified fields hidden):"
"$tutela" data get customers c000001
