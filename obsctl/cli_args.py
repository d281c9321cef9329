"""Options every subcommand shares, so each is defined once."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from obsctl.model.artifact import Kind

CONFIG_HELP = "platform settings file (YAML); OBSCTL_* environment variables override it"
ONLY_HELP = ("comma-separated renderers (rules,alertmanager,dashboards,collectors) or artifact kinds: write and "
             "prune only these; everything else obsctl owns is left alone")
OUTPUT_HELP = "output format (default: %(default)s)"


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """--config after the subcommand too (`obsctl render --config FILE ...`); it wins over the global one."""
    parser.add_argument("--config", type=Path, default=argparse.SUPPRESS, metavar="FILE", help=CONFIG_HELP)


def only_kinds(value: str) -> frozenset[Kind]:
    """argparse type of `--only`: renderer or kind names; an unknown one is a usage error listing the valid ones."""
    from obsctl.render import selection_of

    try:
        return selection_of(value.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
