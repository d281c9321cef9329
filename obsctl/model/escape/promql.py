"""Catalog text inside PromQL: double-quoted string literals (Go string-literal rules)."""

from __future__ import annotations

from functools import lru_cache

_SIMPLE = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@lru_cache(maxsize=8192)  # a service's names are escaped once per rule otherwise
def string_body(value: str) -> str:
    """Escape text for the inside of a double-quoted PromQL string."""
    out = []
    for ch in value:
        if ch in _SIMPLE:
            out.append(_SIMPLE[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def string(value: str) -> str:
    """A double-quoted PromQL string literal holding exactly `value`."""
    return f'"{string_body(value)}"'


def grafana_string_body(value: str) -> str:
    """string_body for a query Grafana interpolates first: `$` also escaped (as `\\x24`), so Grafana
    never reads a catalog value as one of its variables while PromQL still sees a `$`."""
    return string_body(value).replace("$", "\\x24")
