"""The Mimir/Cortex ruler API: one rule group per service, in a ruler namespace per owning team.

API (Mimir's `<prometheus-http-prefix>/config/v1/rules`): GET lists every group of the tenant as
YAML (namespace -> groups; 404 "no rule groups found" when there are none), POST
`/{namespace}` stores one group (YAML body, 202), DELETE `/{namespace}/{group}` removes one (202,
404 when absent). Every request carries X-Scope-OrgID. obsctl owns the groups whose name starts
with `conventions.RULER_GROUP_PREFIX`; it never touches any other group.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import yaml

from obsctl.errors import PermanentError, TemporaryError
from obsctl.model import conventions as cv
from obsctl.model.artifact import Artifact, Kind, Observed
from obsctl.sinks.base import SinkContract, url_location
from obsctl.sinks.reload import raise_for

API = "/prometheus/config/v1/rules"
_RULE_KEYS = ("record", "alert", "expr", "for", "labels", "annotations")


def normalize_group(group: Mapping[str, Any]) -> dict[str, Any]:
    """A group as the ruler returns it, reduced to what obsctl writes (server defaults dropped)."""
    out: dict[str, Any] = {"name": group["name"]}
    interval = group.get("interval")
    if interval not in (None, "", 0, "0s"):
        out["interval"] = interval
    rules = []
    for rule in group.get("rules") or []:
        r: dict[str, Any] = {}
        for key in _RULE_KEYS:
            value = rule.get(key)
            if value in (None, "", {}) or (key == "for" and value in ("0s", 0)):
                continue
            r[key] = value
        rules.append(r)
    out["rules"] = rules
    return out


class RulerSink:
    """Kind.RULER_GROUP artifacts (key `<team>/<namespace>/<service>`) through the ruler API."""

    kinds = frozenset({Kind.RULER_GROUP})

    def __init__(self, url: str, tenant: str, token: str = "", *, client: httpx.Client | None = None,
                 timeout: float = 10.0, name: str = "ruler") -> None:
        self.name = name
        self.base = url.rstrip("/") + API
        self.location = url_location(url.rstrip("/"))
        headers = {"X-Scope-OrgID": tenant}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = client or httpx.Client(timeout=timeout)
        self._headers = headers

    def _call(self, method: str, path: str, what: str, body: bytes | None = None) -> httpx.Response:
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/yaml"
        try:
            return self._client.request(method, self.base + path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise TemporaryError(f"ruler {what}: {exc}") from exc

    @property
    def contract(self) -> SinkContract:
        """One depth (one GET lists every group), sequential writes."""
        return SinkContract()

    def prepare(self, desired: Iterable[Artifact]) -> None:
        """Nothing to learn before listing."""

    def list_owned(self, deep: bool = True) -> dict[str, Observed]:
        """Every obsctl group of the tenant, by artifact id; a failed or unreadable listing raises."""
        resp = self._call("GET", "", "list")
        if resp.status_code == 404:  # the ruler's answer for a tenant without any group
            return {}
        raise_for(resp, "ruler list")
        try:
            data = yaml.safe_load(resp.text) or {}
        except yaml.YAMLError as exc:
            raise TemporaryError(f"ruler list: unreadable YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise TemporaryError("ruler list: expected a map of namespace -> groups")
        out: dict[str, Observed] = {}
        for namespace, groups in sorted(data.items()):
            for group in groups or []:
                parsed = cv.parse_ruler_group_name(str(group.get("name", "")))
                if parsed is None:
                    continue
                key = cv.ruler_group_key(str(namespace), *parsed)
                aid = f"{Kind.RULER_GROUP.value}/{key}"
                body = cv.canonical_yaml(normalize_group(group))
                # the group name carries the service: the owner mark carry-forward needs
                out[aid] = Observed(aid, body, hashlib.sha256(body).hexdigest(), owner=f"{parsed[0]}/{parsed[1]}")
        return out

    def put(self, artifact: Artifact) -> None:
        """Store the group in the ruler namespace of its team (the first part of the key)."""
        namespace = artifact.key.split("/", 1)[0]
        try:
            group = yaml.safe_load(artifact.body)
        except yaml.YAMLError as exc:
            raise PermanentError(f"{artifact.id}: body is not YAML: {exc}") from exc
        if cv.parse_ruler_group_name(str(group.get("name", ""))) is None:
            raise PermanentError(f"{artifact.id}: group name lacks the {cv.RULER_GROUP_PREFIX!r} ownership prefix")
        resp = self._call("POST", "/" + quote(namespace, safe=""), f"set {artifact.id}", artifact.body)
        raise_for(resp, f"ruler set {artifact.id}")

    def delete(self, observed: Observed) -> None:
        """Delete one owned group; a group already gone counts as deleted."""
        key = observed.id.removeprefix(Kind.RULER_GROUP.value + "/")
        parts = key.split("/")
        if len(parts) != 3:
            raise PermanentError(f"{observed.id}: not a ruler group key")
        team, namespace, service = parts
        group = cv.ruler_group_name_of(namespace, service)
        resp = self._call("DELETE", f"/{quote(team, safe='')}/{quote(group, safe='')}", f"delete {observed.id}")
        if resp.status_code == 404:
            return
        raise_for(resp, f"ruler delete {observed.id}")

    def finish(self) -> None:
        """Nothing to do: the ruler picks groups up on its own."""

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
