"""Text renderings of a Report: terminal table, Markdown, JSON (HTML lives in slo/html.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from obsctl.model.durations import humanize_seconds
from obsctl.slo.report import Report, SLOReport, Status


def pct(ratio: float | None, digits: int = 3) -> str:
    """A ratio as a percent without float noise: 0.99951 -> 99.951%; None -> '-'."""
    if ratio is None:
        return "-"
    text = f"{ratio * 100:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "%"


def burn(value: float | None) -> str:
    """A burn rate: 14.4x; None -> '-'."""
    if value is None:
        return "-"
    return f"{value:.3g}x" if value < 1000 else f"{value:.0f}x"


def minutes(value: float | None) -> str:
    """Minutes of full outage: 43.2 min, or a duration when large; None -> '-'."""
    if value is None:
        return "-"
    if abs(value) < 120:
        return f"{value:.1f} min"
    sign = "-" if value < 0 else ""
    return sign + humanize_seconds(abs(value) * 60)


def events(value: float | None) -> str:
    """An event count, rounded: 1,234; None -> '-'."""
    if value is None:
        return "-"
    return f"{value:,.0f}"


def eta(s: SLOReport) -> str:
    """Time until the budget is exhausted at the current burn."""
    if s.status is Status.EXHAUSTED:
        return "exhausted"
    if s.exhaustion_s is None:
        return "never" if s.current_burn is not None else "-"
    if s.exhaustion_s > 365 * 86400:
        return "> 1 year"
    return humanize_seconds(s.exhaustion_s)


def when(ts: float | None) -> str:
    """A unix time as an ISO UTC string to the minute."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def period_text(report: Report) -> str:
    """The period a report covers, for headings."""
    p = report.period
    if p.is_calendar:
        return f"{p.label} ({when(p.start)} to {when(p.end)})"
    return "rolling (each SLO over its own period, ending now)"


def _row(s: SLOReport) -> list[str]:
    return [f"{s.service}/{s.slo}", s.status.value, f"{pct(s.objective)} {s.period_label}", pct(s.sli, 4),
            pct(s.budget_remaining, 1), minutes(s.budget_minutes_remaining),
            f"{burn(s.current_burn)} {s.current_burn_window}" if s.current_burn is not None else "-",
            ",".join(s.firing) or "-", eta(s)]


HEAD = ["SERVICE/SLO", "STATUS", "OBJECTIVE", "SLI", "BUDGET LEFT", "OUTAGE LEFT", "BURN", "FIRING", "EXHAUSTED IN"]


def render_table(report: Report) -> str:
    """A terminal table, grouped by team, worst first."""
    rows = [_row(s) for s in report.slos]
    widths = [max(len(x) for x in col) for col in zip(HEAD, *rows, strict=False)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip() + "\n"

    sm = report.summary()
    out = [f"SLO report, {period_text(report)}, generated {when(report.generated_at)}\n",
           f"{sm['slos']} SLOs: {sm['exhausted']} exhausted, {sm['burning']} burning, {sm['no-data']} no data, "
           f"{sm['healthy']} healthy\n"]
    for g in report.groups():
        out.append(f"\n{g.title} ({g.team})\n")
        out.append("  " + line(HEAD))
        for sg in g.services:
            for s in sg.slos:
                out.append("  " + line(_row(s)))
                out.extend(f"    - {r}\n" for r in s.reasons)
    out.extend(f"\nwarning: {w}\n" for w in report.warnings)
    return "".join(out)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report) -> str:
    """A Markdown report: summary, then one table per team, then notes."""
    sm = report.summary()
    out = [f"# SLO report: {period_text(report)}\n\n",
           f"Generated {when(report.generated_at)} from {report.source}. **{sm['slos']} SLOs**: "
           f"{sm['exhausted']} exhausted, {sm['burning']} burning, {sm['no-data']} no data, "
           f"{sm['healthy']} healthy.\n"]
    head = ["Service", "SLO", "Status", "Objective", "SLI", "Budget left", "Outage left", "Bad events left",
            "Burn", "Firing", "Exhausted in"]
    for g in report.groups():
        out.append(f"\n## {_md(g.title)}\n\n")
        out.append("| " + " | ".join(head) + " |\n")
        out.append("|" + "|".join("---" if i < 3 else "---:" for i in range(len(head))) + "|\n")
        for sg in g.services:
            for s in sg.slos:
                cells = [sg.service, s.slo, f"**{s.status.value}**", f"{pct(s.objective)} ({s.period_label})",
                         pct(s.sli, 4), pct(s.budget_remaining, 1), minutes(s.budget_minutes_remaining),
                         events(s.budget_events_remaining),
                         f"{burn(s.current_burn)} ({s.current_burn_window})" if s.current_burn is not None else "-",
                         ", ".join(s.firing) or "-", eta(s)]
                out.append("| " + " | ".join(_md(c) for c in cells) + " |\n")
        notes = [(s, r) for sg in g.services for s in sg.slos for r in s.reasons]
        if notes:
            out.append("\n")
            out.extend(f"- {_md(s.service)}/{_md(s.slo)}: {_md(r)}\n" for s, r in notes)
    if report.warnings:
        out.append("\n## Warnings\n\n")
        out.extend(f"- {_md(w)}\n" for w in report.warnings)
    return "".join(out)


def render_json(report: Report) -> str:
    """The versioned JSON document (see report.schema.json)."""
    return report.to_json()
