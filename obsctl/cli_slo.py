"""`obsctl slo report` and `obsctl slo replay` (wired into obsctl.cli)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from obsctl.cli_args import OUTPUT_HELP, add_config_option
from obsctl.errors import ConfigError

if TYPE_CHECKING:  # loaded when a command runs, so the CLI starts fast
    from obsctl.config import Settings
    from obsctl.model.entities import SLO, Catalog, Service
    from obsctl.slo.replay import ReplayResult

REPORT_FORMATS = ("html", "json", "markdown", "table")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `slo report` and `slo replay` to the top-level subcommands."""
    slo = sub.add_parser("slo", help="SLO reports (budgets, burn rates) and burn-rate replay")
    ssub = slo.add_subparsers(dest="slo_command", required=True)
    r = ssub.add_parser("report", help="error budgets, burn rates and status of every SLO, from Prometheus")
    r.add_argument("--catalog", type=Path, help="catalog directory or file (default: catalog.path setting)")
    r.add_argument("--prometheus", help="Prometheus base URL (default: prometheus.url setting)")
    r.add_argument("--team", help="only this team's services: its team label, as on its alerts (payments in the "
                                  "default namespace, retail/payments elsewhere), or a ref (group:retail/payments)")
    r.add_argument("--service", help="service name or namespace/name")
    r.add_argument("--slo", help="SLO name")
    r.add_argument("--period", default="rolling",
                   help="rolling (default), this-month, last-month, this-quarter, last-quarter, YYYY-MM, YYYY-Qn")
    r.add_argument("-o", "--output", choices=REPORT_FORMATS, default="table", help=OUTPUT_HELP)
    r.add_argument("--out", type=Path, help="write to this file instead of stdout")
    r.add_argument("--timeout", type=float, default=15.0, help="seconds per Prometheus query")
    r.add_argument("--now", type=float, help=argparse.SUPPRESS)  # unix seconds; for reproducible reports
    p = ssub.add_parser("replay", help="which pages and tickets an SLO's alert policy would have sent over a history")
    p.add_argument("history", type=Path, help="CSV (t,errors,total per step) or JSON history file")
    p.add_argument("--catalog", type=Path, help="catalog directory or file (default: catalog.path setting)")
    p.add_argument("--slo", required=True, help="service/slo (service may be namespace/name)")
    p.add_argument("--windows", type=Path, action="append", default=[],
                   help="an alternative window table (alert-rules/windows format) to compare; repeatable")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text", help=OUTPUT_HELP)
    for parser in (r, p):
        add_config_option(parser)


def _find(catalog: Catalog, ref: str) -> tuple[Service, SLO]:
    svc_ref, _, slo_name = ref.rpartition("/")
    for svc in catalog.services:
        if svc_ref in (svc.name, f"{svc.namespace}/{svc.name}"):
            for slo in svc.slos:
                if slo.name == slo_name:
                    return svc, slo
    raise ConfigError(f"no SLO {ref!r} in the catalog (use service/slo)")


def run(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Run an `obsctl slo ...` command; returns the exit code."""
    if args.slo_command == "report":
        return _report(args, settings, out, err)
    return _replay(args, settings, out)


def _report(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    from obsctl.app import load_path, load_templates
    from obsctl.slo.formats import render_json, render_markdown, render_table
    from obsctl.slo.html import render_html
    from obsctl.slo.query import build_report
    from obsctl.slo.report import ReportFilter

    renderers = {"table": render_table, "json": render_json, "markdown": render_markdown, "html": render_html}
    url = args.prometheus or settings.prometheus.url
    if not url:
        raise ConfigError("no Prometheus URL: pass --prometheus or set prometheus.url (OBSCTL_PROMETHEUS__URL)")
    templates = load_templates(settings)
    result = load_path(args.catalog or settings.catalog.path, settings, templates, routing=False)
    for p in result.problems:
        err.write(str(p) + "\n")
    try:
        report = build_report(result.catalog, templates, url, ReportFilter(args.team, args.service, args.slo),
                              args.period, args.now, charts=args.output == "html", timeout=args.timeout)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    text = renderers[args.output](report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        out.write(f"wrote {args.out} ({len(report.slos)} SLOs)\n")
    else:
        out.write(text)
    if not report.slos:
        err.write("obsctl: no SLO matches the filters\n")
        return 1
    return 0


def _replay(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from obsctl.app import load_path, load_templates
    from obsctl.slo.replay import parse_history, render_replay_text, replay, window_table_from_yaml

    templates = load_templates(settings)
    result = load_path(args.catalog or settings.catalog.path, settings, templates, routing=False)
    svc, slo = _find(result.catalog, args.slo)
    try:
        samples = parse_history(args.history.read_text())
        tables = [(f"{slo.period_days}d (catalog)", templates.windows[slo.period_days])]
        tables += [(str(path), window_table_from_yaml(path.read_text())) for path in args.windows]
        results: list[ReplayResult] = [replay(samples, slo.objective, table, slo.alerting, label=label)
                                       for label, table in tables]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"slo replay: {exc}") from exc
    if args.output == "json":
        out.write(json.dumps({"service": str(svc.ref), "slo": slo.name, "results": [r.to_dict() for r in results]},
                             indent=2, sort_keys=True) + "\n")
    else:
        out.write(f"{svc.namespace}/{svc.name}/{slo.name}, objective {slo.objective_percent}%\n")
        out.write(render_replay_text(results))
    return 0
