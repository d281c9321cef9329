"""Validate Kubernetes manifests against the pinned CRD schemas in tests/data/crds (see its README).

A manifest is checked the way the API server's structural-schema validation does the parts that
matter here: the openAPIV3Schema of the served version named by its apiVersion (JSON Schema, with
the `x-kubernetes-*` extensions ignored), plus metadata.name as a DNS subdomain and label values
as Kubernetes label values, which the schema leaves to the API server.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRDS = Path(__file__).resolve().parents[1] / "data" / "crds"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@cache
def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema, for every served version of every pinned CRD."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                out[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return out


def crd_errors(manifest: dict[str, Any]) -> list[str]:
    """Every reason the API server would reject `manifest` (empty when it is accepted)."""
    key = (str(manifest.get("apiVersion")), str(manifest.get("kind")))
    schema = _schemas().get(key)
    if schema is None:
        return [f"no pinned CRD serves {key[0]} {key[1]}"]
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(manifest)]
    meta = manifest.get("metadata") or {}
    name = str(meta.get("name", ""))
    if not (0 < len(name) <= 253 and _DNS_SUBDOMAIN.match(name)):
        errors.append(f"metadata.name {name!r} is not a DNS subdomain")
    namespace = meta.get("namespace")
    if namespace is not None and not (len(str(namespace)) <= 63 and _DNS_LABEL.match(str(namespace))):
        errors.append(f"metadata.namespace {namespace!r} is not a DNS label")
    for label, value in (meta.get("labels") or {}).items():
        if not (len(str(value)) <= 63 and _LABEL_VALUE.match(str(value))):
            errors.append(f"label {label}={value!r} is not a label value")
    return errors
