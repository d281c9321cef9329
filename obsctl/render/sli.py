"""SLI -> PromQL: the error and total rate of an SLO over a window, plus the escaping every query needs.

Pure functions, shared by the rule and dashboard renderers. Every catalog value that reaches a
query goes through `obsctl.model.escape.promql`; the templates' selector shapes are trusted
platform data with `{service}`/`{namespace}` placeholders inside their own quotes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from obsctl.model import conventions as cv
from obsctl.model import placeholders
from obsctl.model.entities import SLO, AvailabilitySLI, EventsSLI, LatencySLI, Service
from obsctl.model.escape import promql
from obsctl.model.platform import SliShape, Templates

WINDOW_PLACEHOLDER = "{{window}}"


def selector(labels: dict[str, str] | list[tuple[str, str]]) -> str:
    """A label-matcher list `{a="x",b="y"}` with escaped values, in the given order."""
    items = labels.items() if isinstance(labels, dict) else labels
    return "{" + ",".join(f"{k}={promql.string(v)}" for k, v in items) + "}"


def number(value: float) -> str:
    """A float as a PromQL number literal without float noise (0.0144, 14.4, 1)."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(round(value, 12))
    return text[:-2] if text.endswith(".0") else text


def le_matcher(threshold: float) -> str:
    """The `le` matcher of a bucket bound; integral bounds match both `1` and `1.0` spellings."""
    if float(threshold).is_integer():
        pattern = str(int(threshold)) + r"(\.0)?"
        return f"le=~{promql.string(pattern)}"
    return f"le={promql.string(repr(float(threshold)))}"


def latency_bound(threshold: float, buckets: tuple[float, ...]) -> float:
    """The histogram bound a latency SLI reads: the threshold, or the largest bucket bound below it."""
    below = [b for b in buckets if b <= threshold]
    return max(below) if below else threshold


@dataclass(frozen=True)
class SliQueries:
    """PromQL for one SLO at one window: bad events per second and all events per second."""

    errors: str
    total: str
    # With a `by_class_ref`: the one raw read (every request by group and error class) that `errors` and
    # `total` sum up once it is recorded under that selector; empty when the SLI has no such form.
    by_class: str = ""


def shape_selector(shape: SliShape, svc: Service, environment: str,
                   escape: Callable[[str], str] = promql.string_body) -> str:
    """The matchers selecting a service's default-SLI series in one environment (none when it is empty):
    the shape's selector (alert-rules/sli.yaml) with @{service}, @{namespace} filled with the catalog
    values escaped for a PromQL string by `escape` (Grafana's variant for dashboards)."""
    sel = placeholders.fill(shape.selector, {"service": escape(svc.name), "namespace": escape(svc.namespace)})
    if shape.environment_label and environment:
        sel += f',{shape.environment_label}="{escape(environment)}"'
    return sel


def _with_zero(errors: str, total: str, on: str = "") -> str:
    # A counter of failures that never failed has no series: report 0 while there is traffic.
    return f"({errors}) or{on} (0 * ({total}))"


def group_labels(slo: SLO) -> tuple[str, ...]:
    """The labels each group of a grouped SLO carries on its series and alerts (renamed where they collide)."""
    return tuple(cv.group_label(g) for g in slo.group_by)


def _sum(slo: SLO, query: str, op: str = "sum", extra: tuple[str, ...] = ()) -> str:
    """`sum(query)`, or `sum by (groups)(query)` for a grouped SLO (and by `extra` labels); colliding labels are
    copied to their new name."""
    if not slo.group_by and not extra:
        return f"{op}({query})"
    for name in slo.group_by:
        renamed = cv.group_label(name)
        if renamed != name:
            query = f"label_replace({query}, {promql.string(renamed)}, \"$1\", {promql.string(name)}, \"(.*)\")"
    return f"{op} by ({', '.join((*group_labels(slo), *extra))}) ({query})"


def _sum_recorded(slo: SLO, ref: str) -> str:
    """`sum(ref)`, or `sum by (groups) (ref)`: a recorded series already carries the (renamed) group labels."""
    return f"sum by ({', '.join(group_labels(slo))}) ({ref})" if slo.group_by else f"sum({ref})"


# One `label=~"regex"` or `label="value"` matcher, its value free of escapes (a plain value must be a word: it
# becomes a regex below).
_ONE_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~\s*"([^"\\]*)"|=\s*"([A-Za-z0-9_]*)")\s*')


def error_class(shape: SliShape) -> tuple[str, str] | None:
    """The shape's error matcher as (label, fully anchored regex), when it is one matcher of that label; else None."""
    m = _ONE_MATCHER.fullmatch(shape.error_matcher)
    if m is None:
        return None
    label, regex, value = m.groups()
    return label, regex if regex is not None else value


