"""Options every subcommand shares, so each is defined once."""

from __future__ import annotations

import argparse
from pathlib import Path

CONFIG_HELP = "platform settings file (YAML); OBSCTL_* environment variables override it"
OUTPUT_HELP = "output format (default: %(default)s)"


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """--config after the subcommand too (`obsctl render --config FILE ...`); it wins over the global one."""
    parser.add_argument("--config", type=Path, default=argparse.SUPPRESS, metavar="FILE", help=CONFIG_HELP)
