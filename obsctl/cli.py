"""The obsctl command line: validate, render, plan, apply, serve, slo report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from obsctl import __version__, cli_apply, cli_slo
from obsctl.cli_args import CONFIG_HELP, ONLY_HELP, OUTPUT_HELP, add_config_option, only_kinds
from obsctl.errors import ConfigError, ObsctlError, PruneRefused, SpecError
from obsctl.progress import Progress

if TYPE_CHECKING:  # the CLI starts fast: what a subcommand needs is imported when it runs
    from obsctl.config import Settings
    from obsctl.model.entities import Catalog
    from obsctl.reconcile.converge import SinkRun
    from obsctl.spec.load import LoadResult
    from obsctl.spec.templates import Templates


def _dump(data: Any, fmt: str, out: TextIO) -> None:
    import json

    import yaml

    if fmt == "json":
        out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        out.write(yaml.safe_dump(data, sort_keys=True, default_flow_style=False))


def tier_rows(catalog: Catalog, templates: Templates) -> list[dict[str, Any]]:
    """One row per (service, SLO, enabled tier): the Workbook arithmetic for a full outage."""
    from obsctl.model.durations import format_duration
    from obsctl.slo.alerts import enabled_tiers
    from obsctl.slo.math import tier_timing

    rows: list[dict[str, Any]] = []
    for svc in catalog.services:
        for slo in svc.slos:
            table = templates.windows[slo.period_days]
            for tier in enabled_tiers(slo, table):
                t = tier_timing(tier, slo.objective)
                rows.append({
                    "service": str(svc.ref), "slo": slo.name, "objective": slo.objective_percent,
                    "period": f"{slo.period_days}d", "tier": tier.name, "severity": tier.severity,
                    "burn_rate": tier.burn_rate, "long_window": format_duration(tier.long_window_s),
                    "short_window": format_duration(tier.short_window_s),
                    "budget_spent_at_fire": round(t.budget_spent_at_fire, 6),
                    "detection_seconds": None if t.detection_s is None else round(t.detection_s, 1),
                    "reset_seconds": None if t.reset_s is None else round(t.reset_s, 1),
                })
    return rows


def _print_table(rows: list[dict[str, Any]], out: TextIO) -> None:
    from obsctl.model.durations import humanize_seconds

    head = ["SERVICE", "SLO", "OBJECTIVE", "TIER", "BURN", "LONG/SHORT", "BUDGET@FIRE", "DETECT", "RESET"]
    body = [[r["service"], r["slo"], f"{r['objective']}%/{r['period']}", f"{r['tier']} ({r['severity']})",
             f"{r['burn_rate']:g}x", f"{r['long_window']}/{r['short_window']}",
             f"{r['budget_spent_at_fire'] * 100:.1f}%",
             humanize_seconds(r["detection_seconds"]) if r["detection_seconds"] is not None else "never",
             humanize_seconds(r["reset_seconds"]) if r["reset_seconds"] is not None else "-"] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]
    for line in [head, *body]:
        out.write("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=False)).rstrip() + "\n")


def cmd_validate(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Check a catalog: every problem at once, then each SLO's alert tiers."""
    from obsctl.app import load_path, load_templates

    templates = load_templates(settings)
    result = load_path(Path(args.path), settings, templates)
    rows = tier_rows(result.catalog, templates)
    if args.output == "annotations":
        from obsctl.cli_annotations import write_annotations

        write_annotations(result, settings, out)
    elif args.output in ("json", "yaml"):
        from obsctl.cli_annotations import link_warnings

        _dump({"problems": [{"file": p.file, "line": p.line, "entity": p.entity, "field": p.field,
                             "severity": p.severity.value, "message": p.message} for p in result.problems],
               "services": [str(s.ref) for s in result.catalog.services], "skipped": result.skipped,
               "tiers": rows, "settings_warnings": link_warnings(settings)}, args.output, out)
    else:
        for p in result.problems:
            out.write(str(p) + "\n")
        from obsctl.cli_annotations import link_warnings

        for warning in link_warnings(settings):
            out.write(f"warning: {warning}\n")
        errors = len(result.errors)
        warnings = len(result.problems) - errors
        out.write(f"{len(result.catalog.services)} services valid, {len(result.skipped)} skipped; "
                  f"{errors} errors, {warnings} warnings\n")
        if rows:
            out.write("\n")
            _print_table(rows, out)
    return 1 if result.errors else 0


def _converge_dir(args: argparse.Namespace, settings: Settings, apply: bool, progress: Progress, diffs: bool = False
                  ) -> tuple[LoadResult, SinkRun]:
    """render/plan: the one-off converge path, with the output directory as a files sink."""
    import contextlib

    from obsctl.app import converge_path, directory_sink, load_templates
    from obsctl.reconcile.converge import Hooks
    from obsctl.sinks.base import Sink

    def writing(_sink: Sink, writes: int) -> contextlib.AbstractContextManager[object]:
        progress.phase("writing", total=writes)
        return contextlib.nullcontext()

    hooks = Hooks(apply_scope=writing, on_outcome=lambda _: progress.step())
    load, streamed = converge_path(Path(args.path), settings, load_templates(settings),
                                   [directory_sink(settings, Path(args.out))], only=args.only, no_prune=args.no_prune,
                                   allow_mass_delete=args.allow_mass_delete, apply=apply, diffs=diffs, hooks=hooks,
                                   phase=progress.phase)
    return load, streamed.report.runs[0]


