"""SLO arithmetic against hand-computed numbers (SRE Workbook, "Alerting on SLOs") and invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obsctl.model.windows import AlertTier
from obsctl.slo import math as m

DAY = 86400.0
P30 = 30 * DAY


def tier(name: str, long_s: float, short_s: float, pct: float, period_s: float = P30, sev: str = "page") -> AlertTier:
    return AlertTier(name, sev, long_s, short_s, pct, period_s)


FAST = tier("page-fast", 3600, 300, 2)
SLOW = tier("page-slow", 6 * 3600, 1800, 5)
TICKET_FAST = tier("ticket-fast", DAY, 7200, 10, sev="ticket")
TICKET_SLOW = tier("ticket-slow", 3 * DAY, 6 * 3600, 10, sev="ticket")


@pytest.mark.parametrize(("objective", "period_s", "minutes"), [
    (0.999, P30, 43.2),        # the Workbook's 99.9 % over 30 days
    (0.9999, P30, 4.32),
    (0.99, P30, 432.0),
    (0.9995, 28 * DAY, 20.16),
    (0.995, 7 * DAY, 50.4),
])
def test_budget_minutes(objective: float, period_s: float, minutes: float) -> None:
    assert m.budget_minutes(objective, period_s) == pytest.approx(minutes, rel=1e-9)


@pytest.mark.parametrize(("t", "burn", "spent", "detect_s", "reset_s"), [
    # burn = budget% x period / long window; a full outage (ratio 1) trips the long window after
    # threshold x long window; the short window resets (1 - threshold) x short window after it ends.
    (FAST, 14.4, 0.02, 51.84, 300 * (1 - 0.0144)),
    (SLOW, 6.0, 0.05, 129.6, 1800 * (1 - 0.006)),
    (TICKET_FAST, 3.0, 0.10, 259.2, 7200 * (1 - 0.003)),
    (TICKET_SLOW, 1.0, 0.10, 259.2, 6 * 3600 * (1 - 0.001)),
])
def test_workbook_tiers_for_999_over_30d(t: AlertTier, burn: float, spent: float, detect_s: float,
                                         reset_s: float) -> None:
    timing = m.tier_timing(t, 0.999)
    assert t.burn_rate == pytest.approx(burn)
    assert timing.budget_spent_at_fire == pytest.approx(spent)
    assert timing.detection_s == pytest.approx(detect_s)
    assert timing.reset_s == pytest.approx(reset_s)
    assert m.tier_threshold(t, 0.999) == pytest.approx(burn * 0.001)


@pytest.mark.parametrize(("ratio", "objective", "burn"), [
    (0.001, 0.999, 1.0),
    (0.02, 0.999, 20.0),      # 2 % errors against 99.9 %: 20x
    (0.0144, 0.999, 14.4),
    (0.0, 0.999, 0.0),
    (0.05, 0.95, 1.0),
    (1.0, 0.999, 1000.0),
])
def test_burn_rate(ratio: float, objective: float, burn: float) -> None:
    assert m.burn_rate(ratio, objective) == pytest.approx(burn)


def test_detection_at_two_percent_errors() -> None:
    # 14.4x needs 1.44 % errors over the hour: at 2 % that takes 0.0144 / 0.02 of the hour = 43.2 min.
    assert m.detection_time(FAST, 0.999, 0.02) == pytest.approx(2592.0)
    assert m.detection_time(FAST, 0.999, 0.01) is None  # 10x never reaches 14.4x


@pytest.mark.parametrize(("remaining", "burn", "period_s", "expected"), [
    (1.0, 14.4, P30, 180000.0),       # a full budget at 14.4x lasts 50 hours
    (0.5, 1.0, P30, P30 / 2),
    (0.25, 6.0, P30, 0.25 * P30 / 6),
    (1.0, 0.0, P30, None),            # not burning: never
    (0.0, 3.0, P30, 0.0),
    (-0.3, 3.0, P30, 0.0),            # overspent: already exhausted
])
def test_time_to_exhaustion(remaining: float, burn: float, period_s: float, expected: float | None) -> None:
    got = m.time_to_exhaustion(remaining, burn, period_s)
    assert got == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(("objective", "total", "bad", "budget", "left"), [
    (0.999, 1_000_000, 0, 1000, 1000),
    (0.999, 1_000_000, 250, 1000, 750),
    (0.999, 1_000_000, 1500, 1000, -500),
    (0.99, 0, 0, 0, 0),
])
def test_budget_in_events(objective: float, total: float, bad: float, budget: float, left: float) -> None:
    assert m.budget_events(objective, total) == pytest.approx(budget)
    assert m.budget_events_remaining(objective, total, bad) == pytest.approx(left)


def test_remaining_minutes_and_ratio() -> None:
    # 0.05 % errors against 99.9 % over 30 days: half the budget, 21.6 of 43.2 minutes, left.
    rem = m.budget_remaining(0.0005, 0.999)
    assert rem == pytest.approx(0.5)
    assert m.budget_minutes_remaining(rem, 0.999, P30) == pytest.approx(21.6)


@pytest.mark.parametrize(("long_b", "short_b", "fires"), [
    (15.0, 15.0, True),
    (15.0, 14.0, False),     # both windows must burn above the threshold
    (14.0, 15.0, False),
    (14.4, 20.0, False),     # strictly above
    (None, 20.0, False),     # a missing window never fires
])
def test_tier_fires(long_b: float | None, short_b: float | None, fires: bool) -> None:
    assert m.tier_fires(FAST, long_b, short_b) is fires


def test_alertability_boundary() -> None:
    assert not m.can_fire(FAST, 0.93)       # 14.4 x 7 % >= 100 %
    assert m.can_fire(FAST, 0.9306)


# --------------------------------------------------------------------------- properties

objectives = st.floats(min_value=0.5, max_value=0.99999, allow_nan=False)
counts = st.floats(min_value=0, max_value=1e12, allow_nan=False)


@given(objective=objectives, total=counts, data=st.data())
def test_remaining_is_one_minus_period_burn(objective: float, total: float, data: st.DataObject) -> None:
    bad = data.draw(st.floats(min_value=0, max_value=total, allow_nan=False))
    ratio = m.error_ratio(bad, total)
    remaining = m.budget_remaining(ratio, objective)
    assert math.isfinite(remaining)
    assert remaining == pytest.approx(1.0 - m.burn_rate(ratio, objective))
    # the same number from events: what is left of the budget in events over the whole budget
    if total > 0 and m.budget_events(objective, total) > 0:
        by_events = m.budget_events_remaining(objective, total, bad) / m.budget_events(objective, total)
        assert by_events == pytest.approx(remaining, rel=1e-6, abs=1e-6)


@given(objective=objectives, total=st.floats(min_value=1, max_value=1e12), data=st.data())
def test_remaining_is_monotonic_in_errors(objective: float, total: float, data: st.DataObject) -> None:
    a = data.draw(st.floats(min_value=0, max_value=total))
    b = data.draw(st.floats(min_value=a, max_value=total))
    ra = m.budget_remaining(m.error_ratio(a, total), objective)
    rb = m.budget_remaining(m.error_ratio(b, total), objective)
    assert rb <= ra


@given(objective=objectives)
def test_no_traffic_is_no_division_by_zero(objective: float) -> None:
    assert m.error_ratio(0, 0) == 0.0
    assert m.budget_remaining(m.error_ratio(0, 0), objective) == 1.0
    assert m.budget_events(objective, 0) == 0.0
    assert m.time_to_exhaustion(1.0, 0.0, P30) is None
