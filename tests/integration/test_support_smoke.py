"""Smoke tests for tests/support: each real component starts, answers, and is cleaned up."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.binaries import find_binary, require_binary
from tests.support.chromium import dump_dom, screenshot
from tests.support.postgres import PostgresServer
from tests.support.prom import (
    Alertmanager,
    Prometheus,
    WebhookReceiver,
    amtool_check_config,
    amtool_routes_test,
    backfill_counters,
    counter_samples,
    promtool_check_rules,
    promtool_test_rules,
    wait_alertmanager_discovered,
    write_openmetrics_blocks,
)

pytestmark = pytest.mark.integration

AM_CONFIG = """\
route:
  receiver: default-null
  group_by: [alertname, test_run]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - {{matchers: ['severity="page"'], receiver: page-webhook}}
    - {{matchers: ['severity="ticket"'], receiver: ticket-webhook}}
receivers:
  - name: default-null
  - name: page-webhook
    webhook_configs: [{{url: "{hook}/page", send_resolved: true}}]
  - name: ticket-webhook
    webhook_configs: [{{url: "{hook}/ticket"}}]
"""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_require_binary_finds_path_and_postgres_tools() -> None:
    assert require_binary("promtool").startswith("/")
    assert find_binary("pg_ctl") is not None  # PATH or /usr/lib/postgresql/*/bin
    assert find_binary("obsctl-no-such-binary") is None


def test_missing_binary_fails_in_ci_and_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="obsctl-no-such-binary"):
        require_binary("obsctl-no-such-binary")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=r"scripts/setup\.sh apt"):
        require_binary("obsctl-no-such-binary")


def test_openmetrics_split_on_block_boundaries(tmp_path: Path) -> None:
    t0 = 7200.0 * 1000
    samples = [(t0 + i * 600.0, i + 0.1) for i in range(30)]  # 5 h: windows 0, 1, 2
    files, count = write_openmetrics_blocks(
        tmp_path,
        {"a_total": [({"k": 'q"\\'}, samples)], "b": [({}, samples[:2])]},
        windows_per_file=1,
    )
    assert count == 32
    assert [p.name for p in files] == [f"{int(t0 + w * 7200)}.om" for w in range(3)]
    first = files[0].read_text().splitlines()
    assert first[0] == "# TYPE a counter"
    assert first[1] == 'a_total{k="q\\"\\\\"} 0.1 7200000'
    assert first[-4:] == ["# TYPE b unknown", "b 0.1 7200000", "b 1.1 7200600", "# EOF"]
    for w, path in enumerate(files):
        lines = path.read_text().splitlines()
        assert lines[-1] == "# EOF"
        stamps = [float(line.rsplit(" ", 1)[1]) for line in lines if not line.startswith("#")]
        assert all(t0 + w * 7200 <= t < t0 + (w + 1) * 7200 for t in stamps)


def test_prometheus_evaluates_recording_rule(tmp_path: Path) -> None:
    with Prometheus(tmp_path) as prom:
        pid = prom.pid
        print(f"prometheus ready in {prom.startup_seconds:.2f}s")
        prom.write_rule_file(
            "smoke.yml",
            "groups:\n- name: smoke\n  rules:\n  - record: obsctl_smoke:one\n    expr: vector(1)\n",
        )
        t0 = time.monotonic()
        prom.reload()
        value = prom.wait_for(lambda: prom.query_value("obsctl_smoke:one"), timeout=10)
        print(f"reload -> recorded sample queryable: {time.monotonic() - t0:.2f}s")
        assert value == 1.0
        group = prom.rules()["groups"][0]
        assert group["name"] == "smoke"
        assert group["rules"][0]["health"] == "ok"
    assert pid is not None and not _pid_alive(pid)


def test_prometheus_reload_rejects_bad_rule_file(tmp_path: Path) -> None:
    with Prometheus(tmp_path) as prom:
        prom.write_rule_file("bad.yml", "groups:\n- name: bad\n  rules:\n  - record: x\n    expr: 'sum('\n")
        with pytest.raises(RuntimeError, match="500"):
            prom.reload()


def _has_alert(item: dict[str, Any], alertname: str, run: str) -> bool:
    return any(
        a["labels"].get("alertname") == alertname and a["labels"].get("test_run") == run
        for a in item["payload"]["alerts"]
    )


def test_alert_reaches_alertmanager_and_webhook(tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:12]
    threshold = time.time() + 7  # Alertmanager discovery takes up to ~5 s after Prometheus starts
    rules = tmp_path / "alerts.yml"
    rules.write_text(
        "groups:\n- name: smoke-alerts\n  rules:\n"
        "  - alert: ObsctlSmokeAlways\n    expr: vector(1)\n"
        f"    labels: {{severity: page, test_run: '{run}'}}\n"
        "    annotations: {summary: always firing}\n"
        f"  - alert: ObsctlSmokeLater\n    expr: vector(time()) > {threshold!r}\n"
        f"    labels: {{severity: page, test_run: '{run}'}}\n"
    )
    with WebhookReceiver() as hook, Alertmanager(tmp_path / "am", AM_CONFIG.format(hook=hook.url)) as am:
        t_start = time.time()
        with Prometheus(tmp_path / "prom", rule_files=[rules], alertmanager_url=am.url) as prom:
            wait_alertmanager_discovered(prom, timeout=15, alertmanager_url=am.url)
            t_discovered = time.time()
            first = hook.wait_for(lambda i: i["path"] == "/page" and _has_alert(i, "ObsctlSmokeAlways", run), 20)
            later = hook.wait_for(lambda i: _has_alert(i, "ObsctlSmokeLater", run), 25)
            print(
                f"alertmanager ready {am.startup_seconds:.2f}s, "
                f"prometheus ready {prom.startup_seconds:.2f}s, "
                f"AM discovered {t_discovered - t_start:.2f}s after prometheus start, "
                f"start -> first webhook {first['recv_unix'] - t_start:.2f}s, "
                f"condition true -> webhook {later['recv_unix'] - threshold:.2f}s"
            )
            assert later["recv_unix"] > threshold
            payload = first["payload"]
            assert payload["receiver"] == "page-webhook"
            assert payload["status"] == "firing"
            assert payload["externalURL"] == am.url
            assert payload["alerts"][0]["generatorURL"].startswith(prom.url)
            in_am = am.alerts(filter=f'test_run="{run}"')
            assert sorted(a["labels"]["alertname"] for a in in_am) == [
                "ObsctlSmokeAlways",
                "ObsctlSmokeLater",
            ]
            assert {a["status"]["state"] for a in in_am} == {"active"}
            assert not [i for i in hook.snapshot() if i["path"] == "/ticket"]


def test_amtool_routes_and_check_config(tmp_path: Path) -> None:
    cfg = tmp_path / "alertmanager.yml"
    cfg.write_text(AM_CONFIG.format(hook="http://127.0.0.1:9"))
    checked = amtool_check_config(cfg)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ok = amtool_routes_test(cfg, {"severity": "page", "service": "checkout"}, ["page-webhook"])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip() == "page-webhook"
    wrong = amtool_routes_test(cfg, {"severity": "ticket"}, ["page-webhook"])
    assert wrong.returncode == 1
    assert wrong.stdout.strip().startswith("ticket-webhook")
    unverified = amtool_routes_test(cfg, {"severity": "none"}, None)
    assert (unverified.returncode, unverified.stdout.strip()) == (0, "default-null")
    cfg.write_text("route: {receiver: nowhere}\nreceivers: []\n")
    assert amtool_check_config(cfg).returncode != 0


def test_promtool_check_and_test_rules(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(
        "groups:\n- name: r\n  rules:\n  - record: job:errors:rate5m\n    expr: sum by (job) (rate(errors_total[5m]))\n"
    )
    assert promtool_check_rules(tmp_path / "rules.yml").returncode == 0
    suite = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": 'errors_total{job="api"}', "values": "0+60x10"}],
                "promql_expr_test": [
                    {
                        "expr": "job:errors:rate5m",
                        "eval_time": "10m",
                        "exp_samples": [{"labels": 'job:errors:rate5m{job="api"}', "value": 1}],
                    }
                ],
            }
        ],
    }
    (tmp_path / "ok_test.yml").write_text(json.dumps(suite))
    t0 = time.monotonic()
    ok = promtool_test_rules(tmp_path / "ok_test.yml")
    print(f"promtool test rules (1 test): {time.monotonic() - t0:.2f}s")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    suite["tests"][0]["promql_expr_test"][0]["exp_samples"][0]["value"] = 2  # type: ignore[index]
    (tmp_path / "bad_test.yml").write_text(json.dumps(suite))
    bad = promtool_test_rules(tmp_path / "bad_test.yml")
    assert bad.returncode != 0
    assert "FAILED" in bad.stdout + bad.stderr


def test_backfill_two_days_is_queryable(tmp_path: Path) -> None:
    step = 300.0
    end = float(int(time.time()) // 300 * 300 - 600)
    start = end - 2 * 86400

    # 0.1/s during even hours, 0.3/s during odd hours: float accumulation checks full precision
    def rate(t: float) -> float:
        return 0.3 if int((t - 1) // 3600) % 2 else 0.1

    good = counter_samples(start, end, step, rate)
    bad = counter_samples(start, end, step, lambda t: 0.001)
    data = tmp_path / "tsdb"
    result = backfill_counters(
        data,
        {
            "obsctl_smoke_requests_total": [({"service": "checkout", "code": "200"}, good)],
            "obsctl_smoke_errors_total": [({"service": "checkout"}, bad)],
        },
        windows_per_file=4,  # several promtool runs (auto would write one file for this little data)
    )
    print(
        f"backfill {result.samples} samples in {len(result.files)} files: "
        f"write {result.write_seconds:.2f}s, promtool {result.promtool_seconds:.2f}s"
    )
    assert result.samples == 2 * (2 * 86400 // 300 + 1)
    with Prometheus(tmp_path / "prom", data_dir=data) as prom:
        print(f"prometheus with backfill ready in {prom.startup_seconds:.2f}s")
        sel = 'obsctl_smoke_requests_total{service="checkout"}'
        for ts, value in (good[0], good[100], good[-1]):
            assert prom.query_value(sel, time=ts) == value  # exact, not approximately
        # 2.42 range selectors include both ends: [end-2d, end] (Prometheus 3 made them left-open)
        assert prom.query_value(f"count_over_time({sel}[2d])", time=end) == len(good)
        assert prom.query_value(f"{sel} - {sel} offset 1h", time=end) == good[-1][1] - good[-13][1]
        errors_per_s = prom.query_value("rate(obsctl_smoke_errors_total[1h])", time=end)
        assert errors_per_s == pytest.approx(0.001, rel=1e-9)
        rows = prom.query_range(sel, start, end, "1h")
        assert len(rows) == 1 and len(rows[0]["values"]) == 49


def test_postgres_accepts_select_1() -> None:
    psycopg = pytest.importorskip("psycopg")
    require_binary("initdb")
    with PostgresServer() as pg:
        print(f"postgres initdb+start+createdb in {pg.startup_seconds:.2f}s")
        pid = pg.pid
        assert pg.dsn.startswith("postgresql+psycopg://postgres@127.0.0.1:")
        with psycopg.connect(pg.libpq_dsn) as conn:
            assert conn.execute("select 1, current_database()").fetchone() == (1, "obsctl")
        root = pg.root
    assert pid is not None and not _pid_alive(pid)
    assert not root.exists()


def test_chromium_dump_dom_runs_javascript(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        "<!doctype html><html><body><div id='out'>static</div>"
        "<script>setTimeout(() => { document.getElementById('out').textContent = 'js says ' + 6 * 7; }, 100);"
        "</script></body></html>"
    )
    t0 = time.monotonic()
    dom = dump_dom(page)
    print(f"chromium dump-dom: {time.monotonic() - t0:.2f}s")
    assert '<div id="out">js says 42</div>' in dom


def test_chromium_screenshot_png(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        "<!doctype html><html><body style='background:#fff'><h1 style='color:#c00'>obsctl</h1>"
        "<div style='width:400px;height:300px;background:linear-gradient(#09f,#f90)'></div></body></html>"
    )
    t0 = time.monotonic()
    png = screenshot(page, tmp_path / "out" / "shot.png", width=800, height=600)
    print(f"chromium screenshot: {time.monotonic() - t0:.2f}s, {png.stat().st_size} bytes")
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")) == (800, 600)
    assert png.stat().st_size > 2000
