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

from obsctl.cli_args import add_config_option
from obsctl.errors import ConfigError
from obsctl.progress import Progress

if TYPE_CHECKING:
    from obsctl.config import Settings


def add_parser(sub: Any) -> None:
    """Register the `apply` subcommand."""
    a = sub.add_parser("apply", help="apply SLO rules, alert routes and dashboards to Prometheus, the ruler, "
                                     "Alertmanager and Grafana")
    a.add_argument("path", help="catalog directory or file")
    a.add_argument("--only", help="comma-separated renderers: rules,alertmanager,dashboards")
    a.add_argument("--no-prune", action="store_true", help="never delete owned rules or files")
    a.add_argument("--allow-mass-delete", action="store_true",
                   help="allow deleting more than serve.max_delete_fraction of what obsctl owns in a backend")
    add_config_option(a)


def run(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Render, then plan and apply per configured sink; exit 1 on any failure."""
    from obsctl.app import alerting_sinks, grafana_sink_from_settings, load_path, load_templates, render_options
    from obsctl.reconcile.apply import apply_plan
    from obsctl.reconcile.plan import make_plan
    from obsctl.render import render_all

    sinks = alerting_sinks(settings)
    if settings.grafana.url:
        sinks.append(grafana_sink_from_settings(settings))
    if not sinks:
        raise ConfigError("nothing to apply to: set prometheus.rules_dir, ruler.url, alerting.config_dir "
                          "or grafana.url")
    templates = load_templates(settings)
    result = load_path(Path(args.path), settings, templates)
    for p in result.problems:
        err.write(str(p) + "\n")
    only = args.only.split(",") if args.only else None
    desired = render_all(result.catalog, templates, render_options(settings), only)
    failed = False
    for sink in sinks:
        mine = {aid: art for aid, art in desired.items() if art.kind in sink.kinds}
        prepare = getattr(sink, "prepare", None)  # the Grafana sink learns folder titles before dashboards land
        if prepare is not None:
            prepare(mine.values())
        set_depth = getattr(sink, "set_depth", None)  # one-off applies always read everything (finds drift)
        if set_depth is not None:
            set_depth(True)
        # prune only after a complete, error-free read of the catalog
        plan = make_plan(mine, sink.list_owned(), prune=not args.no_prune and not result.errors,
                         max_delete_fraction=settings.serve.max_delete_fraction,
                         allow_mass_delete=args.allow_mass_delete)
        with Progress(err) as progress:
            progress.phase(f"{sink.name}: applying", total=len(plan.writes))
            applied = apply_plan(sink, plan, parallelism=max(1, int(getattr(sink, "parallelism", 1))),
                                 on_outcome=lambda _: progress.step())
        for o in applied.failed:
            err.write(f"{sink.name}: failed: {o.id}: {o.error}\n")
        s = plan.summary()
        out.write(f"{sink.name}: {s['create']} created, {s['update']} updated, {s['delete']} deleted, "
                  f"{s['unchanged']} unchanged, {len(applied.failed)} failed\n")
        failed = failed or bool(applied.failed)
    return 1 if failed or result.errors else 0
