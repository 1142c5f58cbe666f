# Sourced by scripts that need a registry of their own: Debian's docker-registry on
# 127.0.0.1, on a free port.
#
# start_registry DIR: stores under DIR (its config and log beside the data), serves in
# the background and returns once it accepts connections, with REGISTRY (host:port) and
# REGISTRY_PID (to kill) set.
start_registry() {
  local dir=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$dir"
  cat >"$dir/config.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: 127.0.0.1:$port
YML
  docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  REGISTRY=127.0.0.1:$port
}
