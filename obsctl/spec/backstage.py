"""Backstage catalog entities (backstage.io/v1alpha1): Component, Group, System, API.

A Component of type service or website becomes a service. Simple cases need only annotations
under `obsctl.dev/`; everything else comes from an attached obsctl.dev/v1 document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from obsctl.model import conventions as cv
from obsctl.model.entities import EntityRef, Team
from obsctl.spec.fields import Reader

API_VERSION = "backstage.io/v1alpha1"
PREFIX = "obsctl.dev/"
ANNOTATIONS = {"tier", "protocol", "runtime", "availability", "latency", "period", "environment", "runbook",
               "enabled", "latency-buckets", "paging"}
SERVICE_TYPES = {"service", "website"}
NAME_RE = cv.NAME_RE
NAMESPACE_RE = cv.NAMESPACE_RE
ORPHAN = "backstage.io/orphan"
PAGERDUTY_SERVICE = "pagerduty.com/service-id"
OPSGENIE_TEAM = "opsgenie.com/team"
SLACK_CHANNEL = "slack.com/channel"
# What routing annotations may hold: they reach file paths ({service_id}) and receiver settings.
ROUTING_VALUES = {
    PAGERDUTY_SERVICE: (re.compile(r"^[A-Za-z0-9]{1,32}$"), "a PagerDuty service id (letters and digits)"),
    OPSGENIE_TEAM: (re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$"), "an Opsgenie team name"),
    SLACK_CHANNEL: (re.compile(r"^#?[a-z0-9][a-z0-9._-]{0,79}$"), "a Slack channel name (#team-alerts)"),
}


def routing_annotation(r: Reader, annotations: dict[str, str], key: str) -> str:
    """A routing annotation's value; an error when it is not a safe value of its kind (the entity is held back:
    ignoring the value would send its alerts to another destination)."""
    value = annotations.get(key, "").strip()
    if not value:
        return ""
    pattern, what = ROUTING_VALUES[key]
    if not pattern.match(value):
        r.problem(("metadata", "annotations", key), f"{value[:80]!r} is not {what}; the entity is held back "
                                                    "(serve keeps routing its alerts as before)")
        return ""
    return value


@dataclass
class ComponentEntity:
    """The parts of a Component that obsctl reads."""

    ref: EntityRef
    owner: EntityRef | None
    spec_type: str
    lifecycle: str
    system: str
    title: str
    description: str
    annotations: dict[str, str]
    labels: dict[str, str]
    links: list[dict[str, Any]]
    line: int
    fields: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[EntityRef, ...] = ()


def check_metadata(r: Reader, data: dict[str, Any], kind: str) -> EntityRef | None:
    """Name and namespace follow Backstage's rules; returns the entity ref."""
    meta = r.mapping(data.get("metadata"), ("metadata",))
    name = r.text(meta, "name", ("metadata",), required=True)
    namespace = r.text(meta, "namespace", ("metadata",), default="default")
    # an invalid name hides which entity the document is (perhaps one already rendered, after a typo): the
    # read is then incomplete, so nothing is pruned until it is fixed (reconcile.converge.carry_forward)
    held = "; nothing obsctl owns is deleted until it is fixed"
    if "name" in meta and not name:
        r.problem(("metadata", "name"), f"must not be empty{held}")
    if name and not NAME_RE.match(name):
        r.problem(("metadata", "name"), f"name {name!r} is not a valid entity name (1-63 of [A-Za-z0-9-_.], "
                                        f"starting and ending with a letter or digit){held}")
    if len(namespace) > 63 or not NAMESPACE_RE.match(namespace):
        r.problem(("metadata", "namespace"), f"namespace {namespace!r} is not a DNS label{held}")
    ok = bool(name) and bool(NAME_RE.match(name)) and len(namespace) <= 63 and bool(NAMESPACE_RE.match(namespace))
    return EntityRef(kind.lower(), namespace, name) if ok else None


