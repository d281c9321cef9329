"""A self-contained HTML SLO report: inline CSS and SVG charts, no scripts, no external assets."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from obsctl.slo.formats import burn, eta, events, minutes, pct, period_text, when
from obsctl.slo.report import Point, Report, SLOReport, Status, TierState

STATUS_COLORS = {Status.EXHAUSTED: "#c62828", Status.BURNING: "#e8710a", Status.NO_DATA: "#78828c",
                 Status.HEALTHY: "#1e8e3e"}
STATUS_TEXT = {Status.EXHAUSTED: "Budget exhausted", Status.BURNING: "Burning", Status.NO_DATA: "No data",
               Status.HEALTHY: "Healthy"}
SERIES_COLORS = ("#3367d6", "#8e44ad", "#0097a7", "#5f6b7a")
SEVERITY_COLORS = {"page": "#c62828", "ticket": "#d98a00"}

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f5f8;color:#1f2933;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:28px 32px 48px}
header.top{display:flex;justify-content:space-between;align-items:flex-end;gap:24px;flex-wrap:wrap}
h1{font-size:26px;margin:0 0 4px;letter-spacing:-.01em}
.sub{color:#5b6875;font-size:13px}
.cards{display:grid;grid-template-columns:repeat(5,minmax(120px,1fr));gap:12px;margin:22px 0 8px}
.card{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 2px rgba(16,24,40,.08);
border-top:4px solid #cbd2d9}
.card .n{font-size:28px;font-weight:650}
.card .l{color:#5b6875;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
h2.team{font-size:19px;margin:34px 0 10px;display:flex;align-items:center;gap:10px}
h3.svc{font-size:15px;margin:18px 0 8px;color:#3e4c59}
h3.svc small{color:#7b8794;font-weight:400;margin-left:6px}
.slo{background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(16,24,40,.10);margin:0 0 16px;
border-left:6px solid #cbd2d9;padding:16px 20px 14px}
.slo .head{display:flex;align-items:baseline;gap:12px;flex-wrap:wrap}
.slo .name{font-size:17px;font-weight:650}
.slo .meta{color:#5b6875;font-size:13px}
.pill{display:inline-block;border-radius:999px;padding:2px 10px;font-size:12px;font-weight:600;color:#fff}
.kpis{display:grid;grid-template-columns:repeat(6,1fr);gap:10px;margin:12px 0 6px}
.kpi .v{font-size:20px;font-weight:650;font-variant-numeric:tabular-nums}
.kpi .l{color:#7b8794;font-size:11px;text-transform:uppercase;letter-spacing:.04em}
.kpi .s{color:#7b8794;font-size:12px}
.bar{height:8px;background:#e4e7eb;border-radius:4px;overflow:hidden;margin-top:5px}
.bar i{display:block;height:100%}
.tiers{display:flex;gap:8px;flex-wrap:wrap;margin:8px 0 4px}
.tier{border:1px solid #e4e7eb;border-radius:8px;padding:4px 10px;font-size:12px;color:#3e4c59;background:#fafbfc}
.tier.firing{border-color:#c62828;background:#fdecea;color:#8a1c1c;font-weight:600}
.tier.off{opacity:.45}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:16px;margin-top:10px}
.chart h4{margin:0 0 2px;font-size:12px;color:#5b6875;font-weight:600;text-transform:uppercase;letter-spacing:.04em}
.chart svg{width:100%;height:auto;display:block}
.empty{color:#9aa5b1;font-size:13px;padding:30px 0;text-align:center;border:1px dashed #d5dbe1;border-radius:8px}
ul.reasons{margin:8px 0 0;padding-left:18px;color:#8a5a00;font-size:13px}
.desc{color:#52606d;font-size:13px;margin-top:2px}
a{color:#3367d6;text-decoration:none}
footer{color:#9aa5b1;font-size:12px;margin-top:30px}
.warn{background:#fff4e5;border:1px solid #f5c26b;border-radius:8px;padding:10px 14px;margin:14px 0;color:#7a4b00}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _fmt_axis_time(t: float, span: float) -> str:
    d = datetime.fromtimestamp(t, tz=UTC)
    return d.strftime("%H:%M") if span <= 2 * 86400 else d.strftime("%b %d")


def _path(points: Sequence[Point], x: Callable[[float], float], y: Callable[[float], float]) -> str:
    return " ".join(f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(points))


def line_chart(series: Mapping[str, Sequence[Point]], *, t0: float, t1: float, y_min: float, y_max: float,
               y_fmt: str, css_class: str, title: str,
               hlines: Sequence[tuple[str, float, str]] = (), area: bool = False,
               guide: Sequence[Point] = (), width: int = 560, height: int = 210) -> str:
    """An inline SVG line chart; hlines are (label, y, colour) dashed thresholds, guide a dotted reference."""
    left, right, top, bottom = 48, 14, 24, 26
    pw, ph = width - left - right, height - top - bottom
    span = max(t1 - t0, 1.0)
    yspan = max(y_max - y_min, 1e-12)

    def x(t: float) -> float:
        return left + (t - t0) / span * pw

    def y(v: float) -> float:
        return top + (1 - (min(max(v, y_min), y_max) - y_min) / yspan) * ph

    parts = [f'<svg class="chart {css_class}" viewBox="0 0 {width} {height}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{_e(title)}</title>']
    for i in range(5):
        v = y_min + yspan * i / 4
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#edf0f3"/>'
                     f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="10" '
                     f'fill="#7b8794">{_e(y_fmt.format(v))}</text>')
    for i in range(5):
        t = t0 + span * i / 4
        anchor = "start" if i == 0 else ("end" if i == 4 else "middle")
        parts.append(f'<text x="{x(t):.1f}" y="{height - 8}" text-anchor="{anchor}" font-size="10" '
                     f'fill="#7b8794">{_e(_fmt_axis_time(t, span))}</text>')
    if y_min < 0 < y_max:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#9aa5b1"/>')
    if guide:
        parts.append(f'<path d="{_path(guide, x, y)}" fill="none" stroke="#9aa5b1" stroke-dasharray="2 4"/>')
    for label, v, color in hlines:
        parts.append(f'<line class="threshold" x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                     f'stroke="{color}" stroke-width="1.2" stroke-dasharray="6 4"/>'
                     f'<text x="{left + pw - 2}" y="{y(v) - 4:.1f}" text-anchor="end" font-size="10" '
                     f'fill="{color}">{_e(label)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        if not pts:
            continue
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        d = _path(pts, x, y)
        if area:
            end_color = "#c62828" if pts[-1][1] < 0 else "#1e8e3e"
            color = end_color
            parts.append(f'<path d="{d} L{x(pts[-1][0]):.1f},{y(max(y_min, 0)):.1f} '
                         f'L{x(pts[0][0]):.1f},{y(max(y_min, 0)):.1f} Z" fill="{color}" fill-opacity=".12"/>')
        parts.append(f'<path class="series" data-name="{_e(name)}" d="{d}" fill="none" stroke="{color}" '
                     f'stroke-width="1.8" stroke-linejoin="round"/>')
    if len(series) > 1 or hlines:
        lx = left
        for i, name in enumerate(series):
            color = SERIES_COLORS[i % len(SERIES_COLORS)]
            parts.append(f'<rect x="{lx}" y="{top - 13}" width="12" height="3" fill="{color}"/>'
                         f'<text x="{lx + 16}" y="{top - 8}" font-size="11" fill="#52606d">{_e(name)}</text>')
            lx += 26 + 6 * len(name)
    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#d5dbe1"/></svg>')
    return "".join(parts)


def burn_chart(s: SLOReport) -> str:
    """Burn rate over time per long window, with the enabled tiers' thresholds."""
    series = {f"{w} burn": pts for w, pts in s.burn_chart.items() if pts}
    if not series:
        return '<div class="empty">no burn-rate history</div>'
    top = max((v for pts in series.values() for _, v in pts if math.isfinite(v)), default=0.0)
    tiers = [t for t in s.tiers if t.enabled] or list(s.tiers)
    lowest = min((t.threshold for t in tiers), default=1.0)
    y_max = max(top * 1.15, lowest * 1.25, 1.0)
    hlines = [(f"{t.name} {t.threshold:g}x", t.threshold, SEVERITY_COLORS.get(t.severity, "#999"))
              for t in tiers if t.threshold <= y_max]
    t0, t1 = s.period_start, min(s.period_end, max(p[-1][0] for p in series.values()))
    return line_chart(series, t0=t0, t1=t1, y_min=0.0, y_max=y_max, y_fmt="{:.3g}x", css_class="chart-burn",
                      title=f"{s.service}/{s.slo} burn rate over time", hlines=hlines)


