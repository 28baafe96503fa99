#!/usr/bin/env bash
# Runs the README's HTTP walkthrough on a temporary installation and checks every answer:
# masked customers that differ by role and purpose, denials with their reasons, a revoked key,
# the calls found in the audit log, a policy reload on SIGHUP and a graceful stop.
# TUTELA names the binary (default .build/debug/tutela); PORT the port (default random).
set -euo pipefail
cd "$(dirname "$0")/.."

tutela="$(realpath "${TUTELA:-.build/debug/tutela}")"
port="${PORT:-$((20000 + RANDOM % 20000))}"
work="$(mktemp -d)"
export TUTELA_DATA_DIR="$work/data" TUTELA_KEYS_DIR="$work/keys" TUTELA_POLICIES_DIR="$PWD/Policies"
server=""
cleanup() {
    [[ -n "$server" ]] && kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

failures=0
check() { # description, then a command that must succeed
    local description="$1"
    shift
    if "$@"; then echo "ok    $description"; else echo "FAIL  $description"; failures=$((failures + 1)); fi
}
contains() { [[ "$1" == *"$2"* ]]; }
lacks() { [[ "$1" != *"$2"* ]]; }

# Set-up, as in the README's first command (with a smaller sample).
"$tutela" init >/dev/null
"$tutela" data sample --customers 50 --out "$work/sample" >/dev/null
for file in customers.csv interactions.jsonl conversations.jsonl consents.csv; do
    "$tutela" data import "${file%%.*}" "$work/sample/$file" >/dev/null 2>&1
done

# --- The walkthrough of README.md, "The HTTP API" ---
"$tutela" principals create alice --role support_agent >/dev/null
"$tutela" principals create mia --role marketing_analyst >/dev/null
ALICE=$("$tutela" apikeys create --principal alice 2>/dev/null)
MIA=$("$tutela" apikeys create --principal mia 2>/dev/null)
"$tutela" serve --port "$port" 2>"$work/serve.log" &
server=$!
for _ in $(seq 1 100); do
    curl -sf "localhost:$port/readyz" >/dev/null && break
    sleep 0.1
done
base="localhost:$port"

alice=$(curl -s -H "Authorization: Bearer $ALICE" -H "Tutela-Purpose: support" "$base/v1/customers/c000002")
email=$(printf '%s' "$alice" | python3 -c 'import json,sys; print(json.load(sys.stdin)["email"])')
check "support agent sees the e-mail in clear" contains "$email" "@"
check "support agent sees the phone masked" contains "$alice" '"phone":"***'

mia=$(curl -s -H "Authorization: Bearer $MIA" -H "Tutela-Purpose: analytics" "$base/v1/customers/c000002")
check "analyst gets the customer for analytics" contains "$mia" '"customer_id"'
check "analyst does not see the e-mail" lacks "$mia" "$email"
check "analyst sees an age band" contains "$mia" '"age":"'
unconsented=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $MIA" -H "Tutela-Purpose: analytics" "$base/v1/customers/c000007")
check "a customer who refused analytics is not found for it" contains "$unconsented" ' 404'

found=$(curl -s -H "Authorization: Bearer $ALICE" -H "Tutela-Purpose: support" "$base/v1/customers?email=$email")
check "lookup by e-mail finds the customer" contains "$found" '"customer_id":"c000002"'

denied=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $ALICE" -H "Tutela-Purpose: analytics" "$base/v1/customers/c000002")
check "support agent is denied for analytics, with the reason" contains "$denied" 'not_permitted'
check "  ... as 403" contains "$denied" ' 403'

missing=$(curl -s -w ' %{http_code}' -H "Tutela-Purpose: support" "$base/v1/customers/c000002")
check "no key: 401 missing_credentials" contains "$missing" 'missing_credentials"'

key_id=$("$tutela" apikeys list --json | python3 -c 'import json,sys; print([k["id"] for k in json.load(sys.stdin) if k["principal"]=="alice"][0])')
"$tutela" apikeys revoke "$key_id" >/dev/null
revoked=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $ALICE" -H "Tutela-Purpose: support" "$base/v1/customers/c000002")
check "a revoked key is refused at once" contains "$revoked" ' 401'

audit=$("$tutela" audit search --principal alice --json)
check "the audit log holds alice's read" contains "$audit" '"kind":"data.read"'
check "the audit log holds alice's lookup" contains "$audit" '"kind":"data.lookup"'
check "the audit log holds alice's denial" contains "$audit" '"denial":"not_permitted"'
check "the audit log never names the customer" lacks "$audit" 'c000002'
check "the audit log verifies" bash -c "'$tutela' audit verify --json | grep -q '\"valid\" : true'"

kill -HUP "$server"
for _ in $(seq 1 50); do grep -q "policies reloaded" "$work/serve.log" && break; sleep 0.1; done
check "SIGHUP reloads the policies" grep -q '"message":"policies reloaded"' "$work/serve.log"
check "request log lines carry the route template, not the customer" \
    bash -c "grep -q '\"route\":\"/v1/customers/{id}\"' '$work/serve.log' && ! grep -q c000002 '$work/serve.log'"

kill -TERM "$server"
status=0
wait "$server" || status=$?
server=""
check "SIGTERM stops the server gracefully" test "$status" -eq 0

if ((failures)); then
    echo "$failures check(s) failed; server log:" >&2
    cat "$work/serve.log" >&2
    exit 1
fi
echo "walkthrough: all checks passed"
