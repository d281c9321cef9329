"""A real Backstage catalog backend on loopback, for integration tests.

``BackstageCatalog`` runs ``tests/backstage/index.js`` (the catalog plugin on an in-memory SQLite
database) on a free 127.0.0.1 port. Its static file location watches a glob in a temp directory
that starts as a copy of the seed files, so tests can add, edit and remove entity files, or
register extra file locations through the API, and observe the result through the REST API.

Missing Node.js or a failed ``npm ci`` skips the test locally and fails it under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from tests.support.binaries import free_port, missing_component, stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_DIR = REPO_ROOT / "tests" / "backstage"
SEED_DIR = APP_DIR / "catalog"
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup-backstage.sh"

Entity = dict[str, Any]

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

# Outcome of running the setup script in this process: absent until tried, then an error or "".
_setup_outcome: dict[str, str] = {}


def entity_ref(entity: Entity) -> str:
    """Return ``kind:namespace/name`` in lower case, the catalog's canonical entity ref."""
    meta = entity.get("metadata", {})
    return f"{entity['kind']}:{meta.get('namespace', 'default')}/{meta['name']}".lower()


def _modules_ready() -> bool:
    # Resolves through the symlink that scripts/setup-backstage.sh creates.
    return (APP_DIR / "node_modules" / "@backstage" / "plugin-catalog-backend" / "package.json").is_file()


def ensure_node_modules() -> str | None:
    """Make sure tests/backstage/node_modules is installed; return an error message or None.

    Runs scripts/setup-backstage.sh at most once per process (a cold install takes minutes).
    """
    if shutil.which("node") is None:
        return "'node' is not on PATH (install Node.js >= 20)"
    if _modules_ready():
        return None
    if "error" not in _setup_outcome:
        proc = subprocess.run([str(SETUP_SCRIPT)], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.splitlines()[-30:])
            _setup_outcome["error"] = f"{SETUP_SCRIPT.name} exited {proc.returncode}:\n{tail}"
        elif not _modules_ready():
            _setup_outcome["error"] = f"{SETUP_SCRIPT.name} succeeded but node_modules is incomplete"
        else:
            _setup_outcome["error"] = ""
    return _setup_outcome["error"] or None


