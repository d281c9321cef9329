"""The SLO report: per-SLO budgets, burn rates, firing tiers and status (pure: no I/O, no clock).

`slo_report()` turns what Prometheus said about one SLO (`SLOData`, from slo.query) into an
`SLOReport`; `Report` holds them worst first, groups them by team and service, and round-trips
through JSON (schema: report.schema.json, `schema_version` 1) so snapshots can be stored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any

from obsctl.model import conventions as cv
from obsctl.model.conventions import window_name
from obsctl.model.durations import parse_duration
from obsctl.model.entities import SLO, AlertPolicy, BudgetingMethod, EntityRef, Service, Team
from obsctl.model.windows import AlertTier, WindowTable
from obsctl.slo import math as slomath
from obsctl.slo.alerts import enabled_tiers
from obsctl.slo.periods import PeriodSpec

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")

EXHAUSTED_EPSILON = 1e-9  # 1 - 0.001 / (1 - 0.999) is 9e-16 in floats: that budget is spent
Key = tuple[str, str, str]
"""(namespace, service, slo): how recorded series name an SLO."""

Point = tuple[float, float]


class Status(str, Enum):
    """Where an SLO stands, worst first."""

    EXHAUSTED = "exhausted"
    BURNING = "burning"
    NO_DATA = "no-data"
    HEALTHY = "healthy"

    @property
    def rank(self) -> int:
        """0 for the worst status."""
        return list(Status).index(self)


def slo_key(svc: Service, slo: SLO) -> Key:
    """The key the query layer files an SLO's data under."""
    return (svc.namespace, svc.name, slo.name)


@dataclass(frozen=True)
class SLOData:
    """What Prometheus said about one SLO; None or empty where it said nothing usable."""

    window_ratios: Mapping[str, float] = field(default_factory=dict)  # window name (5m, 1h) -> error ratio
    window_rates: Mapping[str, float] = field(default_factory=dict)  # window name -> events per second
    period_ratio: float | None = None  # error ratio over the period read
    period_events: float | None = None  # events (requests) over the period read
    recorded_objective: float | None = None
    burn_history: Mapping[str, tuple[Point, ...]] = field(default_factory=dict)  # window -> (t, error ratio)
    rate_history: tuple[tuple[float, float, float], ...] = ()  # (t, error rate, total rate) per step ending at t
    history_step: float = 0.0
    problems: tuple[str, ...] = ()  # why some measure is missing


@dataclass(frozen=True)
class WindowBurn:
    """The burn rate over one MWMB window now."""

    window: str
    seconds: float
    error_ratio: float | None
    burn_rate: float | None


@dataclass(frozen=True)
class TierState:
    """One alert tier of the SLO's window table, and whether it fires now."""

    name: str
    severity: str
    long_window: str
    short_window: str
    threshold: float  # burn rate both windows must exceed
    long_burn: float | None
    short_burn: float | None
    enabled: bool  # the SLO's alert policy uses this tier
    firing: bool


@dataclass(frozen=True)
class SLOReport:
    """Everything a report says about one SLO."""

    team: str
    team_title: str
    namespace: str
    service: str
    service_title: str
    slo: str
    description: str
    sli_kind: str
    budgeting: str
    objective: float
    period_label: str
    period_start: float
    period_end: float
    in_progress: bool
    status: Status
    error_ratio: float | None
    budget_remaining: float | None  # share of the period's budget left, 1 - period burn
    budget_minutes: float  # the whole budget in minutes of full outage
    budget_minutes_remaining: float | None
    events_total: float | None  # events (or slices, for timeslices budgeting) in the period read
    events_bad: float | None
    budget_events: float | None
    budget_events_remaining: float | None
    windows: tuple[WindowBurn, ...] = ()
    tiers: tuple[TierState, ...] = ()
    current_burn_window: str = ""
    current_burn: float | None = None
    exhaustion_s: float | None = None  # at the current burn; None: never (or not in progress)
    reasons: tuple[str, ...] = ()
    runbook: str = ""
    dashboard: str = ""
    burn_chart: Mapping[str, tuple[Point, ...]] = field(default_factory=dict)  # window -> (t, burn rate)
    budget_chart: tuple[Point, ...] = ()  # (t, budget remaining)

    @property
    def period_s(self) -> float:
        """The budget period's length in seconds."""
        return self.period_end - self.period_start

    @property
    def sli(self) -> float | None:
        """The achieved SLI over the period (1 - error ratio)."""
        return None if self.error_ratio is None else 1.0 - self.error_ratio

    @property
    def budget_ratio(self) -> float:
        """The error budget as a ratio: 1 - objective."""
        return slomath.error_budget(self.objective)

    @property
    def firing(self) -> tuple[str, ...]:
        """Names of the tiers firing now."""
        return tuple(t.name for t in self.tiers if t.firing)

    @property
    def sort_key(self) -> tuple[int, float, str, str, str]:
        """Worst first: status, then least budget left, then names."""
        rem = self.budget_remaining if self.budget_remaining is not None else math.inf
        return (self.status.rank, rem, self.namespace, self.service, self.slo)


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return value


