#!/bin/sh
# The main job, end to end on a fresh machine: build the tools, make a local signing key
# if there is none, index and sign a repository, and verify it.
# (Recipes and images join this script as `pkgr build` and `compose build` land.)
set -eu
cd "$(dirname "$0")"

cargo build --release --locked --bins
bin=target/release
out=out/repo/x86_64
mkdir -p "$out" .local/keys

# Private keys never enter git: the local key lives under .local/ (ignored).
key=.local/keys/local.rsa
[ -f "$key" ] || "$bin/pkgr" keygen "$key" >/dev/null

# Index the melange-built packages and sign the index with the local key.
cp tests/fixtures/melange-repo/x86_64/*.apk "$out/"
"$bin/pkgr" index --signing-key "$key" --description "quickstart" -o "$out/APKINDEX.tar.gz" "$out"/*.apk >/dev/null

# The packages carry melange's signature, the index ours: trust both keys.
cp tests/fixtures/melange-repo/melange.rsa.pub .local/keys/
"$bin/pkgr" verify --keys-dir .local/keys "$out/APKINDEX.tar.gz" "$out"/*.apk
echo "repository: $out"
