#!/usr/bin/env bash
# Installs and starts what whittle's tests and demo use, on a fresh Debian 12 machine:
# Debian's docker.io (dockerd), skopeo, umoci, debootstrap, busybox-static, musl-tools, g++,
# docker-registry and htpasswd (registry tests), curl, psql (the PostgreSQL test's client),
# uidmap (newuidmap/newgidmap: the sandbox for ordinary users), the OCI runtime spec's schema
# and python3-jsonschema (seccomp profile checks), python3-venv and, in the venv
# $WHITTLE_VENV (default /opt/whittle-venv), spdx-tools and cyclonedx-python-lib (the SBOM tests
# validate whittle's SPDX and CycloneDX output with the formats' own tools).
# Idempotent: installs only what is missing, starts dockerd only if it is not answering.
set -euo pipefail

need=()
for pair in docker:docker.io dockerd:docker.io skopeo:skopeo umoci:umoci debootstrap:debootstrap \
            busybox:busybox-static musl-gcc:musl-tools g++:g++ curl:curl docker-registry:docker-registry htpasswd:apache2-utils openssl:openssl flock:util-linux /usr/bin/time:time \
            psql:postgresql-client newuidmap:uidmap; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
# Checking seccomp profiles: the OCI runtime spec's JSON schema and Debian's python3 validator.
[ -f /usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema/config-linux.json ] \
  || need+=(golang-github-opencontainers-specs-dev)
/usr/bin/python3 -c 'import jsonschema' 2>/dev/null || need+=(python3-jsonschema)
# Debian's python3 without python3-venv cannot make a venv (no ensurepip).
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
# The docker client alone is not enough: dockerd comes with docker.io.
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing ${need[*]}; run as root to install them" >&2; exit 1
  fi
  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) \
    runc containerd iptables ca-certificates >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "setup: starting dockerd" >&2
  mkdir -p /var/log
  nohup dockerd >/var/log/whittle-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start:" >&2; tail -20 /var/log/whittle-dockerd.log >&2; exit 1; }
fi

# The SBOM validators, in a venv of their own (Debian's python3 refuses system-wide pip).
venv=${WHITTLE_VENV:-/opt/whittle-venv}
# And kubernetes-validate: the Kubernetes API's schemas, offline, for deploy/kubernetes.
if ! [ -x "$venv/bin/pyspdxtools" ] || ! [ -x "$venv/bin/kubernetes-validate" ] ||
   ! "$venv/bin/python" -c 'from cyclonedx.validation.json import JsonStrictValidator; import jsonschema' >/dev/null 2>&1; then
  echo "setup: installing spdx-tools, cyclonedx-python-lib and kubernetes-validate in $venv" >&2
  [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check spdx-tools 'cyclonedx-python-lib[json-validation]' \
    kubernetes-validate
fi
