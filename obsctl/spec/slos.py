"""Checks shared by every input format: objectives, periods, custom PromQL, alertability."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

import promql_parser

from obsctl.model import conventions as cv
from obsctl.model.conventions import SLO_NAME_RE
from obsctl.model.entities import SLO, EventsSLI
from obsctl.slo.alerts import dropped_tiers
from obsctl.spec.fields import FieldPath, Reader
from obsctl.spec.templates import Templates

# Accepted spellings of the window placeholder in custom queries: ours and Sloth's.
WINDOW_PLACEHOLDER = "{{window}}"
_PLACEHOLDER = re.compile(r"\{\{\s*\.?window\s*\}\}")
_LATENCY = re.compile(
    r"^\s*(?:p(?P<p>\d+(?:\.\d+)?)|(?P<pct>\d+(?:\.\d+)?)\s*%)\s*(?:<|<=|under|within|below)\s*"
    r"(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>ms|s)\s*$",
    re.IGNORECASE,
)


def normalize_window(query: str) -> str:
    """Rewrite any accepted window placeholder spelling to obsctl's own."""
    return _PLACEHOLDER.sub(WINDOW_PLACEHOLDER, query)


def check_query(r: Reader, path: FieldPath, query: str) -> str | None:
    """A custom PromQL query must hold the window placeholder and parse once it is filled."""
    query = normalize_window(query.strip())
    if WINDOW_PLACEHOLDER not in query:
        r.problem(path, "query lacks the window placeholder {{window}} (Sloth's {{.window}} works too)")
        return None
    try:
        filled = query.replace(WINDOW_PLACEHOLDER, "5m")
        promql_parser.parse(filled)
        promql_parser.parse(f"({filled})")  # renderers wrap it: a trailing `# comment` would swallow the `)`
    except ValueError as exc:
        r.problem(path, f"query is not valid PromQL: {exc}")
        return None
    return query


def check_objective(r: Reader, path: FieldPath, percent: float | None) -> float | None:
    """An objective in percent, strictly between 0 and 100, as a ratio."""
    if percent is None:
        return None
    if not 0 < percent < 100:
        r.problem(path, f"objective {percent:g} must be above 0 and below 100 (percent); 100 leaves no error budget")
        return None
    return round(percent / 100.0, 12)


def check_period(r: Reader, path: FieldPath, text: str, templates: Templates) -> int | None:
    """A period with a window table: 7d, 28d or 30d by default."""
    known = sorted(templates.windows)
    match = re.fullmatch(r"\s*(\d+)\s*d\s*", text) or re.fullmatch(r"\s*(\d+)\s*days?\s*", text, re.IGNORECASE)
    days = int(match.group(1)) if match else None
    if days is None or days not in templates.windows:
        r.problem(path, f"unknown period {text!r}; known periods: {', '.join(f'{d}d' for d in known)}")
        return None
    return days


def parse_latency(r: Reader, path: FieldPath, text: str) -> tuple[float, float] | None:
    """Parse "99% < 300ms" / "p99 under 0.3s" into (percent, seconds)."""
    m = _LATENCY.match(text)
    if not m:
        r.problem(path, f"latency objective {text!r} not understood; write it as \"99% < 300ms\"")
        return None
    percent = float(m.group("p") or m.group("pct"))
    seconds = float(m.group("num")) / (1000.0 if m.group("unit").lower() == "ms" else 1.0)
    return percent, seconds


def check_name(r: Reader, path: FieldPath, name: str) -> bool:
    """An SLO name must be usable as a label value, rule name and uid part."""
    if not SLO_NAME_RE.match(name):
        r.problem(path, f"name {name!r} must be 1-63 lower-case letters, digits, '-' or '_', "
                        "starting and ending with a letter or digit")
        return False
    return True


def check_slo(r: Reader, path: FieldPath, slo: SLO, templates: Templates,
              objective_path: FieldPath | None = None) -> bool:
    """Cross-field checks of a complete SLO: tiers exist, events SLI is complete.

    A tier that can never fire at the objective is not an error: it is dropped with a warning on
    `objective_path` (default `<path>.objective`) saying why and what would make it reachable.
    """
    ok = True
    table = templates.windows[slo.period_days]
    names = [t.name for t in table.tiers]
    for name in slo.alerting.tiers or ():
        if name not in names:
            r.problem((*path, "alerting", "tiers"), f"unknown alert tier {name!r}; the {slo.period_days}d table has "
                                                    f"{', '.join(names)}")
            ok = False
    for dropped in dropped_tiers(slo, table):
        r.warn(objective_path or (*path, "objective"), f"SLO {slo.name}: {dropped.reason}")
    if isinstance(slo.sli, EventsSLI) and not (slo.sli.error_query or slo.sli.good_query or
                                               slo.sli.error_ratio_query):
        r.problem((*path, "sli"), "an events SLI needs error_query or good_query beside total_query")
        ok = False
    return ok


