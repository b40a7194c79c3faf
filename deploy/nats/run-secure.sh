#!/usr/bin/env bash
# `REDRESS_NATS_SECURE=1 make run`: the suite on a bus with the production permissions. Starts
# a second nats-server (port ${REDRESS_NATS_SECURE_PORT:-4322}, JetStream in .redress/nats-secure)
# with deploy/nats/generated/accounts.conf and fresh random passwords, then intake,
# classification and case-coordination as separate processes, each with its own NATS user —
# as in a cluster, unlike `redress dev`, which runs them in one process with one connection.
# Ctrl-C stops everything it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/.redress/nats-secure"
port=${REDRESS_NATS_SECURE_PORT:-4322}
bin="${CARGO_TARGET_DIR:-$root/target}/debug"
mkdir -p "$dir"
python3 "$root/deploy/nats/generate.py" --check >/dev/null
cp "$root/deploy/nats/generated/accounts.conf" "$dir/"
cat >"$dir/nats.conf" <<CONF
port: $port
host: 127.0.0.1
jetstream { store_dir: "$dir/js" }
include "accounts.conf"
CONF
# One random password per user, kept (mode 600) so that clients can be pointed at the bus.
umask 077
python3 - "$root" >"$dir/passwords.env" <<'PY'
import secrets, sys, tomllib
sys.path.insert(0, sys.argv[1] + "/deploy/nats")
import generate
for u in generate.users(tomllib.loads(generate.DATA.read_text())):
    # A letter first, then hex: nats-server parses the variable's value (`1…` reads as a number).
    print(f"{generate.password_variable(u['user'])}=p{secrets.token_hex(16)}")
PY
# Intake's data keys for this local bus, made once and kept (a new key would leave earlier
# complaints sealed under a key nobody holds).
if [ ! -f "$dir/intake-keys.env" ]; then
  k=$(head -c 32 /dev/urandom | base64); p=$(head -c 32 /dev/urandom | base64)
  printf 'REDRESS_INTAKE_KEYS=local1:%s\nREDRESS_INTAKE_ACTIVE_KEY=local1\nREDRESS_INTAKE_PSEUDONYM_KEY=%s\n' "$k" "$p" \
    >"$dir/intake-keys.env"
fi
set -a; source "$dir/passwords.env"; source "$dir/intake-keys.env"; set +a
# Tokens from `redress token` (the development key) are accepted, as in `redress dev`.
export REDRESS_JWT_PUBLIC_KEYS="${REDRESS_JWT_PUBLIC_KEYS:-$root/deploy/local/dev-keys/dev.pem}"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
nats-server -c "$dir/nats.conf" -l "$dir/server.log" & pids+=($!)
pw() { local v="REDRESS_NATS_PW_$(echo "$1" | tr 'a-z-' 'A-Z_')"; echo "${!v}"; }
grpc=50061; http=9191
for svc in intake classification case-coordination; do
  REDRESS_NATS_URL="nats://127.0.0.1:$port" REDRESS_NATS_USER="$svc" REDRESS_NATS_PASSWORD="$(pw "$svc")" \
    REDRESS_GRPC_ADDR="127.0.0.1:$grpc" REDRESS_HTTP_ADDR="127.0.0.1:$http" REDRESS_LOG_FORMAT=pretty \
    "$bin/redress-$svc" >"$dir/$svc.log" 2>&1 & pids+=($!)
  echo "  $svc  gRPC 127.0.0.1:$grpc  http://127.0.0.1:$http/readyz  log $dir/$svc.log"
  grpc=$((grpc + 1)); http=$((http + 1))
done
cat <<MSG

Redress on a secured bus: nats://127.0.0.1:$port (users and permissions: deploy/nats/bus.toml)
Passwords of every user (channels channel-<name>, departments department-<slug>): $dir/passwords.env
A client connects as its user with the inbox prefix _INBOX_<user> (docs/deploy.md, section 4).
Ctrl-C stops the server and the services.
MSG
wait -n "${pids[@]}"
