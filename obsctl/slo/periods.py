"""Report periods: each SLO's rolling period, or a calendar month or quarter (UTC)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

ROLLING = "rolling"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")


@dataclass(frozen=True)
class PeriodSpec:
    """What a report covers.

    `rolling`: each SLO over its own declared period, ending now. `calendar`: every SLO over
    the same [start, end) range in unix seconds; a period still in progress is read up to now.
    """

    kind: str  # "rolling" | "calendar"
    label: str  # "rolling", "2026-10", "2026-Q3"
    start: float | None = None
    end: float | None = None

    @property
    def is_calendar(self) -> bool:
        """True for a month or a quarter."""
        return self.kind == "calendar"

    @property
    def length_s(self) -> float:
        """The calendar period's full length (0 for rolling: it differs per SLO)."""
        return (self.end or 0.0) - (self.start or 0.0)

    def read_end(self, now: float) -> float:
        """The end of the data range to read: the period's end, or now while it is in progress."""
        if self.end is None:
            return now
        return min(self.end, now)

    def in_progress(self, now: float) -> bool:
        """Whether the period includes the present (rolling periods always do)."""
        return self.end is None or (self.start or 0.0) <= now < self.end


def _ts(year: int, month: int) -> float:
    return datetime(year, month, 1, tzinfo=UTC).timestamp()


def _month(year: int, month: int) -> PeriodSpec:
    if not 1 <= month <= 12:
        raise ValueError(f"unknown period {year:04d}-{month:02d}: no month {month:02d}")
    ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
    return PeriodSpec("calendar", f"{year:04d}-{month:02d}", _ts(year, month), _ts(ny, nm))


def _quarter(year: int, q: int) -> PeriodSpec:
    first = 3 * (q - 1) + 1
    ny, nm = (year + 1, 1) if q == 4 else (year, first + 3)
    return PeriodSpec("calendar", f"{year:04d}-Q{q}", _ts(year, first), _ts(ny, nm))


def parse_period(text: str, now: float) -> PeriodSpec:
    """Parse `rolling`, `this-month`, `last-month`, `this-quarter`, `last-quarter`, `2026-10` or `2026-Q3`.

    Raises ValueError for anything else and for a period that starts after `now`.
    """
    text = text.strip()
    today = datetime.fromtimestamp(now, tz=UTC)
    q_now = (today.month - 1) // 3 + 1
    if text == ROLLING:
        return PeriodSpec("rolling", ROLLING)
    if text == "this-month":
        spec = _month(today.year, today.month)
    elif text == "last-month":
        spec = _month(today.year - 1, 12) if today.month == 1 else _month(today.year, today.month - 1)
    elif text == "this-quarter":
        spec = _quarter(today.year, q_now)
    elif text == "last-quarter":
        spec = _quarter(today.year - 1, 4) if q_now == 1 else _quarter(today.year, q_now - 1)
    elif m := _MONTH.match(text):
        spec = _month(int(m[1]), int(m[2]))
    elif m := _QUARTER.match(text):
        spec = _quarter(int(m[1]), int(m[2]))
    else:
        raise ValueError(
            f"unknown period {text!r}: use rolling, this-month, last-month, this-quarter, last-quarter, "
            "YYYY-MM or YYYY-Qn")
    if spec.start is not None and spec.start > now:
        raise ValueError(f"period {spec.label} has not started yet")
    return spec
