#!/usr/bin/env bash
# Benchmark: `whittle trim` against `whittle squash` of the same image, in one run.
# Both read the image once and write one layer; trim also resolves the entrypoint's
# closure, classifies every path and rewrites the dpkg lists, and writes less. Input: the
# Debian nginx fixture's base image (base.tar: documentation, man pages and locales still
# in it; built if missing).
#
# Usage: bench/trim.sh        Environment: REPEAT (default 3), WHITTLE_FIXTURES
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-3}
fixture=${WHITTLE_FIXTURES:-$PWD/target/fixtures/nginx}
[ -x /usr/bin/time ] || { echo "trim.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
if [ ! -f "$fixture/.done" ]; then
  scripts/setup.sh
  mkdir -p "$(dirname "$fixture")"
  flock /tmp/whittle-fixture.lock bash tests/fixtures/nginx-image.sh "$fixture"
fi
cargo build --release -q -p whittle
whittle=$PWD/target/release/whittle
work=$(mktemp -d /var/tmp/whittle-bench-trim.XXXXXX); trap 'rm -rf "$work"' EXIT
src="docker-archive:$fixture/base.tar"
cat "$fixture/base.tar" >/dev/null   # warm the page cache

declare -A walls=() rsses=() sizes=()
run() { # label, command...
  local label=$1; shift
  rm -rf "$work/out"
  /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null 2>&1
  read -r wall rss <"$work/t"
  walls[$label]+="$wall "; rsses[$label]+="$rss "
  sizes[$label]=$(du -sb "$work/out" | cut -f1)
}
# Interleaved, so that a slow moment of the machine hits both.
for ((i = 0; i < REPEAT; i++)); do
  run squash "$whittle" squash "$src" "oci:$work/out:x"
  run trim "$whittle" trim "$src" "oci:$work/out:x"
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf 'image: %s (%s MB)   runs: %s, median\n' "$src" "$(( $(stat -c %s "$fixture/base.tar") / 1000000 ))" "$REPEAT"
printf '| %-14s | %7s | %11s | %14s |\n' command "wall s" "peak RSS MB" "output MB (gz)"
printf '|----------------|---------|-------------|----------------|\n'
for label in squash trim; do
  w=$(median <<<"${walls[$label]}"); r=$(median <<<"${rsses[$label]}")
  printf '| whittle %-6s | %7.2f | %11.1f | %14.1f |\n' "$label" "$w" \
    "$(awk -v k="$r" 'BEGIN{print k/1024}')" "$(awk -v b="${sizes[$label]}" 'BEGIN{print b/1000000}')"
done
wt=$(median <<<"${walls[trim]}"); wq=$(median <<<"${walls[squash]}")
printf 'trim / squash wall: %.2f\n' "$(awk -v a="$wt" -v b="$wq" 'BEGIN{print a/b}')"
