"""The service in-process: traces of reconcile rounds and sink calls (in memory, and over OTLP/HTTP to
a loopback receiver), JSON logs, and the directory watcher (inotify and the polling fallback)."""

from __future__ import annotations

import io
import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from obsctl.config import Settings
from obsctl.service.http import create_app
from obsctl.service.logs import JsonFormatter, configure_logging
from obsctl.service.runtime import Runtime, make_tracer
from obsctl.sources.directory import DirectorySource
from tests.support.alerting import UNDELIVERED

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "catalog"


def settings(tmp_path: Path, **serve: Any) -> Settings:
    shutil.copytree(EXAMPLES, tmp_path / "catalog")
    return Settings(out_dir=tmp_path / "out", state_url=f"sqlite:///{tmp_path}/state.db",
                    catalog={"path": tmp_path / "catalog"}, alerting=UNDELIVERED,
                    serve={"sources": ["directory", "api"], "watch": False, **serve})


def test_reconcile_and_sink_calls_are_traced(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    rt = Runtime(settings(tmp_path), span_exporter=exporter)
    with TestClient(create_app(rt), base_url="http://127.0.0.1") as client:
        assert rt.reconciler.ready.wait(30)
        assert client.get("/readyz").json() == {"ready": True, "leader": True}
        # `ready` is set inside the first round, so its root span may end a moment later.
        deadline = time.monotonic() + 30
        while True:
            rt.tracer_provider.force_flush()
            spans = exporter.get_finished_spans()
            if any(s.name == "reconcile" for s in spans) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    names = {s.name for s in spans}
    assert {"reconcile", "catalog.fetch", "catalog.load", "render", "sink.list_owned", "sink.apply",
            "sink.put"} <= names
    root = next(s for s in spans if s.name == "reconcile")
    puts = [s for s in spans if s.name == "sink.put"]
    assert all(s.context.trace_id == root.context.trace_id for s in puts)
    assert {s.attributes["obsctl.sink"] for s in puts} >= {"files"}
    assert all(str(s.attributes["obsctl.artifact"]).count("/") >= 1 for s in puts)


def test_otlp_http_exporter_sends_spans(tmp_path: Path) -> None:
    received: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        tracer, provider = make_tracer(f"http://127.0.0.1:{server.server_address[1]}")
        with tracer.start_as_current_span("reconcile"):
            pass
        provider.force_flush()
        provider.shutdown()
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)
    assert received and received[0][0] == "/v1/traces" and b"reconcile" in received[0][1]


def test_tracing_is_off_by_default() -> None:
    _tracer, provider = make_tracer("")
    assert provider._active_span_processor._span_processors == ()


def test_json_logs_carry_fields() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    try:
        logging.getLogger("obsctl.test").info("round", extra={"fields": {"services": 5, "sinks": {"files": 1}}})
        line = json.loads(stream.getvalue().splitlines()[-1])
        assert line["msg"] == "round" and line["services"] == 5 and line["level"] == "info"
        assert line["ts"].endswith("Z") and line["logger"] == "obsctl.test"
    finally:
        logging.getLogger().handlers[:] = []
    assert isinstance(JsonFormatter(), logging.Formatter)


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "cat"
    d.mkdir()
    (d / "a.yaml").write_text("a: 1\n")
    yield d


@pytest.mark.parametrize("force_polling", [False, True])
def test_directory_watch_wakes(catalog_dir: Path, force_polling: bool) -> None:
    src = DirectorySource(catalog_dir, poll_seconds=0.05, force_polling=force_polling)
    woke: list[str] = []
    stop = threading.Event()
    t = threading.Thread(target=src.watch, args=(woke.append, stop), daemon=True)
    t.start()
    try:
        time.sleep(0.3)
        assert woke == []
        # the watcher may still be starting on a busy machine: keep changing files until it reports
        deadline = time.monotonic() + 10
        i = 0
        while not woke and time.monotonic() < deadline:
            (catalog_dir / f"b{i}.yaml").write_text("b: 2\n")
            i += 1
            time.sleep(0.5)
        assert woke and "file changed" in woke[0]
        assert src.watch_mode == ("polling" if force_polling else "inotify")
    finally:
        stop.set()
        t.join(5)
    assert not t.is_alive()


def test_directory_watch_falls_back_to_polling(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet"
    src = DirectorySource(missing, poll_seconds=0.05)
    woke: list[str] = []
    stop = threading.Event()
    t = threading.Thread(target=src.watch, args=(woke.append, stop), daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 5
        while src.watch_mode != "polling" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert src.watch_mode == "polling"
        missing.mkdir()
        (missing / "a.yaml").write_text("a: 1\n")
        deadline = time.monotonic() + 5
        while not woke and time.monotonic() < deadline:
            time.sleep(0.01)
        assert woke[:1] == ["file changed (polling)"]
    finally:
        stop.set()
        t.join(5)
