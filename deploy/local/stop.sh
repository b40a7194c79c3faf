#!/usr/bin/env bash
# Stops what ensure-deps.sh started (and nothing it merely reused).
set -uo pipefail
state="$(cd "$(dirname "$0")/../.." && pwd)/.redress"
if [ -f "$state/nats.pid" ]; then
  kill "$(cat "$state/nats.pid")" 2>/dev/null && echo "stopped local nats-server"
  rm -f "$state/nats.pid" "$state/nats.url"
fi
if [ -f "$state/pg.port" ]; then
  ctl=$(command -v pg_ctl || ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1)
  if [ "$(id -u)" -eq 0 ]; then owner=$(stat -c %U "$state/pg"); runuser -u "$owner" -- "$ctl" -D "$state/pg" -m fast stop >/dev/null 2>&1
  else "$ctl" -D "$state/pg" -m fast stop >/dev/null 2>&1; fi && echo "stopped local Postgres"
  rm -f "$state/pg.port"
fi
rm -f "$state/env"
