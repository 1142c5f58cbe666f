#!/usr/bin/env bash
# Benchmark: `whittle build` of the two examples against the equivalent multi-stage
# `docker build` (legacy builder, warm daemon, the same builder and nginx images loaded,
# --no-cache so the build really runs), both ending with the image in dockerd.
#   hello: musl-gcc -static in the builder image (tests/fixtures/build-images.sh), on scratch
#   nginx: /usr/sbin/nginx, its config and its libraries (ldd in the source image for
#          docker; closure = true for whittle) on scratch, plus a page
# Needs root and the fixtures (built if missing). Usage: bench/build.sh   Env: REPEAT (5)
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-5}
nginx_fx=${WHITTLE_FIXTURES:-$PWD/target/fixtures/nginx}
build_fx=${WHITTLE_BUILD_FIXTURES:-$PWD/target/fixtures/build}
[ "$(id -u)" = 0 ] || { echo "build.sh: needs root" >&2; exit 1; }
if [ ! -f "$nginx_fx/.done" ] || [ ! -f "$build_fx/.done" ]; then
  scripts/setup.sh
  mkdir -p "$(dirname "$nginx_fx")"
  flock /tmp/whittle-fixture.lock bash tests/fixtures/nginx-image.sh "$nginx_fx"
  flock /tmp/whittle-fixture.lock bash tests/fixtures/build-images.sh "$build_fx"
fi
cargo build --release -q -p whittle
whittle=$PWD/target/release/whittle
work=$(mktemp -d /var/tmp/whittle-bench-build.XXXXXX)
trap 'rm -rf "$work"; docker rmi -f bench/hello:docker bench/hello:whittle bench/nginx:docker bench/nginx:whittle >/dev/null 2>&1 || true' EXIT
docker load -q -i "$build_fx/builder.tar" >/dev/null
docker load -q -i "$nginx_fx/nginx.tar" >/dev/null

# --- the inputs, identical for both tools
mkdir -p "$work/hello/src" "$work/nginx/html"
cp examples/hello-musl/src/hello.c "$work/hello/src/"
sed "s|docker-archive:../../target/fixtures/build/builder.tar|docker-archive:$build_fx/builder.tar|" \
  examples/hello-musl/hello.toml > "$work/hello/hello.toml"
cat > "$work/hello/Dockerfile" <<'DOCKERFILE'
FROM whittle-test/builder:latest AS build
COPY src /src
RUN mkdir -p /out && musl-gcc -static -O2 -o /out/hello /src/hello.c
FROM scratch
COPY --from=build /out/hello /usr/local/bin/hello
ENTRYPOINT ["/usr/local/bin/hello"]
DOCKERFILE
cp examples/nginx-scratch/html/index.html "$work/nginx/html/"
sed "s|docker-archive:../../target/fixtures/nginx/nginx.tar|docker-archive:$nginx_fx/nginx.tar|" \
  examples/nginx-scratch/nginx.toml > "$work/nginx/nginx.toml"
# Docker has no closure: list the libraries as a Dockerfile author would, with ldd.
libs=$(docker run --rm --network none --entrypoint ldd whittle-test/nginx:latest /usr/sbin/nginx \
  | awk '/=> \//{print $3} /^\t\/lib/{print $1}')
{
  echo "FROM whittle-test/nginx:latest AS src"
  echo "FROM scratch"
  for p in /usr/sbin/nginx /etc/nginx /usr/share/nginx /usr/lib/nginx/modules /var/lib/nginx \
           /var/log/nginx /etc/passwd /etc/group $libs; do
    echo "COPY --from=src $p $p"
  done
  echo "COPY --from=src /tmp /run"
  echo "COPY html /var/www/html"
  echo 'ENTRYPOINT ["/usr/sbin/nginx", "-g", "daemon off;"]'
} > "$work/nginx/Dockerfile"

secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>"$work/err" || { echo "build.sh: $* failed:" >&2; cat "$work/err" >&2; exit 1; }; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
declare -A t=()
for ((i = 0; i < REPEAT; i++)); do
  for ex in hello nginx; do
    t[$ex-docker]+="$(secs docker build --no-cache --network none -q -t bench/$ex:docker "$work/$ex") "
    t[$ex-whittle]+="$(secs "$whittle" -q build "$work/$ex/$ex.toml" docker-daemon:bench/$ex:whittle) "
  done
done
[ "$(docker run --rm --network none bench/hello:whittle)" = "$(docker run --rm --network none bench/hello:docker)" ] \
  || { echo "build.sh: the two hello images print different things" >&2; exit 1; }
size() { docker image inspect -f '{{.Size}}' "$1"; }
printf 'whittle build vs multi-stage docker build (legacy builder, --no-cache), median of %s\n' "$REPEAT"
printf '| %-8s | %-8s | %7s | %12s |\n' example tool "wall s" "image bytes"
printf '|----------|----------|---------|--------------|\n'
for ex in hello nginx; do
  for tool in docker whittle; do
    printf '| %-8s | %-8s | %7.2f | %12s |\n' "$ex" "$tool" "$(median <<<"${t[$ex-$tool]}")" "$(size bench/$ex:$tool)"
  done
done