def parse_component(r: Reader, data: dict[str, Any]) -> ComponentEntity | None:
    """A Component entity; None when it is not a service or is unusable."""
    ref = check_metadata(r, data, "component")
    meta = r.mapping(data.get("metadata"), ("metadata",))
    spec = r.mapping(data.get("spec"), ("spec",))
    annotations = {str(k): str(v) for k, v in r.mapping(meta.get("annotations"), ("metadata", "annotations")).items()}
    labels = {str(k): str(v) for k, v in r.mapping(meta.get("labels"), ("metadata", "labels")).items()}
    for key in annotations:
        if key.startswith(PREFIX) and key[len(PREFIX):] not in ANNOTATIONS:
            import difflib

            hint = difflib.get_close_matches(key[len(PREFIX):], sorted(ANNOTATIONS), n=1)
            more = f"; did you mean {PREFIX}{hint[0]}?" if hint else ""
            r.problem(("metadata", "annotations", key), f"unknown obsctl annotation {key!r}{more}")
    if PREFIX + "latency-buckets" in annotations:
        r.warn(("metadata", "annotations", PREFIX + "latency-buckets"),
               "not used: latency buckets are not read from an annotation; set latencyBuckets in an obsctl.dev/v1 "
               "document for this Component")
    spec_type = r.text(spec, "type", ("spec",), required=True)
    owner_text = r.text(spec, "owner", ("spec",), required=True)
    if ref is None:
        return None
    owner = EntityRef.parse(owner_text, "group", ref.namespace) if owner_text else None
    system = r.text(spec, "system", ("spec",))
    depends_on = dependency_refs(r, spec.get("dependsOn"), ("spec", "dependsOn"), ref.namespace)
    return ComponentEntity(
        ref=ref, owner=owner, spec_type=spec_type.lower(), lifecycle=r.text(spec, "lifecycle", ("spec",)),
        system=system, title=r.text(meta, "title", ("metadata",)),
        description=r.text(meta, "description", ("metadata",)), annotations=annotations, labels=labels,
        links=[x for x in r.seq(meta.get("links"), ("metadata", "links")) if isinstance(x, dict)],
        line=r.doc.line(), depends_on=depends_on,
    )


DEPENDENCY_KINDS = ("component", "resource")


def dependency_refs(r: Reader, raw: Any, path: tuple[str | int, ...], namespace: str) -> tuple[EntityRef, ...]:
    """`dependsOn` entries as Component or Resource refs; a bad entry is a warning and left out."""
    out: list[EntityRef] = []
    for i, item in enumerate(r.seq(raw, path)):
        text = str(item).strip()
        ref = EntityRef.parse(text, "component", namespace) if text else None
        if ref is None or ref.kind not in DEPENDENCY_KINDS or not NAME_RE.match(ref.name) or \
                not NAMESPACE_RE.match(ref.namespace):
            r.warn((*path, i), f"{text!r} is not a Component or Resource reference (component:ns/name, "
                               "resource:ns/name); ignored for dependency-aware paging")
            continue
        out.append(ref)
    return tuple(sorted(set(out), key=str))


def parse_group(r: Reader, data: dict[str, Any], origin_file: str) -> Team | None:
    """A Group entity becomes a team."""
    from obsctl.model.entities import Origin

    ref = check_metadata(r, data, "group")
    meta = r.mapping(data.get("metadata"), ("metadata",))
    spec = r.mapping(data.get("spec"), ("spec",))
    annotations = {str(k): str(v) for k, v in r.mapping(meta.get("annotations"), ("metadata", "annotations")).items()}
    profile = r.mapping(spec.get("profile"), ("spec", "profile"))
    if ref is None:
        return None
    return Team(
        ref=ref,
        title=r.text(profile, "displayName", ("spec", "profile")) or r.text(meta, "title", ("metadata",)),
        pagerduty_service_id=routing_annotation(r, annotations, PAGERDUTY_SERVICE),
        opsgenie_team=routing_annotation(r, annotations, OPSGENIE_TEAM),
        slack_channel=routing_annotation(r, annotations, SLACK_CHANNEL),
        origin=Origin(origin_file, r.doc.line(), "backstage"),
    )
