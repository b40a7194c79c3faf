#!/usr/bin/env python3
"""Validates every operator custom resource in rendered manifests against its CRD's OpenAPI
schema, kept as data in deploy/kubernetes/crds/ (kubernetes-validate only warns on CRs).

    python deploy/check/validate_crs.py rendered.yaml [more.yaml …]

Strict like `kubectl apply` (field validation Strict): a field the schema does not declare is an
error, not silently pruned. A custom resource whose CRD is not in the repository is an error
too, never skipped. Not checked: CEL rules (x-kubernetes-validations) and webhooks — they run
in the cluster only.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import jsonschema
import yaml

CRDS = Path(__file__).resolve().parents[1] / "kubernetes" / "crds"
# API groups of Kubernetes itself, validated by kubernetes-validate instead.
BUILT_IN = {"", "apps", "batch", "policy", "autoscaling", "networking.k8s.io", "rbac.authorization.k8s.io",
            "storage.k8s.io", "apiextensions.k8s.io", "admissionregistration.k8s.io", "coordination.k8s.io",
            "discovery.k8s.io", "scheduling.k8s.io", "node.k8s.io", "certificates.k8s.io"}


def strict(schema: dict) -> dict:
    """The schema with unknown fields refused wherever the CRD lists the fields."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            if node.get("nullable") and "type" in node:
                node["type"] = [node["type"], "null"]
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    # metadata is the API server's ObjectMeta, not described by CRDs.
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    return schema


def load_schemas() -> dict[tuple[str, str, str], dict]:
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served", True):
                    schemas[(group, version["name"], kind)] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


def main(paths: list[str]) -> int:
    schemas = load_schemas()
    failures = checked = 0
    for path in paths:
        for obj in yaml.safe_load_all(Path(path).read_text()):
            if not obj:
                continue
            group, _, version = obj["apiVersion"].rpartition("/")
            if group in BUILT_IN:
                continue
            name = f"{obj['kind']} {obj.get('metadata', {}).get('name')} ({obj['apiVersion']}) in {path}"
            schema = schemas.get((group, version, obj["kind"]))
            if schema is None:
                print(f"FAIL  {name}: no CRD for it in deploy/kubernetes/crds", file=sys.stderr)
                failures += 1
                continue
            errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(obj), key=lambda e: list(e.path))
            checked += 1
            for e in errors:
                where = ".".join(str(p) for p in e.absolute_path) or "(root)"
                print(f"FAIL  {name}: {where}: {e.message}", file=sys.stderr)
            failures += bool(errors)
    print(f"custom resources: {checked} checked against their CRD schemas, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
