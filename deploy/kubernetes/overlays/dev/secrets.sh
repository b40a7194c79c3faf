#!/usr/bin/env bash
# Makes every Secret the dev overlay reads, with random values, in namespace redress-dev
# (or $1). Run once before `kubectl apply -k deploy/kubernetes/overlays/dev`; run again to
# rotate (then restart the pods). Production reads the same Secrets through ExternalSecrets.
set -euo pipefail
ns=${1:-redress-dev}
root=$(cd "$(dirname "$0")/../../../.." && pwd)
# A letter, then hex: URL-safe (database URLs) and read as a string by nats-server, which parses
# a `$VAR` value as a config value (`1…` would be a number).
rand() { echo "p$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"; }
apply() { kubectl -n "$ns" create secret "$@" --dry-run=client -o yaml | kubectl -n "$ns" apply -f -; }
kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"

users=$(python3 - "$root" <<'PY'
import sys, tomllib
sys.path.insert(0, sys.argv[1] + "/deploy/nats")
import generate
print(" ".join(u["user"] for u in generate.users(tomllib.loads(generate.DATA.read_text()))))
PY
)
declare -A pw
args=()
for u in $users; do pw[$u]=$(rand); args+=(--from-literal="$u=${pw[$u]}"); done
apply generic redress-nats-users "${args[@]}"
for svc in intake classification case-coordination notification analytics compliance-audit; do
  apply generic "redress-nats-$svc" --from-literal=password="${pw[$svc]}"
done
for role in intake classification cases notification analytics audit; do
  apply generic "redress-db-$role" --type=kubernetes.io/basic-auth \
    --from-literal=username="$role" --from-literal=password="$(rand)"
done
key() { head -c 32 /dev/urandom | base64; }
apply generic redress-intake-keys --from-literal=keys="k1:$(key)" --from-literal=active=k1 \
  --from-literal=pseudonym="$(key)"
# Bearer tokens: a fresh Ed25519 pair; the private key stays with whoever mints dev tokens.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
openssl genpkey -algorithm ed25519 -out "$tmp/redress.key.pem"
openssl pkey -in "$tmp/redress.key.pem" -pubout -out "$tmp/redress.pem"
# Notification's service key: it signs GetContact calls; intake trusts the public half.
openssl genpkey -algorithm ed25519 -out "$tmp/notification.key.pem"
openssl pkey -in "$tmp/notification.key.pem" -pubout -out "$tmp/notification.pem"
apply generic redress-jwt-public-keys --from-file=redress.pem="$tmp/redress.pem" \
  --from-file=notification.pem="$tmp/notification.pem"
apply generic redress-notification-service-key --from-file=notification.pem="$tmp/notification.key.pem"
cp "$tmp/redress.key.pem" "./redress-dev-signing.key.pem" && chmod 600 ./redress-dev-signing.key.pem
# No e-mail or SMS provider in dev (notification then sends nothing; its README).
apply generic redress-notification-providers
# The audit log's signer key is made by the service's own binary (its format is its own).
if command -v redress-compliance-audit >/dev/null; then
  redress-compliance-audit keygen "redress-dev" "$tmp/signing.key" >/dev/null
  apply generic redress-compliance-audit-signing --from-file=signing.key="$tmp/signing.key"
else
  echo "redress-compliance-audit is not on PATH: make the Secret redress-compliance-audit-signing (key signing.key)"
  echo "  with \`redress-compliance-audit keygen redress-dev signing.key\` (services/compliance-audit/README.md)"
fi
echo "secrets made in $ns; dev token signing key: ./redress-dev-signing.key.pem (kid redress)"
