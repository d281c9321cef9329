"""SLO recording and alerting rules: a Prometheus rule file, a PrometheusRule and/or a ruler group per service.

Per SLO (labels service, catalog_namespace, slo on every series; volatile metadata on `obsctl_slo_info`):

- windows up to RAW_WINDOW_MAX_S (5m ... 6h): the request rate on the raw counters, then the error
  ratio, whose error rate reads that recorded request rate where it needs the total; the error rate
  itself is recorded at 5m only (dashboards and reports read it there). A default availability SLI
  whose error matcher is one matcher reads the raw counters once per window: every request summed
  by error class (`obsctl:slo_requests_by_class:rate<w>`, `obsctl_error` "true" or "false"), which
  the request rate and the error rate then add up. Its windows recorded outside `sli` (30m, 2h, 6h)
  read no raw counter at all: they add up a shorter window's by-class rates recorded at abutting
  offsets (`composition_base`);
- tiles: sums of the recorded 5m rates over the 5m (or 10m) before each evaluation, and how many
  rates each holds (`tile_rules`);
- longer windows (1d, 3d) and the period: the ratio of the recorded rates' sums over the window,
  added up from abutting tiles (5m tiles for the windows, 10m ones for the period; see `_tiled`),
  which weights every scrape interval by its traffic (exact for occurrences budgeting) and reads one
  tile per span instead of every recorded rate; the period's request count from its tiles;
- timeslices budgeting: a bad-slice indicator and the fraction of bad slices per window;
- burn rate per window and for the period, objective, budget, remaining budget;
- one alert per enabled MWMB tier (burn rates divided from the ratios), a no-data alert and an
  optional budget-exhausted alert.

Groups: `sli` at the rules' evaluation interval holds page-fast's windows (1h, 5m), then page-fast;
`meta`, once a minute, page-slow's windows (6h, 30m), the burn-rate series of every page window
(dashboards), then page-slow; `tickets`, every 2m30s, the 5m tiles, the windows only ticket tiers
read and their burn rates, then the ticket, no-data and budget-exhausted alerts; `period`, every 3m20s,
the period's 10m tiles, its figures and the SLO's constants. Each alert runs right after
the windows it reads are recorded. Rule evaluation cost is mostly per sample read, per rule and per
group evaluation, so each window is read no more often than what reads it needs.

Every catalog value is escaped for its target: PromQL strings (`escape.promql`), Go
templates in alert labels and annotations (`escape.gotemplate`), YAML (`yaml` dumper from dicts).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from obsctl.errors import Problem, SpecError
from obsctl.model import conventions as cv
from obsctl.model import yamltext
from obsctl.model.artifact import Artifact, Kind
from obsctl.model.durations import format_duration, parse_duration
from obsctl.model.entities import SLO, BudgetingMethod, Catalog, Service
from obsctl.model.escape.gotemplate import literal as template_literal
from obsctl.model.escape.promql import string as promql_string
from obsctl.model.platform import Templates
from obsctl.model.windows import AlertTier, WindowTable
from obsctl.render.context import RenderContext
from obsctl.render.options import RenderOptions
from obsctl.render.promql import parse_error
from obsctl.render.rule_shapes import ShapeCache
from obsctl.render.sli import group_labels, number, selector, sli_queries
from obsctl.render.yamlout import dump_yaml, header_line
from obsctl.slo.alerts import enabled_tiers

RAW_WINDOW_MAX_S = 6 * 3600.0  # windows up to this read the raw counters; longer ones the recorded 5m rates
SHORT_S = parse_duration(cv.SHORT_RESOLUTION)  # the resolution of the recorded rates (5m)
# Page tiers whose long window is up to this run at the rules' evaluation interval (page-fast); longer
# ones (page-slow, 6h/30m) once a minute in `meta`, right after both their windows are recorded there: a
# raw 6h read at every evaluation was over a quarter of the rules' evaluation time. Page-slow may so fire
# or resolve up to a minute later, where it is the first page to fire (burn rates up to 14.4x) only after
# 2.5 hours or more. With Prometheus' default 1m evaluation interval nothing changes.
FAST_WINDOW_MAX_S = 3600.0
# A window recorded outside `sli` adds up the by-class rates of a shorter window recorded at abutting offsets
# (`composition_base`) when it is at most this many of them: 30m from six 5m, 6h from six 1h, 2h from two 1h.
COMPOSED_TERMS_MAX = 12
# The meta group holds the windows of those slower page tiers, the burn-rate series of every page window
# (dashboards draw them), then those page alerts.
META_INTERVAL = "1m"
# The tickets group records a 5m tile every other evaluation, then what only tickets read: the windows of
# ticket tiers (2h from the raw counters, 1d and 3d from the tiles) and their burn rates, then the ticket,
# no-data and budget-exhausted alerts. Day windows added up from 5m tiles change once per tile: every
# 2m30s they hold the values they held evaluated every minute, at 40 % of the reads. 2m30s divides the
# tile (so tiles abut) and stays under Prometheus' 5m lookback (a 5m interval would leave its series
# absent to queries between the lookback's end and the next evaluation). A ticket may fire or resolve up
# to 2m30s later: tickets are worked on the next business hours.
TICKETS_INTERVAL = "2m30s"
# The period group records its 10m tiles and adds them up every 3m20s (it divides the tile, so tiles abut, and
# stays under Prometheus' 5m lookback; the longest interval that does both, as its 30d reads are the costliest). A
# tiled period leaves its newest traffic out, up to one tile and one interval: with hourly tiles that moved the
# period's error ratio by up to 0.36 % of itself at a busy hour (rules bench, data ending in the afternoon; 0.1 %
# allowed), about 0.006 % per minute left out; 5m tiles read 8,640 samples per series and tripled the group's
# cost; 10m tiles (13m20s at most) read half that.
PERIOD_INTERVAL = "3m20s"
NO_DATA_FOR = "15m"
BUDGET_EXHAUSTED_FOR = "5m"
TICKET = "ticket"
PAGE = "page"

Rule = dict[str, Any]


def _labels(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {k: v for k, v in sorted(pairs)}


# Long windows and the period add up tiles: sums of the recorded 5m rates over a fixed span. A window of W
# reads W/TILE tiles (a day: 288 instead of 4,320 rates at a 20 s interval; a 30d period: 4,320 10m tiles
# instead of 129,600 rates), see `_tiled`.
TILE_S = SHORT_S  # the tile of the windows longer than RAW_WINDOW_MAX_S (1d, 3d)
PERIOD_TILE_S = 600.0  # the tile of the period


def _under(seconds: float) -> str:
    """A range 1 ms shorter than `seconds` (`4m59s999ms`).

    Prometheus 2.x selects both ends of a range and 3.x only the right one; a range a millisecond
    short holds the same samples under both when the samples lie on an evaluation grid (every
    interval of a second or more), so consecutive tiles never share a sample.
    """
    return f"{format_duration(seconds - 1)}999ms" if seconds > 1 else "999ms"


def _tiled(series_sel: str, window_s: float) -> str:
    """The sum, over a window, of a tile series: `sum_over_time(tile[W-1ms])`, a plain range read.

    A tile series holds one sample per tile span (see `_SloRules.tile_rules`): each sums the recorded
    5m rates over the span before it, and consecutive samples are one span apart, so the samples in the
    window abut: their sum is the sum of every recorded 5m rate in the window, traffic-weighted as
    before, at a fraction of the samples and with no subquery (a subquery looks every step up again).
    The window ends at the last tile recorded: up to one span (plus one evaluation interval) before the
    evaluation time. A series that exists for part of the window sums the tiles it has.
    """
    return f"sum_over_time({series_sel}[{_under(window_s)}])"


def _win(seconds: float) -> str:
    return cv.window_name(seconds)


class _SloRules:
    """Builds the rules of one SLO of one service."""

    def __init__(self, svc: Service, slo: SLO, templates: Templates, options: RenderOptions) -> None:
        self.svc = svc
        self.slo = slo
        self.templates = templates
        self.options = options
        self.table: WindowTable = templates.windows[slo.period_days]
        self.stable = cv.alert_selector(svc, slo)
        self.sel = selector(self.stable)
        self.period_s = slo.period_days * 86400.0
        self.period = format_duration(self.period_s)
        self.timeslices = slo.budgeting is BudgetingMethod.TIMESLICES
        self.groups = group_labels(slo)
        self.environment = cv.service_environment(svc, options.environment)
        self.budget = number(slo.error_budget)

    # -- helpers -----------------------------------------------------------

    def windows(self) -> list[float]:
        """Every window the tiers use (a spec's custom tiers too), plus the short resolution, ascending."""
        custom = {w for t in self.slo.alerting.custom_tiers for w in (t.long_window_s, t.short_window_s)}
        return sorted({SHORT_S, *self.table.windows_s, *custom})

    def ref(self, template: str, window: str) -> str:
        """A recorded windowed series of this SLO as a selector."""
        return cv.series(template, window) + self.sel

    def record(self, name: str, expr: str, labels: Mapping[str, str] | None = None) -> Rule:
        # The spec's SLO labels go on every series, as Sloth puts them; they never replace the SLO's
        # identity or a grouping label (the loader warns about those).
        user = {k: v for k, v in self.slo.labels if k not in self.stable and k not in self.groups}
        own = {cv.own_label(k, user): v for k, v in (labels or {}).items()}
        return {"record": name, "expr": expr, "labels": _labels({**user, **self.stable, **own}.items())}

    def tiers(self) -> tuple[AlertTier, ...]:
        """The enabled tiers (obsctl.slo.alerts decides)."""
        return enabled_tiers(self.slo, self.table)

    # -- recording rules ---------------------------------------------------

    def tile_rules(self, tile_s: float) -> list[Rule]:
        """Tile sums of the 5m error and request rates and their sample count over `tile_s`, one sample per span.

        Each tile rule records only when its own series has no sample in the span before (`unless` its
        own count there): whatever the group's interval (a ruler's default, promtool's test step), the
        tiles are one span apart, sum the 5m rates since the one before, and never overlap. A missed
        evaluation delays the next tile by one interval (those rates are not counted), nothing more.
        """
        short = _win(SHORT_S)
        errors5 = self.ref(cv.SERIES_ERRORS, short)
        total5 = self.ref(cv.SERIES_TOTAL, short)
        t, span = _win(tile_s), _under(tile_s)
        rules = []
        for name, fn, src in ((cv.SERIES_ERRORS_SUM, "sum", errors5), (cv.SERIES_TOTAL_SUM, "sum", total5),
                              (cv.SERIES_RATE_SAMPLES, "count", total5)):
            own = self.ref(name, t)
            rules.append(self.record(cv.series(name, t),
                                     f"{fn}_over_time({src}[{span}])\nunless\ncount_over_time({own}[{span}])"))
        return rules

    def tiled_count(self, window_s: float, tile_s: float) -> str:
        """How many 5m rates the tiles of `tile_s` over a window hold."""
        return _tiled(self.ref(cv.SERIES_RATE_SAMPLES, _win(tile_s)), window_s)

    def tiled_rates(self, window_s: float, tile_s: float) -> tuple[str, str]:
        """(errors, requests): the sums of the 5m rates over a window, from the tiles of `tile_s`.

        Divided by `tiled_count` they are the average rates; their ratio is the error ratio.
        """
        t = _win(tile_s)
        return (_tiled(self.ref(cv.SERIES_ERRORS_SUM, t), window_s),
                _tiled(self.ref(cv.SERIES_TOTAL_SUM, t), window_s))

    def tier_part(self, tier: AlertTier) -> str:
        """The group a tier's alert runs in: a page tier whose long window is up to FAST_WINDOW_MAX_S in `sli`
        (the rules' evaluation interval), a longer one in `meta` (once a minute), ticket tiers in `tickets`."""
        if tier.severity != PAGE:
            return "tickets"
        return "sli" if tier.long_window_s <= FAST_WINDOW_MAX_S else "meta"

    def windows_in(self, part: str) -> list[float]:
        """The windows a group records, ascending: 5m in `sli`, any other in the first group among those of the
        tiers that read it (`tickets` when none does), so every alert reads windows recorded before it."""
        return [seconds for seconds, p in self.window_parts.items() if p == part]

    @functools.cached_property
    def window_parts(self) -> dict[float, str]:
        """Every window (ascending) and the group that records it (see `windows_in`)."""
        parts: dict[float, str] = {}
        for seconds in self.windows():
            readers = [self.tier_part(t) for t in self.tiers() if seconds in (t.long_window_s, t.short_window_s)]
            parts[seconds] = "sli" if seconds == SHORT_S else \
                min(readers, key=cv.RULE_GROUP_PARTS.index) if readers else "tickets"
        return parts

    def composition_base(self, seconds: float) -> float | None:
        """The recorded window a window outside `sli` adds up instead of reading the raw counters, or None.

        The longest window W/n (n <= COMPOSED_TERMS_MAX) recorded in `sli` (the freshest) or earlier in the window's
        own group. A window in `sli` itself reads the raw counters: there, n offset reads cost more than one raw read.
        """
        part = self.window_parts[seconds]
        if part == "sli":
            return None
        bases = [b for b, p in self.window_parts.items() if b < seconds and p in ("sli", part)
                 and seconds % b == 0 and seconds / b <= COMPOSED_TERMS_MAX]
        return max(bases) if bases else None

    def composed(self, seconds: float, base_s: float) -> str:
        """Every request by error class over a window, from the base window's by-class rates at abutting offsets.

        The base is recorded at every evaluation of its group, whose interval divides it, so the samples at
        t, t-B, ..., t-(n-1)B are the base's rates over the n spans that tile (t-W, t] (ending at the base group's
        last evaluation). Each term is labelled apart (`or` keeps every one): a term with no sample (before the
        SLO's first recordings, after a gap over Prometheus' lookback) drops out, as the raw read of a series
        younger than the window counts only what it has.
        """
        n = round(seconds / base_s)
        ref = self.ref(cv.SERIES_REQUESTS_BY_CLASS, _win(base_s))
        name = promql_string(cv.LABEL_COMPOSED_TERM)
        terms = [f'label_replace({ref}{f" offset {format_duration(k * base_s)}" if k else ""}, {name}, "{k}", "", "")'
                 for k in range(n)]
        by = ", ".join((*self.groups, cv.LABEL_ERROR_CLASS))
        return f"sum by ({by}) (\n" + "\nor ".join(terms) + f"\n) / {n}"

    def window_rules(self, seconds: float) -> list[Rule]:
        """Request rate and error ratio over one window (and its bad-slice fraction for timeslices).

        Up to RAW_WINDOW_MAX_S from the raw series: the request rate, then the error ratio, whose
        error rate reads that recorded request rate where it needs the total; a default availability SLI
        reads its raw counters there once, by error class (see `sli_queries`). Longer windows from the
        tiles (`tiled_rates`). The error rate itself is recorded for the short resolution only:
        dashboards and reports read it there, and nothing reads it over longer windows.
        """
        w = _win(seconds)
        requests, ratio = cv.series(cv.SERIES_TOTAL, w), cv.series(cv.SERIES_ERROR_RATIO, w)
        rules: list[Rule] = []
        if seconds > RAW_WINDOW_MAX_S:
            errors, total = self.tiled_rates(seconds, TILE_S)
            rules.append(self.record(requests, f"{total}\n/\n{self.tiled_count(seconds, TILE_S)}"))
            rules.append(self.record(ratio, f"{errors}\n/\n{total}"))
        else:
            by_class = cv.series(cv.SERIES_REQUESTS_BY_CLASS, w)
            q = sli_queries(self.svc, self.slo, self.templates, w, self.environment, total_ref=self.ref(requests, w),
                            by_class_ref=self.ref(by_class, w))
            if q.by_class:
                base = self.composition_base(seconds)
                rules.append(self.record(by_class, q.by_class if base is None else self.composed(seconds, base)))
            rules.append(self.record(requests, q.total))
            on = f" on({', '.join(self.groups)})"
            if seconds == SHORT_S:
                rules.append(self.record(cv.series(cv.SERIES_ERRORS, w), q.errors))
                rules.append(self.record(ratio, f"{self.ref(cv.SERIES_ERRORS, w)}\n/\n{self.ref(requests, w)}"))
            else:
                rules.append(self.record(ratio, f"({q.errors})\n/{on}\n{self.ref(requests, w)}"))
        if self.timeslices:
            rules.append(self.record(cv.series(cv.SERIES_BAD_SLICES, w),
                                     f"avg_over_time({cv.SERIES_SLICE_BAD}{self.sel}[{w}])"))
        return rules

    def sli_rules(self) -> list[Rule]:
        """Rates and ratios over 5m and the windows of the fast page tiers, and the bad-slice indicator (the `sli`
        group)."""
        rules: list[Rule] = []
        if self.timeslices:
            slice_w = _win(self.slo.timeslice_seconds)
            q = sli_queries(self.svc, self.slo, self.templates, slice_w, self.environment)
            bad = number(1.0 - self.slo.timeslice_target)
            rules.append(self.record(cv.SERIES_SLICE_BAD, f"({q.errors})\n/\n({q.total})\n> bool {bad}"))
        for seconds in self.windows_in("sli"):
            rules.extend(self.window_rules(seconds))
        return rules

    def burn_rule(self, seconds: float) -> Rule:
        """A window's burn-rate series: its ratio over the budget."""
        w = _win(seconds)
        return self.record(cv.series(cv.SERIES_BURN_RATE, w), f"{self.ratio_ref(w)} / {self.budget}")

    def meta_rules(self) -> list[Rule]:
        """The windows of page tiers whose long window is longer than FAST_WINDOW_MAX_S, and the burn rates of
        every window page tiers read (the `meta` group)."""
        rules = [r for seconds in self.windows_in("meta") for r in self.window_rules(seconds)]
        return rules + [self.burn_rule(seconds) for seconds, part in self.window_parts.items() if part != "tickets"]

    def ticket_rules(self) -> list[Rule]:
        """The 5m tiles, the windows only ticket tiers read and their burn rates (the `tickets` group)."""
        # the windows' 5m tiles (the period's 10m ones are the period group's own)
        rules = self.tile_rules(TILE_S) if any(w > RAW_WINDOW_MAX_S for w in self.windows()) else []
        rest = self.windows_in("tickets")
        rules += [r for seconds in rest for r in self.window_rules(seconds)]
        return rules + [self.burn_rule(seconds) for seconds in rest]

    def ratio_ref(self, window: str) -> str:
        """The series burn rates divide: the error ratio, or the bad-slice fraction for timeslices."""
        return self.ref(cv.SERIES_BAD_SLICES if self.timeslices else cv.SERIES_ERROR_RATIO, window)

    def period_rules(self) -> list[Rule]:
        """Objective, budget, info, the period's ratio, burn rate and remaining budget (the `period` group)."""
        p = self.period
        errors, total = self.tiled_rates(self.period_s, PERIOD_TILE_S)
        samples = f"{cv.SERIES_PERIOD_RATE_SAMPLES}{self.sel}"
        tiles = f"count_over_time({self.ref(cv.SERIES_RATE_SAMPLES, _win(PERIOD_TILE_S))}[{_under(self.period_s)}])"
        svc, slo = self.svc, self.slo
        info = {
            cv.LABEL_TEAM: cv.team_label(svc.team),
            cv.LABEL_OWNER_REF: str(svc.team),
            cv.LABEL_SERVICE_TIER: str(svc.tier),
            cv.LABEL_OBJECTIVE: slo.objective_percent,
            cv.LABEL_PERIOD: p,
            cv.LABEL_BUDGETING: slo.budgeting.value,
            cv.LABEL_SLI: slo.sli.kind,
        }
        rules = [
            # 10m tiles recorded where they are read (3m20s divides 10m, so they abut)
            *self.tile_rules(PERIOD_TILE_S),
            self.record(cv.SERIES_INFO, "vector(1)", info),
            self.record(cv.SERIES_OBJECTIVE, f"vector({number(slo.objective)})"),
            self.record(cv.SERIES_ERROR_BUDGET, f"vector({number(slo.error_budget)})"),
            self.record(cv.SERIES_PERIOD_SECONDS, f"vector({number(self.period_s)})"),
            # the rates' count over the period recorded once, which the errors' and the requests' sums divide (four
            # reads of the period's tiles: the three sums, and how many count tiles the events multiply by)
            self.record(cv.SERIES_PERIOD_RATE_SAMPLES, self.tiled_count(self.period_s, PERIOD_TILE_S)),
            self.record(cv.SERIES_PERIOD_ERRORS, f"{errors}\n/\n{samples}"),
            self.record(cv.SERIES_PERIOD_TOTAL, f"{total}\n/\n{samples}"),
            self.record(cv.SERIES_PERIOD_ERROR_RATIO,
                        f"{cv.SERIES_PERIOD_ERRORS}{self.sel}\n/\n{cv.SERIES_PERIOD_TOTAL}{self.sel}"),
            # the period's average request rate x the time its tiles cover (each tile weighted by its rates:
            # the same as adding up each tile's average x 10m when every tile holds as many rates)
            self.record(cv.SERIES_PERIOD_EVENTS,
                        f"{cv.SERIES_PERIOD_TOTAL}{self.sel} * {number(PERIOD_TILE_S)}\n*\n{tiles}"),
        ]
        ratio = cv.SERIES_PERIOD_ERROR_RATIO
        if self.timeslices:
            rules.append(self.record(cv.SERIES_PERIOD_BAD_SLICES,
                                     f"avg_over_time({cv.SERIES_SLICE_BAD}{self.sel}[{p}])"))
            ratio = cv.SERIES_PERIOD_BAD_SLICES
        rules.append(self.record(cv.SERIES_PERIOD_BURN_RATE, f"{ratio}{self.sel} / {number(slo.error_budget)}"))
        rules.append(self.record(cv.SERIES_BUDGET_REMAINING, f"1 - {cv.SERIES_PERIOD_BURN_RATE}{self.sel}"))
        return rules

    # -- alerts ------------------------------------------------------------

    def _alert_labels(self, severity: str, extra: Mapping[str, str]) -> dict[str, str]:
        """The spec's labels as written (SLO, alerting, page or ticket: the most specific wins), then
        obsctl's own: under `obsctl_<name>` where the spec set that name, and the routing class always."""
        policy = self.slo.alerting
        user: dict[str, str] = dict(self.slo.labels)
        user.update(policy.labels)
        user.update(policy.page_labels if severity == PAGE else policy.ticket_labels)
        own = {**self.stable, cv.LABEL_TEAM: cv.team_label(self.svc.team), cv.LABEL_SEVERITY: severity, **extra}
        labels = dict(user)
        for name, value in own.items():
            if user.get(name) != value:  # the spec may say the same thing obsctl says: no copy then
                labels[cv.own_label(name, user)] = value
        labels[cv.LABEL_SEVERITY_CLASS] = severity
        labels.setdefault(cv.LABEL_ENVIRONMENT, self.environment)
        if self.svc.depends_on:
            labels[cv.LABEL_DEPENDS_ON] = cv.depends_on_value(self.svc.depends_on)
        return {k: template_literal(v) for k, v in sorted(labels.items())}

    def _annotations(self, summary: str, description: str, severity: str = TICKET) -> dict[str, str]:
        ann = {cv.ANNOTATION_SUMMARY: summary, cv.ANNOTATION_DESCRIPTION: description}
        if self.svc.links.runbook:
            ann[cv.ANNOTATION_RUNBOOK] = template_literal(self.svc.links.runbook)
        if self.options.grafana_url:  # no URL is better than a placeholder one (validate warns)
            ann[cv.ANNOTATION_DASHBOARD] = template_literal(
                f"{self.options.grafana_url.rstrip('/')}/d/{cv.service_dashboard_uid(self.svc)}")
        policy = self.slo.alerting
        ann.update({k: template_literal(v) for k, v in policy.annotations})
        ann.update({k: template_literal(v) for k, v in
                    (policy.page_annotations if severity == PAGE else policy.ticket_annotations)})
        return dict(sorted(ann.items()))

    def _what(self) -> str:
        """`the availability SLO of checkout (99.9% over 30d)`, each catalog part neutralised."""
        return (f"the {template_literal(self.slo.name)} SLO of {template_literal(self.svc.name)} "
                f"({self.slo.objective_percent}% over {self.period})")

    def alert_rules(self) -> list[tuple[str, Rule]]:
        """The MWMB tiers, no-data and budget-exhausted alerts, each with the group it runs in (`tier_part`
        for a tier; `tickets` for the others)."""
        policy = self.slo.alerting
        name = policy.name or cv.ALERT_BURN
        rules: list[tuple[str, Rule]] = []
        tiers = self.tiers()
        if not tiers:  # alerting off: no alert of any kind
            return rules
        for tier in tiers:
            long_w, short_w = _win(tier.long_window_s), _win(tier.short_window_s)
            burn = number(tier.burn_rate)
            # burn rates from the ratios themselves: page tiers read ratios recorded at this group's interval
            expr = (f"{self.ratio_ref(long_w)} / {self.budget} > {burn}\n"
                    f"and\n{self.ratio_ref(short_w)} / {self.budget} > {burn}")
            if policy.min_events:
                events = f"{self.ref(cv.SERIES_TOTAL, long_w)} * {number(tier.long_window_s)}"
                expr += f"\nand on({', '.join(self.groups)})\n({events} >= {number(policy.min_events)})"
            kind = "bad slices" if self.timeslices else "errors"
            rules.append((self.tier_part(tier), {
                "alert": name,
                "expr": expr,
                "labels": self._alert_labels(tier.severity, {cv.LABEL_TIER: tier.name, cv.LABEL_LONG_WINDOW: long_w,
                                                             cv.LABEL_SHORT_WINDOW: short_w}),
                "annotations": self._annotations(
                    f"{template_literal(self.svc.name)}: {template_literal(self.slo.name)} SLO error budget burning "
                    f"over {burn}x ({tier.name})",
                    f"The {kind} of {self._what()} burn its error budget "
                    f"{{{{ $value | printf \"%.1f\" }}}}x faster than sustainable over the last {long_w}, and still "
                    f"over {burn}x in the last {short_w}. At {burn}x, {number(tier.budget_percent)}% of the "
                    f"period's budget is gone in {long_w}.", tier.severity),
            }))
        if policy.no_data:
            rules.append(("tickets", {
                "alert": cv.ALERT_NO_DATA,
                "expr": f"absent({self.ref(cv.SERIES_TOTAL, _win(SHORT_S))})",
                "for": NO_DATA_FOR,
                "labels": self._alert_labels(TICKET, {}),
                "annotations": self._annotations(
                    f"{template_literal(self.svc.name)}: no data for the {template_literal(self.slo.name)} SLO",
                    f"No events were recorded for {self._what()} for {NO_DATA_FOR}: its burn-rate alerts cannot "
                    "fire. Check the service's metrics and the SLI queries."),
            }))
        if policy.budget_exhausted:
            rules.append(("tickets", {
                "alert": cv.ALERT_BUDGET_EXHAUSTED,
                "expr": f"{cv.SERIES_BUDGET_REMAINING}{self.sel} <= 0",
                "for": BUDGET_EXHAUSTED_FOR,
                "labels": self._alert_labels(TICKET, {}),
                "annotations": self._annotations(
                    f"{template_literal(self.svc.name)}: {template_literal(self.slo.name)} SLO error budget exhausted",
                    f"The error budget of {self._what()} is spent "
                    f"({{{{ $value | humanizePercentage }}}} remaining)."),
            }))
        return rules


# Group keys beside name and rules, per part.
_GROUP_EXTRA: dict[str, dict[str, str]] = {"meta": {"interval": META_INTERVAL},
                                            "tickets": {"interval": TICKETS_INTERVAL},
                                            "period": {"interval": PERIOD_INTERVAL}}


def slo_parts(svc: Service, slo: SLO, templates: Templates, options: RenderOptions) -> dict[str, list[Rule]]:
    """One SLO's rules per group part (sli, meta, tickets, period).

    Each alert runs right after the windows it reads are recorded: page-fast at the end of `sli` (the rules'
    evaluation interval), page-slow at the end of `meta` (once a minute, with its 6h and 30m windows),
    ticket, no-data and budget-exhausted alerts at the end of `tickets`.
    """
    b = _SloRules(svc, slo, templates, options)
    parts = {"sli": b.sli_rules(), "meta": b.meta_rules(), "tickets": b.ticket_rules(), "period": b.period_rules()}
    for part, alert in b.alert_rules():
        parts[part].append(alert)
    return parts


def service_groups(svc: Service, templates: Templates, options: RenderOptions) -> list[dict[str, Any]]:
    """The rule groups of one service (sli, meta, period, alerts); [] without SLOs."""
    if not svc.slos:
        return []
    parts: dict[str, list[Rule]] = {part: [] for part in cv.RULE_GROUP_PARTS}
    for slo in svc.slos:
        for part, rules in slo_parts(svc, slo, templates, options).items():
            parts[part].extend(rules)
    groups: list[dict[str, Any]] = []
    for part, rules in parts.items():
        if rules:
            groups.append({"name": cv.rule_group_name(svc, part), **_GROUP_EXTRA.get(part, {}), "rules": rules})
    _validate(svc, groups)
    return groups


def _validate(svc: Service, groups: list[dict[str, Any]]) -> None:
    problems: list[Problem] = []
    for group in groups:
        for rule in group["rules"]:
            name = rule.get("record") or rule.get("alert")
            error = parse_error(rule["expr"])
            if error is not None:
                problems.append(Problem(svc.origin.file, svc.origin.line, str(svc.ref), f"rules.{name}",
                                        f"generated PromQL does not parse: {error}"))
            for label in rule.get("labels", {}):
                if not cv.LABEL_NAME_RE.match(label):
                    problems.append(Problem(svc.origin.file, svc.origin.line, str(svc.ref), f"rules.{name}",
                                            f"invalid label name {label!r}"))
    if problems:
        raise SpecError(problems)


def ruler_group(svc: Service, groups: list[dict[str, Any]]) -> dict[str, Any]:
    """All of a service's rules as the one group the ruler API stores (evaluation order kept)."""
    return {"name": cv.ruler_group_name(svc), "rules": [r for g in groups for r in g["rules"]]}


def ruler_body(group: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a ruler group: what the ruler sink compares with what the ruler returns."""
    return cv.canonical_yaml(dict(group))


def _crd(svc: Service, options: RenderOptions, groups: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The PrometheusRule head: namespace and extra labels/annotations from settings (obsctl's own marks win)."""
    k8s = options.kubernetes
    labels = dict(k8s.labels)
    labels[cv.K8S_MANAGED_BY] = cv.OWNER
    for key, value in (("obsctl.dev/service", svc.name), ("obsctl.dev/team", svc.team.name)):
        if cv.NAME_RE.match(value):
            labels[key] = value
    annotations = {**dict(k8s.annotations), "obsctl.dev/owner": str(svc.ref)}
    return {
        "apiVersion": cv.PROMETHEUS_RULE_API_VERSION,
        "kind": "PrometheusRule",
        "metadata": {"name": cv.rule_crd_name(svc), "namespace": k8s.rules_namespace or svc.namespace,
                     "labels": dict(sorted(labels.items())), "annotations": dict(sorted(annotations.items()))},
        **({"spec": {"groups": groups}} if groups is not None else {}),
    }


def _indent(text: bytes, pad: bytes) -> bytes:
    """Indent every non-empty line (literal blocks keep their content: their indentation is relative)."""
    return b"".join(pad + line if line.strip(b"\n") else line for line in text.splitlines(keepends=True))


_SHAPES: dict[tuple[int, int], ShapeCache] = {}


def _shape_cache(ctx: RenderContext) -> ShapeCache:
    key = (id(ctx.templates), id(ctx.options))
    cache = _SHAPES.get(key)
    if cache is None or cache.templates is not ctx.templates or cache.options is not ctx.options:
        if len(_SHAPES) >= 8:
            _SHAPES.clear()
        cache = _SHAPES[key] = ShapeCache(ctx.templates, ctx.options, slo_parts)
    return cache


def _shaped_texts(svc: Service, ctx: RenderContext, forms: tuple[str, ...]) -> dict[str, bytes] | None:
    """The groups of the rule file (`file`), the same two columns deeper for the manifest (`crd`) and the
    ruler group (`ruler`), those in `forms`, from per-shape text (obsctl.render.rule_shapes); None when
    a value needs the dict path."""
    cache = _shape_cache(ctx)
    per_slo = [cache.texts(svc, slo, forms) for slo in svc.slos]  # every SLO: each one's shape counts this use
    if any(texts is None for texts in per_slo):
        return None
    out: dict[str, list[str]] = {form: [] for form in forms}
    if "ruler" in out:
        out["ruler"].append(f"name: {yamltext.inline(cv.ruler_group_name(svc))}\nrules:\n")
    for part in cv.RULE_GROUP_PARTS:
        chunks = [texts[part] for texts in per_slo if texts is not None and part in texts]
        if not chunks:
            continue
        head = [f"name: {yamltext.inline(cv.rule_group_name(svc, part))}"]
        head += [f"{k}: {yamltext.inline(v)}" for k, v in _GROUP_EXTRA.get(part, {}).items()]
        head.append("rules:")
        if "file" in out:
            out["file"].append("- " + "\n  ".join(head) + "\n")
        if "crd" in out:
            out["crd"].append("  - " + "\n    ".join(head) + "\n")
        for form, text in out.items():
            text.extend(chunk[form] for chunk in chunks)
    return {form: "".join(text).encode() for form, text in out.items()}


def render_service(svc: Service, ctx: RenderContext) -> list[Artifact]:
    """The rule file, PrometheusRule manifest and ruler group (those in the outputs) of one service with SLOs."""
    options = ctx.options
    want_file, want_crd, want_ruler = (k in options.outputs for k in
                                       (Kind.PROMETHEUS_RULES, Kind.PROMETHEUS_RULE_CRD, Kind.RULER_GROUP))
    out: list[Artifact] = []
    if not (want_file or want_crd or want_ruler) or not svc.slos:
        return out
    owner = str(svc.ref)
    header = cv.FILE_HEADER.format(owner=owner)
    key = cv.service_key(svc.ref)
    forms = tuple(form for form, want in (("file", want_file), ("crd", want_crd), ("ruler", want_ruler)) if want)
    texts = _shaped_texts(svc, ctx, forms)
    if texts is None:
        groups = service_groups(svc, ctx.templates, options)
        if not groups:
            return out
        # The groups are written once; the manifest embeds the same text two columns deeper, which is
        # what dumping the whole manifest would give (block style, no folding), at a third of the cost.
        groups_text = dump_yaml(groups) if want_file or want_crd else b""
        texts = {"file": groups_text, "crd": _indent(groups_text, b"  ") if want_crd else b"",
                 "ruler": ruler_body(ruler_group(svc, groups)) if want_ruler else b""}
    if want_file:
        out.append(Artifact(Kind.PROMETHEUS_RULES, key, cv.rules_path(svc),
                            header_line(header) + b"groups:\n" + texts["file"], owner))
    if want_crd:
        crd = dump_yaml(_crd(svc, options), header=header) + b"spec:\n  groups:\n" + texts["crd"]
        out.append(Artifact(Kind.PROMETHEUS_RULE_CRD, key, cv.rule_crd_path(svc), crd, owner))
    if want_ruler:
        rkey = cv.ruler_group_key(svc.team.name, svc.namespace, svc.name)
        out.append(Artifact(Kind.RULER_GROUP, rkey, f"ruler/{rkey}.yaml", texts["ruler"], owner))
    return out


def render(catalog: Catalog, templates: Templates, options: RenderOptions) -> list[Artifact]:
    """Rule files, PrometheusRule manifests and ruler groups (those in `options.outputs`) per service with SLOs."""
    ctx = RenderContext.of(catalog, templates, options)
    return [a for svc in sorted(catalog.services, key=lambda s: str(s.ref)) for a in render_service(svc, ctx)]
