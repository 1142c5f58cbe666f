#!/usr/bin/env bash
# Builds whittle's own image with whittle (deploy/image/whittle.toml): a static musl release
# binary made to give the same bytes from any checkout (no debug info, no symbols, source
# paths remapped), staged with the host's CA bundle into deploy/image/context/, then
# `whittle build`. Prints the image's digest on stdout, its size on stderr.
# Usage: deploy/image/build.sh DST     e.g. docker-archive:whittle.tar:whittle:latest
# Environment: CARGO_TARGET_DIR (default target/musl-image).
# Needs rustup (adds the x86_64-unknown-linux-musl target when missing), musl-gcc
# (musl-tools) for the C parts (ring, zstd, libdeflate), /etc/ssl/certs/ca-certificates.crt.
set -euo pipefail
cd "$(dirname "$0")/../.."
dst=${1:?usage: deploy/image/build.sh DST}
target=x86_64-unknown-linux-musl
rustup target list --installed | grep -qx "$target" || rustup target add "$target" >&2
command -v musl-gcc >/dev/null || { echo "build.sh: musl-gcc is missing (apt install musl-tools)" >&2; exit 1; }
certs=/etc/ssl/certs/ca-certificates.crt
[ -f "$certs" ] || { echo "build.sh: $certs is missing (apt install ca-certificates)" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/musl-image}
export CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols
export RUSTFLAGS="--remap-path-prefix=$PWD=/whittle --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
export CC_x86_64_unknown_linux_musl=musl-gcc
echo "build.sh: building the static whittle (cargo, $target)" >&2
cargo build -q --release --locked --target "$target" -p whittle >&2
bin=$CARGO_TARGET_DIR/$target/release/whittle
context=deploy/image/context
rm -rf "$context"; mkdir -p "$context"
install -m 0755 "$bin" "$context/whittle"
install -m 0644 "$certs" "$context/ca-certificates.crt"
"$bin" build deploy/image/whittle.toml "$dst"
