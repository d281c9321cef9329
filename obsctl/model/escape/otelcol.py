"""Catalog text inside an OpenTelemetry collector config.

The collector expands `${env:NAME}`, `${file:PATH}` and `${NAME}` in ANY string value of its
config, after YAML parsing; `$$` is its escape for one literal `$`. A catalog value holding
`${env:SECRET}` would otherwise read the collector's environment into telemetry.
"""

from __future__ import annotations

from typing import Any


def value(text: str) -> str:
    """A catalog string as the collector will read it back verbatim."""
    return text.replace("$", "$$")


def unescape(text: str) -> str:
    """What the collector reads from a string escaped with `value` (for checks and tests)."""
    return text.replace("$$", "$")


def tree(node: Any) -> Any:
    """Escape every string in a parsed tree (lists, mappings); other scalars are kept."""
    if isinstance(node, str):
        return value(node)
    if isinstance(node, list):
        return [tree(v) for v in node]
    if isinstance(node, dict):
        return {k: tree(v) for k, v in node.items()}
    return node
