#!/usr/bin/env bash
# Runs the README's "Keys" commands verbatim (every ```sh block between the operations markers,
# in order, in one shell): keys of one's own, a service started on its own with them, a call
# with one's own token accepted and one with the development token refused. They run in a
# scratch directory laid out like the checkout (.redress/bin, .redress/env, target/), with a
# database and a bus namespace of their own, so nothing of the checkout's is touched.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

for port in 50053 9092; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "operations: port $port is in use (a \`make run\` still running?); the README's commands need it"
    exit 1
  fi
done
cargo build -q --locked -p redress -p redress-case-coordination

ns="operations_$$"
nats_url="${REDRESS_NATS_URL:-nats://127.0.0.1:4222}"
admin_url="${REDRESS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
psql=$(command -v psql || ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n 1)
"$psql" -q "$admin_url" -c "CREATE DATABASE redress_$ns" >/dev/null

scratch=$(mktemp -d)
cleanup() {
  # The block stops its service itself; this is for a block that failed before it could.
  pkill -f "$scratch/target/debug/redress-case-coordination" 2>/dev/null || true
  pkill -f "^target/debug/redress-case-coordination" 2>/dev/null || true
  "$psql" -q "$admin_url" -c "DROP DATABASE IF EXISTS redress_$ns WITH (FORCE)" >/dev/null || true
  if [ -x "$root/.redress/venv/bin/python" ]; then
    "$root/.redress/venv/bin/python" "$root/tests/python/cleanup.py" "$nats_url" "$ns" || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

mkdir -p "$scratch/.redress/bin"
ln -s "$root/target" "$scratch/target"
ln -s "$root/target/debug/redress" "$scratch/.redress/bin/redress"
cat >"$scratch/.redress/env" <<ENV
export REDRESS_NATS_URL=$nats_url
export REDRESS_DATABASE_URL=${admin_url%/*}/redress_$ns
export REDRESS_TEST_DATABASE_URL=$admin_url
ENV
export REDRESS_BUS_NAMESPACE="$ns"
unset REDRESS_TOKEN

script=$(awk '/<!-- operations:begin -->/{on=1} /<!-- operations:end -->/{on=0}
              on && /^```sh$/{block=1; next} block && /^```$/{block=0; next} block{print}' README.md)
[ -n "$script" ] || { echo "operations: no commands between the README's markers"; exit 1; }
out="$scratch/operations.out"
if ! (cd "$scratch" && bash -euo pipefail -c "$script") >"$out" 2>&1; then
  echo "operations: a README command failed; its output:"; cat "$out"
  echo "--- the service:"; tail -n 30 "$scratch/keys/case-coordination.log" 2>/dev/null || true
  exit 1
fi
grep -q Unauthenticated "$out" || { echo "operations: the development token was not refused:"; cat "$out"; exit 1; }
echo "operations: $(grep -c . <<<"$script") README lines ran; own keys accepted, the development key refused"
