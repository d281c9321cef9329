"""Reading untyped YAML into typed values while collecting located problems."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from obsctl.errors import Problem, Severity
from obsctl.spec.yamlsafe import Document

FieldPath = tuple[str | int, ...]

# C0/C1 control characters (tab and newline allowed in prose), and the Unicode line/paragraph separators
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def control_character(text: str) -> str | None:
    """The first control character in text, shown escaped, or None."""
    m = _CONTROL.search(text)
    return repr(m.group())[1:-1] if m else None


def dotted(path: FieldPath) -> str:
    """Render a field path as `spec.slos[0].objective`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


MAX_NUMBER = 1e12  # far above any objective, tier, threshold or event count; keeps renderers' arithmetic finite


@dataclass
class Outcome:
    """Whether a contained part of a document (one SLO) had errors."""

    failed: bool = False


class Reader:
    """Typed access to one document's fields; every problem names file, line, entity and field."""

    def __init__(self, doc: Document, entity: str, problems: list[Problem]) -> None:
        self.doc = doc
        self.entity = entity
        self.problems = problems
        self.failed = False

    def problem(self, path: FieldPath, message: str, severity: Severity = Severity.ERROR, *,
                entity: str | None = None) -> None:
        """Record a problem at a field path (of `entity` when given: a service an imported spec adds to)."""
        if severity is Severity.ERROR:
            self.failed = True
        self.problems.append(Problem(self.doc.file, self.doc.line(*path), entity or self.entity, dotted(path), message,
                                     severity))

    @contextmanager
    def contained(self) -> Iterator[Outcome]:
        """Errors inside skip that part only (one SLO of several): they do not fail the whole document."""
        before, self.failed = self.failed, False
        outcome = Outcome()
        try:
            yield outcome
        finally:
            outcome.failed = self.failed
            self.failed = before

    def warn(self, path: FieldPath, message: str) -> None:
        """Record a warning at a field path."""
        self.problem(path, message, Severity.WARNING)

    def mapping(self, value: Any, path: FieldPath, allowed: Iterable[str] | None = None) -> dict[str, Any]:
        """A mapping at path (empty when absent); unknown keys reported with a did-you-mean."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping, not {type(value).__name__}")
            return {}
        if allowed is not None:
            known = sorted(allowed)
            for key in value:
                if key not in known:
                    hint = difflib.get_close_matches(str(key), known, n=1)
                    more = f"; did you mean {hint[0]!r}?" if hint else f"; known fields: {', '.join(known)}"
                    self.problem((*path, key), f"unknown field {key!r}{more}")
        return value

    def seq(self, value: Any, path: FieldPath) -> list[Any]:
        """A list at path (empty when absent)."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(path, f"must be a list, not {type(value).__name__}")
            return []
        return value

    def text(self, m: dict[str, Any], key: str, path: FieldPath, required: bool = False, default: str = "") -> str:
        """A string field (numbers are accepted and turned into text)."""
        value = m.get(key)
        if value is None:
            if required:
                self.problem((*path, key), "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.problem((*path, key), f"must be a string, not {type(value).__name__}")
            return default
        text = str(value)
        bad = control_character(text)
        if bad is not None:
            self.problem((*path, key), f"contains the control character {bad}")
            return default
        return text

    def number(self, m: dict[str, Any], key: str, path: FieldPath, required: bool = False) -> float | None:
        """A number field; numeric strings are accepted ("99.9", "99.9%")."""
        value = m.get(key)
        if value is None:
            if required:
                self.problem((*path, key), "is required")
            return None
        if isinstance(value, bool):
            self.problem((*path, key), "must be a number, not a boolean")
            return None
        try:
            number = float(value) if isinstance(value, int | float) else float(str(value).strip().rstrip("%"))
        except (ValueError, OverflowError):
            self.problem((*path, key), f"must be a number, not {str(value)[:40]!r}")
            return None
        if not math.isfinite(number) or abs(number) > MAX_NUMBER:
            self.problem((*path, key), f"must be a finite number of at most {MAX_NUMBER:g}")
            return None
        return number

    def flag(self, m: dict[str, Any], key: str, path: FieldPath, default: bool) -> bool:
        """A boolean field ("true"/"false" strings accepted, as annotations are strings)."""
        value = m.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "yes", "on", "1"):
            return True
        if str(value).lower() in ("false", "no", "off", "0"):
            return False
        self.problem((*path, key), f"must be true or false, not {value!r}")
        return default

    def string_map(self, value: Any, path: FieldPath, label_names: bool = False) -> tuple[tuple[str, str], ...]:
        """A string -> string mapping as sorted pairs; with `label_names`, keys must be Prometheus label names."""
        m = self.mapping(value, path)
        out = []
        for k, v in m.items():
            if isinstance(v, dict | list) or v is None:
                self.problem((*path, k), "must be a string")
                continue
            key, text = str(k), str(v)
            bad = control_character(key + text)
            if bad is not None:
                self.problem((*path, k), f"contains the control character {bad}")
                continue
            if label_names and (not LABEL_NAME.match(key) or key.startswith("__")):
                self.problem((*path, k), f"{key!r} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting "
                                         "with __)")
                continue
            out.append((key, text))
        return tuple(sorted(out))
