#!/usr/bin/env bash
# Runs the sandbox tests (whittle-trace's), the traced-slim e2e tests and the build e2e tests
# again as an ordinary user with a subordinate id range: whittle's sandbox needs no root.
# Needs root to set up: creates the user $WHITTLE_ROOTLESS_USER (default whittle-rootless)
# with /etc/subuid and /etc/subgid entries, installs Debian's uidmap (newuidmap/newgidmap),
# and adds the user to the docker group (the e2e tests load outputs into dockerd, as root
# does). The test binaries are built by the caller (scripts/test.sh) and run as they are.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "test-rootless: run as root (it creates the test user); as yourself, just run scripts/test.sh" >&2
  exit 1
fi
user=${WHITTLE_ROOTLESS_USER:-whittle-rootless}
if ! command -v newuidmap >/dev/null || ! command -v newgidmap >/dev/null; then
  echo "test-rootless: installing uidmap" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends uidmap >/dev/null \
    || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends uidmap >/dev/null; }
fi
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
# A range of its own, far from the ranges useradd hands out by default.
grep -q "^$user:" /etc/subuid || usermod --add-subuids 300000-365535 "$user"
grep -q "^$user:" /etc/subgid || usermod --add-subgids 300000-365535 "$user"
getent group docker >/dev/null && usermod -aG docker "$user"
# Where scripts/test.sh builds the fixtures, unless it said otherwise.
for kind in FIXTURES:nginx SLIM_FIXTURES:slim TRACE_FIXTURES:trace BUILD_FIXTURES:build APP_FIXTURES:apps; do
  var=WHITTLE_${kind%%:*}
  [ -n "${!var:-}" ] || export "$var=$PWD/target/fixtures/${kind#*:}"
done
# The fixtures are root's; the user only reads them.
chmod -R a+rX target/fixtures

bins=$(cargo test -p whittle-trace -p whittle --test sandbox --test confinement --test e2e_trace --test e2e_build \
         --no-run --message-format=json 2>/dev/null | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 \
       | grep -E '/deps/(sandbox|confinement|e2e_trace|e2e_build)-[0-9a-f]+$')
[ -n "$bins" ] || { echo "test-rootless: no test binaries were built" >&2; exit 1; }
status=0
for bin in $bins; do
  echo "test-rootless: $(basename "$bin") as $user" >&2
  # A fresh login environment: nothing of root's leaks in but the fixture locations.
  if ! su - "$user" -c "cd /tmp && env CI=1 \
        WHITTLE_FIXTURES='$WHITTLE_FIXTURES' WHITTLE_SLIM_FIXTURES='$WHITTLE_SLIM_FIXTURES' \
        WHITTLE_TRACE_FIXTURES='$WHITTLE_TRACE_FIXTURES' WHITTLE_BUILD_FIXTURES='$WHITTLE_BUILD_FIXTURES' \
        WHITTLE_APP_FIXTURES='$WHITTLE_APP_FIXTURES' \
        '$bin' --test-threads 2"; then
    status=1
  fi
done
exit $status
