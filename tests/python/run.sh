#!/usr/bin/env bash
# Starts `redress dev` in its own bus namespace on free ports, runs check.py against intake's
# gRPC port with grpcio from PyPI, and stops it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.redress/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q -r "$root/tests/python/requirements.txt"

port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
grpc_port=$(port); http_port=$(port)
log="$root/.redress/python-check.log"
cargo build -q -p redress
REDRESS_BUS_NAMESPACE="pycheck" "$root/target/debug/redress" dev \
  --grpc-base-port "$grpc_port" --http-base-port "$http_port" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  grep -q "Redress is running" "$log" && break
  kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.5
done
"$venv/bin/python" "$root/tests/python/check.py" "127.0.0.1:$grpc_port"
