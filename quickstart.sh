#!/bin/sh
# The main job on a fresh Debian machine: install what the builds need, build the tools,
# make a local signing key if there is none, build every recipe in recipes/ for the five
# architectures into a signed repository, and compose images/hello.yaml from it.
# Prints the OCI layout path and the image index digest.
set -eu
cd "$(dirname "$0")"

# The build sandbox, the cross compilers for the five architectures and zic; installed
# when missing (needs root or sudo).
need="bubblewrap gcc libc6-dev libc-bin gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf \
gcc-s390x-linux-gnu gcc-powerpc64le-linux-gnu libc6-dev-arm64-cross libc6-dev-armhf-cross \
libc6-dev-s390x-cross libc6-dev-ppc64el-cross"
missing=""
for p in $need; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -q
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -q --no-install-recommends $missing
fi

cargo build --release --locked --bins
bin=target/release
repo=out/packages

# Private keys never enter git: the local key lives under .local/ (ignored); the images
# trust its public half as keys/local.rsa.pub (ignored too: it is per machine).
mkdir -p .local/keys
key=.local/keys/local.rsa
[ -f "$key" ] || "$bin/pkgr" keygen "$key" >/dev/null
cp "$key.pub" keys/local.rsa.pub

"$bin/pkgr" build recipes/ --arch all --signing-key "$key" --out-dir "$repo" >/dev/null
"$bin/pkgr" verify --keys-dir keys "$repo"/*/APKINDEX.tar.gz "$repo"/*/*.apk >/dev/null
"$bin/compose" build images/hello.yaml --out out/hello --tag hello