def _enough_events(slo: SLO, tier: AlertTier, data: SLOData) -> bool:
    """The minimum-events guard: the long window must have seen `min_events` events."""
    need = slo.alerting.min_events
    if not need:
        return True
    rate = _finite(data.window_rates.get(window_name(tier.long_window_s)))
    return rate is not None and rate * tier.long_window_s >= need


def _budget_chart(data: SLOData, start: float, budget: float) -> tuple[Point, ...]:
    rows = [r for r in data.rate_history if r[0] > start]
    total = sum(r[2] for r in rows) * data.history_step
    if not rows or total <= 0 or budget <= 0:
        return ()
    bad = 0.0
    points: list[Point] = [(start, 1.0)]
    for t, err, _tot in rows:
        bad += err * data.history_step
        points.append((t, 1.0 - bad / (budget * total)))
    return tuple(points)


# A report covers thousands of SLOs that share a few window tables and alerting policies: what
# depends only on those is computed once.
@lru_cache(maxsize=64)
def _windows(table: WindowTable) -> tuple[tuple[float, str], ...]:
    return tuple((secs, window_name(secs)) for secs in table.windows_s)


@lru_cache(maxsize=64)
def _tiers(table: WindowTable) -> tuple[tuple[AlertTier, str, str, float], ...]:
    return tuple((t, window_name(t.long_window_s), window_name(t.short_window_s), t.burn_rate) for t in table.tiers)


_ENABLED: dict[tuple[AlertPolicy, float, WindowTable], tuple[AlertTier, ...]] = {}


def _enabled_tiers(slo: SLO, table: WindowTable) -> tuple[AlertTier, ...]:
    """enabled_tiers, which reads the SLO's alerting policy and objective only, remembered (bounded)."""
    key = (slo.alerting, slo.objective, table)
    found = _ENABLED.get(key)
    if found is None:
        if len(_ENABLED) > 4096:
            _ENABLED.clear()
        found = _ENABLED[key] = enabled_tiers(slo, table)
    return found


