#!/usr/bin/env bash
# Installs the Debian packages Tutela builds and tests with, if any is missing.
set -euo pipefail

# openssl and curl: the TLS test makes a certificate and calls the server over HTTPS.
packages=(libssl-dev libsqlite3-dev pkg-config openssl curl)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "Installing ${missing[*]} …" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
