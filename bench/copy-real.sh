#!/usr/bin/env bash
# Benchmark: copying and unpacking a big image of real files, whittle against skopeo and
# umoci, side by side in one run.
#
# The image is a `docker save` archive of five layers taken from this machine (system
# libraries, /usr/share, a Rust toolchain, a Python installation, /usr/local): about 2.8 GB
# of real binaries, libraries and text. Each step is timed once (REPEAT to change), with peak
# RSS and the bytes it wrote; the last column is the ratio to the peer's time.
#
#   docker-archive -> oci (default)    skopeo: gzip          whittle: gzip by default
#   docker-archive -> oci gzip / zstd  whittle --compression
#   ... WHITTLE_THREADS=32             the same as on a 32-core machine (peak RSS)
#   oci -> docker-archive              both from their own default layout
#   oci -> oci                         another directory, same blobs (whittle: blobs it
#                                      wrote itself, whose content it has proven)
#   oci -> oci, first sight            whittle copies skopeo's layout with no proven facts
#                                      (WHITTLE_CACHE_DIR empty): every layer decompressed
#                                      to check its diff_id, which skopeo does not do
#   unpack / squash                    umoci unpack vs whittle squash --compression none
#   unpack / traced slim               umoci unpack vs a whole `whittle slim --trace` (read,
#                                      unpack for the run, run ld.so --version, clean up,
#                                      write); its own unpack time is printed beside it
#
# whittle keeps proven layer facts in a cache of the run's own (WHITTLE_CACHE_DIR under
# BENCH_DIR/work), so the figures do not depend on earlier runs.
#
# Usage: bench/copy-real.sh      Environment: BENCH_DIR (default /var/tmp/whittle-bench-real),
# REPEAT (default 1). Needs root for umoci unpack (scripts/setup.sh installs the tools).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/var/tmp/whittle-bench-real}
REPEAT=${REPEAT:-1}
export LC_ALL=C
log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

cargo build --release -q -p whittle
whittle=$PWD/target/release/whittle
command -v skopeo >/dev/null && command -v umoci >/dev/null \
  || { echo "copy-real.sh: needs skopeo and umoci (scripts/setup.sh)" >&2; exit 1; }

