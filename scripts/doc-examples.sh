#!/usr/bin/env bash
# Runs the documentation as written, so that it cannot drift from the tool:
#   1. every `whittle SUB ... --flag` synopsis line in README.md, docs/CLI.md and docs/BUILD.md,
#      and every option line of docs/CLI.md: SUB exists and a --help lists each --flag;
#   2. every command of the README's example blocks (a fenced block after the comment
#      `<!-- doc-examples: run -->`), line by line, in a scratch directory that holds the
#      inputs they name (nginx.tar, rootfs/, tool.deb, the Engine's nginx:latest, myapp:latest,
#      debian:bookworm, the OCI layout jobs:nightly), each made here from the test fixtures;
#   3. the one-line command at the top of each examples/*/*.toml, from the repository root;
#   4. the README's first command, scripts/demo.sh: the slimmed nginx must serve its page.
# Needs root and a running dockerd (scripts/setup.sh), and the fixtures of scripts/test.sh.
# The Engine's tags that the examples use are made here and removed at the end; a tag that
# already names another image stops the script before anything is changed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

cargo build -q -p whittle
whittle=$repo/target/debug/whittle
nginx_fixtures=${WHITTLE_FIXTURES:-$repo/target/fixtures/nginx}
build_fixtures=${WHITTLE_BUILD_FIXTURES:-$repo/target/fixtures/build}
for f in "$nginx_fixtures/.done" "$build_fixtures/.done"; do
  [ -e "$f" ] || { echo "doc-examples: fixtures missing ($f); run scripts/test.sh first" >&2; exit 1; }
done

failures=0
fail() { echo "doc-examples: FAIL: $*" >&2; failures=$((failures + 1)); }

# ---- 1. synopses and option lines against --help -------------------------------------
declare -A help_of
help_for() { # SUB -> its --help text (cached)
  local sub=$1
  if [ -z "${help_of[$sub]+x}" ]; then
    help_of[$sub]=$("$whittle" "$sub" --help 2>&1) || help_of[$sub]="__missing__"
  fi
  printf '%s' "${help_of[$sub]}"
}
all_help=$("$whittle" --help)
for sub in $(sed -n '/^Commands:/,/^$/p' <<<"$all_help" | awk 'NF {print $1}' | grep -v '^help$'); do
  all_help+=$'\n'$(help_for "$sub")
