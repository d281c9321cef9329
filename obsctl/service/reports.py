"""SLO reports for the HTTP API: built from the service's current catalog and Prometheus, and for
closed calendar periods kept as snapshots in the state store.

A report of a calendar month or quarter that has ended (and settled for `SETTLE_SECONDS`, so the
last rule evaluations of the period have landed) is built once, for the whole catalog with
charts, and stored under `calendar:<label>` (`calendar:2026-10`, `calendar:2026-Q3`). Later
requests are answered from the store, filtered and trimmed on the way out, so the report stays
the same after Prometheus drops the data (retention) or the catalog renames a team. Snapshots are
taken on demand (the first request for the period), not by a periodic job; `refresh` rebuilds one.
A report with warnings (Prometheus answered only in part) or without data for any SLO (rules not
loaded, the wrong Prometheus, a month before any data) is served but never stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from obsctl import app
from obsctl.errors import PermanentError
from obsctl.model import conventions as cv
from obsctl.model.entities import Catalog
from obsctl.reconcile.loop import Reconciler
from obsctl.slo.formats import render_json, render_markdown, render_table
from obsctl.slo.html import render_html
from obsctl.slo.periods import PeriodSpec, parse_period
from obsctl.slo.query import DEFAULT_TIMEOUT_S, HasWindows, build_report
from obsctl.slo.report import Report, ReportFilter, SLOReport, Status, team_matches
from obsctl.sources.base import CatalogSource
from obsctl.spec.templates import Templates

SNAPSHOT_PREFIX = "calendar:"
SETTLE_SECONDS = 900.0
ORIGIN_PROMETHEUS = "prometheus"
ORIGIN_SNAPSHOT = "snapshot"

FORMATS: dict[str, tuple[str, Callable[[Report], str]]] = {
    "json": ("application/json", render_json),
    "markdown": ("text/markdown; charset=utf-8", render_markdown),
    "html": ("text/html; charset=utf-8", render_html),
    "table": ("text/plain; charset=utf-8", render_table),
}


class NoPrometheus(Exception):
    """No Prometheus URL is configured, and the report is not in the store."""


class ReportStore(Protocol):
    """Where snapshots live (obsctl.store.state.StateStore)."""

    def save_report(self, key: str, body: str) -> None:
        """Store a snapshot."""
        ...

    def load_report(self, key: str) -> str | None:
        """A stored snapshot, or None."""
        ...

    def list_reports(self) -> list[str]:
        """Every stored key."""
        ...


@dataclass(frozen=True)
class Served:
    """A report and where it came from."""

    report: Report
    origin: str  # ORIGIN_PROMETHEUS or ORIGIN_SNAPSHOT
    snapshot_key: str = ""  # the store key when the period is snapshotted


def snapshot_key(period: PeriodSpec) -> str:
    """The store key of a calendar period's snapshot."""
    return SNAPSHOT_PREFIX + period.label


def is_closed(period: PeriodSpec, now: float) -> bool:
    """A calendar period that ended at least SETTLE_SECONDS ago."""
    return period.is_calendar and period.end is not None and now >= period.end + SETTLE_SECONDS


def worth_keeping(report: Report) -> bool:
    """Whether a closed period's report may become its snapshot: complete answers, some data."""
    return not report.warnings and any(s.status is not Status.NO_DATA for s in report.slos)


def _team_matches(wanted: str, label: str) -> bool:
    # a report keeps the team's label (cv.team_label): the same filter as on the catalog (slo.report.team_matches)
    team = cv.team_of_label(label)
    return team is not None and team_matches(wanted, team)


def _service_matches(wanted: str, namespace: str, service: str) -> bool:
    qualified = f"{namespace}/{service}"
    return wanted in (service, qualified) or (":" in wanted and wanted.partition(":")[2] == qualified)


def filter_report(report: Report, filters: ReportFilter) -> Report:
    """The report restricted to the SLOs the filter keeps (ReportFilter semantics on stored reports)."""
    if not (filters.team or filters.service or filters.slo):
        return report

    def keep(s: SLOReport) -> bool:
        if filters.team and not _team_matches(filters.team, s.team):
            return False
        if filters.service and not _service_matches(filters.service, s.namespace, s.service):
            return False
        return not (filters.slo and filters.slo != s.slo)

    return Report.build(report.generated_at, report.period, report.source, [s for s in report.slos if keep(s)],
                        warnings=report.warnings, queries=report.queries)


def without_charts(report: Report) -> Report:
    """The report with its chart series dropped (what `charts=false` asks of a stored snapshot)."""
    return replace(report, slos=tuple(replace(s, burn_chart={}, budget_chart=()) for s in report.slos))


class ReportService:
    """Builds reports on demand and keeps closed calendar periods in the store."""

    def __init__(self, store: ReportStore, catalog: Callable[[], Catalog], templates: HasWindows,
                 prometheus_url: str, *, clock: Callable[[], float] = time.time,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.store = store
        self.catalog = catalog
        self.templates = templates
        self.prometheus_url = prometheus_url
        self.clock = clock
        self.timeout = timeout
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _build(self, filters: ReportFilter | None, period: PeriodSpec, now: float, charts: bool) -> Report:
        if not self.prometheus_url:
            raise NoPrometheus("no Prometheus URL configured (prometheus.url or OBSCTL_PROMETHEUS__URL): "
                               "reports need it")
        return build_report(self.catalog(), self.templates, self.prometheus_url, filters, period, now,
                            charts=charts, timeout=self.timeout)

    def get(self, filters: ReportFilter, period_text: str, *, charts: bool = False, refresh: bool = False) -> Served:
        """The report for a period text (rolling, this-month, last-month, YYYY-MM, YYYY-Qn, ...).

        Raises ValueError for a bad period, NoPrometheus, and what build_report raises
        (TemporaryError: Prometheus unreachable; PermanentError: it rejected a query).
        """
        now = self.clock()
        period = parse_period(period_text, now)
        if not is_closed(period, now):
            return Served(self._build(filters, period, now, charts), ORIGIN_PROMETHEUS)
        key = snapshot_key(period)
        with self._lock(key):
            stored = None if refresh else self.store.load_report(key)
            if stored is not None:
                full, origin = Report.from_json(stored), ORIGIN_SNAPSHOT
            else:
                full, origin = self._build(None, period, now, True), ORIGIN_PROMETHEUS
                if worth_keeping(full):
                    self.store.save_report(key, full.to_json())
        out = filter_report(full, filters)
        return Served(out if charts else without_charts(out), origin, key)

    def snapshots(self) -> list[str]:
        """The stored snapshot keys, sorted."""
        return [k for k in self.store.list_reports() if k.startswith(SNAPSHOT_PREFIX)]


def current_catalog(reconciler: Reconciler, source: CatalogSource, templates: Templates,
                    environment: str = "production") -> Catalog:
    """The catalog the reconcile loop last loaded; before its first round (or on a follower, which
    does not run rounds) the catalog is read from the sources now."""
    cat = reconciler.catalog
    if cat is not None:
        return cat
    fetched = source.fetch()
    result = app.catalog_loader(templates, environment=environment)(fetched.files)
    if not result.catalog.services and result.errors:
        raise PermanentError(f"the catalog does not load: {result.errors[0]}")
    return result.catalog
