"""Fixtures for the Grafana emulator's own tests: a running emulator, HTTP clients, the contract checker."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.grafana_emulator import GrafanaEmulator
from tests.grafana_emulator.contract import problems, shape_of


def minimal_dashboard(title: str = "Service overview", **extra: Any) -> dict[str, Any]:
    """The smallest dashboard that validates against the v11.6 schema."""
    return {"title": title, "schemaVersion": 41, "templating": {"list": []}, "annotations": {"list": []}, **extra}


@pytest.fixture
def emu() -> Iterator[GrafanaEmulator]:
    """A started emulator in strict-schema mode with the default tokens; stopped after the test."""
    with GrafanaEmulator() as emulator:
        yield emulator


@pytest.fixture
def make_emu() -> Iterator[Callable[..., GrafanaEmulator]]:
    """Factory for emulators with non-default options; every one started is stopped after the test."""
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


class Contract:
    """Checks response bodies against the API contract written in tests/grafana_emulator/contract.py."""

    def check(self, path: str, method: str, payload: Any, status: str = "200",
              extra_keys: frozenset[str] = frozenset()) -> None:
        """Assert payload has the declared shape: types, required keys, and no undeclared key but extra_keys."""
        found = [p for p in problems(shape_of(path, method, status), payload)
                 if not (p.endswith(": not in the contract") and p.split(":")[0].rsplit(".", 1)[-1] in extra_keys)]
        assert not found, f"{method} {path} {status}: {found}"


@pytest.fixture(scope="session")
def contract() -> Contract:
    """The emulator's response contract."""
    return Contract()
