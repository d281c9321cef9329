"""Burn-rate replay: which pages and tickets an SLO's alert policy would have sent over a history.

A pure simulation of the multi-window multi-burn-rate rules over an SLI history sampled at a
fixed step (5m): at every step each window's error ratio is the traffic-weighted ratio of the
events in that window, and a tier fires while both its windows are above its threshold (and,
with a minimum-events guard, its long window saw enough events). Alerts of one severity that
overlap are one notification (Alertmanager groups per SLO and a faster tier inhibits a slower
one); a ticket is not sent while a page for the same SLO fires (inhibition).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml

from obsctl.model.durations import format_duration, parse_duration
from obsctl.model.entities import SLO, AlertPolicy, AvailabilitySLI
from obsctl.model.windows import AlertTier, WindowTable
from obsctl.slo import math as slomath
from obsctl.slo.alerts import enabled_tiers

DEFAULT_STEP_S = 300.0


@dataclass(frozen=True)
class HistorySample:
    """Events in the step ending at `t`: `errors` bad out of `total`."""

    t: float
    errors: float
    total: float


@dataclass(frozen=True)
class Episode:
    """One tier firing from `start` until `end` (None: still firing when the history ends)."""

    tier: str
    severity: str
    start: float
    end: float | None
    peak_burn: float


@dataclass(frozen=True)
class Notification:
    """One page or ticket as the on-call person would receive it."""

    severity: str
    sent_at: float  # first time it fires and is not inhibited
    start: float
    end: float | None
    tiers: tuple[str, ...]


@dataclass(frozen=True)
class ReplayResult:
    """What a window table would have done over a history."""

    label: str
    objective: float
    step: float
    start: float
    end: float
    episodes: tuple[Episode, ...]
    pages: tuple[Notification, ...]
    tickets: tuple[Notification, ...]
    inhibited_tickets: int
    budget_remaining: float  # over the whole history, for context

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        def note(n: Notification) -> dict[str, Any]:
            return {"severity": n.severity, "sent_at": n.sent_at, "start": n.start, "end": n.end,
                    "tiers": list(n.tiers)}
        return {
            "label": self.label, "objective": self.objective, "step_seconds": self.step, "start": self.start,
            "end": self.end, "pages": len(self.pages), "tickets": len(self.tickets),
            "inhibited_tickets": self.inhibited_tickets, "budget_remaining": self.budget_remaining,
            "notifications": [note(n) for n in sorted(self.pages + self.tickets, key=lambda n: n.sent_at)],
            "episodes": [{"tier": e.tier, "severity": e.severity, "start": e.start, "end": e.end,
                          "peak_burn": e.peak_burn} for e in self.episodes],
        }


def _grid(samples: Sequence[HistorySample], step: float | None) -> tuple[float, float, list[float], list[float]]:
    """Place samples on a regular grid (missing steps: no events); returns t0, step, errors, totals."""
    if not samples:
        raise ValueError("the history is empty")
    ordered = sorted(samples, key=lambda s: s.t)
    if step is None:
        diffs = sorted(b.t - a.t for a, b in itertools.pairwise(ordered) if b.t > a.t)
        step = diffs[len(diffs) // 2] if diffs else DEFAULT_STEP_S
    if step <= 0:
        raise ValueError("the step must be positive")
    t0 = ordered[0].t
    n = round((ordered[-1].t - t0) / step) + 1
    errs, tots = [0.0] * n, [0.0] * n
    for s in ordered:
        if s.errors < 0 or s.total < 0 or s.errors > s.total or not (math.isfinite(s.errors) and
                                                                     math.isfinite(s.total)):
            raise ValueError(f"sample at {s.t}: need 0 <= errors <= total, got {s.errors} of {s.total}")
        i = round((s.t - t0) / step)
        errs[i] += s.errors
        tots[i] += s.total
    return t0, step, errs, tots


def _enabled(table: WindowTable, policy: AlertPolicy | None, objective: float) -> list[AlertTier]:
    """The tiers the SLO's alert rules include (obsctl.slo.alerts decides)."""
    probe = SLO("replay", objective, AvailabilitySLI(), table.period_days, alerting=policy or AlertPolicy())
    return list(enabled_tiers(probe, table))