def _converge_dir_reported(args: argparse.Namespace, settings: Settings, write: bool,
                           err: TextIO, diffs: bool = False) -> tuple[LoadResult, SinkRun | None]:
    """`_converge_dir` with its problems on stderr; no run when the directory could not be listed."""
    with Progress(err) as progress:
        load, run = _converge_dir(args, settings, write, progress, diffs)
    for p in load.problems:
        err.write(str(p) + "\n")
    if not run.listed:
        err.write(f"obsctl: {args.out}: {run.error}\n")
        return load, None
    return load, run


def cmd_render(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Write the desired artifacts under --out (only what changed is written)."""
    load, run = _converge_dir_reported(args, settings, True, err)
    if run is None:
        return 1
    for o in run.failed:
        err.write(f"failed: {o.id}: {o.error}\n")
    s = run.plan.summary()
    out.write(f"{s['create']} created, {s['update']} updated, {s['delete']} deleted, {s['unchanged']} unchanged "
              f"in {args.out}\n")
    return 1 if run.failed or load.errors else 0


def cmd_plan(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Show what render would change under --out, with diffs, without writing."""
    from obsctl.reconcile.converge import changes_as_dicts
    from obsctl.reconcile.plan import Action

    load, run = _converge_dir_reported(args, settings, False, err, diffs=not args.no_diff)
    if run is None:
        return 1
    plan = run.plan
    if args.output in ("json", "yaml"):
        _dump({"summary": plan.summary(), "changes": changes_as_dicts(plan, diffs=not args.no_diff)}, args.output, out)
    else:
        for c in plan.writes:
            out.write(f"{c.action.value:7} {c.path}\n")
            if c.action is Action.UPDATE and not args.no_diff:
                out.write(c.diff())
        s = plan.summary()
        out.write(f"Plan: {s['create']} to create, {s['update']} to update, {s['delete']} to delete, "
                  f"{s['unchanged']} unchanged.\n")
    return 2 if args.exit_code and plan.writes else (1 if load.errors else 0)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = argparse.ArgumentParser(prog="obsctl", description=__doc__)
    p.add_argument("--version", action="version", version=f"obsctl {__version__}")
    p.add_argument("--config", type=Path, metavar="FILE", help=CONFIG_HELP)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    v = sub.add_parser("validate", help="check a catalog and print each SLO's alert tiers",
                       description="Check a catalog (every problem at once, with file, entity and field) and "
                                   "print each SLO's alert tiers: burn rate, windows, detection and reset time.")
    v.add_argument("path", help="catalog directory or file")
    v.add_argument("-o", "--output", choices=["text", "json", "yaml", "annotations"], default="text",
                   help=OUTPUT_HELP + "; annotations: the Backstage annotations to add to each entity")
    add_config_option(v)
    for name, helptext in (("render", "write the desired artifacts to a directory"),
                           ("plan", "show what render would change in a directory")):
        c = sub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        c.add_argument("path", help="catalog directory or file")
        c.add_argument("--out", required=True, metavar="DIR", help="output directory (obsctl owns what it writes)")
        c.add_argument("--only", type=only_kinds, metavar="OUTPUTS", help=ONLY_HELP)
        c.add_argument("--no-prune", action="store_true", help="never delete owned files")
        c.add_argument("--allow-mass-delete", action="store_true",
                       help="allow deleting more than serve.max_delete_fraction of the owned files")
        if name == "plan":
            c.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text", help=OUTPUT_HELP)
            c.add_argument("--no-diff", action="store_true", help="list the changed files without their diffs")
            c.add_argument("--exit-code", action="store_true", help="exit 2 when there are changes")
        add_config_option(c)
    cli_slo.add_parser(sub)
    cli_apply.add_parser(sub)
    srv = sub.add_parser("serve", help="run the control service: watch the catalog, keep every artifact converged",
                         description="Run the control service: watch the catalog, keep every artifact converged "
                                     "and serve the HTTP API (settings.serve.listen).")
    add_config_option(srv)
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Entry point; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        from obsctl.config import load_settings

        settings = load_settings(args.config)
        if args.command == "validate":
            return cmd_validate(args, settings, out)
        if args.command == "render":
            return cmd_render(args, settings, out, err)
        if args.command == "plan":
            return cmd_plan(args, settings, out, err)
        if args.command == "apply":
            return cli_apply.run(args, settings, out, err)
        if args.command == "slo":
            return cli_slo.run(args, settings, out, err)
        if args.command == "serve":
            from obsctl.service.server import serve  # the service stack loads only for serve

            return serve(settings, out)
    except PruneRefused as exc:
        err.write(f"obsctl: {exc}\n")
        return 3
    except SpecError as exc:
        err.write(f"obsctl: {exc}\n")
        return 1
    except (ConfigError, ObsctlError) as exc:
        err.write(f"obsctl: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
