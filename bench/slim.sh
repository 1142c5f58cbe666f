#!/usr/bin/env bash
# Benchmark: `whittle slim` against `whittle squash` of the same image, in one run.
# Slimming reads the image once (like squash) and analyses it; this shows what the
# analysis costs on top. Input: the Debian nginx fixture (built if missing).
#
# Usage: bench/slim.sh        Environment: REPEAT (default 5), WHITTLE_FIXTURES
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-5}
fixture=${WHITTLE_FIXTURES:-$PWD/target/fixtures/nginx}
[ -x /usr/bin/time ] || { echo "slim.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
if [ ! -f "$fixture/.done" ]; then
  scripts/setup.sh
  mkdir -p "$(dirname "$fixture")"
  flock /tmp/whittle-fixture.lock bash tests/fixtures/nginx-image.sh "$fixture"
fi
cargo build --release -q -p whittle
whittle=$PWD/target/release/whittle
work=$(mktemp -d /var/tmp/whittle-bench-slim.XXXXXX); trap 'rm -rf "$work"' EXIT
src="docker-archive:$fixture/nginx.tar"
cat "$fixture/nginx.tar" >/dev/null   # warm the page cache

declare -A walls=() rsses=()
run() { # label, command...
  local label=$1; shift
  rm -rf "$work/out"
  /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null 2>&1
  read -r wall rss <"$work/t"
  walls[$label]+="$wall "; rsses[$label]+="$rss "
}
includes=(--include /etc/nginx --include /var/www --include /usr/share/nginx --include /var/lib/nginx --include /var/log/nginx)
for ((i = 0; i < REPEAT; i++)); do
  run squash "$whittle" squash "$src" "oci:$work/out:x"
  run slim "$whittle" slim "$src" "oci:$work/out:x" "${includes[@]}"
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf 'image: %s (%s MB)   runs: %s, median\n' "$src" "$(( $(stat -c %s "$fixture/nginx.tar") / 1000000 ))" "$REPEAT"
printf '| %-15s | %7s | %11s |\n' command "wall s" "peak RSS MB"
printf '|-----------------|---------|-------------|\n'
for label in squash slim; do
  w=$(median <<<"${walls[$label]}"); r=$(median <<<"${rsses[$label]}")
  printf '| whittle %-7s | %7.2f | %11.1f |\n' "$label" "$w" "$(awk -v k="$r" 'BEGIN{print k/1024}')"
done
ws=$(median <<<"${walls[slim]}"); wq=$(median <<<"${walls[squash]}")
printf 'slim / squash wall: %.2f\n' "$(awk -v a="$ws" -v b="$wq" 'BEGIN{print a/b}')"