def budget_chart(s: SLOReport) -> str:
    """Budget remaining over the period, with the even-spend line."""
    pts = s.budget_chart
    if not pts:
        return '<div class="empty">no budget history</div>'
    lo = min(0.0, min(v for _, v in pts) * 1.1)
    guide = [(s.period_start, 1.0), (s.period_end, 0.0)]
    return line_chart({"budget left": pts}, t0=s.period_start, t1=s.period_end, y_min=lo, y_max=1.0,
                      y_fmt="{:.0%}", css_class="chart-budget", title=f"{s.service}/{s.slo} error budget burn-down",
                      area=True, guide=guide, height=210)


def _tier(t: TierState) -> str:
    cls = "tier firing" if t.firing else ("tier" if t.enabled else "tier off")
    return (f'<span class="{cls}" title="{_e(t.severity)}: {_e(t.long_window)} and {_e(t.short_window)} above '
            f'{t.threshold:g}x">{_e(t.name)} &middot; {burn(t.long_burn)}/{burn(t.short_burn)} '
            f'of {t.threshold:g}x{" &middot; FIRING" if t.firing else ""}</span>')


def _kpi(label: str, value: str, sub: str = "", bar: float | None = None, color: str = "#1e8e3e") -> str:
    bar_html = ""
    if bar is not None:
        width = max(0.0, min(1.0, bar)) * 100
        bar_html = f'<div class="bar"><i style="width:{width:.1f}%;background:{color}"></i></div>'
    return (f'<div class="kpi"><div class="l">{_e(label)}</div><div class="v">{_e(value)}</div>'
            f'<div class="s">{_e(sub)}</div>{bar_html}</div>')


