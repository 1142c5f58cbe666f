#!/usr/bin/env bash
# Tests whittle's own image (deploy/image/build.sh) with real components, as CI runs it
# (scripts/test.sh, as root, dockerd running, fixtures built):
#   - built twice, from this tree and from a copy of it elsewhere: the same digest;
#   - its size (the aim: under 15 MB);
#   - under plain `docker run` (default security options, its nonroot user): --version,
#     a build without steps whose image runs,
#     a copy from a registry (Debian's docker-registry on 127.0.0.1) to another repository,
#     and a static slim of the nginx fixture whose output then serves its page in dockerd;
#   - deploy/kubernetes validates against the Kubernetes API (offline schemas), and the
#     command its Job runs, run as two shards each in its own docker run of the image,
#     slims and pushes a plan of five registry images (each then pulled and run) while a
#     sixth job's failed probe is reported; a second run skips them all; a changed
#     source is slimmed again alone;
#   - a traced slim (of the Python application fixture) inside the container with the
#     options docs/DEPLOY.md names (no --privileged, no capability added); its output serves;
#     and of nginx as the container's root (-u 0): the full id range, nginx's users work.
# Usage: deploy/image/test.sh   Environment: WHITTLE_FIXTURES (the nginx fixture; default
# target/fixtures/nginx), CARGO_TARGET_DIR for the musl build (default target/musl-image).
set -euo pipefail
cd "$(dirname "$0")/../.."
nginx_fx=${WHITTLE_FIXTURES:-$PWD/target/fixtures/nginx}
[ -f "$nginx_fx/nginx.tar" ] || { echo "image test: no $nginx_fx/nginx.tar (build the fixtures first)" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/musl-image}
work=$(mktemp -d /var/tmp/whittle-image-test.XXXXXX)
chmod 0777 "$work"   # the container's nonroot user writes its outputs here
tag=whittle-test/whittle:image-test
registry_pid=""
containers=()
cleanup_tags=()
cleanup() {
  local c
  for c in "${containers[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
  docker rmi -f "$tag" whittle-test/image-test-slim:static whittle-test/image-test-slim:traced \
    "${cleanup_tags[@]}" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "image test: FAIL: $*" >&2; exit 1; }

# Built twice: here, and from a copy of the tree in another directory.
first=$(deploy/image/build.sh "oci:$work/whittle-oci-1")
mkdir "$work/checkout"
git ls-files -co --exclude-standard -z | grep -zv '^deploy/image/context/' \
  | xargs -0 cp --parents -t "$work/checkout"
