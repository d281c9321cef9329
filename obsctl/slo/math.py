"""Pure SLO arithmetic: budgets, burn rates, tier timings (SRE Workbook, "Alerting on SLOs").

All ratios are fractions (0.999, not 99.9); all times are seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from obsctl.model.windows import AlertTier


def error_budget(objective: float) -> float:
    """The fraction of events allowed to fail: 1 - objective."""
    return 1.0 - objective


def burn_rate(error_ratio: float, objective: float) -> float:
    """How many times faster than sustainable the budget burns; 0 when there is no budget."""
    budget = error_budget(objective)
    if budget <= 0:
        return math.inf if error_ratio > 0 else 0.0
    return error_ratio / budget


def budget_remaining(period_error_ratio: float, objective: float) -> float:
    """The share of the period's budget left: 1 - period burn rate (negative when overspent)."""
    return 1.0 - burn_rate(period_error_ratio, objective)


def budget_minutes(objective: float, period_s: float) -> float:
    """The whole budget as minutes of full outage over the period."""
    return error_budget(objective) * period_s / 60.0


def time_to_exhaustion(remaining: float, current_burn: float, period_s: float) -> float | None:
    """Seconds until the budget is spent at the current burn; None when it never is."""
    if remaining <= 0:
        return 0.0
    if current_burn <= 0:
        return None
    # Burning at rate b spends b/period of the budget per second.
    return remaining * period_s / current_burn


def can_fire(tier: AlertTier, objective: float) -> bool:
    """Whether any error ratio <= 100 % can reach the tier's threshold."""
    return tier.burn_rate * error_budget(objective) < 1.0


@dataclass(frozen=True)
class TierTiming:
    """What a tier means in practice for one objective."""

    tier: AlertTier
    threshold_error_ratio: float  # error ratio both windows must exceed
    budget_spent_at_fire: float  # fraction of the period's budget burnt when the long window trips
    detection_s: float | None  # full outage -> firing; None when the tier can never fire
    reset_s: float | None  # long outage ends -> alert resolves

    @property
    def alertable(self) -> bool:
        """False when the threshold is unreachable."""
        return self.detection_s is not None


def detection_time(tier: AlertTier, objective: float, error_ratio: float = 1.0) -> float | None:
    """Seconds from the start of an error ratio `error_ratio` (from zero) until the tier fires.

    The long window's ratio grows as error_ratio * t / long; it reaches the threshold at
    t = threshold * long / error_ratio. The short window gets there sooner (it is shorter), so the
    long window decides. None when error_ratio never reaches the threshold.
    """
    threshold = tier.burn_rate * error_budget(objective)
    if error_ratio <= 0 or threshold >= error_ratio:
        return None
    return max(threshold * tier.long_window_s, threshold * tier.short_window_s) / error_ratio


def reset_time(tier: AlertTier, objective: float, error_ratio: float = 1.0) -> float | None:
    """Seconds after a long incident of `error_ratio` ends until the short window drops below threshold."""
    threshold = tier.burn_rate * error_budget(objective)
    if error_ratio <= 0 or threshold >= error_ratio:
        return None
    return tier.short_window_s * (1.0 - threshold / error_ratio)


def tier_timing(tier: AlertTier, objective: float) -> TierTiming:
    """Threshold, budget spent, detection and reset times of a tier for a full outage."""
    return TierTiming(
        tier=tier,
        threshold_error_ratio=tier.burn_rate * error_budget(objective),
        budget_spent_at_fire=tier.burn_rate * tier.long_window_s / tier.period_s,
        detection_s=detection_time(tier, objective),
        reset_s=reset_time(tier, objective),
    )


# --------------------------------------------------------------------------- reports (issue 7)


def error_ratio(errors: float, total: float) -> float:
    """Bad events over all events; 0 when there were no events (nothing failed)."""
    if total <= 0:
        return 0.0
    return max(0.0, errors) / total


def budget_events(objective: float, total_events: float) -> float:
    """The whole budget as a number of events: how many of `total_events` may fail."""
    return error_budget(objective) * max(0.0, total_events)


def budget_events_remaining(objective: float, total_events: float, bad_events: float) -> float:
    """Events that may still fail before the budget is spent (negative when overspent)."""
    return budget_events(objective, total_events) - max(0.0, bad_events)


def budget_minutes_remaining(remaining: float, objective: float, period_s: float) -> float:
    """The remaining budget as minutes of full outage (negative when overspent)."""
    return remaining * budget_minutes(objective, period_s)


def tier_threshold(tier: AlertTier, objective: float) -> float:
    """The error ratio both of a tier's windows must exceed for it to fire."""
    return tier.burn_rate * error_budget(objective)


def tier_fires(tier: AlertTier, long_burn: float | None, short_burn: float | None) -> bool:
    """Whether a tier fires: both windows' burn rates strictly above its threshold burn rate.

    A missing window never fires (the no-data alert covers that case).
    """
    if long_burn is None or short_burn is None:
        return False
    return long_burn > tier.burn_rate and short_burn > tier.burn_rate