def _seed_refs(seed_dir: Path) -> set[str]:
    refs: set[str] = set()
    for path in sorted(seed_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and "kind" in doc:
                refs.add(entity_ref(doc))
    return refs


class BackstageStartupError(RuntimeError):
    """The backend exited or did not become ready; the message ends with its log tail."""


class BackstageCatalog:
    """Run a Backstage catalog backend for the duration of a ``with`` block.

    Attributes once started: ``base_url`` (``http://127.0.0.1:PORT``; the catalog API is at
    ``base_url + "/api/catalog"``, also ``api_url``), ``token``, ``catalog_dir`` (the directory
    whose ``*.yaml`` files the static location watches), ``work_dir`` (a scratch directory
    outside that glob, e.g. for files registered with ``register_location``) and ``log_path``.
    """

    def __init__(
        self,
        seed_dir: Path | None = SEED_DIR,
        processing_seconds: int = 1,
        token: str = "obsctl-test-token-0123456789",
        ready_timeout: float = 120.0,
        extra_config: str = "",
    ) -> None:
        if len(token) < 8 or any(ch.isspace() for ch in token):
            raise ValueError("Backstage static tokens need at least 8 characters and no spaces")
        self.seed_dir = seed_dir
        self.processing_seconds = processing_seconds
        self.token = token
        self.ready_timeout = ready_timeout
        self.extra_config = extra_config  # app-config YAML layered over app-config.yaml (e.g. proxy endpoints)
        self.port = 0
        self.base_url = ""
        self.api_url = ""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.catalog_dir = Path()
        self.work_dir = Path()
        self.log_path = Path()
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None
        self.startup_seconds = 0.0

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> BackstageCatalog:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the backend and wait until every seed entity is served (skip/fail if unavailable)."""
        error = ensure_node_modules()
        if error:
            missing_component(f"Backstage catalog backend unavailable: {error}")
        self._tmp = tempfile.TemporaryDirectory(prefix="obsctl-backstage-")
        root = Path(self._tmp.name)
        self.catalog_dir = root / "catalog"
        self.work_dir = root / "work"
        self.catalog_dir.mkdir()
        self.work_dir.mkdir()
        self.log_path = root / "backend.log"
        expected: set[str] = set()
        if self.seed_dir is not None:
            for path in sorted(self.seed_dir.glob("*.yaml")):
                shutil.copy2(path, self.catalog_dir / path.name)
            expected = _seed_refs(self.seed_dir)
        try:
            # A free port can be taken between probing and listening: retry on EADDRINUSE.
            for attempt in range(3):
                self._spawn()
                try:
                    self._wait_ready(expected)
                    return
                except BackstageStartupError as err:
                    self._terminate()
                    if "EADDRINUSE" not in str(err) or attempt == 2:
                        raise
        except BaseException:
            self.stop()
            raise

    def _spawn(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.base_url}/api/catalog"
        env = {
            **os.environ,
            "BACKSTAGE_PORT": str(self.port),
            "BACKSTAGE_TOKEN": self.token,
            "CATALOG_GLOB": str(self.catalog_dir / "*.yaml"),
            "CATALOG_PROCESSING_SECONDS": str(self.processing_seconds),
        }
        configs = ["--config", "app-config.yaml"]
        if self.extra_config:
            extra = self.log_path.parent / "app-config.extra.yaml"
            extra.write_text(self.extra_config)
            configs += ["--config", str(extra)]
        with self.log_path.open("wb") as log:  # a fresh log per attempt
            self._proc = subprocess.Popen(
                ["node", "index.js", *configs],
                cwd=APP_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._client = httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10.0,
        )

    def _wait_ready(self, expected: set[str]) -> None:
        started = time.monotonic()
        deadline = started + self.ready_timeout
        missing = expected
        status = "no answer yet"
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise BackstageStartupError(
                    f"backend exited with {self._proc.returncode} during startup\n{self.log_tail()}"
                )
            # Backstage logs a failed listen() but keeps running: give up at once.
            if "EADDRINUSE" in self.log_path.read_text(encoding="utf-8", errors="replace"):
                raise BackstageStartupError(f"port {self.port} is taken (EADDRINUSE)\n{self.log_tail()}")
            try:
                resp = self.client.get(
                    "/entities/by-query", params={"fields": "kind,metadata", "limit": 1}, timeout=2.0
                )
                status = f"by-query answered {resp.status_code}"
                if resp.status_code == 200:
                    missing = expected - {entity_ref(e) for e in self.entities(fields="kind,metadata")}
                    if not missing:
                        self.startup_seconds = time.monotonic() - started
                        return
            except httpx.TransportError as err:
                status = f"by-query failed: {err!r}"
            time.sleep(0.2)
        raise BackstageStartupError(
            f"backend not ready after {self.ready_timeout:.0f} s ({status}; seed entities missing: "
            f"{sorted(missing)})\n{self.log_tail()}"
        )

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if self._client is not None:
            self._client.close()
            self._client = None
        if proc is not None:
            stop_process(proc, sig_timeout=10.0)

    def stop(self) -> None:
        """Stop the backend (SIGTERM, SIGKILL after 10 s) and remove the temp directories."""
        self._terminate()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def log_tail(self, lines: int = 40) -> str:
        """Return the last lines of the backend's combined stdout/stderr."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no backend log)"
        text = _ANSI_ESCAPE.sub("", text)  # the dev-mode logger always colours its output
        return f"--- last {lines} lines of {self.log_path} ---\n" + "\n".join(text.splitlines()[-lines:])

    # -- HTTP ------------------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        """An httpx client with base URL ``api_url`` that sends the bearer token."""
        if self._client is None:
            raise RuntimeError("BackstageCatalog is not running")
        return self._client

    def entities(
        self, fields: str | None = None, filters: list[str] | None = None, page_size: int = 100
    ) -> list[Entity]:
        """List all entities through by-query, following cursors (fields and limit resent)."""
        params: dict[str, Any] = {"limit": page_size}
        if fields:
            params["fields"] = fields
        if filters:
            params["filter"] = filters
        items: list[Entity] = []
        cursor: str | None = None
        while True:
            page_params = params if cursor is None else {**params, "cursor": cursor}
            if cursor is not None:
                page_params.pop("filter", None)  # carried inside the cursor
            resp = self.client.get("/entities/by-query", params=page_params)
            resp.raise_for_status()
            body = resp.json()
            items.extend(body["items"])
            cursor = body.get("pageInfo", {}).get("nextCursor")
            if not cursor:
                return items

    def wait_for(
        self,
        predicate: Callable[[list[Entity]], bool],
        timeout: float = 30.0,
        interval: float = 0.2,
        fields: str | None = None,
        filters: list[str] | None = None,
    ) -> list[Entity]:
        """Poll by-query until ``predicate(entities)`` is true; return that list of entities."""
        deadline = time.monotonic() + timeout
        while True:
            items = self.entities(fields=fields, filters=filters)
            if predicate(items):
                return items
            if time.monotonic() >= deadline:
                refs = sorted(entity_ref(e) for e in items if "kind" in e and "metadata" in e)
                raise TimeoutError(f"catalog condition not met within {timeout} s; entities now: {refs}")
            time.sleep(interval)

    def refresh(self, entity_ref: str) -> None:
        """Ask the catalog to reprocess ``entity_ref`` now instead of at the next interval."""
        resp = self.client.post("/refresh", json={"entityRef": entity_ref})
        resp.raise_for_status()

    def register_location(self, path: Path) -> str:
        """Register a ``file`` location (absolute path; keep it outside ``catalog_dir``); return its id."""
        resp = self.client.post("/locations", json={"type": "file", "target": str(Path(path).resolve())})
        if resp.status_code != 201:
            raise RuntimeError(f"POST /locations answered {resp.status_code}: {resp.text}")
        location_id: str = resp.json()["location"]["id"]
        return location_id

    def delete_location(self, location_id: str) -> None:
        """Unregister a location; the catalog removes its entities at once."""
        resp = self.client.delete(f"/locations/{location_id}")
        if resp.status_code != 204:
            raise RuntimeError(f"DELETE /locations/{location_id} answered {resp.status_code}: {resp.text}")

    # -- files under the glob ----------------------------------------------------------------

    def write_entity_file(self, name: str, text: str) -> Path:
        """Create or replace ``catalog_dir/name`` atomically, so the catalog never reads half a file."""
        if not name.endswith(".yaml") or "/" in name:
            raise ValueError(f"entity file name must be a plain '*.yaml' name, got {name!r}")
        target = self.catalog_dir / name
        tmp = self.work_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
        return target

    def remove_entity_file(self, name: str) -> None:
        """Delete ``catalog_dir/name``; its entities turn orphan, then go (up to ~30 s later)."""
        with contextlib.suppress(FileNotFoundError):
            (self.catalog_dir / name).unlink()
