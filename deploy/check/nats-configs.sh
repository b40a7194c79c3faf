#!/usr/bin/env bash
# The NATS server configs of the Kubernetes components — the 3-node cluster, the dev single
# server, and the cluster with TLS — parsed by a real nats-server (`-t`), with every password
# variable set and a throwaway certificate where the TLS files would be mounted.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(realpath -m "${1:-$(mktemp -d)}")
rm -rf "$work"; mkdir -p "$work"
comp="$root/deploy/kubernetes/components"
server=${REDRESS_NATS_SERVER:-nats-server}
vars=$(python3 - "$root" <<'PY'
import sys, tomllib
sys.path.insert(0, sys.argv[1] + "/deploy/nats")
import generate
bus = tomllib.loads(generate.DATA.read_text())
print(" ".join(f"{generate.password_variable(u['user'])}=check" for u in generate.users(bus)))
PY
)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=nats \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
cp "$work/tls.crt" "$work/ca.crt"
variant() {  # name, nats.conf, tls.conf, cluster-tls.conf
  local dir="$work/$1"; mkdir -p "$dir"
  cp "$2" "$dir/nats.conf"; cp "$comp/nats/accounts.conf" "$dir/"
  sed "s#/etc/nats/tls#$work#g" "$3" >"$dir/tls.conf"
  sed "s#/etc/nats/tls#$work#g" "$4" >"$dir/cluster-tls.conf"
  sed -i "s#store_dir: /data#store_dir: $dir/js#; s#/var/run/nats/#$dir/#" "$dir/nats.conf"
  (cd "$dir" && env $vars POD_NAME=nats-0 "$server" -t -c nats.conf)
}
variant cluster "$comp/nats/nats.conf" "$comp/nats/tls.conf" "$comp/nats/cluster-tls.conf"
variant dev "$root/deploy/kubernetes/overlays/dev/single-nats/nats.conf" "$comp/nats/tls.conf" "$comp/nats/cluster-tls.conf"
variant cluster-tls "$comp/nats/nats.conf" "$comp/tls/tls.conf" "$comp/tls/cluster-tls.conf"
