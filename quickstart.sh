#!/bin/sh
# The main job on a fresh Debian machine: build the tools, make a local signing key if
# there is none, build every recipe in recipes/ for the five architectures into a signed
# repository, and verify it.
# (Composing images/ joins this script when `compose build` lands.)
set -eu
cd "$(dirname "$0")"

# The build sandbox; installed when missing (needs root or sudo).
if ! command -v bwrap >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -q && $SUDO apt-get install -y -q bubblewrap
fi

cargo build --release --locked --bins
bin=target/release
repo=out/packages

# Private keys never enter git: the local key lives under .local/ (ignored).
mkdir -p .local/keys
key=.local/keys/local.rsa
[ -f "$key" ] || "$bin/pkgr" keygen "$key" >/dev/null

"$bin/pkgr" build recipes/ --arch all --signing-key "$key" --out-dir "$repo"
"$bin/pkgr" verify --keys-dir .local/keys "$repo"/*/APKINDEX.tar.gz "$repo"/*/*.apk
echo "repository: $repo"
