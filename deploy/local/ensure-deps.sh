#!/usr/bin/env bash
# Makes sure NATS (with JetStream) and Postgres answer, and writes their URLs to .redress/env.
#
# 1. A URL you set (REDRESS_NATS_URL / REDRESS_DATABASE_URL) must answer: if it is malformed
#    or nothing answers there, this stops and says so — it never replaces your URL with a
#    throwaway server.
# 2. Unset, the defaults (127.0.0.1:4222 and 127.0.0.1:5432) are reused when they answer;
#    otherwise a local nats-server -js and a local Postgres (initdb + pg_ctl) start under
#    .redress/ on free ports. REDRESS_LOCAL_DEPS=1 asks for the local ones whatever answers.
# 3. If the binaries are missing, install them where the system allows it (Debian/Ubuntu as
#    root), else print the exact command and stop.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
state="$root/.redress"
mkdir -p "$state"

say() { printf 'deps: %s\n' "$*" >&2; }

nats_set=${REDRESS_NATS_URL:+yes}
db_set=${REDRESS_DATABASE_URL:+yes}
local_only=${REDRESS_LOCAL_DEPS:-}
nats_url=${REDRESS_NATS_URL:-nats://127.0.0.1:4222}
db_url=${REDRESS_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/redress}

mask() { # URL with its password as ****
  printf '%s' "$1" | sed -E 's#(://[^:/@]+):[^@/]*@#\1:****@#'
}

# A URL the user set must be well formed and answer; say which variable, which value.
refuse() { # variable value problem
  say "$1=$(mask "$2"): $3"
  say "fix or unset $1 (unset, make starts a local server when none answers)"
  exit 1
}

well_formed() { # scheme URL
  case "$2" in
    "$1"://*) local rest=${2#*://}; rest=${rest#*@}; rest=${rest%%/*}
              [ -n "${rest%%:*}" ] && [[ "${rest##*:}" =~ ^[0-9]+$ ]] ;;
    *) return 1 ;;
  esac
}

host_port() { # URL -> "host port"
  local rest=${1#*://}; rest=${rest#*@}; rest=${rest%%/*}
  echo "${rest%%:*} ${rest##*:}"
}

answers() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

free_port() { # start
  local port=$1
  while answers 127.0.0.1 "$port"; do port=$((port + 1)); done
  echo "$port"
}

pg_bin() { # name -> path of a Postgres server binary, or nothing
  command -v "$1" 2>/dev/null && return
  ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1
}

install_hint() {
  case "$(uname -s)" in
    Darwin) echo "brew install nats-server postgresql@15" ;;
    *) if command -v apt-get >/dev/null; then echo "sudo apt-get install -y nats-server postgresql"
       elif command -v dnf >/dev/null; then echo "sudo dnf install -y nats-server postgresql-server"
       elif command -v apk >/dev/null; then echo "sudo apk add nats-server postgresql"
       else echo "install nats-server (https://docs.nats.io) and PostgreSQL 15 from your package manager"; fi ;;
  esac
}

