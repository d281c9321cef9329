"""SLO reports over Prometheus: plan the queries, send them, assemble the answers, build the report.

Three parts: `obsctl.slo.query_plan` (which queries, pure), `obsctl.slo.prometheus` (the HTTP API,
the only I/O) and `obsctl.slo.assemble` (answers -> per-SLO data, pure). The number of queries
does not grow with the number of SLOs. Prometheus unreachable, slow or failing raises a clear error.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Protocol

import httpx

from obsctl.model.entities import SLO, Catalog, EntityRef, Service, Team
from obsctl.model.windows import WindowTable
from obsctl.slo.assemble import Answer, assemble
from obsctl.slo.periods import PeriodSpec, parse_period
from obsctl.slo.prometheus import DEFAULT_TIMEOUT_S, PrometheusAPI
from obsctl.slo.query_plan import Query, plan
from obsctl.slo.report import Key, Report, ReportFilter, SLOData, slo_key, slo_report

_PARALLEL_QUERIES = 4

__all__ = ["DEFAULT_TIMEOUT_S", "HasWindows", "PrometheusAPI", "build_report", "collect", "selected_slos"]


def collect(api: PrometheusAPI, slos: Sequence[tuple[Service, SLO]], tables: Mapping[int, WindowTable],
            period: PeriodSpec, now: float, *, charts: bool = False) -> tuple[dict[Key, SLOData], list[str]]:
    """Read every measure the report needs for `slos`, with a fixed number of vectorised queries."""
    queries = plan(slos, tables, period, now, charts=charts)

    def send(q: Query) -> tuple[Query, Answer]:
        return q, api.range(q.expr, q.start, q.at, q.step) if q.start is not None else api.instant(q.expr, q.at)

    # Sent together: Prometheus evaluates them in parallel while the first answers are read.
    with _gc_paused(), ThreadPoolExecutor(max_workers=min(_PARALLEL_QUERIES, max(1, len(queries.queries))),
                                          thread_name_prefix="slo-report") as pool:
        answers = list(pool.map(send, queries.queries))
        return assemble(queries, answers, slos, tables, period)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while answers are parsed and assembled.

    The answers for 10,000 SLOs are ~150,000 small acyclic JSON objects; their allocation triggered
    collections that walked the whole heap (the catalog included) again and again: about half the
    report's CPU. Nothing here makes cycles; collection resumes afterwards (unless it was already off).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class HasWindows(Protocol):
    """Anything with the window tables by period (spec.templates.Templates)."""

    @property
    def windows(self) -> Mapping[int, WindowTable]:
        """Window tables keyed by period days."""
        ...


def selected_slos(catalog: Catalog, filters: ReportFilter | None) -> list[tuple[Service, SLO]]:
    """The (service, SLO) pairs the filter keeps, in catalog order."""
    flt = filters or ReportFilter()
    return [(svc, slo) for svc in catalog.services for slo in svc.slos if flt.matches(svc, slo)]


def build_report(  # noqa: PLR0917 - the service calls it positionally
        catalog: Catalog, templates: HasWindows, prometheus_url: str,
                 filters: ReportFilter | None = None, period: PeriodSpec | str = "rolling",
                 now: float | None = None, *, charts: bool = False, timeout: float = DEFAULT_TIMEOUT_S,
                 client: httpx.Client | None = None) -> Report:
    """Query Prometheus and build the report for the catalog's SLOs (the CLI's and the service's entry point).

    Raises TemporaryError when Prometheus is unreachable, slow or failing, PermanentError when it
    rejects a query, ValueError for a bad period text.
    """
    now = time.time() if now is None else now
    spec = parse_period(period, now) if isinstance(period, str) else period
    slos = selected_slos(catalog, filters)
    api = PrometheusAPI(prometheus_url, timeout=timeout, client=client)
    try:
        data, warnings = collect(api, slos, templates.windows, spec, now, charts=charts)
    finally:
        api.close()
    teams: dict[EntityRef, Team] = {}
    for team in catalog.teams:
        teams.setdefault(team.ref, team)  # the first wins, as Catalog.team answers
    with _gc_paused():  # tens of thousands of small acyclic report objects, as for the answers
        reports = [slo_report(svc, slo, data[slo_key(svc, slo)], team=teams.get(svc.team),
                              table=templates.windows.get(slo.period_days), period=spec, now=now)
                   for svc, slo in slos]
        return Report.build(now, spec, api.url, reports, warnings=warnings, queries=api.queries)
