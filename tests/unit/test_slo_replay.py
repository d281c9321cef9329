"""Burn-rate replay: pages and tickets a window table would have sent over an SLI history."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from obsctl.app import load_templates
from obsctl.cli import main
from obsctl.config import load_settings
from obsctl.model.entities import AlertPolicy
from obsctl.slo.replay import HistorySample, parse_history, replay, window_table_from_yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = load_templates(load_settings(None))
T30, T7 = TEMPLATES.windows[30], TEMPLATES.windows[7]
STEP = 300.0
T0 = 1_790_000_000.0 - 1_790_000_000.0 % STEP


def history(days: float, ratio: Callable[[int], float], per_step: float = 3000.0) -> list[HistorySample]:
    n = int(days * 86400 / STEP)
    return [HistorySample(T0 + i * STEP, per_step * ratio(i), per_step) for i in range(n)]


def at(i: int) -> float:
    return T0 + i * STEP


def test_quiet_history_sends_nothing() -> None:
    for r in (0.0, 0.0005):  # no errors; a steady 0.5x burn
        res = replay(history(3, lambda i, r=r: r), 0.999, T30)
        assert (res.pages, res.tickets, res.episodes) == ((), (), ())


def test_full_outage_pages_once_then_tickets_after_the_page_resolves() -> None:
    start = 288  # day 2, 00:00
    res = replay(history(3, lambda i: 1.0 if start <= i < start + 6 else 0.0), 0.999, T30)
    assert len(res.pages) == 1
    page = res.pages[0]
    assert page.sent_at == at(start)  # the first 5m step with the outage already burns 1h at 1/12 > 1.44 %
    assert page.tiers == ("page-fast", "page-slow")
    # page-slow holds while its 30m window (6 steps) still holds an outage step: until start + 5 + 6
    assert page.end == at(start + 11)
    assert len(res.tickets) == 1
    ticket = res.tickets[0]
    assert ticket.sent_at == page.end  # inhibited while the page fired
    assert set(ticket.tiers) == {"ticket-fast", "ticket-slow"}
    assert res.inhibited_tickets == 0
    assert {e.tier for e in res.episodes} == {"page-fast", "page-slow", "ticket-fast", "ticket-slow"}


def test_min_events_guard_keeps_one_failure_at_night_quiet() -> None:
    one_failure = [HistorySample(T0 + i * STEP, 1.0 if i == 100 else 0.0, 1.0) for i in range(400)]
    assert len(replay(one_failure, 0.999, T30).pages) == 1
    guarded = replay(one_failure, 0.999, T30, AlertPolicy(min_events=100))
    assert guarded.pages == ()  # the 1h and 6h windows hold 12 and 72 events
    assert len(guarded.tickets) == 1  # the 1d window holds 288


def test_policy_tiers_and_severities() -> None:
    outage = history(2, lambda i: 1.0 if 100 <= i < 106 else 0.0)
    assert replay(outage, 0.999, T30, AlertPolicy(page=False)).pages == ()
    only_slow = replay(outage, 0.999, T30, AlertPolicy(tiers=("ticket-slow",)))
    assert only_slow.pages == () and only_slow.tickets[0].tiers == ("ticket-slow",)


def test_compare_two_window_tables() -> None:
    # 1 % errors (10x) for 8 hours: under the 14.4x tier; the 6h tiers catch it
    start = 300
    hist = history(3, lambda i: 0.01 if start <= i < start + 96 else 0.0)
    r30 = replay(hist, 0.999, T30)
    r7 = replay(hist, 0.999, T7)
    # 6h window (72 steps) above 6x (30d table) needs k x 1 % / 72 > 0.6 %: k = 44 steps;
    # above 4.2x (7d table): k = 31 steps
    assert [p.sent_at for p in r30.pages] == [at(start + 43)]
    assert [p.sent_at for p in r7.pages] == [at(start + 30)]
    assert r30.pages[0].tiers == ("page-slow",)


def test_gaps_are_no_traffic_and_bad_input() -> None:
    hist = [HistorySample(T0, 0, 10), HistorySample(T0 + 3 * STEP, 10, 10), HistorySample(T0 + 4 * STEP, 0, 10)]
    res = replay(hist, 0.999, T30, step=STEP)
    assert res.end == T0 + 4 * STEP and len(res.pages) == 1
    with pytest.raises(ValueError, match="errors <= total"):
        replay([HistorySample(T0, 5, 1)], 0.999, T30)
    with pytest.raises(ValueError, match="empty"):
        replay([], 0.999, T30)


def test_parse_history_formats() -> None:
    csv_text = "timestamp,errors,total\n2026-11-01T00:00:00Z,1,100\n2026-11-01T00:05:00Z,0,100\n"
    js = json.dumps({"samples": [{"t": 1793491200, "errors": 1, "total": 100}, [1793491500, 0, 100]]})
    a, b = parse_history(csv_text), parse_history(js)
    assert a == b == [HistorySample(1793491200.0, 1.0, 100.0), HistorySample(1793491500.0, 0.0, 100.0)]
    with pytest.raises(ValueError, match="row 2"):
        parse_history("t,errors,total\n1,0,1\nx,1,1\n")


def test_window_table_file_matches_templates() -> None:
    assert window_table_from_yaml((REPO / "alert-rules/windows/30d.yaml").read_text()) == T30


def test_cli_replay(tmp_path: Path) -> None:
    rows = ["t,errors,total"] + [f"{at(i):.0f},{300 if 288 <= i < 294 else 0},300" for i in range(864)]
    (tmp_path / "h.csv").write_text("\n".join(rows) + "\n")
    out, err = io.StringIO(), io.StringIO()
    code = main(["slo", "replay", str(tmp_path / "h.csv"), "--catalog", str(REPO / "examples/catalog"),
                 "--slo", "checkout/availability", "--windows", str(REPO / "alert-rules/windows/7d.yaml"),
                 "-o", "json"], out, err)
    assert code == 0, err.getvalue()
    doc = json.loads(out.getvalue())
    assert [r["pages"] for r in doc["results"]] == [1, 1]
    assert doc["results"][0]["notifications"][0]["sent_at"] == at(288)
    code = main(["slo", "replay", str(tmp_path / "h.csv"), "--catalog", str(REPO / "examples/catalog"),
                 "--slo", "checkout/nope"], io.StringIO(), err)
    assert code == 1 and "no SLO 'checkout/nope'" in err.getvalue()