def _by_class(slo: SLO, rate: str, label: str, regex: str) -> str:
    """Every series of `rate` summed by group and by LABEL_ERROR_CLASS: "true" where `label` matches `regex`
    (as the error matcher does: anchored, a missing label reads as empty), "false" elsewhere."""
    name, src = promql.string(cv.LABEL_ERROR_CLASS), promql.string(label)
    classed = (f'label_replace(label_replace({rate}, {name}, "false", {src}, ".*"), '
               f'{name}, "true", {src}, {promql.string(regex)})')
    return _sum(slo, classed, extra=(cv.LABEL_ERROR_CLASS,))


def _on(slo: SLO) -> str:
    """` on(<groups>)`: matches a query's groups with a recorded series, which carries more labels."""
    return f" on({', '.join(group_labels(slo))})"


def sli_queries(svc: Service, slo: SLO, templates: Templates, window: str, environment: str = "", *,
                total_ref: str = "", by_class_ref: str = "") -> SliQueries:
    """The error and total rates of `slo` over `window` (a Prometheus duration like 5m), with only the group labels.

    Default SLIs count only the series of `environment` (custom events queries are the user's own).
    With `total_ref` (the SLO's request rate over `window`, already recorded: a selector), the error
    rate reads it where it needs the total instead of querying the raw series again; matched on the
    group labels, the error rate then carries the recorded series' labels where it is derived from it.
    With `by_class_ref` (a selector the caller records `by_class` under), a default availability SLI whose error
    matcher is one matcher reads the raw counters once: `by_class` sums every request by error class, and
    `total` and `errors` add that recorded series up (the same sums: the error class is the error matcher).
    """
    on = _on(slo) if total_ref else ""
    sli = slo.sli
    if isinstance(sli, EventsSLI):
        if sli.error_ratio_query is not None:
            ratio = sli.error_ratio_query.replace(WINDOW_PLACEHOLDER, window)
            # A ratio has no event counts: each series counts as one event per second.
            return SliQueries(_sum(slo, ratio), _sum(slo, ratio, "count"))
        total = _sum(slo, sli.total_query.replace(WINDOW_PLACEHOLDER, window))
        ref = total_ref or total
        if sli.error_query is not None:
            bad = _sum(slo, sli.error_query.replace(WINDOW_PLACEHOLDER, window))
        elif sli.good_query is not None:
            good = _sum(slo, sli.good_query.replace(WINDOW_PLACEHOLDER, window))
            if total_ref:
                return SliQueries(f"{ref} -{on} ({good} or{on} (0 * {ref}))", total)
            bad = f"{total} - ({good} or (0 * {total}))"
        else:
            raise ValueError(f"{svc.ref}: SLO {slo.name}: events SLI needs an error or a good query")
        return SliQueries(_with_zero(bad, ref, on), total)
    shape = templates.sli_shapes.get(svc.protocol.value)
    if shape is None:
        raise ValueError(f"{svc.ref}: no SLI shape for protocol {svc.protocol.value!r} in alert-rules/sli.yaml")
    sel = shape_selector(shape, svc, environment)
    if isinstance(sli, LatencySLI) and sli.native:
        # A native histogram: the share of observations up to the threshold, times their count.
        metric = shape.bucket_metric.removesuffix("_bucket")
        hist = _sum(slo, f"rate({metric}{{{sel}}}[{window}])")
        total = f"histogram_count({hist})"
        good = f"histogram_fraction(0, {number(sli.threshold_seconds)}, {hist}) * {total}"
        return SliQueries(f"{total_ref} -{on} ({good})" if total_ref else f"{total} - {good}", total)
    requests = f"rate({shape.count_metric}{{{sel}}}[{window}])"
    if isinstance(sli, AvailabilitySLI) and by_class_ref and (cls := error_class(shape)) is not None:
        total = _sum_recorded(slo, by_class_ref)
        bad = _sum_recorded(slo, by_class_ref[:-1] + f',{cv.LABEL_ERROR_CLASS}="true"}}')  # the ref's matchers + one
        return SliQueries(_with_zero(bad, total_ref or total, on), total, _by_class(slo, requests, *cls))
    total = _sum(slo, requests)
    if isinstance(sli, AvailabilitySLI):
        bad = _sum(slo, f"rate({shape.count_metric}{{{sel},{shape.error_matcher}}}[{window}])")
        return SliQueries(_with_zero(bad, total_ref or total, on), total)
    if isinstance(sli, LatencySLI):
        bound = latency_bound(sli.threshold_seconds, svc.latency_buckets or shape.buckets)
        good = _sum(slo, f"rate({shape.bucket_metric}{{{sel},{le_matcher(bound)}}}[{window}])")
        return SliQueries(f"{total_ref} -{on} {good}" if total_ref else f"{total} - {good}", total)
    raise ValueError(f"{svc.ref}: SLO {slo.name}: unknown SLI kind {type(sli).__name__}")
