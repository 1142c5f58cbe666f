#!/usr/bin/env bash
# whittle's main job on a built-in example: build a real "fat" Debian nginx image
# (debootstrap + docker, two layers), slim it to what nginx needs, explain one kept
# file, and run the slimmed image in Docker. Installs what it needs on first run (as root).
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

echo; echo "== slim it: nginx's ELF closure, the files no linker shows, and every file nginx"
echo "   touches when run in a sandbox and asked for / (then verify the result the same way)"
"$whittle" slim "docker-archive:$example/nginx.tar" "docker-archive:$out/nginx-slim.tar:whittle-demo/nginx:slim" \
  --http-probe 80/ --verify --report "$out/report.json"

echo; echo "== why was nginx's page kept?"
"$whittle" why "docker-archive:$out/nginx-slim.tar" /var/www/html/index.html

echo; echo "== why was libssl kept?"
"$whittle" why "docker-archive:$out/nginx-slim.tar" /usr/lib/x86_64-linux-gnu/libssl.so.3

echo; echo "== run the slimmed image"
docker load -q -i "$out/nginx-slim.tar"
docker rm -f whittle-demo >/dev/null 2>&1 || true
docker run -d --name whittle-demo -p 127.0.0.1:18088:80 whittle-demo/nginx:slim >/dev/null
trap 'docker rm -f whittle-demo >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 50); do
  page=$(curl -fsS http://127.0.0.1:18088/ 2>/dev/null) && break
  sleep 0.1
done
echo "GET / -> ${page:-no answer}"
echo; echo "full report: $out/report.json"
