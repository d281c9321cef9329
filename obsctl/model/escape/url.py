"""Catalog text inside a URL (urllib is off limits to the pure stages)."""

from __future__ import annotations

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def component(value: str) -> str:
    """Percent-encode everything but RFC 3986 unreserved characters: a path segment or query value."""
    return "".join(ch if ch in _UNRESERVED else "".join(f"%{b:02X}" for b in ch.encode()) for ch in value)
