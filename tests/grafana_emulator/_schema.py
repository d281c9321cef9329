"""Dashboard JSON-schema validation for the emulator's strict mode (stricter than Grafana, on purpose)."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, relevance

# Grafana foundation SDK dashboard schemas (Apache-2.0), vendored with their origin: tests/data/README.md
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "data" / "grafana-foundation-sdk"
SCHEMA_ALIASES = {
    "v11.6": "dashboard.v11.6.jsonschema.json",
    "main": "dashboard.main-v0.0.18.jsonschema.json",
}
DEFAULT_SCHEMA = "v11.6"
_MAX_MESSAGE = 400


def resolve_schema_path(schema_path: str | os.PathLike[str] | None) -> Path:
    """Turn None, an alias ("v11.6", "main") or a path into the path of a dashboard JSON schema."""
    if schema_path is None:
        schema_path = DEFAULT_SCHEMA
    name = os.fspath(schema_path)
    if name in SCHEMA_ALIASES:
        return SCHEMA_DIR / SCHEMA_ALIASES[name]
    return Path(name)


@functools.lru_cache(maxsize=8)
def _validator(path: str) -> Draft7Validator:
    with open(path, encoding="utf-8") as fh:
        schema = json.load(fh)
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


@functools.lru_cache(maxsize=8)
def _fast_check(path: str) -> Callable[[Any], Any] | None:
    """A compiled fastjsonschema validator (about 5x faster), or None when the package is absent."""
    try:
        import fastjsonschema  # optional speed-up (a dev dependency)
    except ImportError:
        return None
    with open(path, encoding="utf-8") as fh:
        check: Callable[[Any], Any] = fastjsonschema.compile(json.load(fh), use_default=False)
    return check


def _json_path(parts: Iterable[Any]) -> str:
    out = "dashboard"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _misses_discriminator(errors: list[ValidationError]) -> bool:
    """True when a oneOf branch fails because its `type` const/enum does not match (wrong panel kind)."""
    return any(e.validator in ("const", "enum") and list(e.relative_path)[-1:] == ["type"] for e in errors)


def _descend(error: ValidationError) -> ValidationError:
    """Follow oneOf/anyOf failures into the branch that was meant (e.g. Panel, not RowPanel) for a precise path."""
    while error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        candidates = [errs for errs in branches.values() if not _misses_discriminator(errs)]
        # Fewest failures first; on a tie the branch whose failures lie deeper matched the shape better.
        chosen = min(
            candidates or list(branches.values()),
            key=lambda errs: (len(errs), -max(len(e.relative_path) for e in errs)),
        )
        error = max(chosen, key=relevance)
    return error


class DashboardSchema:
    """A compiled dashboard schema; `problem()` names the first failing path of a dashboard, if any."""

    def __init__(self, schema_path: str | os.PathLike[str] | None = None) -> None:
        self.path = resolve_schema_path(schema_path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"dashboard JSON schema not found at {self.path}; pass schema_path= or use strict_schema=False"
            )
        self._validator = _validator(str(self.path.resolve()))
        self._fast = _fast_check(str(self.path.resolve()))

    def problem(self, dashboard: dict[str, Any]) -> tuple[str, str] | None:
        """(json path, message) of the most relevant schema violation, or None when `dashboard` validates."""
        if self._fast is not None:
            # jsonschema stays the authority: the fast validator only short-cuts the common valid case.
            try:
                self._fast(dashboard)
            except Exception:
                pass  # any rejection falls through to the precise validator for its message
            else:
                return None
        error: ValidationError | None = max(self._validator.iter_errors(dashboard), key=relevance, default=None)
        if error is None:
            return None
        error = _descend(error)
        path = _json_path(error.absolute_path)
        detail = error.message
        if len(detail) > _MAX_MESSAGE:
            detail = detail[:_MAX_MESSAGE] + "…"
        return path, f"dashboard does not validate against {self.path.name} at {path}: {detail}"
