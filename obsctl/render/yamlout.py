"""Deterministic YAML output for generated artifacts (safe dumper, block style, no line folding)."""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """SafeDumper that prints multi-line strings as literal blocks and never wraps long lines."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML falls back to a quoted scalar when a literal block cannot hold the text exactly.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(data: Any, *, header: str = "", sort_keys: bool = False) -> bytes:
    """YAML bytes of plain data; `header` (one line, newlines removed) becomes a leading comment."""
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=sort_keys, default_flow_style=False,
                     allow_unicode=True, width=1 << 20, indent=2)
    if header:
        line = " ".join(header.splitlines()).strip()
        if not line.startswith("#"):
            line = "# " + line
        body = line + "\n" + body
    return body.encode()