def slo_report(svc: Service, slo: SLO, data: SLOData, *, team: Team | None, table: WindowTable | None,
               period: PeriodSpec, now: float) -> SLOReport:
    """Compute one SLO's report from its data; every missing measure lowers what is claimed, never guesses."""
    reasons = list(data.problems)
    budget = slomath.error_budget(slo.objective)
    if period.is_calendar:
        start, end = float(period.start or 0.0), float(period.end or 0.0)
        label = period.label
    else:
        end = now
        start = now - slo.period_days * 86400.0
        label = f"{slo.period_days}d rolling"
    period_s = end - start
    in_progress = period.in_progress(now)
    read_s = period.read_end(now) - start

    if data.period_ratio is not None and math.isnan(data.period_ratio):
        reasons.append("no traffic in the period")  # 0/0: the SLI is undefined, not perfect
    ratio = _finite(data.period_ratio)
    if ratio is not None and not 0.0 <= ratio <= 1.0:
        reasons.append(f"implausible error ratio {ratio!r} over the period")
        ratio = None
    if ratio is None and not reasons:
        reasons.append("no data for the period")
    events = _finite(data.period_events)
    if slo.budgeting is BudgetingMethod.TIMESLICES:
        events = read_s / slo.timeslice_seconds if ratio is not None else None

    remaining = None if ratio is None else slomath.budget_remaining(ratio, slo.objective)
    minutes = slomath.budget_minutes(slo.objective, period_s)
    bad = None if ratio is None or events is None else ratio * events

    windows: list[WindowBurn] = []
    burns: dict[float, float | None] = {}
    tiers: list[TierState] = []
    current_window, current = "", None
    if table is not None and in_progress:
        for secs, name in _windows(table):
            w_ratio = _finite(data.window_ratios.get(name))
            burn = None if w_ratio is None else slomath.burn_rate(w_ratio, slo.objective)
            burns[secs] = burn
            windows.append(WindowBurn(name, secs, w_ratio, burn))
        missing = [w.window for w in windows if w.burn_rate is None]
        if missing and ratio is not None:
            reasons.append("no recent data for window(s) " + ", ".join(missing))
        if table.tiers:
            fastest = min(table.tiers, key=lambda t: t.long_window_s)
            current_window, current = window_name(fastest.long_window_s), burns.get(fastest.long_window_s)
    # A closed period keeps its tiers (thresholds for the charts) with no current burn and nothing firing.
    on = _enabled_tiers(slo, table) if table is not None else ()
    for tier, long_name, short_name, threshold in _tiers(table) if table is not None else ():
        enabled = tier in on
        lb, sb = burns.get(tier.long_window_s), burns.get(tier.short_window_s)
        firing = in_progress and enabled and slomath.tier_fires(tier, lb, sb) and _enough_events(slo, tier, data)
        tiers.append(TierState(tier.name, tier.severity, long_name, short_name, threshold, lb, sb, enabled, firing))

    exhaustion = None
    if remaining is not None and in_progress and current is not None:
        exhaustion = slomath.time_to_exhaustion(remaining, current, period_s)
    if data.recorded_objective is not None and not math.isclose(data.recorded_objective, slo.objective,
                                                                 rel_tol=1e-9, abs_tol=1e-12):
        reasons.append(f"Prometheus rules record objective {data.recorded_objective:g}, catalog says "
                       f"{slo.objective:g}: rules not converged yet")

    if remaining is None:
        status = Status.NO_DATA
    elif remaining <= EXHAUSTED_EPSILON:
        status = Status.EXHAUSTED
    elif any(t.firing for t in tiers):
        status = Status.BURNING
    else:
        status = Status.HEALTHY

    burn_chart = {w: tuple((t, v / budget) for t, v in pts if t >= start and math.isfinite(v))
                  for w, pts in sorted(data.burn_history.items(), key=lambda kv: _window_order(kv[0]))}
    return SLOReport(
        team=cv.team_label(svc.team), team_title=(team.title if team and team.title else cv.team_label(svc.team)),
        namespace=svc.namespace, service=svc.name, service_title=svc.title or svc.name, slo=slo.name,
        description=slo.description, sli_kind=slo.sli.kind, budgeting=slo.budgeting.value,
        objective=slo.objective, period_label=label, period_start=start, period_end=end,
        in_progress=in_progress, status=status, error_ratio=ratio, budget_remaining=remaining,
        budget_minutes=minutes,
        budget_minutes_remaining=None if remaining is None else slomath.budget_minutes_remaining(
            remaining, slo.objective, period_s),
        events_total=None if ratio is None else events, events_bad=bad,
        budget_events=None if ratio is None or events is None else slomath.budget_events(slo.objective, events),
        budget_events_remaining=None if bad is None or events is None else slomath.budget_events_remaining(
            slo.objective, events, bad),
        windows=tuple(windows), tiers=tuple(tiers), current_burn_window=current_window, current_burn=current,
        exhaustion_s=exhaustion, reasons=tuple(dict.fromkeys(reasons)), runbook=svc.links.runbook,
        dashboard=svc.links.dashboard,
        burn_chart={w: p for w, p in burn_chart.items() if p},
        budget_chart=_budget_chart(data, start, budget) if slo.budgeting is BudgetingMethod.OCCURRENCES else (),
    )


def _window_order(name: str) -> float:
    try:
        return parse_duration(name)
    except ValueError:
        return math.inf


@dataclass(frozen=True)
class ServiceGroup:
    """One service's SLOs, worst first."""

    namespace: str
    service: str
    title: str
    slos: tuple[SLOReport, ...]

    @property
    def worst(self) -> Status:
        """The worst status of its SLOs."""
        return min((s.status for s in self.slos), key=lambda st: st.rank)


