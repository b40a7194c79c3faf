#!/usr/bin/env bash
# Starts `redress dev` in its own bus namespace and its own database on free ports, runs
# check.py against intake's gRPC port with grpcio from PyPI, stops it and removes both.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.redress/venv"
bash "$root/tests/python/venv.sh" >/dev/null

# `redress dev` gives its six services consecutive ports from each base: find twelve free in a
# row (gRPC base, then HTTP base six above), not two single free ports.
base=$("$venv/bin/python" - <<'PY'
import random, socket
for _ in range(500):
    base, held = random.randint(20000, 59000), []
    try:
        for p in range(base, base + 12):
            s = socket.socket(); held.append(s); s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        for s in held: s.close()
    print(base); break
PY
)
[ -n "$base" ] || { echo "python-grpc: no 12 consecutive free ports"; exit 1; }
grpc_port=$base; http_port=$((base + 6))
log="$root/.redress/python-check.log"
cargo build -q -p redress

ns="pycheck_$$"
nats_url="${REDRESS_NATS_URL:-nats://127.0.0.1:4222}"
admin_url="${REDRESS_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/redress}"
# psql as deploy/local/ensure-deps.sh finds it; without it the check shares the database.
psql=$(command -v psql || ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n 1 || true)
db_url="$admin_url"
if [ -n "$psql" ]; then
  db_url="${admin_url%/*}/redress_$ns"
  "$psql" -q "$admin_url" -c "CREATE DATABASE redress_$ns" >/dev/null
fi
cleanup() {
  kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  if [ "$db_url" != "$admin_url" ]; then
    "$psql" -q "$admin_url" -c "DROP DATABASE IF EXISTS redress_$ns WITH (FORCE)" >/dev/null || true
  fi
  "$venv/bin/python" "$root/tests/python/cleanup.py" "$nats_url" "$ns" || true
}
pid=""
trap cleanup EXIT
REDRESS_BUS_NAMESPACE="$ns" REDRESS_DATABASE_URL="$db_url" REDRESS_NATS_URL="$nats_url" \
  REDRESS_GRPC_ADDR="127.0.0.1:$grpc_port" REDRESS_HTTP_ADDR="127.0.0.1:$http_port" \
  REDRESS_LOG_FORMAT=pretty "$root/target/debug/redress" dev >"$log" 2>&1 &
pid=$!
for _ in $(seq 120); do
  grep -q "Redress is running" "$log" && break
  kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.5
done
# The token the development suite itself prints, as a new user would take it.
token=$("$root/target/debug/redress" token --role specialist)
"$venv/bin/python" "$root/tests/python/check.py" "127.0.0.1:$grpc_port" "$token"

# A department's own system, in Python, following its case events (docs/departments.md): the
# README's Chinese example routes to risk-control, so its consumer sees the case assigned.
REDRESS_BUS_NAMESPACE="$ns" REDRESS_NATS_URL="$nats_url" "$root/target/debug/redress" submit \
  --channel web --file "$root/services/intake/examples/zh-valid.json" --quiet >/dev/null
events=$("$venv/bin/python" "$root/docs/examples/department_subscriber.py" --department risk-control \
  --nats "$nats_url" --namespace "$ns" --until case_assigned --timeout 120)
last=$(printf '%s\n' "$events" | tail -n 1)
"$venv/bin/python" - "$last" <<'PY'
import json, sys
line = json.loads(sys.argv[1])
header = line["event"]["caseAssigned"]["header"]
ok = line["subject"] == "redress.case.v1.risk-control.assigned" and header["department"] == "risk-control"
print(("ok    " if ok else "FAIL  ") + "a department's Python consumer decodes its case_assigned event")
sys.exit(0 if ok else 1)
PY

# The same consumer in Rust (proto/examples/department_subscriber.rs), built with this crate.
cargo build -q -p redress-proto --example department_subscriber
rust_events=$(timeout 120 "$root/target/debug/examples/department_subscriber" risk-control "$nats_url" "$ns" case_assigned)
case "$(printf '%s\n' "$rust_events" | tail -n 1)" in
  *'"subject":"redress.case.v1.risk-control.assigned"'*'"type":"case_assigned"'*) echo "ok    a department's Rust consumer decodes its case_assigned event" ;;
  *) echo "FAIL  the Rust department consumer did not end on case_assigned: $rust_events"; exit 1 ;;
esac
