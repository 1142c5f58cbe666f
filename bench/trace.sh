#!/usr/bin/env bash
# Benchmark of run-time tracing, in one run:
#  1. `whittle slim --http-probe 80/` on the Debian nginx fixture (read, unpack, run nginx
#     in the sandbox under trace, probe, stop, plan, write), next to static-only slim.
#  2. The tracer's overhead on a syscall-heavy workload: busybox `tar` over a tree of
#     ~40,000 files (a copy of this machine's /usr/share), written to /dev/null (the
#     worst case: metadata only) and to an archive in /tmp, each run in whittle's sandbox
#     untraced and traced (crates/trace/examples/trace_overhead.rs), and in a plain
#     chroot untraced and under `strace -f --seccomp-bpf -e trace=file` (the peer).
#  The traced slim runs as root and, when the user $WHITTLE_ROOTLESS_USER (default
#  whittle-rootless, made by scripts/test-rootless.sh) exists, as that ordinary user too;
#  WHITTLE_BEFORE=/path/to/an/older/whittle adds its figures (as root) for a before/after row.
# Needs root. Usage: bench/trace.sh      Environment: REPEAT (default 5), WHITTLE_FIXTURES
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-5}
fixture=${WHITTLE_FIXTURES:-$PWD/target/fixtures/nginx}
[ "$(id -u)" = 0 ] || { echo "trace.sh: needs root (namespaces, ptrace)" >&2; exit 1; }
for tool in strace busybox; do
  command -v "$tool" >/dev/null || { echo "trace.sh: needs $tool (apt-get install strace busybox-static)" >&2; exit 1; }
done
if [ ! -f "$fixture/.done" ]; then
  scripts/setup.sh
  mkdir -p "$(dirname "$fixture")"
  flock /tmp/whittle-fixture.lock bash tests/fixtures/nginx-image.sh "$fixture"
fi
cargo build --release -q -p whittle
cargo build --release -q -p whittle-trace --example trace_overhead
whittle=$PWD/target/release/whittle
overhead=$PWD/target/release/examples/trace_overhead
work=$(mktemp -d /var/tmp/whittle-bench-trace.XXXXXX); trap 'rm -rf "$work"' EXIT
src="docker-archive:$fixture/nginx.tar"
cat "$fixture/nginx.tar" >/dev/null   # warm the page cache

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>"$work/err" || { echo "trace.sh: $* failed:" >&2; cat "$work/err" >&2; exit 1; }; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}'; }

# --- 1. slim with a probe
rootless=${WHITTLE_ROOTLESS_USER:-whittle-rootless}
id "$rootless" >/dev/null 2>&1 || { echo "trace.sh: no user $rootless (scripts/test-rootless.sh makes it): no rootless row" >&2; rootless=""; }
chmod 755 "$work"; cp "$fixture/nginx.tar" "$work/nginx.tar"; chmod 644 "$work/nginx.tar"
src="docker-archive:$work/nginx.tar"
as_user() { su "$rootless" -c "$(printf '%q ' "$@")"; }
static="" traced="" before="" user=""
for ((i = 0; i < REPEAT; i++)); do
  rm -rf "$work/out"; static+="$(secs "$whittle" slim "$src" "oci:$work/out:x") "
  rm -rf "$work/out"; traced+="$(secs "$whittle" slim "$src" "oci:$work/out:x" --http-probe 80/) "
  if [ -n "${WHITTLE_BEFORE:-}" ]; then
    rm -rf "$work/out"; before+="$(secs "$WHITTLE_BEFORE" slim "$src" "oci:$work/out:x" --http-probe 80/) "
  fi
  if [ -n "$rootless" ]; then
    mkdir -p "$work/user"; chown "$rootless" "$work/user"; rm -rf "$work/user/out"
    user+="$(secs as_user "$whittle" slim "$src" "oci:$work/user/out:x" --http-probe 80/) "
  fi
done
printf 'nginx fixture %s (%s MB), median of %s\n' "$src" "$(( $(stat -c %s "$fixture/nginx.tar") / 1000000 ))" "$REPEAT"
printf '| %-50s | %7s |\n' command "wall s"
printf '|----------------------------------------------------|---------|\n'
printf '| %-50s | %7.2f |\n' "whittle slim (static only)" "$(median <<<"$static")"
[ -z "$before" ] || printf '| %-50s | %7.2f |\n' "before: $WHITTLE_BEFORE --http-probe 80/" "$(median <<<"$before")"
printf '| %-50s | %7.2f |\n' "whittle slim --http-probe 80/ (root)" "$(median <<<"$traced")"
[ -z "$user" ] || printf '| %-50s | %7.2f |\n' "whittle slim --http-probe 80/ (as $rootless)" "$(median <<<"$user")"

# --- 2. tracer overhead on tar of a big tree
root=$work/root
mkdir -p "$root/bin" "$root/data" "$root/dev"
# The plain chroot runs need a real /dev/null (the sandbox mounts its own /dev over this).
mknod -m 666 "$root/dev/null" c 1 3
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/tar"
cp -a /usr/share/. "$root/data/"
# Readable by the sandbox's root, an unprivileged id of its user namespace (a few of
# /usr/share's directories are root's alone).
chmod -R a+rX "$root/data"
files=$(find "$root/data" -type f | wc -l)
mkdir -p "$root/tmp"
chmod 1777 "$root/tmp"   # the sandbox's root is an unprivileged id of its user namespace
# Two workloads: the archive to /dev/null (metadata-bound: the most stops per second) and
# written out to /tmp (the root's own /tmp, in the sandbox and in the chroot runs).
for target in /dev/null /tmp/out.tar; do
  tar_cmd=(/bin/tar -cf "$target" /data)
  read -r _ sandbox_untraced < <("$overhead" "$root" "$REPEAT" "${tar_cmd[@]}" | grep '^untraced')
  read -r _ sandbox_traced calls paths < <("$overhead" "$root" "$REPEAT" "${tar_cmd[@]}" | grep '^traced')
  chroot_untraced="" chroot_strace=""
  for ((i = 0; i < REPEAT; i++)); do
    rm -f "$root/tmp/out.tar"
    chroot_untraced+="$(secs chroot "$root" "${tar_cmd[@]}") "
    rm -f "$root/tmp/out.tar"
    chroot_strace+="$(secs strace -f -qq --seccomp-bpf -e trace=file -o /dev/null chroot "$root" "${tar_cmd[@]}") "
  done
  rm -f "$root/tmp/out.tar"
  cu=$(median <<<"$chroot_untraced"); cs=$(median <<<"$chroot_strace")
  printf '\nbusybox tar -cf %s over %s files (%s), median of %s\n' "$target" "$files" "$(du -sh "$root/data" | cut -f1)" "$REPEAT"
  printf '| %-52s | %7s | %10s |\n' run "wall s" "x untraced"
  printf '|------------------------------------------------------|---------|------------|\n'
  printf '| %-52s | %7.2f | %10s |\n' "whittle sandbox, untraced" "$sandbox_untraced" "1.00"
  printf '| %-52s | %7.2f | %10.2f |\n' "whittle sandbox, traced ($calls calls, $paths paths)" "$sandbox_traced" "$(awk -v a="$sandbox_traced" -v b="$sandbox_untraced" 'BEGIN{print a/b}')"
  printf '| %-52s | %7.2f | %10s |\n' "chroot, untraced" "$cu" "1.00"
  printf '| %-52s | %7.2f | %10.2f |\n' "chroot, strace -f --seccomp-bpf -e trace=file" "$cs" "$(awk -v a="$cs" -v b="$cu" 'BEGIN{print a/b}')"
done