def replay(samples: Sequence[HistorySample], objective: float, table: WindowTable,
           policy: AlertPolicy | None = None, *, step: float | None = None, label: str = "") -> ReplayResult:
    """Simulate the table's enabled tiers over the history; see the module docstring for the rules."""
    t0, step, errs, tots = _grid(samples, step)
    n = len(errs)
    ce, ct = [0.0], [0.0]
    for e, t in zip(errs, tots, strict=True):
        ce.append(ce[-1] + e)
        ct.append(ct[-1] + t)
    min_events = (policy or AlertPolicy()).min_events or 0.0

    def window(i: int, seconds: float) -> tuple[float, float]:
        k = max(1, math.ceil(seconds / step - 1e-9))
        lo = max(0, i + 1 - k)
        return ce[i + 1] - ce[lo], ct[i + 1] - ct[lo]

    episodes: list[Episode] = []
    firing_at: dict[str, list[bool]] = {}
    tiers = _enabled(table, policy, objective)
    for tier in tiers:
        flags = []
        open_start: float | None = None
        peak = 0.0
        for i in range(n):
            le, lt = window(i, tier.long_window_s)
            se, st = window(i, tier.short_window_s)
            lb = slomath.burn_rate(slomath.error_ratio(le, lt), objective)
            sb = slomath.burn_rate(slomath.error_ratio(se, st), objective)
            fires = slomath.tier_fires(tier, lb, sb) and lt >= min_events
            flags.append(fires)
            t = t0 + i * step
            if fires:
                if open_start is None:
                    open_start, peak = t, 0.0
                peak = max(peak, lb)
            elif open_start is not None:
                episodes.append(Episode(tier.name, tier.severity, open_start, t, peak))
                open_start = None
        if open_start is not None:
            episodes.append(Episode(tier.name, tier.severity, open_start, None, peak))
        firing_at[tier.name] = flags

    def any_firing(severity: str) -> list[bool]:
        names = [t.name for t in tiers if t.severity == severity]
        return [any(firing_at[nm][i] for nm in names) for i in range(n)]

    page_on = any_firing("page")
    ticket_on = any_firing("ticket")
    never = [False] * n
    pages = _notifications("page", page_on, never, t0=t0, step=step, episodes=episodes)
    tickets_all = _notifications("ticket", ticket_on, never, t0=t0, step=step, episodes=episodes)
    tickets = _notifications("ticket", ticket_on, page_on, t0=t0, step=step, episodes=episodes)
    total_e, total_t = ce[-1], ct[-1]
    return ReplayResult(
        label=label or f"{table.period_days}d", objective=objective, step=step, start=t0, end=t0 + (n - 1) * step,
        episodes=tuple(sorted(episodes, key=lambda e: (e.start, e.tier))), pages=pages, tickets=tickets,
        inhibited_tickets=len(tickets_all) - len(tickets),
        budget_remaining=slomath.budget_remaining(slomath.error_ratio(total_e, total_t), objective),
    )


def _notifications(severity: str, on: list[bool], inhibited: list[bool], *, t0: float, step: float,
                   episodes: Iterable[Episode]) -> tuple[Notification, ...]:
    out: list[Notification] = []
    i, n = 0, len(on)
    while i < n:
        if not on[i]:
            i += 1
            continue
        j = i
        while j < n and on[j]:
            j += 1
        sent = next((k for k in range(i, j) if not inhibited[k]), None)
        start, end = t0 + i * step, (t0 + j * step if j < n else None)
        if sent is not None:
            tiers = sorted({e.tier for e in episodes if e.severity == severity and e.start < (end or math.inf)
                            and (e.end is None or e.end > start)})
            out.append(Notification(severity, t0 + sent * step, start, end, tuple(tiers)))
        i = j
    return tuple(out)


# --------------------------------------------------------------------------- inputs


def _time(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _sample(row: Any) -> HistorySample:
    if isinstance(row, list | tuple):
        t, e, tot = row
    else:
        t = row.get("t", row.get("timestamp", row.get("time")))
        e, tot = row["errors"], row["total"]
    return HistorySample(_time(t), float(e), float(tot))


def parse_history(text: str, fmt: str | None = None) -> list[HistorySample]:
    """Read an SLI history: CSV with columns t|timestamp, errors, total (events per step), or JSON
    (a list of {t, errors, total} objects or [t, errors, total] triples, or {"samples": [...]}).
    Times are unix seconds or ISO 8601. Raises ValueError with the offending row."""
    fmt = fmt or ("json" if text.lstrip().startswith(("[", "{")) else "csv")
    rows: list[Any]
    if fmt == "json":
        doc = json.loads(text)
        rows = doc["samples"] if isinstance(doc, dict) else doc
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
    out = []
    for n, row in enumerate(rows, start=1):
        try:
            out.append(_sample(row))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"history row {n}: {exc!r}: {row!r}") from None
    return out


def window_table_from_yaml(text: str) -> WindowTable:
    """A window table document (the format of alert-rules/windows/*.yaml)."""
    doc = yaml.safe_load(text)
    seconds = parse_duration(str(doc["period"]))
    days = int(seconds // 86400)
    return WindowTable(days, tuple(
        AlertTier(str(t["name"]), str(t["severity"]), parse_duration(str(t["long_window"])),
                  parse_duration(str(t["short_window"])), float(t["budget_percent"]), days * 86400.0)
        for t in doc["tiers"]))


def render_replay_text(results: Sequence[ReplayResult]) -> str:
    """A side-by-side text summary, then each notification."""
    from obsctl.slo.formats import when

    out = []
    for r in results:
        out.append(f"{r.label}: {len(r.pages)} pages, {len(r.tickets)} tickets ({r.inhibited_tickets} tickets "
                   f"inhibited by pages) over {format_duration(r.end - r.start + r.step)} at "
                   f"{format_duration(r.step)} steps; budget left at the end {r.budget_remaining * 100:.1f}%\n")
        for note in sorted(r.pages + r.tickets, key=lambda x: x.sent_at):
            dur = "still firing" if note.end is None else f"for {format_duration(note.end - note.start)}"
            out.append(f"  {note.severity:6} {when(note.sent_at)}  {dur:18} {','.join(note.tiers)}\n")
    return "".join(out)
