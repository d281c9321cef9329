"""A loopback emulator of the Mimir/Cortex ruler configuration API, with fault injection.

Contract reproduced (Grafana Mimir HTTP API, "Ruler" section, and its handlers):
- every request needs `X-Scope-OrgID` (Mimir's auth middleware answers 401 "no org id");
- `GET /prometheus/config/v1/rules` -> 200 YAML map namespace -> [group, ...] (namespaces and
  groups sorted), or 404 "no rule groups found" when the tenant has none;
- `GET .../rules/{namespace}` -> that namespace's groups, 404 when none; `GET .../{namespace}/{group}`
  -> one group, 404 "group does not exist";
- `POST .../rules/{namespace}` with one rule group as YAML -> 202 `{"status":"success"}`;
  400 "unable to decoded rule group" for bad YAML, 400 with the validation errors for a bad group;
- `DELETE .../rules/{namespace}/{group}` -> 202, 404 when absent; `DELETE .../rules/{namespace}` -> 202.
Path segments are URL-unescaped. Stored groups are re-serialised on read (like the real ruler,
which keeps them as protobuf), so clients must compare normalised content, not bytes.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote

import promql_parser
import yaml

PREFIX = "/prometheus/config/v1/rules"
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass
class Fault:
    """Answer the next `count` matching requests with `status` (and Retry-After when given)."""

    status: int
    count: int = 1
    method: str | None = None
    retry_after: float | None = None
    body: str = "injected fault"


def validate_group(group: Any) -> list[str]:
    """The errors the ruler would report for a posted group (empty when valid)."""
    if not isinstance(group, dict):
        return ["unable to decoded rule group"]
    errors = []
    if not group.get("name"):
        errors.append("invalid rules config: rule group name must not be empty")
    for i, rule in enumerate(group.get("rules") or []):
        where = f"group {group.get('name')!r}, rule {i}"
        if not isinstance(rule, dict):
            errors.append(f"{where}: not a mapping")
            continue
        if bool(rule.get("record")) == bool(rule.get("alert")):
            errors.append(f"{where}: one of 'record' or 'alert' must be set")
        if rule.get("record") and not _METRIC.match(str(rule["record"])):
            errors.append(f"{where}: invalid recording rule name: {rule['record']}")
        try:
            promql_parser.parse(str(rule.get("expr", "")))
        except ValueError as exc:
            errors.append(f"{where}: could not parse expression: {exc}")
        for name in (rule.get("labels") or {}):
            if not _LABEL.match(str(name)):
                errors.append(f"{where}: invalid label name: {name}")
    return errors


class RulerEmulator:
    """The ruler API on 127.0.0.1 (free port); state per tenant: namespace -> group name -> group."""

    def __init__(self) -> None:
        self.state: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: str = "", content_type: str = "text/plain",
                        headers: dict[str, str] | None = None) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length) if length else b""
                tenant = self.headers.get("X-Scope-OrgID", "")
                with emulator._lock:
                    emulator.requests.append({"method": self.command, "path": self.path, "tenant": tenant,
                                              "content_type": self.headers.get("Content-Type", "")})
                    fault = emulator._take_fault(self.command)
                if fault is not None:
                    extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
                    self._answer(fault.status, fault.body, headers=extra)
                    return
                if not tenant:
                    self._answer(401, "no org id\n")
                    return
                if not self.path.startswith(PREFIX):
                    self._answer(404, "404 page not found\n")
                    return
                parts = [unquote(p) for p in self.path[len(PREFIX):].split("/") if p]
                with emulator._lock:
                    status, body, ctype = emulator._dispatch(self.command, tenant, parts, payload)
                self._answer(status, body, ctype)

            do_GET = do_POST = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL (the sink appends /prometheus/config/v1/rules)."""
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, status: int, count: int = 1, method: str | None = None,
                  retry_after: float | None = None) -> None:
        """Inject a fault for the next `count` requests (of `method`, if given)."""
        with self._lock:
            self.faults.append(Fault(status, count, method, retry_after))

    def _take_fault(self, method: str) -> Fault | None:
        for fault in self.faults:
            if fault.method in (None, method):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _dispatch(self, method: str, tenant: str, parts: list[str], payload: bytes) -> tuple[int, str, str]:
        namespaces = self.state.setdefault(tenant, {})
        yaml_type = "application/yaml"
        if method == "GET":
            if not parts:
                data = {ns: [groups[g] for g in sorted(groups)] for ns, groups in sorted(namespaces.items()) if groups}
                return (200, yaml.safe_dump(data), yaml_type) if data else (404, "no rule groups found\n", "text/plain")
            if len(parts) == 1:
                groups = namespaces.get(parts[0]) or {}
                if not groups:
                    return 404, "no rule groups found\n", "text/plain"
                return 200, yaml.safe_dump({parts[0]: [groups[g] for g in sorted(groups)]}), yaml_type
            group = (namespaces.get(parts[0]) or {}).get(parts[1])
            if group is None:
                return 404, "group does not exist\n", "text/plain"
            return 200, yaml.safe_dump(group), yaml_type
        if method == "POST" and len(parts) == 1:
            try:
                group = yaml.safe_load(payload)
            except yaml.YAMLError:
                return 400, "unable to decoded rule group\n", "text/plain"
            errors = validate_group(group)
            if errors:
                return 400, ", ".join(errors) + "\n", "text/plain"
            # stored like the ruler does: fields re-serialised, key order and quoting not kept
            namespaces.setdefault(parts[0], {})[group["name"]] = json.loads(json.dumps(group))
            return 202, json.dumps({"status": "success", "data": None, "errorType": "", "error": ""}), \
                "application/json"
        if method == "DELETE" and len(parts) in (1, 2):
            if len(parts) == 1:
                if not namespaces.pop(parts[0], None):
                    return 404, "unable to find namespace\n", "text/plain"
            elif namespaces.get(parts[0], {}).pop(parts[1], None) is None:
                return 404, "group does not exist\n", "text/plain"
            return 202, json.dumps({"status": "success", "data": None, "errorType": "", "error": ""}), \
                "application/json"
        return 405, "method not allowed\n", "text/plain"

    def groups(self, tenant: str, namespace: str) -> dict[str, dict[str, Any]]:
        """A copy of one namespace's groups."""
        with self._lock:
            return dict(self.state.get(tenant, {}).get(namespace, {}))

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="ruler-emulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
