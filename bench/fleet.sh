#!/usr/bin/env bash
# whittle fleet over 20 small images: slimmed with --jobs 1, again from scratch with
# --jobs 2, then the same plan once more (every job skipped). Sources: the busybox fixture
# (tests/fixtures/slim-images.sh) and the musl one, each copied 10 times with a different
# label, so that every source is an image of its own (its own config digest).
# Prints seconds per image for each run. Usage: bench/fleet.sh   (root: it builds fixtures)
set -euo pipefail
cd "$(dirname "$0")/.."
nginx_fx=${WHITTLE_FIXTURES:-$PWD/target/fixtures/nginx}
slim_fx=${WHITTLE_SLIM_FIXTURES:-$PWD/target/fixtures/slim}
scripts/setup.sh
flock /tmp/whittle-fixture.lock bash tests/fixtures/nginx-image.sh "$nginx_fx"
flock /tmp/whittle-fixture.lock bash tests/fixtures/slim-images.sh "$slim_fx" "$nginx_fx"
cargo build --release -q -p whittle
whittle=$PWD/target/release/whittle
work=$(mktemp -d /var/tmp/whittle-bench-fleet.XXXXXX); trap 'rm -rf "$work"' EXIT
n=20
{
  echo '[defaults]'; echo 'args = []'
  for ((i = 0; i < n; i++)); do
    base=$([ $((i % 2)) = 0 ] && echo busybox || echo musl)
    "$whittle" -q copy "docker-archive:$slim_fx/$base.tar" "oci:$work/src/$i" --label "bench.copy=$i" >/dev/null
    printf '[[job]]\nsrc = "oci:%s/src/%s"\ndst = "oci:%s/out/%s"\n' "$work" "$i" "$work" "$i"
  done
} >"$work/plan.toml"
run() {
  local t0 t1
  t0=$(date +%s.%N)
  "$whittle" -q fleet "$work/plan.toml" "$@" >"$work/last.jsonl"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
printf '%s images (busybox script and static musl program, on a Debian base), release build\n' "$n"
printf '| %-26s | %8s | %10s | %s |\n' run "wall s" "s / image" statuses
printf '|----------------------------|----------|------------|------------------------|\n'
for spec in "--jobs 1|fresh" "--jobs 2|fresh" "--jobs 2|again"; do
  flags=${spec%%|*}; mode=${spec#*|}
  [ "$mode" = fresh ] && rm -rf "$work/out"
  # shellcheck disable=SC2086
  s=$(run $flags)
  st=$(grep -o '"status":"[a-z]*"' "$work/last.jsonl" | sort | uniq -c | awk '{printf "%s %s ", $1, $2}' | sed 's/"status"://g; s/"//g')
  printf '| %-26s | %8.2f | %10.3f | %s |\n' "$flags ($mode)" "$s" "$(echo "$s / $n" | bc -l)" "$st"
done
