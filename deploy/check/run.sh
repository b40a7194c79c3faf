#!/usr/bin/env bash
# `make deploy-check`: everything about deploy/ that can be proven without a cluster.
#  1. generated files are current (NATS accounts from deploy/nats/bus.toml, the kustomize base
#     from deploy/kubernetes/services.toml) and bus.toml agrees with the code;
#  2. the NATS configs the cluster would run parse with a real nats-server;
#  3. `kubectl kustomize` builds every overlay; every object validates against the Kubernetes
#     $K8S_VERSION schemas (kubernetes-validate --strict); every operator resource against its
#     CRD (validate_crs.py); checkov finds nothing not justified in the manifest;
#  4. the secured bus and the R3 cluster, with real nats-servers and the service binaries.
# Needs kubectl (for its built-in kustomize), python3, nats-server, openssl, Postgres.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
K8S_VERSION=${K8S_VERSION:-1.32.0}
out=target/deploy-check
mkdir -p "$out"
step() { printf '\n== %s\n' "$*"; }

step "generated files are current"
python3 deploy/nats/generate.py --check
python3 deploy/kubernetes/generate.py --check
echo "ok"

step "validators (venv target/deploy-venv)"
venv=target/deploy-venv
req=deploy/check/requirements.txt
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$req"
  echo "$want" >"$venv/.requirements.sha256"
fi
echo "kubernetes-validate $("$venv/bin/pip" show kubernetes-validate | sed -n 's/^Version: //p'), checkov $("$venv/bin/checkov" --version)"

step "Containerfile lint (hadolint)"
"$venv/bin/hadolint" deploy/container/Containerfile && echo "hadolint: no findings"

step "NATS configs parse (nats-server -t)"
bash deploy/check/nats-configs.sh "$out/nats"

command -v kubectl >/dev/null || { echo "deploy-check needs kubectl (1.27+, for kustomize v5): see docs/deploy.md"; exit 1; }
for overlay in dev production; do
  step "overlay $overlay: kustomize, Kubernetes $K8S_VERSION schemas, CRDs, checkov"
  rendered="$out/$overlay.yaml"
  kubectl kustomize "deploy/kubernetes/overlays/$overlay" >"$rendered"
  echo "rendered $(grep -c '^kind:' "$rendered") objects"
  # CRs only warn here ("could not find schema"); validate_crs.py checks them strictly.
  "$venv/bin/kubernetes-validate" --strict -k "$K8S_VERSION" --quiet "$rendered" 2>&1 \
    | { grep -v -i -e "WARN" -e "^$" || true; }
  test "${PIPESTATUS[0]}" -eq 0
  echo "kubernetes-validate --strict -k $K8S_VERSION: ok"
  "$venv/bin/python" deploy/check/validate_crs.py "$rendered"
  # Every finding checkov would report is either fixed or skipped in the manifest with its
  # reason (checkov.io/skipN annotations), so any finding fails the check.
  "$venv/bin/checkov" -f "$rendered" --framework kubernetes --compact --quiet --skip-download \
    --output cli >"$out/$overlay.checkov.txt" 2>&1 || { cat "$out/$overlay.checkov.txt"; exit 1; }
  echo "checkov: $(grep -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' "$out/$overlay.checkov.txt" || echo 'no findings')"
done

step "the secured bus and the R3 cluster, with real processes"
# The debug binaries `make test` built (a no-op build then), or built elsewhere:
# REDRESS_DEPLOY_PREBUILT=1 with CARGO_TARGET_DIR pointing at them.
[ -n "${REDRESS_DEPLOY_PREBUILT:-}" ] || cargo build -q --locked -p redress-intake -p redress-classification -p redress-case-coordination \
  -p redress-notification -p redress-analytics -p redress-compliance-audit
"$venv/bin/python" tests/deploy/bus_permissions.py
"$venv/bin/python" tests/deploy/r3_cluster.py