def check_labels(r: Reader, path: FieldPath, pairs: tuple[tuple[str, str], ...],
                 annotations: bool = False) -> tuple[tuple[str, str], ...]:
    """A spec's labels (or annotations): valid names, none of obsctl's or Prometheus' reserved names; templates said
    out loud."""
    ok = []
    for name, value in pairs:
        if not annotations and not cv.LABEL_NAME_RE.match(name):
            r.problem((*path, name), f"{name!r} is not a valid Prometheus label name")
            continue
        if not annotations and name.startswith(cv.RESERVED_LABEL_PREFIX):
            r.problem((*path, name), f"label names starting with {cv.RESERVED_LABEL_PREFIX!r} are obsctl's own")
            continue
        if not annotations and name.startswith("__"):  # `__name__` makes promtool refuse the service's rule file
            r.problem((*path, name), "label names starting with '__' are Prometheus' own")
            continue
        if "{{" in value:
            r.warn((*path, name), "Prometheus templating ({{ ... }}) is not expanded: obsctl writes catalog text "
                                  "verbatim, so the alert shows it as written")
        ok.append((name, value))
    return tuple(ok)


def _grouping(node: object) -> tuple[str, ...] | bool | None:
    """The `by` labels of the outermost aggregation: () for none, None for `without`, False when not aggregated."""
    while isinstance(node, promql_parser.ParenExpr):
        node = node.expr
    if isinstance(node, promql_parser.AggregateExpr):
        mod = node.modifier
        if mod is None:
            return ()
        if str(mod.type).endswith("Without"):
            return None
        return tuple(mod.labels)
    if isinstance(node, promql_parser.BinaryExpr):
        sides = [_grouping(node.lhs), _grouping(node.rhs)]
        known = [g for g in sides if isinstance(g, tuple) and g]
        if None in sides:
            return None
        if known:
            return known[0]
        return () if () in sides else False
    return False


def _aggregates(node: object) -> bool:
    """Whether an expression aggregates anywhere (its result is then one series per group it names)."""
    if isinstance(node, promql_parser.AggregateExpr):
        return True
    for attr in ("expr", "lhs", "rhs", "args", "param"):
        child = getattr(node, attr, None)
        if child is None or isinstance(child, str | int | float):
            continue
        for c in child if isinstance(child, list | tuple) else [child]:
            if _aggregates(c):
                return True
    return False


def query_grouping(r: Reader, queries: list[tuple[FieldPath, str]]) -> tuple[str, ...] | None:
    """The grouping every query of an SLI shares (`sum by (cluster)(...)`), reported where they disagree."""
    found: list[tuple[FieldPath, tuple[str, ...]]] = []
    for path, query in queries:
        g = _grouping(promql_parser.parse(query.replace(WINDOW_PLACEHOLDER, "5m")))
        if g is None:
            r.problem(path, "aggregation with `without` cannot be grouped per SLO: name the labels with `by (...)`")
            return None
        if g is False and not _aggregates(promql_parser.parse(query.replace(WINDOW_PLACEHOLDER, "5m"))):
            r.warn(path, "query is not aggregated: obsctl sums it into one ratio per SLO; write sum by (label)(...) "
                         "to burn and alert per label value")
            g = ()
        if g is False:
            g = ()
        assert isinstance(g, tuple)
        found.append((path, tuple(sorted(g))))
    groups = {g for _, g in found}
    if len(groups) > 1:
        r.problem(found[-1][0], "the SLI's queries group by different labels: "
                                + " vs ".join(f"by ({', '.join(g)})" for g in sorted(groups)))
        return None
    return found[0][1] if found else ()


def cardinality_note(group_by: tuple[str, ...]) -> str:
    """What a grouped SLO costs, for `validate`."""
    return (f"grouped by ({', '.join(group_by)}): every recording and alert exists once per distinct value "
            f"combination; 1 group = ~{SERIES_PER_GROUP} recorded series")