second=$(cd "$work/checkout" && deploy/image/build.sh "oci:$work/whittle-oci-2")
[ "$first" = "$second" ] || fail "two checkouts built different images: $first and $second"
echo "image test: the same image from two checkouts: $first" >&2
whittle=$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/whittle
"$whittle" -q copy "oci:$work/whittle-oci-1" "docker-archive:$work/whittle.tar:$tag" >/dev/null
bytes=$(tar -xOf "$work/whittle.tar" manifest.json | python3 -c '
import json, sys, tarfile
m = json.load(sys.stdin)[0]
t = tarfile.open(sys.argv[1])
print(sum(t.getmember(l).size for l in m["Layers"]))' "$work/whittle.tar")
echo "image test: whittle's image is $bytes bytes of layers (aim: under 15 MB)" >&2
[ "$bytes" -lt 15000000 ] || fail "the image is $bytes bytes, more than 15 MB"

docker load -q -i "$work/whittle.tar" >/dev/null
user=$(docker inspect -f '{{.Config.User}}' "$tag")
[ "$user" = "65532:65532" ] || fail "the image runs as '$user', not nonroot"
version=$(docker run --rm "$tag" --version)
echo "image test: docker run $tag --version: $version" >&2
if docker run --rm --entrypoint /bin/sh "$tag" -c true >/dev/null 2>&1; then
  fail "the image has a shell"
fi

# A build without steps in the container: a static busybox and its applet link on the
# baseline files, from a spec in a mounted directory; the image runs.
mkdir -p "$work/spec"
cp /bin/busybox "$work/spec/busybox"
cat >"$work/spec/hello.toml" <<'TOML'
baseline = "static"
[[layer]]
name = "busybox"
files = [{ host = "busybox", to = "/bin/busybox" }]
[config]
entrypoint = ["/bin/busybox", "echo", "built in a container"]
user = "nonroot"
TOML
docker run --rm -v "$work:/work" "$tag" build /work/spec/hello.toml \
  "docker-archive:/work/built.tar:whittle-test/image-test-slim:built" 2>"$work/build.err" \
  || { cat "$work/build.err" >&2; fail "build in the container failed"; }
docker load -q -i "$work/built.tar" >/dev/null
cleanup_tags+=(whittle-test/image-test-slim:built)
[ "$(docker run --rm --network none whittle-test/image-test-slim:built)" = "built in a container" ] \
  || fail "the image built in the container does not run"
echo "image test: whittle build (no steps) in the container made an image that runs" >&2

# A registry on 127.0.0.1, an image in it, a copy to another repository by the container.
# shellcheck source=scripts/local-registry.sh
source scripts/local-registry.sh
start_registry "$work/registry"
registry_pid=$REGISTRY_PID
reg=$REGISTRY
"$whittle" -q --tls-verify=false copy "docker-archive:$nginx_fx/nginx.tar" "docker://$reg/test/nginx:1" >/dev/null
docker run --rm --network host "$tag" --tls-verify=false \
  copy "docker://$reg/test/nginx:1" "docker://$reg/copied/nginx:1" >/dev/null \
  || fail "the container could not copy between repositories"
src_digest=$(docker run --rm --network host "$tag" --tls-verify=false inspect --json "docker://$reg/test/nginx:1" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifest_digest"])')
dst_digest=$(docker run --rm --network host "$tag" --tls-verify=false inspect --json "docker://$reg/copied/nginx:1" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifest_digest"])')
[ "$src_digest" = "$dst_digest" ] || fail "the copy has digest $dst_digest, the source $src_digest"
echo "image test: the container copied docker://$reg/test/nginx:1 to copied/nginx:1 ($dst_digest)" >&2

# serves TAG PORT TEXT: runs it and fetches its page, which must hold TEXT.
serves() {
  local cid ip body=""
  cid=$(docker run -d "$1"); containers+=("$cid")
  ip=$(docker inspect -f '{{.NetworkSettings.IPAddress}}' "$cid")
  for _ in $(seq 1 200); do
    body=$(curl -fsS "http://$ip:$2/" 2>/dev/null) && break
    sleep 0.1
  done
  grep -q "$3" <<<"$body" || { docker logs "$cid" >&2; fail "$1 does not serve its page"; }
}

# A static slim in the container, from the registry, into a volume (the configuration and
# data that no linker shows named with --include, as a static slim needs).
docker run --rm --network host -v "$work:/work" "$tag" --tls-verify=false \
  slim "docker://$reg/test/nginx:1" "docker-archive:/work/static.tar:whittle-test/image-test-slim:static" \
  --include /etc/nginx --include /var/www --include /usr/share/nginx --include /var/lib/nginx \
  --include /var/log/nginx 2>"$work/static.err" || { cat "$work/static.err" >&2; fail "static slim in the container failed"; }
docker load -q -i "$work/static.tar" >/dev/null
serves whittle-test/image-test-slim:static 80 "whittle test page"
echo "image test: a static slim in the container serves" >&2

# A traced slim in the container: the sandbox needs a user namespace and a new mount of
# proc, which Docker's default seccomp profile and its masked /proc refuse (docs/DEPLOY.md).
# As the image's nonroot user the sandbox maps that one id: the Python application image
# (tests/fixtures/app-images.sh) runs as one user, as such a run needs.
apps_fx=${WHITTLE_APP_FIXTURES:-$PWD/target/fixtures/apps}
[ -f "$apps_fx/python.tar" ] || fail "no $apps_fx/python.tar (build the application fixtures first)"
cp "$apps_fx/python.tar" "$work/python.tar"
traced_opts=(--security-opt seccomp=unconfined --security-opt systempaths=unconfined --security-opt apparmor=unconfined)
docker run --rm "${traced_opts[@]}" -v "$work:/work" "$tag" \
  slim docker-archive:/work/python.tar "docker-archive:/work/traced.tar:whittle-test/image-test-slim:traced" \
  --http-probe 8000/ 2>"$work/traced.err" || { cat "$work/traced.err" >&2; fail "traced slim in the container failed"; }
grep -q "probe GET :8000/: HTTP 200" "$work/traced.err" || { cat "$work/traced.err" >&2; fail "the probe did not answer"; }
docker load -q -i "$work/traced.tar" >/dev/null
serves whittle-test/image-test-slim:traced 8000 "served by python"
echo "image test: a traced slim in the container (${traced_opts[*]}) serves" >&2
# As the container's root (still no capability added), the sandbox maps the image's 65536
# ids: nginx, whose master gives its directories to www-data, slims traced too.
docker run --rm -u 0 --network host "${traced_opts[@]}" -v "$work:/work" "$tag" --tls-verify=false \
  slim "docker://$reg/test/nginx:1" "docker-archive:/work/traced-root.tar:whittle-test/image-test-slim:traced-root" \
  --http-probe 80/ 2>"$work/traced-root.err" || { cat "$work/traced-root.err" >&2; fail "traced slim as root in the container failed"; }
docker load -q -i "$work/traced-root.tar" >/dev/null
cleanup_tags+=(whittle-test/image-test-slim:traced-root)
serves whittle-test/image-test-slim:traced-root 80 "whittle test page"
echo "image test: a traced slim of nginx as the container's root (-u 0, no capability added) serves" >&2
# The Kubernetes manifests: valid for the API (offline schemas), and the command their
# pods run, run here as two shards, each its own `docker run` of the image, with the
# environment an Indexed Job gives a pod.
venv=${WHITTLE_VENV:-/opt/whittle-venv}
"$venv/bin/kubernetes-validate" --strict --quiet -k 1.30.0 deploy/kubernetes/*.yaml \
  || fail "deploy/kubernetes does not validate against the Kubernetes 1.30 API"
mapfile -t job_args < <("$venv/bin/python" -c '
import sys, yaml
job = yaml.safe_load(open("deploy/kubernetes/job.yaml"))
cron = yaml.safe_load(open("deploy/kubernetes/cronjob.yaml"))
a = job["spec"]["template"]["spec"]["containers"][0]["args"]
b = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
assert a == b, "the Job and the CronJob run different commands"
print("\n".join(a))')
[ "${job_args[0]}" = fleet ] || fail "the Job does not run whittle fleet: ${job_args[*]}"
slim_fx=${WHITTLE_SLIM_FIXTURES:-$PWD/target/fixtures/slim}
programs=(busybox musl cxx loader)
for name in "${programs[@]}"; do
  "$whittle" -q --tls-verify=false copy "docker-archive:$slim_fx/$name.tar" "docker://$reg/test/$name:1" >/dev/null
done
mkdir -p "$work/plan" "$work/auth"
echo '{"auths": {}}' >"$work/auth/config.json"
{
  printf '[defaults]\nargs = []\n'
  printf '[[job]]\nsrc = "docker://%s/test/nginx:1"\ndst = "docker://%s/slim/nginx:1"\n' "$reg" "$reg"
  printf 'args = ["--include", "/etc/nginx", "--include", "/var/www", "--include", "/usr/share/nginx", "--include", "/var/lib/nginx", "--include", "/var/log/nginx"]\n'
  for name in "${programs[@]}"; do
    printf '[[job]]\nsrc = "docker://%s/test/%s:1"\ndst = "docker://%s/slim/%s:1"\n' "$reg" "$name" "$reg" "$name"
  done
  # A job whose probe cannot answer: reported failed, the others land.
  printf '[[job]]\nsrc = "docker://%s/test/cxx:1"\ndst = "docker://%s/slim/never:1"\nargs = ["--http-probe", "9/"]\n' "$reg" "$reg"
} >"$work/plan/plan.toml"
# shards: both shards, each its own docker run with an Indexed Job's environment; the
# JSON lines of both on stdout. Shard 1 holds the failing job (index 5): it exits 1.
shards() {
  local i code
  for i in 0 1; do
    code=0
    docker run --rm --network host -e JOB_COMPLETION_INDEX=$i -e JOB_COMPLETIONS=2 \
      -v "$work/plan:/plan:ro" -v "$work/auth:/auth:ro" "$tag" --tls-verify=false "${job_args[@]}" \
      2>>"$work/fleet.err" || code=$?
    [ "$code" = "$i" ] || { cat "$work/fleet.err" >&2; fail "shard $i exited $code"; }
  done
}
count() { grep -c "\"status\":\"$1\"" "$2" || true; }
shards >"$work/fleet-1.jsonl"
[ "$(count slimmed "$work/fleet-1.jsonl")" = 5 ] && [ "$(count failed "$work/fleet-1.jsonl")" = 1 ] \
  || { cat "$work/fleet-1.jsonl" >&2; fail "the shards did not slim the five images and fail the sixth"; }
pulled() {  # pulled NAME: the slimmed image from the registry, under a local tag
  docker pull -q "$reg/slim/$1:1" >/dev/null || fail "docker cannot pull $reg/slim/$1:1"
  docker tag "$reg/slim/$1:1" "whittle-test/image-test-fleet:$1"
  docker rmi "$reg/slim/$1:1" >/dev/null 2>&1 || true
  cleanup_tags+=("whittle-test/image-test-fleet:$1")
}
pulled nginx
serves whittle-test/image-test-fleet:nginx 80 "whittle test page"
for name in "${programs[@]}"; do
  pulled "$name"
  got=$(docker run --rm --network none "whittle-test/image-test-fleet:$name")
  [ "$got" = "$(cat "$slim_fx/expected/$name.txt")" ] || fail "the slimmed $name printed '$got'"
done
t0=$(date +%s.%N)
shards >"$work/fleet-2.jsonl"
t1=$(date +%s.%N)
[ "$(count skipped "$work/fleet-2.jsonl")" = 5 ] || { cat "$work/fleet-2.jsonl" >&2; fail "the second run did not skip the five"; }
echo "image test: the second run skipped all five in $(echo "$t1 - $t0" | bc) s (both shards, docker run included)" >&2
# A new busybox source (the same files as one layer): only its job runs again.
"$whittle" -q --tls-verify=false squash "docker-archive:$slim_fx/busybox.tar" "docker://$reg/test/busybox:1" >/dev/null
shards >"$work/fleet-3.jsonl"
[ "$(count slimmed "$work/fleet-3.jsonl")" = 1 ] && [ "$(count skipped "$work/fleet-3.jsonl")" = 4 ] \
  && grep '"status":"slimmed"' "$work/fleet-3.jsonl" | grep -q '/slim/busybox:1' \
  || { cat "$work/fleet-3.jsonl" >&2; fail "a changed source did not re-slim only its own job"; }
echo "image test: the Job's command (${job_args[*]}) as two shards in docker run: five images slimmed, pushed, pulled and run, one failed probe reported; then all skipped; a changed source re-slimmed alone" >&2
echo "image test: ok" >&2
