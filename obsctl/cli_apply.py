"""`obsctl apply`: render the catalog and converge the configured backends once.

Backends (each on when its settings are present): Prometheus rule files + reload
(prometheus.rules_dir, prometheus.url), the Mimir/Cortex ruler (ruler.url), the Alertmanager
config + reload (alerting.config_dir, alerting.alertmanager_url), Grafana folders and dashboards
(grafana.url, grafana.token, grafana.drift_policy).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from obsctl.cli_args import ONLY_HELP, add_config_option, only_kinds
from obsctl.errors import ConfigError
from obsctl.progress import Progress

if TYPE_CHECKING:
    from obsctl.config import Settings


def add_parser(sub: Any) -> None:
    """Register the `apply` subcommand."""
    a = sub.add_parser("apply", help="apply SLO rules, alert routes and dashboards to Prometheus, the ruler, "
                                     "Alertmanager and Grafana")
    a.add_argument("path", help="catalog directory or file")
    a.add_argument("--only", type=only_kinds, metavar="OUTPUTS", help=ONLY_HELP)
    a.add_argument("--no-prune", action="store_true", help="never delete owned rules or files")
    a.add_argument("--allow-mass-delete", action="store_true",
                   help="allow deleting more than serve.max_delete_fraction of what obsctl owns in a backend")
    add_config_option(a)


def run(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Render, then converge every configured sink (the path serve uses); exit 1 on any failure."""
    import contextlib

    from obsctl.app import alerting_sinks, converge_path, grafana_sink_from_settings, load_templates
    from obsctl.reconcile.converge import Hooks
    from obsctl.sinks.base import Sink

    sinks = alerting_sinks(settings)
    if settings.grafana.url:
        sinks.append(grafana_sink_from_settings(settings))
    if not sinks:
        raise ConfigError("nothing to apply to: set prometheus.rules_dir, ruler.url, alerting.config_dir "
                          "or grafana.url")
    with Progress(err) as progress:
        def applying(sink: Sink, writes: int) -> contextlib.AbstractContextManager[object]:
            progress.phase(f"{sink.name}: applying", total=writes)
            return contextlib.nullcontext()

        # one-off applies list deep (finds drift)
        load, streamed = converge_path(Path(args.path), settings, load_templates(settings), sinks, only=args.only,
                                       no_prune=args.no_prune, allow_mass_delete=args.allow_mass_delete,
                                       hooks=Hooks(apply_scope=applying, on_outcome=lambda _: progress.step()))
    report = streamed.report
    for p in load.problems:
        err.write(str(p) + "\n")
    for r in report.runs:
        if not r.listed:
            err.write(f"{r.name}: {r.error}\n")
            out.write(f"{r.name}: not listed, nothing written\n")
            continue
        for o in r.failed:
            err.write(f"{r.name}: failed: {o.id}: {o.error}\n")
        s = r.plan.summary()
        out.write(f"{r.name}: {s['create']} created, {s['update']} updated, {s['delete']} deleted, "
                  f"{s['unchanged']} unchanged, {len(r.failed)} failed\n")
        if r.stale:
            err.write(f"{r.name}: the backend runs an older config, its reload failed (retried on the next apply "
                      f"or round): {r.stale}\n")
    return 1 if report.failed or not report.complete or load.errors else 0
