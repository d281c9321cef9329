"""SLO reports against a real Prometheus holding three days of synthetic traffic and the recorded SLO series.

The recorded series come from the rules obsctl generates (obsctl.render.rules), evaluated by the
real Prometheus over the backfilled raw counters; the report is checked against an independent
computation from the functions that generated the counters.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from obsctl.app import load_templates
from obsctl.cli import main
from obsctl.config import load_settings
from obsctl.errors import PermanentError, TemporaryError
from obsctl.slo.html import render_html
from obsctl.slo.query import build_report
from obsctl.slo.report import SCHEMA_PATH, Report, ReportFilter, Status
from tests.integration._slo_env import (
    END,
    MISSING_SERVICE,
    SERVICES,
    START,
    catalog,
    exact_ratio,
    start_prometheus,
)
from tests.support.binaries import free_port
from tests.support.chromium import dump_dom, screenshot
from tests.support.prom import Prometheus

pytestmark = pytest.mark.integration

TEMPLATES = load_templates(load_settings(None))
REPO = Path(__file__).resolve().parents[2]
NOV_1 = END - 86400
TOLERANCE = 0.005  # the bar: within 0.5 % of the independent computation


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    t0 = time.monotonic()
    server, origin = start_prometheus(tmp_path_factory.mktemp("slo-report"), TEMPLATES)
    print(f"\nPrometheus with 3 days of SLO history ready in {time.monotonic() - t0:.1f}s (rules: {origin})")
    try:
        yield server
    finally:
        server.stop()


def _by_service(report: Report) -> dict[str, Any]:
    return {s.service: s for s in report.slos}


def test_rolling_report_equals_raw_counters(prom: Prometheus) -> None:
    rep = build_report(catalog(), TEMPLATES, prom.url, None, "rolling", END)
    by = _by_service(rep)
    for syn in SERVICES:
        r = by[syn.service]
        bad, tot = exact_ratio(syn, START, END)
        print(f"{syn.service}: report {r.error_ratio:.8f} exact {bad / tot:.8f} "
              f"({(r.error_ratio / (bad / tot) - 1) * 100:+.3f} %), events {r.events_total:.0f} vs {tot:.0f}")
        assert r.error_ratio == pytest.approx(bad / tot, rel=TOLERANCE)
        assert r.events_total == pytest.approx(tot, rel=TOLERANCE)
        assert r.events_bad == pytest.approx(bad, rel=TOLERANCE)
        assert r.budget_remaining == pytest.approx(1 - r.error_ratio / (1 - syn.objective))
        assert r.budget_minutes == pytest.approx((1 - syn.objective) * 30 * 1440)
        # the 1h and 5m windows, from the raw counters over the last hour and five minutes
        for window, seconds in (("1h", 3600), ("5m", 300)):
            wb, wt = exact_ratio(syn, END - seconds, END)
            burn = next(w.burn_rate for w in r.windows if w.window == window)
            assert burn == pytest.approx(wb / wt / (1 - syn.objective), rel=TOLERANCE), window
    assert [(s.service, s.status) for s in rep.slos] == [
        ("ledger", Status.EXHAUSTED), ("checkout", Status.BURNING), (MISSING_SERVICE, Status.NO_DATA),
        ("search", Status.HEALTHY)]
    assert by["checkout"].firing == ("page-fast",)
    assert by["ledger"].firing == ("page-fast", "page-slow", "ticket-fast", "ticket-slow")
    assert by[MISSING_SERVICE].budget_remaining is None and by[MISSING_SERVICE].reasons
    # every window's ratio and the period's in one query; objective, period request count and the guarded
    # long windows' request rates in the other
    assert rep.queries == 2


@pytest.mark.parametrize(("period", "start", "end"), [
    ("2026-10", START, NOV_1),
    ("last-month", START, NOV_1),
    ("this-month", NOV_1, END),
])
def test_calendar_periods_equal_raw_counters(prom: Prometheus, period: str, start: float, end: float) -> None:
    rep = build_report(catalog(), TEMPLATES, prom.url, None, period, END)
    by = _by_service(rep)
    for syn in SERVICES:
        bad, tot = exact_ratio(syn, start, end)
        r = by[syn.service]
        # 5m subqueries tile the calendar range exactly: far inside the 0.5 % bar
        assert r.error_ratio == pytest.approx(bad / tot, rel=1e-6), syn.service
        assert r.events_total == pytest.approx(tot, rel=1e-6), syn.service
        assert r.in_progress is (period == "this-month")
        print(f"{period} {syn.service}: {(r.error_ratio / (bad / tot) - 1) * 100:+.4f} % ratio, "
              f"{(r.events_total / tot - 1) * 100:+.4f} % events")
    assert by["ledger"].status is Status.EXHAUSTED
    assert by[MISSING_SERVICE].status is Status.NO_DATA
    if period == "this-month":
        assert by["checkout"].status is Status.BURNING  # tiers fire now, in the month in progress
        assert by["checkout"].period_s == 30 * 86400  # November's budget
    else:
        assert by["checkout"].status is Status.HEALTHY and by["checkout"].firing == ()
        assert by["checkout"].current_burn is None
        assert by["checkout"].budget_minutes == pytest.approx(0.001 * 31 * 1440)


def _counting_client(counter: list[str]) -> httpx.Client:
    return httpx.Client(event_hooks={"request": [lambda req: counter.append(str(req.url.path))]})


@pytest.mark.parametrize("period", ["rolling", "2026-10", "this-month"])
def test_query_count_does_not_grow_with_slos(prom: Prometheus, period: str) -> None:
    counts = {}
    for extra in (10, 200):
        sent: list[str] = []
        t0 = time.monotonic()
        rep = build_report(catalog(extra), TEMPLATES, prom.url, None, period, END, charts=True,
                           client=_counting_client(sent))
        print(f"{period}: {4 + extra} SLOs with charts in {time.monotonic() - t0:.2f}s")
        assert len(rep.slos) == 4 + extra
        assert rep.queries == len(sent)
        counts[extra] = len(sent)
        assert sum(s.status is Status.NO_DATA for s in rep.slos) == 1 + extra
    print(f"{period}: {counts[10]} queries for 14 SLOs, {counts[200]} for 204")
    assert counts[10] == counts[200]
    assert counts[10] <= 12


def test_charts_come_from_range_queries(prom: Prometheus) -> None:
    rep = build_report(catalog(), TEMPLATES, prom.url, None, "rolling", END, charts=True)
    by = _by_service(rep)
    checkout = by["checkout"]
    assert set(checkout.burn_chart) == {"1h", "6h", "1d", "3d"}
    assert checkout.budget_chart[-1][1] == pytest.approx(checkout.budget_remaining, abs=0.02)
    assert checkout.budget_chart[0][1] == 1.0
    assert by[MISSING_SERVICE].burn_chart == {} and by[MISSING_SERVICE].budget_chart == ()
    doc = json.loads(rep.to_json())
    jsonschema.validate(doc, json.loads(SCHEMA_PATH.read_text()))
    assert Report.from_json(doc) == rep  # a stored snapshot renders the same report later


# --------------------------------------------------------------------------- faults


class _Proxy:
    """An HTTP proxy in front of the real Prometheus that can alter its answers (fault injection)."""

    def __init__(self, upstream: str, mutate: Callable[[dict[str, str], dict[str, Any]], dict[str, Any]] | None = None,
                 delay: float = 0.0, status: int | None = None, body: bytes | None = None) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length)
                time.sleep(delay)
                if status is not None:
                    payload = body or b"upstream trouble"
                    self.send_response(status)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                req = urllib.request.Request(upstream + self.path, data=data, method="POST",
                                             headers={"Content-Type": "application/x-www-form-urlencoded"})
                with urllib.request.urlopen(req, timeout=30) as resp:
                    doc = json.loads(resp.read())
                form = dict(urllib.parse.parse_qsl(data.decode()))
                if mutate is not None:
                    doc = mutate(form, doc)
                out = json.dumps(doc).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first: that is the test

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def __enter__(self) -> _Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


def test_prometheus_down_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TemporaryError, match=f"Prometheus at {url} is unreachable"):
        build_report(catalog(), TEMPLATES, url, None, "rolling", END, timeout=2)
    err = io.StringIO()
    code = main(["slo", "report", "--catalog", str(REPO / "examples/catalog"), "--prometheus", url], io.StringIO(),
                err)
    assert code == 1 and "unreachable" in err.getvalue()


def test_prometheus_slow_is_a_clear_error(prom: Prometheus) -> None:
    with _Proxy(prom.url, delay=2.0) as slow, pytest.raises(TemporaryError, match=r"did not answer within 0\.3s"):
        build_report(catalog(), TEMPLATES, slow.url, None, "rolling", END, timeout=0.3)


@pytest.mark.parametrize(("status", "body", "error", "match"), [
    (503, b"<html>Service Unavailable</html>", TemporaryError, "answered HTTP 503"),
    (200, b"<html>Grafana</html>", PermanentError, "not the Prometheus API's JSON"),
    (400, b'{"status":"error","errorType":"bad_data","error":"parse error"}', PermanentError, "bad_data"),
])
def test_prometheus_error_answers(prom: Prometheus, status: int, body: bytes, error: type[Exception],
                                  match: str) -> None:
    with _Proxy(prom.url, status=status, body=body) as bad, pytest.raises(error, match=match):
        build_report(catalog(), TEMPLATES, bad.url, None, "rolling", END)


def _baseline(prom: Prometheus) -> dict[str, Any]:
    return _by_service(build_report(catalog(), TEMPLATES, prom.url, None, "rolling", END))


def test_one_slo_missing_series_leaves_the_others_intact(prom: Prometheus) -> None:
    base = _baseline(prom)

    def drop_ledger(form: dict[str, str], doc: dict[str, Any]) -> dict[str, Any]:
        doc["data"]["result"] = [r for r in doc["data"]["result"] if r["metric"].get("service") != "ledger"]
        return doc

    with _Proxy(prom.url, drop_ledger) as proxy:
        by = _by_service(build_report(catalog(), TEMPLATES, proxy.url, None, "rolling", END))
    assert by["ledger"].status is Status.NO_DATA and by["ledger"].budget_remaining is None
    for name in ("checkout", "search"):
        assert by[name] == base[name]


def test_partial_answer_is_no_data_never_a_wrong_number(prom: Prometheus) -> None:
    def partial(form: dict[str, str], doc: dict[str, Any]) -> dict[str, Any]:
        if "error_ratio" in form.get("query", ""):
            doc["warnings"] = ["store gateway 2 unavailable: partial response"]
            doc["data"]["result"] = doc["data"]["result"][:5]
        return doc

    with _Proxy(prom.url, partial) as proxy:
        rep = build_report(catalog(), TEMPLATES, proxy.url, None, "rolling", END)
    assert all(s.status is Status.NO_DATA for s in rep.slos)
    assert all(s.budget_remaining is None and s.current_burn is None for s in rep.slos)
    assert any("partial response" in w for w in rep.warnings)


def test_conflicting_series_make_that_slo_no_data(prom: Prometheus) -> None:
    base = _baseline(prom)

    def duplicate(form: dict[str, str], doc: dict[str, Any]) -> dict[str, Any]:
        extra = []
        for r in doc["data"]["result"]:
            if r["metric"].get("service") == "checkout" and r["metric"].get("__name__", "").endswith(":period"):
                extra.append({"metric": {**r["metric"], "replica": "b"}, "value": [r["value"][0], "0.5"]})
        doc["data"]["result"] += extra
        return doc

    with _Proxy(prom.url, duplicate) as proxy:
        by = _by_service(build_report(catalog(), TEMPLATES, proxy.url, None, "rolling", END))
    assert by["checkout"].status is Status.NO_DATA
    assert any("conflicting series" in r for r in by["checkout"].reasons)
    assert by["search"] == base["search"]


# --------------------------------------------------------------------------- CLI and HTML


def test_cli_report_formats(prom: Prometheus, tmp_path: Path) -> None:
    base = ["slo", "report", "--catalog", str(REPO / "examples/catalog"), "--prometheus", prom.url,
            "--now", str(END)]
    out, err = io.StringIO(), io.StringIO()
    assert main([*base, "-o", "json"], out, err) == 0, err.getvalue()
    doc = json.loads(out.getvalue())
    jsonschema.validate(doc, json.loads(SCHEMA_PATH.read_text()))
    slos = {(sv["service"], s["slo"]): s for t in doc["teams"] for sv in t["services"] for s in sv["slos"]}
    assert slos[("checkout", "availability")]["status"] == "burning"
    assert slos[("checkout", "latency")]["status"] == "no-data"
    out = io.StringIO()
    assert main([*base, "--service", "checkout", "--slo", "availability"], out, err) == 0
    assert "checkout/availability" in out.getvalue() and "search-api" not in out.getvalue()
    out = io.StringIO()
    assert main([*base, "--team", "team-payments", "-o", "markdown", "--period", "2026-10"], out, err) == 0
    assert out.getvalue().startswith("# SLO report: 2026-10")
    assert main([*base, "-o", "html", "--out", str(tmp_path / "r.html")], io.StringIO(), err) == 0
    assert (tmp_path / "r.html").read_text().count("<svg") >= 2
    err = io.StringIO()
    assert main([*base, "--period", "2026-13"], io.StringIO(), err) == 1
    assert "unknown period 2026-13" in err.getvalue()
    err = io.StringIO()
    assert main([*base, "--team", "nobody"], io.StringIO(), err) == 1
    assert "no SLO matches" in err.getvalue()


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_html_report_in_headless_chromium(prom: Prometheus, tmp_path: Path) -> None:
    rep = build_report(catalog(), TEMPLATES, prom.url, ReportFilter(), "rolling", END, charts=True)
    page = tmp_path / "slo-report.html"
    page.write_text(render_html(rep))
    dom = dump_dom(page)
    assert dom.count('class="chart chart-burn"') == 3  # every SLO with data
    assert dom.count('class="chart chart-budget"') == 3
    assert dom.count('class="threshold"') >= 8
    assert "Budget exhausted" in dom and "no burn-rate history" in dom
    png = screenshot(page, tmp_path / "slo-report.png", width=1280, height=2400)
    assert _png_size(png) == (1280, 2400)
    assert png.stat().st_size > 20_000  # a blank page compresses to a few kB
    keep = os.environ.get("OBSCTL_TEST_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / png.name)
        shutil.copy(page, Path(keep) / page.name)
