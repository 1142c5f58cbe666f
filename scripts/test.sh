#!/usr/bin/env bash
# Runs whittle's whole test suite: installs and starts the real components the
# integration tests use (scripts/setup.sh), builds the Debian nginx fixture and the slim
# fixtures once (cached under target/fixtures), then runs every test with cargo-nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# setup.sh has installed every tool, so a test that would skip for lack of one fails instead.
export CI=${CI:-1}
export WHITTLE_FIXTURES=${WHITTLE_FIXTURES:-$PWD/target/fixtures/nginx}
mkdir -p "$(dirname "$WHITTLE_FIXTURES")"
echo "test: building the Debian nginx fixture in $WHITTLE_FIXTURES (cached)" >&2
flock /tmp/whittle-fixture.lock bash tests/fixtures/nginx-image.sh "$WHITTLE_FIXTURES"
# The small images for slim (C++, static musl, busybox script), built on the nginx
# fixture's Debian base.
export WHITTLE_SLIM_FIXTURES=${WHITTLE_SLIM_FIXTURES:-$PWD/target/fixtures/slim}
echo "test: building the slim fixtures in $WHITTLE_SLIM_FIXTURES (cached)" >&2
flock /tmp/whittle-fixture.lock bash tests/fixtures/slim-images.sh "$WHITTLE_SLIM_FIXTURES" "$WHITTLE_FIXTURES"
# The images for the run-time tracing tests (dlopen, a TCP echo server, a batch job, a
# forking script, a SIGTERM-ignoring script), also on the nginx fixture's Debian base.
export WHITTLE_TRACE_FIXTURES=${WHITTLE_TRACE_FIXTURES:-$PWD/target/fixtures/trace}
echo "test: building the trace fixtures in $WHITTLE_TRACE_FIXTURES (cached)" >&2
flock /tmp/whittle-fixture.lock bash tests/fixtures/trace-images.sh "$WHITTLE_TRACE_FIXTURES" "$WHITTLE_FIXTURES"
# The builder image for `whittle build` (Debian bookworm minbase with musl-gcc).
export WHITTLE_BUILD_FIXTURES=${WHITTLE_BUILD_FIXTURES:-$PWD/target/fixtures/build}
echo "test: building the build fixtures in $WHITTLE_BUILD_FIXTURES (cached)" >&2
flock /tmp/whittle-fixture.lock bash tests/fixtures/build-images.sh "$WHITTLE_BUILD_FIXTURES"

# Real applications on Debian bookworm (PostgreSQL with Debian's cluster, a Python server)
# for the tests that the sandbox runs programs as docker run does.
export WHITTLE_APP_FIXTURES=${WHITTLE_APP_FIXTURES:-$PWD/target/fixtures/apps}
echo "test: building the application fixtures in $WHITTLE_APP_FIXTURES (cached)" >&2
flock /tmp/whittle-fixture.lock bash tests/fixtures/app-images.sh "$WHITTLE_APP_FIXTURES"

status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@" || status=1
else
  cargo test --workspace --no-fail-fast "$@" || status=1
fi
# The sandbox needs no root: as root, run its tests again as an ordinary user.
if [ "$(id -u)" = 0 ] && [ $# -eq 0 ]; then
  echo "test: the sandbox, trace and build tests again as an ordinary user" >&2
  scripts/test-rootless.sh || status=1
fi
# Every documented command, as written (README, docs/CLI.md, examples/).
if [ "$(id -u)" = 0 ] && [ $# -eq 0 ]; then
  echo "test: the documented examples, as written" >&2
  scripts/doc-examples.sh || status=1
fi
# whittle's own image, built by whittle (deploy/image): reproducible, and working in docker run.
if [ "$(id -u)" = 0 ] && [ $# -eq 0 ]; then
  echo "test: whittle's own image (deploy/image/test.sh)" >&2
  deploy/image/test.sh || status=1
fi
exit $status
