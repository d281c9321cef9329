"""Small helpers for the Grafana emulator: slugs, URLs, short uids, durations, timestamps."""

from __future__ import annotations

import json
import random
import re
import string
import time
from typing import Any

import orjson

UID_PATTERN = re.compile(r"^[A-Za-z0-9_-]*$")
MAX_UID_LENGTH = 40

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_UID_ALPHABET = string.ascii_lowercase + string.digits
_DATE_UNIT = re.compile(r"^(\d+)([dwMy])$")
_DATE_UNIT_SECONDS = {"d": 86400, "w": 7 * 86400, "M": 30 * 86400, "y": 365 * 86400}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_json(raw: bytes) -> Any:
    """Parse a request body: orjson, else the standard library (which also takes NaN, huge integers, UTF-16).

    ValueError when neither accepts it. orjson first because bodies of ~35 kB per dashboard made
    the standard parser most of the emulator's CPU when obsctl applies thousands of dashboards.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def json_bytes(payload: Any) -> bytes:
    """Compact UTF-8 JSON of an answer (the standard library for what orjson refuses: integers beyond 64 bits)."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def slugify(title: str) -> str:
    """Lower-case `title`, runs of non-alphanumerics become one `-`, trimmed (the contract's slug rule)."""
    return _NON_ALNUM.sub("-", title.lower()).strip("-")


def dashboard_url(uid: str, title: str) -> str:
    """Relative URL of a dashboard, as Grafana returns it."""
    return f"/d/{uid}/{slugify(title)}"


def folder_url(uid: str, title: str) -> str:
    """Relative URL of a folder, as Grafana returns it."""
    return f"/dashboards/f/{uid}/{slugify(title)}"


def uid_problem(uid: str) -> str | None:
    """Grafana's message for an invalid uid, or None when `uid` is acceptable ("" is: it gets generated)."""
    if not UID_PATTERN.match(uid):
        return "uid contains illegal characters"
    if len(uid) > MAX_UID_LENGTH:
        return "uid too long, max 40 characters"
    return None


class ShortUidGenerator:
    """Deterministic stand-in for Grafana's util.GenerateShortUID: 14 chars, k8s-name-safe, starts with a letter."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(seed)

    def __call__(self) -> str:
        return self._rng.choice("abcdef") + "".join(self._rng.choice(_UID_ALPHABET) for _ in range(13))


def parse_duration(text: str) -> float:
    """Seconds in `text`, parsed like Grafana's gtime.ParseDuration ("5s", "1m30s", "1d"); ValueError if invalid."""
    date = _DATE_UNIT.match(text)
    if date:
        return int(date.group(1)) * float(_DATE_UNIT_SECONDS[date.group(2)])
    body, sign = text, 1.0
    if body[:1] in ("+", "-"):
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return 0.0
    total, pos = 0.0, 0
    for part in _GO_PART.finditer(body):
        if part.start() != pos:
            break
        total += float(part.group(1)) * _GO_UNIT_SECONDS[part.group(2)]
        pos = part.end()
    if pos == 0 or pos != len(body):
        raise ValueError(f"invalid duration {text!r}")
    return sign * total


def iso_time(epoch_s: float) -> str:
    """RFC 3339 UTC timestamp with second precision, as Grafana prints it when running in UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))
