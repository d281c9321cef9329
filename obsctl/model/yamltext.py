"""A fast, deterministic YAML writer for the plain data obsctl renders.

PyYAML's representer is pure Python and dominated rendering (about 20 ms per service). This writer
emits block-style YAML for dicts, lists, strings, numbers, booleans and None directly. A string is
written plain only when it is a conservative safe form that reads back as the same string;
multi-line text becomes a literal block when it can be one exactly; anything else is
double-quoted with escapes (ASCII only), which YAML reads back unchanged. A property test
checks `yaml.safe_load(dump(x)) == x`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import yaml

# Block-context plain scalars: a safe first character, then any printable ASCII; ": ", " #", a
# trailing ":" or space, and anything the resolver would read as another type are quoted instead.
_PLAIN = re.compile(r"[A-Za-z0-9_./(][\x20-\x7e]*")
_PRINTABLE_BLOCK = re.compile(r"[\t\n\x20-\x7e\u00a0-\ud7ff\ue000-\ufffd]*")
_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"


@lru_cache(maxsize=8192)
def _plain_ok(text: str) -> bool:
    if not text or not _PLAIN.fullmatch(text) or text[-1] in " :" or ": " in text or " #" in text:
        return False
    return bool(_RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == _STR_TAG)  # type: ignore[no-untyped-call]


_ESCAPE = re.compile(r'[^\x20-\x7e]|["\\]')
_NAMED = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar, ASCII only (YAML's own \\u and \\U escapes)."""
    return '"' + _ESCAPE.sub(_escape, text) + '"'


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text and "." not in text:
            mantissa, exp = text.split("e")
            text = f"{mantissa}.0e{exp}"
        return text
    if isinstance(value, str):
        return value if _plain_ok(value) else _quoted(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _literal_ok(text: str) -> bool:
    return ("\n" in text and text[:1] not in (" ", "\t", "\n") and "\r" not in text
            and _PRINTABLE_BLOCK.fullmatch(text) is not None
            # no line ends with a space or a tab (str's search, not a scan per line: dashboards are long)
            and " \n" not in text and "\t\n" not in text and not text.endswith((" ", "\t")))


def _literal(text: str, indent: int) -> list[str]:
    body = text.rstrip("\n")
    trailing = len(text) - len(body)
    chomp = "-" if trailing == 0 else ("" if trailing == 1 else "+")
    pad = " " * indent
    lines = [f"|{chomp}"]
    if body[:1] not in ("", "\n") and "\n\n" not in body:  # no empty line: indent them all at once
        lines.append(pad + body.replace("\n", "\n" + pad))  # one element; the caller joins them with newlines
    else:
        lines.extend(pad + line if line else "" for line in body.split("\n"))
    lines.extend("" for _ in range(max(0, trailing - 1)))
    return lines


def _key(key: Any) -> str:
    if type(key) is str:
        return _str_scalar(key)
    return _scalar(key)


@lru_cache(maxsize=8192)
def _str_scalar(text: str) -> str:
    """A string on one line: plain when safe, else double-quoted."""
    return text if _plain_ok(text) else _quoted(text)


def one_line(text: str) -> str:
    """How `dump` writes a string without a newline, wherever it stands (a mapping value or a list item)."""
    return _str_scalar(text)


def _emit(value: Any, indent: int, out: list[str], sort_keys: bool) -> None:
    """Append the lines of a mapping or sequence at `indent`."""
    pad = " " * indent
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0])) if sort_keys else value.items()
        for key, item in items:
            prefix = f"{pad}{_str_scalar(key) if type(key) is str else _scalar(key)}:"
            if type(item) is str and "\n" not in item:  # most entries: inline, no call per scalar
                out.append(f"{prefix} {_str_scalar(item)}")
            else:
                _entry(prefix, item, out, sort_keys, indent + 2, indent)
        return
    for item in value:
        kind = type(item)
        if (kind is dict or kind is list or kind is tuple) and item:
            first = len(out)
            _emit(item, indent + 2, out, sort_keys)
            out[first] = f"{pad}- " + out[first][indent + 2:]
        elif kind is str and "\n" not in item:
            out.append(f"{pad}- {_str_scalar(item)}")
        else:
            _entry(f"{pad}-", item, out, sort_keys, indent + 2, indent + 2)


def _entry(prefix: str, item: Any, out: list[str], sort_keys: bool, nested_indent: int,  # noqa: PLR0917
           list_indent: int) -> None:
    kind = type(item)
    if kind is str:
        if "\n" in item and _literal_ok(item):
            block = _literal(item, nested_indent)
            out.append(f"{prefix} {block[0]}")
            out.extend(block[1:])
        else:
            out.append(f"{prefix} {_str_scalar(item)}")
    elif kind is dict or (kind is not list and kind is not tuple and isinstance(item, Mapping)):
        if not item:
            out.append(prefix + " {}")
        else:
            out.append(prefix)
            _emit(item if kind is dict else dict(item), nested_indent, out, sort_keys)
    elif kind is list or kind is tuple:
        if not item:
            out.append(prefix + " []")
        else:
            out.append(prefix)
            _emit(item, list_indent, out, sort_keys)
    else:
        out.append(f"{prefix} {_scalar(item)}")


def inline(text: str) -> str:
    """A string as one scalar on its key's line: plain when safe, else double-quoted."""
    return _str_scalar(text)


def value_text(text: str, nested_indent: int) -> str:
    """What follows `key: ` for a string value whose mapping's children sit at `nested_indent`:
    exactly what `dump` writes there (a literal block's lines included, joined by newlines)."""
    if "\n" in text and _literal_ok(text):
        return "\n".join(_literal(text, nested_indent))
    return _str_scalar(text)


def dump_at(data: list[Any] | tuple[Any, ...], indent: int, *, sort_keys: bool = False) -> str:
    """The lines `dump` writes for a non-empty sequence nested at `indent` (a block inside a larger
    document), each ending with a newline."""
    out: list[str] = []
    _emit(list(data), indent, out, sort_keys)
    return "\n".join(out) + "\n"


def dump(data: Any, *, sort_keys: bool = False) -> str:
    """YAML text of plain data (a mapping or a list at the top), ending with a newline."""
    if not isinstance(data, Mapping | list | tuple):
        return _scalar(data) + "\n"
    if not data:
        return ("{}" if isinstance(data, Mapping) else "[]") + "\n"
    out: list[str] = []
    _emit(dict(data) if isinstance(data, Mapping) else list(data), 0, out, sort_keys)
    return "\n".join(out) + "\n"