# ---- the image: five layers of real files, as `docker save` lays them out -------------
rust=$(ls -d /root/.rustup/toolchains/*-x86_64-unknown-linux-gnu 2>/dev/null | head -1 || true)
python=$(ls -d /root/.pyenv/versions/3.11* 2>/dev/null | head -1 || true)
sources=(/usr/lib/x86_64-linux-gnu /usr/share "${rust:-/usr/lib/gcc}" "${python:-/usr/lib/python3}" /usr/local)
archive=$BENCH_DIR/real.tar
mkdir -p "$BENCH_DIR"
if [ ! -f "$archive" ]; then
  log "building the image from ${sources[*]}"
  stage=$BENCH_DIR/stage; rm -rf "$stage"; mkdir -p "$stage"
  layers=() diff_ids=()
  for i in "${!sources[@]}"; do
    src=${sources[$i]}
    tar -C / --numeric-owner --sort=name --mtime=@1700000000 -cf "$stage/layer$i.tar" "${src#/}"
    layers+=("\"layer$i.tar\"")
    diff_ids+=("\"sha256:$(sha256sum "$stage/layer$i.tar" | cut -d' ' -f1)\"")
  done
  join() { local IFS=,; echo "$*"; }
  printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$(join "${diff_ids[@]}")" >"$stage/config.json"
  printf '[{"Config":"config.json","RepoTags":["bench/real:latest"],"Layers":[%s]}]' \
    "$(join "${layers[@]}")" >"$stage/manifest.json"
  tar -C "$stage" -cf "$archive.tmp" manifest.json config.json $(cd "$stage" && ls layer*.tar)
  mv "$archive.tmp" "$archive"; rm -rf "$stage"
fi
size=$(stat -c %s "$archive")
log "image: $archive, $((size / 1000000)) MB in ${#sources[@]} layers"

work=$BENCH_DIR/work; rm -rf "$work"; mkdir -p "$work"
export WHITTLE_CACHE_DIR=$work/facts
# timed NAME OUTPUT CMD...: median seconds, peak RSS (MB) and bytes at OUTPUT, as "s rss bytes".
timed() {
  local name=$1 out=$2; shift 2
  local times=() rss=0 i
  for ((i = 0; i < REPEAT; i++)); do
    rm -rf "$out"
    sync; cat "$archive" >/dev/null
    /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/err" \
      || { echo "copy-real.sh: $name failed:" >&2; tail -5 "$work/err" >&2; exit 1; }
    read -r t m <"$work/time"
    times+=("$t"); rss=$((m > rss ? m : rss))
  done
  local med
  med=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$med $((rss / 1024)) $(du -sb "$out" | cut -f1)"
}
row() { # STEP PEER(s rss bytes) WHITTLE(s rss bytes)
  read -r ps pm pb <<<"$2"; read -r ws wm wb <<<"$3"
  printf '| %-30s | %7.1f s %5s MB %7s MB | %7.1f s %5s MB %7s MB | %5.2fx |\n' \
    "$1" "$ps" "$pm" "$((pb / 1000000))" "$ws" "$wm" "$((wb / 1000000))" \
    "$(awk -v w="$ws" -v p="$ps" 'BEGIN{print (p > 0) ? w / p : 0}')"
}


log "docker-archive -> oci"
s_oci=$(timed skopeo "$work/s-oci" skopeo --insecure-policy copy -q "docker-archive:$archive" "oci:$work/s-oci:x")
w_oci=$(timed whittle "$work/w-oci" "$whittle" -q copy "docker-archive:$archive" "oci:$work/w-oci:x")
w_gz=$(timed whittle-gzip "$work/w-gz" "$whittle" -q copy "docker-archive:$archive" "oci:$work/w-gz:x" --compression gzip)
w_zst=$(timed whittle-zstd "$work/w-zst" "$whittle" -q copy "docker-archive:$archive" "oci:$work/w-zst:x" --compression zstd)
# As on a 32-core machine: threads and memory must grow with the cores, not their square.
w_gz32=$(timed whittle-gzip-32 "$work/w-gz32" env WHITTLE_THREADS=32 "$whittle" -q copy "docker-archive:$archive" "oci:$work/w-gz32:x")
w_zst32=$(timed whittle-zstd-32 "$work/w-zst32" env WHITTLE_THREADS=32 "$whittle" -q copy "docker-archive:$archive" "oci:$work/w-zst32:x" --compression zstd)
rm -rf "$work/w-gz" "$work/w-zst" "$work/w-gz32" "$work/w-zst32" # sizes taken; disk is finite
log "oci -> docker-archive"
s_back=$(timed skopeo "$work/s-back.tar" skopeo --insecure-policy copy -q "oci:$work/s-oci:x" "docker-archive:$work/s-back.tar:bench/real:back")
w_back=$(timed whittle "$work/w-back.tar" "$whittle" -q copy "oci:$work/w-oci:x" "docker-archive:$work/w-back.tar:bench/real:back")
rm -rf "$work/s-back.tar" "$work/w-back.tar"
log "oci -> oci"
s_oo=$(timed skopeo "$work/s-oo" skopeo --insecure-policy copy -q "oci:$work/s-oci:x" "oci:$work/s-oo:x")
w_oo=$(timed whittle "$work/w-oo" "$whittle" -q copy "oci:$work/w-oci:x" "oci:$work/w-oo:x")
w_oo_cold=$(timed whittle-first-sight "$work/w-oo-cold" env WHITTLE_CACHE_DIR= "$whittle" -q copy "oci:$work/s-oci:x" "oci:$work/w-oo-cold:x")
rm -rf "$work/s-oo" "$work/w-oo" "$work/w-oo-cold"
log "unpack / squash"
u_un=$(timed umoci "$work/u-bundle" umoci unpack --image "$work/s-oci:x" "$work/u-bundle")
rm -rf "$work/u-bundle"
w_sq=$(timed whittle "$work/w-sq" "$whittle" -q squash "oci:$work/w-oci:x" "oci:$work/w-sq:x" --compression none)
ldso=/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
w_slim=$(timed whittle-slim "$work/w-slim" "$whittle" slim "oci:$work/w-oci:x" "oci:$work/w-slim:x" \
  --trace --entrypoint "[\"$ldso\",\"--version\"]")
slim_unpack=$(sed -n 's/.*(unpacked in \([0-9.]*\) s).*/\1/p' "$work/err" | tail -1)

echo
echo "image: $((size / 1000000)) MB, ${#sources[@]} layers of real files; $(nproc) cores; median of $REPEAT"
printf '| %-30s | %-27s | %-27s | %6s |\n' step "peer: time, peak RSS, written" "whittle" ratio
printf '|--------------------------------|-----------------------------|-----------------------------|--------|\n'
row "docker-archive -> oci (default)" "$s_oci" "$w_oci"
row "  same, --compression gzip" "$s_oci" "$w_gz"
row "  same, --compression zstd" "$s_oci" "$w_zst"
row "  gzip, WHITTLE_THREADS=32" "$s_oci" "$w_gz32"
row "  zstd, WHITTLE_THREADS=32" "$s_oci" "$w_zst32"
row "oci -> docker-archive" "$s_back" "$w_back"
row "oci -> oci" "$s_oo" "$w_oo"
row "oci -> oci, first sight" "$s_oo" "$w_oo_cold"
row "umoci unpack / squash none" "$u_un" "$w_sq"
row "umoci unpack / traced slim" "$u_un" "$w_slim"
echo "(the traced slim's own unpack for the run: ${slim_unpack:-?} s)"
rm -rf "$work"
