"""Multi-window multi-burn-rate alert tiers and their window tables (one per SLO period)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AlertTier:
    """One MWMB tier: fires when both windows burn above `burn_rate`."""

    name: str
    severity: str  # "page" or "ticket"
    long_window_s: float
    short_window_s: float
    budget_percent: float  # share of the period's budget spent when the long window hits threshold
    period_s: float

    @property
    def burn_rate(self) -> float:
        """Threshold burn rate = budget% x period / long window (14.4 for 2% of 30d in 1h)."""
        return round(self.budget_percent / 100.0 * self.period_s / self.long_window_s, 6)


@dataclass(frozen=True)
class WindowTable:
    """The tiers for one SLO period, loaded from alert-rules/windows/<period>.yaml."""

    period_days: int
    tiers: tuple[AlertTier, ...]

    def tier(self, name: str) -> AlertTier:
        """Look a tier up by name (KeyError when absent)."""
        for t in self.tiers:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def windows_s(self) -> tuple[float, ...]:
        """Every distinct window the tiers use, ascending."""
        return tuple(sorted({w for t in self.tiers for w in (t.long_window_s, t.short_window_s)}))
