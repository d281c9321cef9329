"""Fixtures for the Grafana emulator's own tests: a running emulator, HTTP clients, an OpenAPI checker."""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft4Validator

from tests.grafana_emulator import GrafanaEmulator, reference_dir, resolve_schema_path

OPENAPI_FILE = "api-merged.json"


def _require_reference() -> Path:
    """The reference directory, or fail (CI=true) / skip when Grafana's spec and schemas are not on this machine."""
    ref = reference_dir()
    missing = [p for p in (ref / OPENAPI_FILE, resolve_schema_path(None)) if not p.is_file()]
    if missing:
        reason = f"Grafana reference files missing: {', '.join(map(str, missing))} (set OBSCTL_GRAFANA_REFERENCE)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: the reference data is required)", pytrace=False)
        pytest.skip(reason)
    return ref


def minimal_dashboard(title: str = "Service overview", **extra: Any) -> dict[str, Any]:
    """The smallest dashboard that validates against the v11.6 schema."""
    return {"title": title, "schemaVersion": 41, "templating": {"list": []}, "annotations": {"list": []}, **extra}


@pytest.fixture
def emu() -> Iterator[GrafanaEmulator]:
    """A started emulator in strict-schema mode with the default tokens; stopped after the test."""
    _require_reference()
    with GrafanaEmulator() as emulator:
        yield emulator


@pytest.fixture
def make_emu() -> Iterator[Callable[..., GrafanaEmulator]]:
    """Factory for emulators with non-default options; every one started is stopped after the test."""
    _require_reference()
    started: list[GrafanaEmulator] = []

    def factory(**kwargs: Any) -> GrafanaEmulator:
        emulator = GrafanaEmulator(**kwargs).start()
        started.append(emulator)
        return emulator

    yield factory
    for emulator in started:
        emulator.stop()


# The emulator speaks plain HTTP; sharing one SSL context saves ~70 ms per httpx.Client.
_SSL_CONTEXT = ssl.create_default_context()


def http_client(url: str, token: str | None = None, **kwargs: Any) -> httpx.Client:
    """An httpx client for an emulator, with a bearer token when given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs.setdefault("timeout", 5)
    return httpx.Client(base_url=url, headers=headers, verify=_SSL_CONTEXT, **kwargs)


class Api:
    """httpx clients bound to one emulator, one per role, plus an anonymous one."""

    def __init__(self, url: str) -> None:
        self._clients = {role: http_client(url, f"{role.lower()}-token") for role in ("Admin", "Editor", "Viewer")}
        self.anonymous = http_client(url)
        self.admin = self._clients["Admin"]
        self.editor = self._clients["Editor"]
        self.viewer = self._clients["Viewer"]

    def close(self) -> None:
        for client in (*self._clients.values(), self.anonymous):
            client.close()


@pytest.fixture
def api(emu: GrafanaEmulator) -> Iterator[Api]:
    """HTTP clients for the `emu` fixture."""
    clients = Api(emu.url)
    yield clients
    clients.close()


class OpenApi:
    """Validates response bodies against the 200 responses of Grafana's Swagger 2.0 spec (api-merged.json)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.definitions = {name: _to_json_schema(d) for name, d in spec["definitions"].items()}

    def response_schema(self, path: str, method: str, status: str = "200") -> dict[str, Any]:
        """The JSON schema of a documented response, with its $refs resolvable."""
        responses = self.spec["paths"][path][method.lower()]["responses"]
        if status not in responses and int(status) >= 400:
            # An error status the spec omits for this route: Grafana still answers with its error body.
            return {"$ref": "#/definitions/ErrorResponseBody", "definitions": self.definitions}
        response = responses[status]
        if "$ref" in response:
            response = self.spec["responses"][response["$ref"].rsplit("/", 1)[1]]
        assert "schema" in response, f"{method} {path} {status} has no schema in the spec"
        return {**_to_json_schema(response["schema"]), "definitions": self.definitions}

    def check(
        self, path: str, method: str, payload: Any, status: str = "200", extra_keys: frozenset[str] = frozenset()
    ) -> None:
        """Assert that `payload` validates and uses no key the spec does not declare (except names in `extra_keys`)."""
        schema = self.response_schema(path, method, status)
        errors = sorted(Draft4Validator(schema).iter_errors(payload), key=lambda e: list(e.path))
        assert not errors, f"{method} {path}: {[f'{list(e.path)}: {e.message}' for e in errors]}"
        undeclared = sorted(
            k for k in set(self._undeclared(schema, payload, "")) if k.rsplit(".", 1)[-1] not in extra_keys
        )
        assert not undeclared, f"{method} {path}: keys not in the spec: {undeclared}"

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.definitions[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    def _undeclared(self, schema: dict[str, Any], value: Any, where: str) -> Iterator[str]:
        schema = self._resolve(schema)
        if isinstance(value, list) and "items" in schema:
            for item in value:
                yield from self._undeclared(schema["items"], item, where)
        elif isinstance(value, dict) and "properties" in schema:
            for key, sub in value.items():
                if key in schema["properties"]:
                    yield from self._undeclared(schema["properties"][key], sub, f"{where}{key}.")
                elif schema.get("additionalProperties") in (None, False):
                    yield f"{where}{key}"


def _to_json_schema(node: Any) -> Any:
    """Swagger 2.0 schema -> draft-4 JSON schema: drop vendor keys, honour x-nullable (the only differences met)."""
    if isinstance(node, list):
        return [_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if not k.startswith("x-") and k != "example"}
    if node.get("x-nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@pytest.fixture(scope="session")
def openapi() -> OpenApi:
    """Grafana v11.4's OpenAPI spec, ready to check response bodies."""
    ref = _require_reference()
    return OpenApi(json.loads((ref / OPENAPI_FILE).read_text(encoding="utf-8")))
