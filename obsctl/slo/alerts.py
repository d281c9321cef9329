"""Which alert tiers an SLO gets: the one decision rules, dashboards, `validate`, reports and replay share.

A tier is *selected* when the SLO's alert policy asks for it (its severity is on, and it is in
`tiers` when that list is given; an empty list selects none). A selected tier is *enabled* when
it can fire at the SLO's objective; a selected tier that never can is *dropped*, with a reason
and what would make it reachable. An SLO with no enabled tier has its alerting off: it gets no
alert of any kind (no burn, no-data or budget-exhausted alert).
"""

from __future__ import annotations

from dataclasses import dataclass

from obsctl.model.entities import SLO, AlertPolicy
from obsctl.model.windows import AlertTier, WindowTable
from obsctl.slo.math import can_fire, error_budget

PAGE = "page"
TICKET = "ticket"


@dataclass(frozen=True)
class DroppedTier:
    """A tier the policy selects that can never fire at the objective, and why."""

    tier: AlertTier
    reason: str


def selected(policy: AlertPolicy, tier: AlertTier) -> bool:
    """Whether the policy asks for this tier (severity switched on, listed when a list is given).

    A spec's custom tier (policy.custom_tiers) is selected by its severity switch alone.
    """
    if policy.tiers is not None and tier.name not in policy.tiers and tier not in policy.custom_tiers:
        return False
    return policy.page if tier.severity == PAGE else policy.ticket


def candidate_tiers(slo: SLO, table: WindowTable) -> tuple[AlertTier, ...]:
    """The table's tiers, then the spec's custom ones."""
    return (*table.tiers, *slo.alerting.custom_tiers)


def enabled_tiers(slo: SLO, table: WindowTable) -> tuple[AlertTier, ...]:
    """The tiers the SLO alerts on, table order then custom tiers: selected by its policy and able to fire."""
    return tuple(t for t in candidate_tiers(slo, table) if selected(slo.alerting, t) and can_fire(t, slo.objective))


def alerting_enabled(slo: SLO, table: WindowTable) -> bool:
    """False when the SLO has no enabled tier: then it gets no alert of any kind."""
    return bool(enabled_tiers(slo, table))


def severities(slo: SLO, table: WindowTable) -> frozenset[str]:
    """Every severity the SLO's alerts can carry (no-data and budget-exhausted alerts are tickets)."""
    tiers = enabled_tiers(slo, table)
    if not tiers:
        return frozenset()
    extra = {TICKET} if slo.alerting.no_data or slo.alerting.budget_exhausted else set()
    return frozenset({t.severity for t in tiers} | extra)


def reachable_above(tier: AlertTier) -> float:
    """The objective (a ratio) above which the tier can fire: 1 - 1/burn rate."""
    return 1.0 - 1.0 / tier.burn_rate


def dropped_tiers(slo: SLO, table: WindowTable) -> tuple[DroppedTier, ...]:
    """The selected tiers that can never fire at the objective, each with the reason and the way out."""
    out = []
    for tier in candidate_tiers(slo, table):
        if not selected(slo.alerting, tier) or can_fire(tier, slo.objective):
            continue
        budget = error_budget(slo.objective)
        limit = f"{reachable_above(tier) * 100:.2f}"
        out.append(DroppedTier(tier, (
            f"alert tier {tier.name} ({tier.severity}) can never fire at objective {slo.objective_percent}%: "
            f"it needs an error ratio above {tier.burn_rate * budget * 100:.4g}% (burn {tier.burn_rate:g}x the "
            f"{budget * 100:.4g}% budget); dropped, the SLO's other tiers still alert. It becomes reachable "
            f"with an objective above {limit}%, or with a {slo.period_days}d window table whose {tier.name} "
            f"tier has a lower burn rate (a smaller budget share over a longer long window)")))
    return tuple(out)
