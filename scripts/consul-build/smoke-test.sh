#!/usr/bin/env bash
# Smoke test for the consul binary from scripts/install-consul.sh: start a
# single dev agent on free loopback ports, wait for a leader, register a
# service, read it back through the health API, stop the agent.
# Usage: scripts/consul-build/smoke-test.sh [path/to/consul]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
consul="${1:-$("$here/../install-consul.sh" | tail -n 1)}"
"$consul" version

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
http_port=$(free_port); serf_lan=$(free_port); serf_wan=$(free_port); server_port=$(free_port)
data_dir="$(mktemp -d)"
log_file="$data_dir/agent.log"

"$consul" agent -dev -node smoke \
  -bind 127.0.0.1 -client 127.0.0.1 \
  -http-port "$http_port" -dns-port -1 -grpc-port -1 -grpc-tls-port -1 \
  -serf-lan-port "$serf_lan" -serf-wan-port "$serf_wan" -server-port "$server_port" \
  -data-dir "$data_dir" >"$log_file" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data_dir"
}
trap cleanup EXIT

base="http://127.0.0.1:$http_port"
leader=""
for _ in $(seq 1 100); do
  leader="$(curl -fsS "$base/v1/status/leader" 2>/dev/null || true)"
  [[ -n "$leader" && "$leader" != '""' ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log_file" >&2; echo "agent exited" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$leader" && "$leader" != '""' ]] || { cat "$log_file" >&2; echo "no leader" >&2; exit 1; }
echo "leader: $leader"

curl -fsS -X PUT "$base/v1/agent/service/register" \
  -d '{"Name":"smoke-svc","ID":"smoke-svc-1","Address":"127.0.0.1","Port":9999,"Tags":["skein"]}'
body=""
for _ in $(seq 1 50); do
  body="$(curl -fsS "$base/v1/health/service/smoke-svc")"
  [[ "$body" == *'"smoke-svc-1"'* ]] && break
  sleep 0.1
done
[[ "$body" == *'"smoke-svc-1"'* ]] || { echo "service not found: $body" >&2; exit 1; }
echo "health/service/smoke-svc: found smoke-svc-1"
echo "smoke test passed (http port $http_port)"