def _slo_card(s: SLOReport) -> str:
    color = STATUS_COLORS[s.status]
    rem = s.budget_remaining
    bar_color = "#c62828" if rem is not None and rem < 0.25 else ("#e8a400" if rem is not None and rem < 0.5
                                                                   else "#1e8e3e")
    links = " ".join(f'<a href="{_e(u)}">{_e(n)}</a>' for n, u in (("runbook", s.runbook),
                                                                     ("dashboard", s.dashboard)) if u)
    kpis = "".join([
        _kpi("SLI", pct(s.sli, 3), f"objective {pct(s.objective)}"),
        _kpi("Budget left", pct(rem, 1), f"of {pct(s.budget_ratio)} errors", rem, bar_color),
        _kpi("Outage left", minutes(s.budget_minutes_remaining), f"of {minutes(s.budget_minutes)}"),
        _kpi("Bad events left", events(s.budget_events_remaining), f"of {events(s.budget_events)}"),
        _kpi("Burn now", burn(s.current_burn), f"over {s.current_burn_window}" if s.current_burn_window else ""),
        _kpi("Exhausted in", eta(s), "at the current burn" if s.in_progress else "period closed"),
    ])
    tiers = "".join(_tier(t) for t in s.tiers) if s.in_progress else ""
    reasons = "".join(f"<li>{_e(r)}</li>" for r in s.reasons)
    return (
        f'<section class="slo status-{s.status.value}" style="border-left-color:{color}" '
        f'data-slo="{_e(s.namespace)}/{_e(s.service)}/{_e(s.slo)}">'
        f'<div class="head"><span class="name">{_e(s.slo)}</span>'
        f'<span class="pill" style="background:{color}">{_e(STATUS_TEXT[s.status])}</span>'
        f'<span class="meta">{_e(pct(s.objective))} {_e(s.sli_kind)} over {_e(s.period_label)}, '
        f'{_e(s.budgeting)}</span><span class="meta">{links}</span></div>'
        + (f'<div class="desc">{_e(s.description)}</div>' if s.description else "")
        + f'<div class="kpis">{kpis}</div>'
        + (f'<div class="tiers">{tiers}</div>' if tiers else "")
        + '<div class="charts">'
        f'<div class="chart"><h4>Burn rate</h4>{burn_chart(s)}</div>'
        f'<div class="chart"><h4>Error budget burn-down</h4>{budget_chart(s)}</div></div>'
        + (f'<ul class="reasons">{reasons}</ul>' if reasons else "")
        + "</section>")


def render_html(report: Report) -> str:
    """The whole report as one HTML document."""
    sm = report.summary()
    cards = "".join(
        f'<div class="card" style="border-top-color:{c}"><div class="n">{n}</div><div class="l">{_e(lbl)}</div></div>'
        for lbl, n, c in (("SLOs", sm["slos"], "#3367d6"),
                          ("Exhausted", sm["exhausted"], STATUS_COLORS[Status.EXHAUSTED]),
                          ("Burning", sm["burning"], STATUS_COLORS[Status.BURNING]),
                          ("No data", sm["no-data"], STATUS_COLORS[Status.NO_DATA]),
                          ("Healthy", sm["healthy"], STATUS_COLORS[Status.HEALTHY])))
    body = []
    for g in report.groups():
        body.append(f'<h2 class="team">{_e(g.title)} <span class="pill" style="background:'
                    f'{STATUS_COLORS[g.worst]}">{_e(STATUS_TEXT[g.worst])}</span></h2>')
        for sg in g.services:
            body.append(f'<h3 class="svc">{_e(sg.title)}<small>{_e(sg.namespace)}/{_e(sg.service)}</small></h3>')
            body.extend(_slo_card(s) for s in sg.slos)
    warnings = "".join(f'<div class="warn">{_e(w)}</div>' for w in report.warnings)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>SLO report {_e(report.period.label)}</title><style>{CSS}</style></head><body><main>"
        f'<header class="top"><div><h1>SLO report</h1><div class="sub">{_e(period_text(report))}</div></div>'
        f'<div class="sub">generated {_e(when(report.generated_at))}<br>from {_e(report.source)}</div></header>'
        f'<div class="cards">{cards}</div>{warnings}{"".join(body)}'
        f'<footer>obsctl SLO report, schema v1. Burn rate = error ratio / (1 - objective); a tier fires when both '
        f"its windows burn above its threshold.</footer></main></body></html>\n")
