"""Sloth itself (the pinned release, built by scripts/build-sloth.sh) and what its rules mean.

`generate` runs `sloth generate` on a spec file and returns its rule groups (from a plain rule file
or from PrometheusRule manifests). `sloth_alerts` reads Sloth's alerts back into what a person
receives: per SLO, the page and ticket alert with the labels the alert carries once fired (its own
labels plus the SLO labels it inherits from the recorded series) and its annotations.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.support.binaries import missing_component

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSION = "v0.16.0"
# Labels Sloth adds on its own: its SLO identity on every series, the window on recordings, the
# severity class on alerts. Annotations it adds unless the spec sets them.
SLOTH_OWN_LABELS = frozenset({"sloth_id", "sloth_service", "sloth_slo", "sloth_window", "sloth_severity"})
SLOTH_DEFAULT_ANNOTATIONS = frozenset({"title", "summary"})
_ID = re.compile(r'sloth_id="([^"]+)"')


@cache
def sloth_binary() -> Path:
    """The Sloth binary: $OBSCTL_SLOTH, or built (and cached by version) by scripts/build-sloth.sh."""
    given = os.environ.get("OBSCTL_SLOTH")
    if given:
        return Path(given)
    script = REPO_ROOT / "scripts" / "build-sloth.sh"
    try:
        out = subprocess.run([str(script)], capture_output=True, text=True, timeout=1800, check=False,
                             env={**os.environ, "OBSCTL_SLOTH_VERSION": VERSION})
    except subprocess.TimeoutExpired:
        missing_component("building Sloth with go install timed out")
        raise AssertionError("unreachable") from None
    if out.returncode != 0:
        missing_component(f"Sloth {VERSION} could not be built: {out.stderr[-600:]}")
    return Path(out.stdout.strip())


def generate(spec: Path, out_dir: Path) -> list[dict[str, Any]]:
    """`sloth generate -i spec`: every rule group it writes (PrometheusRule manifests unwrapped)."""
    out = out_dir / f"{spec.stem}.sloth.yml"
    res = subprocess.run([str(sloth_binary()), "generate", "-i", str(spec), "-o", str(out)],
                         capture_output=True, text=True, timeout=120, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"sloth generate {spec.name} failed: {res.stderr[-1500:]}")
    groups: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(out.read_text()):
        if not doc:
            continue
        groups.extend(doc["spec"]["groups"] if doc.get("kind") == "PrometheusRule" else doc["groups"])
    return groups


@dataclass
class SlothAlert:
    """One Sloth alert (page or ticket) of one SLO, as a person receives it."""

    name: str
    severity: str  # sloth_severity: page or ticket
    labels: dict[str, str]  # the spec's labels only (Sloth's own removed)
    annotations: dict[str, str]  # the spec's annotations only (Sloth's defaults removed unless overridden)
    rule: dict[str, Any] = field(repr=False, default_factory=dict)


def sloth_alerts(groups: list[dict[str, Any]]) -> dict[tuple[str, str], list[SlothAlert]]:
    """(service, slo) -> its alerts, with the labels each inherits from the SLO's recorded series."""
    series_labels: dict[str, dict[str, str]] = {}
    identity: dict[str, tuple[str, str]] = {}
    for group in groups:
        for rule in group["rules"]:
            labels = rule.get("labels", {})
            if "record" in rule and "sloth_id" in labels and rule["record"].startswith("slo:sli_error:ratio_rate"):
                series_labels[labels["sloth_id"]] = {k: v for k, v in labels.items() if k not in SLOTH_OWN_LABELS}
                identity[labels["sloth_id"]] = (labels["sloth_service"], labels["sloth_slo"])
    out: dict[tuple[str, str], list[SlothAlert]] = {key: [] for key in identity.values()}
    for group in groups:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            sid = _ID.search(rule["expr"])
            assert sid, rule["expr"]
            labels = {**series_labels[sid.group(1)], **rule.get("labels", {})}
            severity = labels.pop("sloth_severity")
            ann = dict(rule.get("annotations", {}))
            out[identity[sid.group(1)]].append(SlothAlert(
                rule["alert"], severity, {k: v for k, v in labels.items() if k not in SLOTH_OWN_LABELS}, ann, rule))
    return out