# Recorded series per SLO group: per window a request rate, an error ratio and a burn rate over 7 windows,
# the 5m error rate, 6 tiles, plus the period's 6 (errors, total, ratio, events, burn, remaining).
SERIES_PER_GROUP = 3 * 7 + 1 + 6 + 6


# Where a spec wrote each label of one SLO: (scope, label name) -> its field path in the document. The
# scopes are the SLO's label sets: on every series and alert, on both alerts, on the page or the ticket.
SCOPE_SLO, SCOPE_ALERTING, SCOPE_PAGE, SCOPE_TICKET = "labels", "alerting.labels", "alerting.page.labels", \
    "alerting.ticket.labels"
LabelSites = dict[tuple[str, str], FieldPath]

# The labels obsctl's own alerts are told apart, routed, grouped and inhibited by (render.routes): a spec's label
# of that name reaches the alerts as written (obsctl's value goes under `obsctl_<name>`), so another value than
# obsctl's takes the alert out of obsctl's routing. Each with what would go wrong.
IDENTITY_LABELS: dict[str, str] = {
    cv.LABEL_SERVICE: "Alertmanager routes a Component's own receivers (pagerduty.com/service-id) and a "
                      "dependency's inhibition on it, and groups alerts by it",
    cv.LABEL_NAMESPACE: "Alertmanager routes a Component's own receivers and a dependency's inhibition on it, and "
                        "groups alerts by it",
    cv.LABEL_SLO: "Alertmanager groups alerts by it and a page mutes the tickets of the SLO it names: another SLO's "
                  "alerts would be grouped and muted with these",
    cv.LABEL_TEAM: "Alertmanager routes on it: the alerts would go to another team's receivers, or to none",
    cv.LABEL_ENVIRONMENT: "a dependency's page mutes its dependents' pages only in the same environment, and the "
                          "SLI counts the service's own environment",
}


def label_sites(scope: str, path: FieldPath, pairs: Iterable[tuple[str, str]]) -> LabelSites:
    """The sites of labels a spec wrote as a mapping at `path`."""
    return {(scope, name): (*path, name) for name, _value in pairs}


def scoped_labels(slo: SLO) -> Iterator[tuple[str, str, str]]:
    """(scope, name, value) of every label an SLO's alerts or series carry from its spec."""
    policy = slo.alerting
    for scope, pairs in ((SCOPE_SLO, slo.labels), (SCOPE_ALERTING, policy.labels), (SCOPE_PAGE, policy.page_labels),
                         (SCOPE_TICKET, policy.ticket_labels)):
        for name, value in pairs:
            yield scope, name, value


def identity_labels(r: Reader, entity: str, slo: SLO, sites: LabelSites, own: Mapping[str, str]) -> bool:
    """Whether an SLO's spec labels leave obsctl's identity and routing labels as obsctl writes them.

    `own` holds obsctl's value of each name in IDENTITY_LABELS. The same value is harmless (a Sloth spec
    often says `team: <owner>`); another one is an error at the label's own field, naming the service
    `entity`, and the caller leaves that SLO out alone: its service keeps its other SLOs and, being
    loaded without one, its last good artifacts. A label named like one of the SLI's grouping labels is
    refused too, whatever its value: it would give every group's alert that one value, and Prometheus
    refuses to evaluate an alert whose series collide ("vector contains metrics with the same labelset").
    """
    ok = True
    grouping = {cv.group_label(g) for g in slo.group_by}  # what each group's series and alerts carry
    for scope, name, value in scoped_labels(slo):
        if name in grouping:
            why = (f"label {name}={value[:80]!r} is also a grouping label of SLO {slo.name}'s SLI: every group's "
                   "alert would carry this one value, the alerts of the groups collide and Prometheus evaluates none "
                   "of them; remove the label")
        elif name in IDENTITY_LABELS and own[name] != value:
            why = (f"label {name}={value[:80]!r} would replace obsctl's {name}={own[name]!r} on SLO {slo.name}'s "
                   f"alerts ({IDENTITY_LABELS[name]}): remove the label or set it to {own[name]!r}")
        else:
            continue
        path = sites.get((scope, name)) or ("slos", slo.name, *scope.split("."), name)
        with r.contained():
            r.problem(path, f"{why}; the SLO is left out", entity=entity)
        ok = False
    return ok
