#!/usr/bin/env bash
# Traced slims of real applications, side by side in one run: the Debian nginx fixture
# (tests/fixtures/nginx-image.sh) and the application images of tests/fixtures/app-images.sh
# (python http.server as pid 1, redis, a Node.js express app, a Flask app as a non-root user,
# a Sinatra app, PostgreSQL 15 with Debian's cluster; each on its own Debian bookworm minbase
# with only its packages), each slimmed
# with the probe a user would give it. Prints, per application, the median wall time of the
# whole slim (read, unpack, run traced, probe, stop, plan, write), the sandbox run alone, and
# the sizes before and after.
# Needs root (it builds the fixtures once). Usage: bench/apps.sh   Environment: REPEAT (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-3}
nginx_fx=${WHITTLE_FIXTURES:-$PWD/target/fixtures/nginx}
apps_fx=${WHITTLE_APP_FIXTURES:-$PWD/target/fixtures/apps}
[ "$(id -u)" = 0 ] || { echo "apps.sh: needs root (to build the fixtures)" >&2; exit 1; }
command -v psql >/dev/null || { echo "apps.sh: needs psql (scripts/setup.sh installs it)" >&2; exit 1; }
scripts/setup.sh
flock /tmp/whittle-fixture.lock bash tests/fixtures/nginx-image.sh "$nginx_fx"
flock /tmp/whittle-fixture.lock bash tests/fixtures/app-images.sh "$apps_fx"
cargo build --release -q -p whittle
whittle=$PWD/target/release/whittle
work=$(mktemp -d /var/tmp/whittle-bench-apps.XXXXXX); trap 'rm -rf "$work"' EXIT
cat >"$work/sql.sh" <<'SH'
#!/bin/sh
PGPASSWORD=secret exec psql -h localhost -U postgres -d postgres -tAc 'select 41+1'
SH
chmod +x "$work/sql.sh"

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

printf 'median of %s runs each\n' "$REPEAT"
printf '| %-10s | %-34s | %7s | %7s | %10s | %10s |\n' app probe "wall s" "run s" before after
printf '|------------|------------------------------------|---------|---------|------------|------------|\n'
while IFS='|' read -r app tar probe; do
  cat "$tar" >/dev/null   # warm the page cache
  walls="" runs="" sizes=""
  for ((i = 0; i < REPEAT; i++)); do
    rm -rf "$work/out"
    t0=$(date +%s.%N)
    eval "flags=($probe)"   # the probe flags as a shell would split them (fixed strings below)
    "$whittle" slim "docker-archive:$tar" "oci:$work/out:x" "${flags[@]}" >"$work/log" 2>&1 \
      || { echo "apps.sh: $app failed:" >&2; tail -20 "$work/log" >&2; exit 1; }
    t1=$(date +%s.%N)
    walls+="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}') "
    runs+="$(grep -o 'processes ([0-9.]* s)' "$work/log" | grep -o '[0-9.]*' | tail -1) "
    sizes=$(grep -o '^slim: .* ->[^;]*' "$work/log" | sed 's/^slim: //')
  done
  printf '| %-10s | %-34s | %7.2f | %7.2f | %10s | %10s |\n' "$app" "${probe//$work\//}" \
    "$(median <<<"$walls")" "$(median <<<"$runs")" "${sizes%% ->*}" "${sizes##*-> }"
done <<EOF
nginx|$nginx_fx/nginx.tar|--http-probe 80/
python|$apps_fx/python.tar|--http-probe 8000/
redis|$apps_fx/redis.tar|--exec-probe 'redis-cli ping'
node|$apps_fx/node.tar|--http-probe 3000/
flask|$apps_fx/flask.tar|--http-probe 5000/
sinatra|$apps_fx/sinatra.tar|--http-probe 4567/
postgresql|$apps_fx/postgres.tar|--probe-script $work/sql.sh
EOF
