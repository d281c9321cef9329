"""Rendering once per shape: a document built with stand-ins for its per-service strings, filled by substitution.

Many services share a shape (protocol, runtime, SLO objectives, links present...) and differ only in
strings: names, titles, URLs. A builder that only *concatenates* those strings into the document's
strings gives, for every service of one shape, the same document up to those strings. So it runs once
per shape with `Sentinels` standing in for them, the JSON text is cut at the stand-ins
(`Template`), and each service's document is the cuts joined with its own strings, JSON-escaped.
JSON string escaping maps each character on its own, so escaping the pieces and joining them equals
escaping the joined string: the result is byte for byte the document the builder gives for that
service, provided every step between a stand-in and the text is concatenation.

The builder's steps that are not concatenation report themselves while a `Recording` is active:
whitespace cleaning records a `Limit` (the cleaned text keeps its shape when the real strings are
non-empty and already clean, and the whole stays within the limit: checked per service), and a step
that reads a stand-in's value (a number, an ordering) raises `Unsubstitutable`: that shape is then
rendered the ordinary way, per service.
"""

from __future__ import annotations

import operator
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import orjson

# ASCII letters and digits only: no escaping (JSON, PromQL, URL) and no cleaning changes a stand-in, and a
# Grafana uid may be one. The random part keeps template text from ever spelling one.
_NONCE = "Zq" + secrets.token_hex(6) + "s"
_SENTINEL = re.compile(_NONCE + r"(\d{4})x")


class Unsubstitutable(Exception):
    """A step of the builder read the value of a stand-in (not plain concatenation)."""


@dataclass(frozen=True)
class Limit:
    """A cleaned text holding stand-ins: the real strings must keep it within `limit` characters."""

    base: int  # its length without the stand-ins
    slots: tuple[int, ...]  # the stand-ins in it (a slot once per occurrence)
    limit: int


@dataclass
class Recording:
    """What the builder reported while building with stand-ins."""

    limits: list[Limit] = field(default_factory=list)
    clean_slots: set[int] = field(default_factory=set)  # must be non-empty and whitespace-normalised


_ACTIVE: ContextVar[Recording | None] = ContextVar("obsctl_symbolic_recording", default=None)


def recording() -> Recording | None:
    """The active recording (None outside a build with stand-ins)."""
    return _ACTIVE.get()


@contextmanager
def record() -> Iterator[Recording]:
    """Record the builder's non-concatenation steps for the duration."""
    rec = Recording()
    token = _ACTIVE.set(rec)
    try:
        yield rec
    finally:
        _ACTIVE.reset(token)


def slots_in(text: str) -> list[int]:
    """The stand-ins in a text, in order."""
    return [int(m.group(1)) for m in _SENTINEL.finditer(text)] if _NONCE in text else []


def has_sentinel(text: str) -> bool:
    """Whether a text holds a stand-in."""
    return _NONCE in text


def note_cleaned(cleaned: str, limit: int) -> None:
    """Called by whitespace cleaning on its result (before truncation) when a recording is active."""
    rec = _ACTIVE.get()
    if rec is None or _NONCE not in cleaned:
        return
    if len(cleaned) > limit:  # truncation would cut by the real lengths
        raise Unsubstitutable(f"cleaned text over {limit} characters: {cleaned[:80]!r}")
    slots = tuple(slots_in(cleaned))
    rec.limits.append(Limit(len(cleaned) - sum(len(sentinel(s)) for s in slots), slots, limit))
    rec.clean_slots.update(slots)


def refuse(text: str, what: str) -> None:
    """Called by a step that reads a value (a number, a sort key): a stand-in there cannot be substituted."""
    if _ACTIVE.get() is not None and _NONCE in text:
        raise Unsubstitutable(f"{what} reads a per-service value: {text[:80]!r}")


def sentinel(slot: int) -> str:
    """The stand-in of one slot."""
    return f"{_NONCE}{slot:04d}x"


def stand_ins(values: Sequence[str]) -> list[str]:
    """A stand-in for every non-empty value; an empty value stays empty (emptiness is part of the shape)."""
    return [sentinel(i) if v else "" for i, v in enumerate(values)]


def json_inner(text: str) -> bytes:
    """The JSON string escaping of `text`, without the quotes (what orjson writes inside them)."""
    return orjson.dumps(text)[1:-1]


@dataclass(frozen=True)
class Template:
    """A document's text cut at its stand-ins: literal pieces, and between two the slot of a value."""

    pieces: tuple[bytes, ...]
    slots: tuple[int, ...]  # len(pieces) == len(slots) + 1
    _format: bytes = field(default=b"", compare=False, repr=False)  # the pieces joined by %s, % doubled

    @classmethod
    def of(cls, text: bytes) -> Template:
        """Cut a document rendered with stand-ins."""
        parts = _SENTINEL.split(text.decode())
        pieces = tuple(p.encode() for p in parts[0::2])
        return cls(pieces, tuple(int(s) for s in parts[1::2]), b"%s".join(p.replace(b"%", b"%%") for p in pieces))

    def fill(self, escaped: Sequence[bytes]) -> bytes:
        """The document with `escaped[slot]` at each stand-in."""
        if not self.slots:
            return self.pieces[0]
        values = operator.itemgetter(*self.slots)(escaped)
        return self._format % (values if len(self.slots) > 1 else (values,))


def within(rec: Recording, values: Sequence[str]) -> bool:
    """Whether real values keep every recorded cleaned text as it was built (see the module doc)."""
    for slot in rec.clean_slots:
        value = values[slot]
        if not value or value != " ".join(value.split()):
            return False
    return all(lim.base + sum(len(values[s]) for s in lim.slots) <= lim.limit for lim in rec.limits)
