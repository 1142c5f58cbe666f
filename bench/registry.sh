#!/usr/bin/env bash
# Benchmark: pushing to and pulling from a registry, whittle against skopeo, in one run,
# on the ≥1 GB, 6-layer image of bench/copy-squash.sh, with Debian's docker-registry on
# 127.0.0.1 (a fresh repository per push, so every blob is sent). Prints wall time and
# peak RSS (median of REPEAT runs) side by side, and the ratios.
#
# Usage: bench/registry.sh        Environment: REPEAT (default 3), BENCH_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-3}
for t in skopeo docker-registry /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "registry.sh: needs $t (scripts/setup.sh installs it)" >&2; exit 1; }
done
img=$(bench/copy-squash.sh --image-only | tail -n 1)
cargo build --release -q -p whittle
whittle=$PWD/target/release/whittle
work=$(mktemp -d /var/tmp/whittle-bench-registry.XXXXXX)
# shellcheck source=scripts/local-registry.sh
source scripts/local-registry.sh
start_registry "$work/registry"
trap 'kill $REGISTRY_PID 2>/dev/null; rm -rf "$work"' EXIT
find "$img" -type f -exec cat {} + >/dev/null   # warm the page cache
reg=$REGISTRY

declare -A walls=() rsses=()
timed() { # key, command...
  local key=$1; shift
  /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  read -r wall rss <"$work/t"
  walls[$key]+="$wall "; rsses[$key]+="$rss "
}
for ((i = 0; i < REPEAT; i++)); do
  timed "push|whittle" "$whittle" copy "oci:$img:bench" "docker://$reg/w$i/bench:x"
  # skopeo remembers where it saw blobs and would mount them from the earlier repositories
  # instead of uploading; clear that cache so both tools send every byte.
  rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb "$HOME/.local/share/containers/cache/blob-info-cache-v1.boltdb"
  timed "push|skopeo" skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$img:bench" "docker://$reg/s$i/bench:x"
  rm -rf "$work/pw" "$work/ps"
  timed "pull|whittle" "$whittle" copy "docker://$reg/w$i/bench:x" "oci:$work/pw:x"
  timed "pull|skopeo" skopeo --insecure-policy copy -q --src-tls-verify=false "docker://$reg/s$i/bench:x" "oci:$work/ps:x"
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "image: oci:$img:bench (6 layers, ~1.16 GB uncompressed, ~835 MB gzip); registry $reg; median of $REPEAT"
printf '| %-5s | %-8s | %7s | %11s | %17s |\n' op tool "wall s" "peak RSS MB" "whittle/skopeo"
printf '|-------|----------|---------|-------------|-------------------|\n'
for op in push pull; do
  ws=$(median <<<"${walls[$op|skopeo]}")
  for tool in skopeo whittle; do
    w=$(median <<<"${walls[$op|$tool]}"); r=$(median <<<"${rsses[$op|$tool]}")
    ratio=$([ "$tool" = whittle ] && awk -v a="$w" -v b="$ws" 'BEGIN{printf "%.2f", a/b}' || echo -)
    printf '| %-5s | %-8s | %7.2f | %11.1f | %17s |\n' "$op" "$tool" "$w" "$(awk -v k="$r" 'BEGIN{print k/1024}')" "$ratio"
  done
done
