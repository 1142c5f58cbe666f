#!/usr/bin/env bash
# What recording a seccomp profile costs: traced slims of the Debian nginx fixture and of
# two application images (tests/fixtures/app-images.sh: python http.server, PostgreSQL 15),
# each with and without --seccomp-profile, run in turn (A B A B ...) so that drift hits both.
# Without the flag only file calls stop the program; with it every call the filter does not
# refuse stops once. Prints median wall seconds, the ratio, and the calls the profile allows.
# Needs root (it builds the fixtures once). Usage: bench/seccomp.sh   Environment: REPEAT (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-5}
nginx_fx=${WHITTLE_FIXTURES:-$PWD/target/fixtures/nginx}
apps_fx=${WHITTLE_APP_FIXTURES:-$PWD/target/fixtures/apps}
[ "$(id -u)" = 0 ] || { echo "seccomp.sh: needs root (to build the fixtures)" >&2; exit 1; }
scripts/setup.sh
flock /tmp/whittle-fixture.lock bash tests/fixtures/nginx-image.sh "$nginx_fx"
flock /tmp/whittle-fixture.lock bash tests/fixtures/app-images.sh "$apps_fx"
cargo build --release -q -p whittle
whittle=$PWD/target/release/whittle
work=$(mktemp -d /var/tmp/whittle-bench-seccomp.XXXXXX); trap 'rm -rf "$work"' EXIT

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
timed() { local t0; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; echo "$(date +%s.%N) - $t0" | bc; }

printf 'median of %s runs each, whole traced slim (release build)\n' "$REPEAT"
printf '| %-10s | %-22s | %12s | %14s | %6s | %6s |\n' image probe "files only s" "+ profile s" ratio calls
printf '|------------|------------------------|--------------|----------------|--------|--------|\n'
while IFS='|' read -r name tar probe; do
  cat "$tar" >/dev/null   # warm the page cache
  plain="" recorded=""
  for ((i = 0; i < REPEAT; i++)); do
    eval "set -- $probe"
    plain+=" $(timed "$whittle" slim -q "docker-archive:$tar" "oci:$work/plain" --force "$@")"
    recorded+=" $(timed "$whittle" slim -q "docker-archive:$tar" "oci:$work/rec" --force "$@" \
                   --seccomp-profile "$work/$name.json")"
  done
  a=$(median <<<"$plain"); b=$(median <<<"$recorded")
  calls=$(python3 -c "import json,sys; p=json.load(open(sys.argv[1])); print(len(p['syscalls'][0]['names']))" "$work/$name.json")
  printf '| %-10s | %-22s | %12.2f | %14.2f | %6.2f | %6s |\n' "$name" "$probe" "$a" "$b" "$(echo "$b / $a" | bc -l)" "$calls"
done <<EOF2
nginx|$nginx_fx/nginx.tar|--http-probe 80/
python|$apps_fx/python.tar|--http-probe 8000/
postgres|$apps_fx/postgres.tar|--exec-probe pg_isready
EOF2