done
checked=0
while IFS= read -r line; do
  # "whittle slim|extract SRC ..." names two subcommands.
  subs=$(awk '{print $2}' <<<"$line" | tr '|' ' ')
  for sub in $subs; do
    help=$(help_for "$sub")
    if [ "$help" = "__missing__" ]; then fail "documented subcommand '$sub' does not exist: $line"; continue; fi
    # Flags inside quotes belong to the probed program, not to whittle.
    for flag in $(sed -E "s/'[^']*'//g; s/\"[^\"]*\"//g" <<<"$line" | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
      grep -qE -- "$flag([^a-z-]|$)" <<<"$help" || fail "'whittle $sub' has no $flag, but the docs say: $line"
      checked=$((checked + 1))
    done
  done
done < <(grep -hE '^ *(whittle|SOURCE_DATE_EPOCH=[0-9]+ whittle) [a-z]' README.md docs/CLI.md docs/BUILD.md \
           | sed -E 's/^ *(SOURCE_DATE_EPOCH=[0-9]+ )?//; s/ +#.*$//' | grep -vE '^whittle [a-z|]+ *$' || true)
# Option lines of docs/CLI.md ("    --flag ..."): each flag is some command's.
while IFS= read -r flag; do
  grep -qE -- "$flag([^a-z-]|$)" <<<"$all_help" || fail "docs/CLI.md documents $flag, which no command has"
  checked=$((checked + 1))
done < <(grep -hE '^ {4}--[a-z]' docs/CLI.md | grep -oE -- '--[a-z][a-z-]*' | sort -u)
echo "doc-examples: $checked documented flags found in --help" >&2

# ---- 2. the README's examples, as written --------------------------------------------
work=$(mktemp -d /tmp/whittle-doc-examples.XXXXXX)
made_tags=(nginx:latest nginx:slim nginx:flat myapp:latest myapp:slim debian:bookworm tool:slim
           hello:latest nginx:scratch)
containers=(build)
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
cleanup() {
  docker rm -f "${containers[@]}" >/dev/null 2>&1 || true
  for t in "${made_tags[@]}"; do docker rmi "$t" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
for t in "${made_tags[@]}"; do
  if [ -n "$(image_id "$t")" ]; then
    echo "doc-examples: the Docker Engine already has $t; the examples would replace it (remove it first)" >&2
    exit 1
  fi
done
for c in "${containers[@]}"; do
  if docker container inspect "$c" >/dev/null 2>&1; then
    echo "doc-examples: a container named $c exists; the examples make one (remove it first)" >&2
    exit 1
  fi
done
trap cleanup EXIT

echo "doc-examples: making the inputs the README's examples name, in $work" >&2
mkdir -p "$work/bin"; ln -s "$whittle" "$work/bin/whittle"
cp "$nginx_fixtures/nginx.tar" "$work/nginx.tar"
docker load -q -i "$nginx_fixtures/base.tar" >/dev/null
docker load -q -i "$nginx_fixtures/nginx.tar" >/dev/null
docker tag whittle-test/nginx:latest nginx:latest
# debian:bookworm as Docker Hub's is: the Debian root alone, no port, no command (the
# fixture's base has nginx's).
cid=$(docker create whittle-test/base:latest)
docker export "$cid" | docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'CMD ["bash"]' - debian:bookworm >/dev/null
docker rm "$cid" >/dev/null
ctx=$work/ctx; mkdir -p "$ctx"
# myapp: nginx with a data directory that no run reads (the reason for --include).
printf 'FROM nginx:latest\nRUN mkdir -p /srv/data && echo seed > /srv/data/seed.txt\n' >"$ctx/Dockerfile"
docker build --network none -q -t myapp:latest "$ctx" >/dev/null
# jobs:nightly: a batch job that also answers `job --self-test`.
cat >"$ctx/job" <<'JOB'
#!/bin/sh
if [ "$1" = --self-test ]; then echo "self-test ok"; exit 0; fi
wc -l /etc/passwd; sleep 1; echo "nightly job done"
JOB
chmod 755 "$ctx/job"
printf 'FROM debian:bookworm\nCOPY job /usr/local/bin/job\nCMD ["job"]\n' >"$ctx/Dockerfile"
docker build --network none -q -t whittle-doc/jobs:nightly "$ctx" >/dev/null
skopeo copy --quiet docker-daemon:whittle-doc/jobs:nightly "oci:$work/jobs:nightly"
docker rmi whittle-doc/jobs:nightly >/dev/null
# tool.deb: a package holding one dynamically linked program.
pkg=$work/pkg; mkdir -p "$pkg/DEBIAN" "$pkg/usr/bin"
printf 'Package: tool\nVersion: 1.0\nArchitecture: amd64\nDepends: libc6\nMaintainer: whittle <whittle@localhost>\nDescription: the README example tool\n' >"$pkg/DEBIAN/control"
printf '#include <stdio.h>\nint main(void) { puts("tool 1.0"); return 0; }\n' >"$work/tool.c"
g++ -x c -O2 -Wl,--as-needed -o "$pkg/usr/bin/tool" "$work/tool.c"
dpkg-deb --root-owner-group -b "$pkg" "$work/tool.deb" >/dev/null
# rootfs/app: a static program.
mkdir -p "$work/rootfs"
printf '#include <stdio.h>\nint main(void) { puts("app"); return 0; }\n' >"$work/app.c"
musl-gcc -static -O2 -o "$work/rootfs/app" "$work/app.c"

ran=0
mapfile -t examples < <(awk '/<!-- doc-examples: run -->/ {armed=1; next}
  armed && /^```/ { if (inside) { inside=0; armed=0 } else inside=1; next }
  inside' README.md | sed -E 's/[[:space:]]+#[^'"'"'"]*$//' | grep -vE '^[[:space:]]*(#|$)')
[ ${#examples[@]} -gt 0 ] || fail "README.md has no block marked <!-- doc-examples: run -->"
for cmd in "${examples[@]}"; do
  echo "doc-examples: \$ $cmd" >&2
  if ! (cd "$work" && PATH="$work/bin:$PATH" bash -euo pipefail -c "$cmd") >"$work/out.log" 2>&1; then
    fail "README example failed: $cmd"; sed 's/^/    /' "$work/out.log" >&2
  fi
  ran=$((ran + 1))
done
# What the examples wrote is there, and the images the Engine got start.
for t in nginx:slim myapp:slim tool:slim nginx:flat; do
  [ -n "$(image_id "$t")" ] || fail "after the README's examples, the Engine has no $t"
done
out=$(docker run --rm tool:slim 2>&1) && [ "$out" = "tool 1.0" ] || fail "tool:slim does not run: $out"
out=$(cd "$work" && "$whittle" inspect oci:out/app:1 2>&1) || fail "oci:out/app:1 cannot be read: $out"

# ---- 3. each example spec's one-line command, from the repository root ---------------
for spec in examples/*/*.toml; do
  cmd=$(sed -nE 's/^#[[:space:]]+(whittle build .*)$/\1/p' "$spec" | head -1)
  [ -n "$cmd" ] || { fail "$spec does not say how to build it"; continue; }
  echo "doc-examples: \$ $cmd" >&2
  if ! PATH="$work/bin:$PATH" bash -euo pipefail -c "$cmd" >"$work/out.log" 2>&1; then
    fail "example failed: $cmd"; sed 's/^/    /' "$work/out.log" >&2
  fi
  ran=$((ran + 1))
done
out=$(docker run --rm hello:latest 2>&1) || fail "hello:latest does not run: $out"

# ---- 4. the README's first command ----------------------------------------------------
echo "doc-examples: \$ scripts/demo.sh" >&2
if scripts/demo.sh >"$work/demo.log" 2>&1; then
  grep -q '^GET / -> whittle test page$' "$work/demo.log" \
    || { fail "scripts/demo.sh: the slimmed nginx did not serve the page"; sed 's/^/    /' "$work/demo.log" >&2; }
else
  fail "scripts/demo.sh failed"; sed 's/^/    /' "$work/demo.log" >&2
fi
ran=$((ran + 1))

if [ $failures -gt 0 ]; then
  echo "doc-examples: $failures failure(s)" >&2; exit 1
fi
echo "doc-examples: $ran documented commands ran as written; $checked documented flags exist" >&2
