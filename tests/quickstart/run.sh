#!/usr/bin/env bash
# Runs the README's quick start verbatim: every command between the quickstart markers, in
# order, in one shell, against `redress dev` — started the way `make run` starts it, but in a
# bus namespace and a database of its own (both removed afterwards). A command that fails fails
# the test; so does a quick start that does not end with the case closed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
state="$root/.redress"
mkdir -p "$state/bin"
log="$state/quickstart-dev.log"

# The README's ports: the quick start names them, so they must be free.
for port in 50051 50052 50053 50054 50055 50056 9090 9091 9092 9093 9094 9095; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "quickstart: port $port is in use (a \`make run\` still running?); the README's commands need it"
    exit 1
  fi
done

cargo build -q --locked -p redress
# What `make run` does before starting the suite.
ln -sf "$root/target/debug/redress" "$state/bin/redress"

ns="quickstart_$$"
nats_url="${REDRESS_NATS_URL:-nats://127.0.0.1:4222}"
admin_url="${REDRESS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
psql=$(command -v psql || ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n 1)
db_url="${admin_url%/*}/redress_$ns"
"$psql" -q "$admin_url" -c "CREATE DATABASE redress_$ns" >/dev/null

pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  "$psql" -q "$admin_url" -c "DROP DATABASE IF EXISTS redress_$ns WITH (FORCE)" >/dev/null || true
  if [ -x "$state/venv/bin/python" ]; then
    "$state/venv/bin/python" "$root/tests/python/cleanup.py" "$nats_url" "$ns" || true
  fi
}
trap cleanup EXIT

export REDRESS_NATS_URL="$nats_url" REDRESS_DATABASE_URL="$db_url" REDRESS_BUS_NAMESPACE="$ns"
REDRESS_LOG_FORMAT=pretty "$root/target/debug/redress" dev >"$log" 2>&1 &
pid=$!
for _ in $(seq 240); do
  grep -q "Redress is running" "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.5
done
grep -q "Redress is running" "$log" || { echo "quickstart: redress dev did not start"; cat "$log"; exit 1; }

# The commands, verbatim: every ```sh block between the markers.
script=$(awk '/<!-- quickstart:begin -->/{on=1} /<!-- quickstart:end -->/{on=0}
              on && /^```sh$/{block=1; next} block && /^```$/{block=0; next} block{print}' README.md)
[ -n "$script" ] || { echo "quickstart: no commands between the README's markers"; exit 1; }
out="$state/quickstart.out"
if ! bash -euo pipefail -c "$script" >"$out" 2>&1; then
  echo "quickstart: a README command failed; its output:"; cat "$out"
  echo "--- redress dev:"; tail -n 40 "$log"
  exit 1
fi
# The walk-through ends with the case closed, decided upheld, routed without a specialist, and
# the department's subscription saw it.
for expected in '"state": "CASE_STATE_CLOSED"' '"department": "risk-control"' '"outcome": "DECISION_OUTCOME_UPHELD"' \
    '"needsClassificationReview": true' '"subject":"redress.case.v1.risk-control.closed"'; do
  if [ "$expected" = '"needsClassificationReview": true' ]; then
    ! grep -q "$expected" "$out" || { echo "quickstart: the case waited for classification review"; exit 1; }
    continue
  fi
  grep -q "$expected" "$out" || { echo "quickstart: expected $expected in the output:"; cat "$out"; exit 1; }
done
echo "quickstart: $(grep -c . <<<"$script") README lines ran; the complaint was decided and closed"
