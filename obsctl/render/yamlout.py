"""Deterministic YAML output for generated artifacts: block style, literal blocks, no line folding."""

from __future__ import annotations

from typing import Any

from obsctl.model import yamltext


def header_line(header: str) -> bytes:
    """A one-line YAML comment (newlines removed) ending with a newline; empty for an empty header."""
    if not header:
        return b""
    line = " ".join(header.splitlines()).strip()
    return (line if line.startswith("#") else "# " + line).encode() + b"\n"


def dump_yaml(data: Any, *, header: str = "", sort_keys: bool = False) -> bytes:
    """YAML bytes of plain data; `header` becomes a leading comment line."""
    return header_line(header) + yamltext.dump(data, sort_keys=sort_keys).encode()
