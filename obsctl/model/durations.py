"""Prometheus-style durations ("5m", "1h30m", "30d") as whole seconds."""

from __future__ import annotations

import re
from functools import lru_cache

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_WHOLE = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")


def parse_duration(text: str) -> float:
    """Parse a Prometheus duration; raise ValueError on anything else."""
    text = text.strip()
    if not _WHOLE.match(text):
        raise ValueError(f"not a duration: {text!r} (use forms like 5m, 1h, 30d)")
    return float(sum(int(n) * _UNITS[u] for n, u in _PART.findall(text)))


@lru_cache(maxsize=1024)  # a handful of windows, formatted for every rule of every service
def format_duration(seconds: float) -> str:
    """Format seconds as the shortest Prometheus duration (largest units first)."""
    if seconds <= 0:
        return "0s"
    if seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    rest = int(seconds)
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)


def humanize_seconds(seconds: float) -> str:
    """A short human reading of a duration: 51.8s, 4.9m, 2.0h, 3.0d."""
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
