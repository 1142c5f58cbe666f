#!/usr/bin/env bash
# whittle's main job on a built-in example: build a real "fat" Debian nginx image
# (debootstrap + docker, two layers with deleted files), inspect it, squash it,
# and inspect the result. Installs what it needs on first run (as root).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release -q -p whittle
whittle=$PWD/target/release/whittle
example=$PWD/target/fixtures/nginx
out=$PWD/target/demo
mkdir -p "$(dirname "$example")"
echo "demo: building the example image (first run: about a minute)" >&2
flock /tmp/whittle-fixture.lock bash tests/fixtures/nginx-image.sh "$example"
rm -rf "$out"; mkdir -p "$out"

echo; echo "== the example image, as docker save wrote it"
"$whittle" inspect "docker-archive:$example/nginx.tar"
echo; echo "== squash it into one layer (deleted files gone for good)"
"$whittle" squash "docker-archive:$example/nginx.tar" "oci:$out/nginx-squashed:latest"
echo; echo "== the squashed image"
"$whittle" inspect "oci:$out/nginx-squashed:latest"
echo; echo "== and back to docker: docker-archive:$out/nginx-squashed.tar"
"$whittle" copy "oci:$out/nginx-squashed:latest" "docker-archive:$out/nginx-squashed.tar:whittle-demo/nginx:squashed"
echo "load it with: docker load -i $out/nginx-squashed.tar"