@dataclass(frozen=True)
class TeamGroup:
    """One team's services, worst first."""

    team: str
    title: str
    services: tuple[ServiceGroup, ...]

    @property
    def worst(self) -> Status:
        """The worst status of its services."""
        return min((s.worst for s in self.services), key=lambda st: st.rank)


@dataclass(frozen=True)
class Report:
    """A report over many SLOs for one period."""

    generated_at: float
    period: PeriodSpec
    source: str
    slos: tuple[SLOReport, ...]
    warnings: tuple[str, ...] = ()
    queries: int = 0

    @classmethod
    def build(cls, generated_at: float, period: PeriodSpec, source: str, slos: Iterable[SLOReport], *,
              warnings: Iterable[str] = (), queries: int = 0) -> Report:
        """A report with its SLOs sorted worst first."""
        return cls(generated_at, period, source, tuple(sorted(slos, key=lambda s: s.sort_key)),
                   tuple(warnings), queries)

    def summary(self) -> dict[str, int]:
        """How many SLOs are in each status, and in all."""
        out = {"slos": len(self.slos)}
        for st in Status:
            out[st.value] = sum(1 for s in self.slos if s.status is st)
        return out

    def groups(self) -> tuple[TeamGroup, ...]:
        """SLOs grouped by team, then service; the worst team, service and SLO first."""
        teams: dict[str, dict[tuple[str, str], list[SLOReport]]] = {}
        titles: dict[str, str] = {}
        for s in self.slos:  # already worst first, so first appearance orders the groups
            teams.setdefault(s.team, {}).setdefault((s.namespace, s.service), []).append(s)
            titles.setdefault(s.team, s.team_title)
        return tuple(
            TeamGroup(team, titles[team], tuple(ServiceGroup(ns, svc, items[0].service_title, tuple(items))
                                                for (ns, svc), items in services.items()))
            for team, services in teams.items())

    # -- JSON ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON document (schema_version 1; see report.schema.json)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "generated_at": self.generated_at,
            "period": {"kind": self.period.kind, "label": self.period.label,
                       "start": self.period.start, "end": self.period.end},
            "source": self.source,
            "queries": self.queries,
            "warnings": list(self.warnings),
            "summary": self.summary(),
            "teams": [{"team": g.team, "title": g.title, "status": g.worst.value,
                       "services": [{"namespace": sg.namespace, "service": sg.service, "title": sg.title,
                                     "status": sg.worst.value, "slos": [_slo_dict(s) for s in sg.slos]}
                                    for sg in g.services]}
                      for g in self.groups()],
        }

    def to_json(self) -> str:
        """The JSON document as deterministic text (sorted keys, 2-space indent)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, doc: str | bytes | Mapping[str, Any]) -> Report:
        """Read a document written by to_json()/to_dict(); ValueError for another schema version."""
        data: Mapping[str, Any] = json.loads(doc) if isinstance(doc, str | bytes) else doc
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"unsupported SLO report schema_version {data.get('schema_version')!r}")
        p = data["period"]
        slos = [_slo_from(s, t, sg) for t in data["teams"] for sg in t["services"] for s in sg["slos"]]
        return cls.build(float(data["generated_at"]), PeriodSpec(p["kind"], p["label"], p["start"], p["end"]),
                         str(data["source"]), slos, warnings=data.get("warnings", ()),
                         queries=int(data.get("queries", 0)))


def _pts(points: Iterable[Point]) -> list[list[float]]:
    return [[t, v] for t, v in points]


def _slo_dict(s: SLOReport) -> dict[str, Any]:
    return {
        "slo": s.slo, "description": s.description, "sli_kind": s.sli_kind, "budgeting": s.budgeting,
        "objective": s.objective, "status": s.status.value, "reasons": list(s.reasons),
        "period": {"label": s.period_label, "start": s.period_start, "end": s.period_end,
                   "seconds": s.period_s, "in_progress": s.in_progress},
        "sli": s.sli, "error_ratio": s.error_ratio,
        "budget": {"ratio": s.budget_ratio, "remaining_ratio": s.budget_remaining, "minutes": s.budget_minutes,
                   "minutes_remaining": s.budget_minutes_remaining, "events": s.budget_events,
                   "events_remaining": s.budget_events_remaining, "events_total": s.events_total,
                   "events_bad": s.events_bad},
        "burn_rates": [{"window": w.window, "seconds": w.seconds, "error_ratio": w.error_ratio,
                        "burn_rate": w.burn_rate} for w in s.windows],
        "tiers": [{"name": t.name, "severity": t.severity, "long_window": t.long_window,
                   "short_window": t.short_window, "threshold": t.threshold, "long_burn": t.long_burn,
                   "short_burn": t.short_burn, "enabled": t.enabled, "firing": t.firing} for t in s.tiers],
        "firing": list(s.firing),
        "current_burn": {"window": s.current_burn_window, "burn_rate": s.current_burn},
        "exhaustion_seconds": s.exhaustion_s,
        "links": {"runbook": s.runbook, "dashboard": s.dashboard},
        "charts": {"burn": [{"window": w, "points": _pts(p)} for w, p in s.burn_chart.items()],
                   "budget": _pts(s.budget_chart)},
    }


def _tuple_pts(rows: Iterable[Iterable[float]]) -> tuple[Point, ...]:
    out: list[Point] = []
    for row in rows:
        t, v = row
        out.append((float(t), float(v)))
    return tuple(out)


def _slo_from(s: Mapping[str, Any], team: Mapping[str, Any], svc: Mapping[str, Any]) -> SLOReport:
    b, p = s["budget"], s["period"]
    return SLOReport(
        team=team["team"], team_title=team["title"], namespace=svc["namespace"], service=svc["service"],
        service_title=svc["title"], slo=s["slo"], description=s["description"], sli_kind=s["sli_kind"],
        budgeting=s["budgeting"], objective=s["objective"], period_label=p["label"], period_start=p["start"],
        period_end=p["end"], in_progress=p["in_progress"], status=Status(s["status"]),
        error_ratio=s["error_ratio"], budget_remaining=b["remaining_ratio"], budget_minutes=b["minutes"],
        budget_minutes_remaining=b["minutes_remaining"], events_total=b["events_total"],
        events_bad=b["events_bad"], budget_events=b["events"], budget_events_remaining=b["events_remaining"],
        windows=tuple(WindowBurn(w["window"], w["seconds"], w["error_ratio"], w["burn_rate"])
                      for w in s["burn_rates"]),
        tiers=tuple(TierState(t["name"], t["severity"], t["long_window"], t["short_window"], t["threshold"],
                              t["long_burn"], t["short_burn"], t["enabled"], t["firing"]) for t in s["tiers"]),
        current_burn_window=s["current_burn"]["window"], current_burn=s["current_burn"]["burn_rate"],
        exhaustion_s=s["exhaustion_seconds"], reasons=tuple(s["reasons"]), runbook=s["links"]["runbook"],
        dashboard=s["links"]["dashboard"],
        burn_chart={c["window"]: _tuple_pts(c["points"]) for c in s["charts"]["burn"]},
        budget_chart=_tuple_pts(s["charts"]["budget"]),
    )


@dataclass(frozen=True)
class ReportFilter:
    """Which SLOs a report covers; None matches everything."""

    team: str | None = None  # team label (payments, retail/payments) or ref (group:retail/payments): team_matches
    service: str | None = None  # service name or namespace/name
    slo: str | None = None

    def matches(self, svc: Service, slo: SLO) -> bool:
        """Whether the filter keeps this SLO."""
        if self.team and not team_matches(self.team, svc.team):
            return False
        if self.service and self.service not in (svc.name, f"{svc.namespace}/{svc.name}", str(svc.ref)):
            return False
        return not (self.slo and self.slo != slo.name)


def team_matches(wanted: str, team: EntityRef) -> bool:
    """Whether a team filter names `team`: by its team label (the `team` column and the alerts' `team` label:
    `payments` in the default namespace, `retail/payments` elsewhere), as `namespace/name`, or as a ref
    (`group:retail/payments`). A bare name is the default namespace's team, as in a Backstage ref."""
    ref = EntityRef.parse(wanted.strip(), team.kind)
    return (ref.namespace, ref.name) == (team.namespace, team.name)