ensure_binaries() { # names...
  local missing=()
  for b in "$@"; do [ -n "$(pg_bin "$b")" ] || missing+=("$b"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing nats-server and postgresql (missing: ${missing[*]})"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server postgresql >/dev/null
    return 0
  fi
  say "missing: ${missing[*]}. Install them with:"
  say "  $(install_hint)"
  exit 1
}

# --- NATS ---------------------------------------------------------------------------------
if [ -n "$nats_set" ] && [ -z "$local_only" ]; then
  well_formed nats "$nats_url" || well_formed tls "$nats_url" \
    || refuse REDRESS_NATS_URL "$nats_url" "not a URL such as nats://host:4222"
fi
read -r nats_host nats_port <<<"$(host_port "$nats_url")"
if [ -z "$local_only" ] && answers "$nats_host" "$nats_port"; then
  say "NATS answers at $nats_url"
elif [ -n "$nats_set" ] && [ -z "$local_only" ]; then
  refuse REDRESS_NATS_URL "$nats_url" "nothing answers at $nats_host:$nats_port (is nats-server running with -js?)"
elif [ -f "$state/nats.pid" ] && kill -0 "$(cat "$state/nats.pid")" 2>/dev/null; then
  nats_url=$(cat "$state/nats.url"); say "reusing local NATS at $nats_url"
else
  ensure_binaries nats-server
  port=$(free_port 14222)
  "$(pg_bin nats-server)" -a 127.0.0.1 -p "$port" -js -sd "$state/nats" >"$state/nats.log" 2>&1 &
  echo $! >"$state/nats.pid"
  nats_url="nats://127.0.0.1:$port"; echo "$nats_url" >"$state/nats.url"
  for _ in $(seq 100); do answers 127.0.0.1 "$port" && break; sleep 0.1; done
  answers 127.0.0.1 "$port" || { say "nats-server did not start; see $state/nats.log"; exit 1; }
  say "started nats-server -js at $nats_url (log: .redress/nats.log)"
fi

# --- Postgres -----------------------------------------------------------------------------
if [ -n "$db_set" ] && [ -z "$local_only" ]; then
  well_formed postgres "$db_url" || well_formed postgresql "$db_url" \
    || refuse REDRESS_DATABASE_URL "$db_url" "not a URL such as postgres://user@host:5432/redress"
fi
read -r pg_host pg_port <<<"$(host_port "$db_url")"
db_name=${db_url##*/}; db_name=${db_name%%\?*}
if [ -z "$local_only" ] && answers "$pg_host" "$pg_port"; then
  say "Postgres answers at $pg_host:$pg_port"
elif [ -n "$db_set" ] && [ -z "$local_only" ]; then
  refuse REDRESS_DATABASE_URL "$db_url" "nothing answers at $pg_host:$pg_port (is Postgres running?)"
else
  ensure_binaries initdb pg_ctl postgres
  pgdata="$state/pg"
  as_owner=()
  if [ "$(id -u)" -eq 0 ]; then
    # initdb refuses to run as root: the cluster belongs to the postgres (or nobody) user.
    owner=$(id -u postgres >/dev/null 2>&1 && echo postgres || echo nobody)
    as_owner=(runuser -u "$owner" --)
    mkdir -p "$pgdata" && chown "$owner" "$pgdata" "$state"
  fi
  if [ ! -s "$pgdata/PG_VERSION" ]; then
    "${as_owner[@]}" "$(pg_bin initdb)" -D "$pgdata" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$state/initdb.log" 2>&1 \
      || { say "initdb failed; see $state/initdb.log"; exit 1; }
  fi
  if [ -f "$state/pg.port" ] && answers 127.0.0.1 "$(cat "$state/pg.port")"; then
    port=$(cat "$state/pg.port")
  else
    port=$(free_port 15432)
    "${as_owner[@]}" "$(pg_bin pg_ctl)" -D "$pgdata" -l "$pgdata/server.log" -w \
      -o "-p $port -k /tmp -c listen_addresses=127.0.0.1" start >/dev/null \
      || { say "Postgres did not start; see $pgdata/server.log"; exit 1; }
    echo "$port" >"$state/pg.port"
  fi
  pg_host=127.0.0.1; pg_port=$port
  db_url="postgres://postgres@127.0.0.1:$port/$db_name"
  say "started local Postgres at 127.0.0.1:$port (data: .redress/pg)"
fi

# The suite's database; the test harness creates its own databases beside it.
admin_url="postgres://postgres@$pg_host:$pg_port/postgres"
if psql_bin=$(pg_bin psql) && [ -n "$psql_bin" ]; then
  "$psql_bin" "$admin_url" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db_name'" | grep -q 1 \
    || "$psql_bin" "$admin_url" -qc "CREATE DATABASE $db_name" >/dev/null
fi

cat >"$state/env" <<ENV
export REDRESS_NATS_URL=$nats_url
export REDRESS_DATABASE_URL=$db_url
export REDRESS_TEST_DATABASE_URL=$admin_url
ENV
