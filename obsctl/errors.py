"""The error taxonomy of obsctl. No other module defines base errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Severity(str, Enum):
    """How serious a spec problem is: errors skip the entity, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Problem:
    """One problem found in a catalog document, located as precisely as we can."""

    file: str
    line: int
    entity: str
    field: str
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        ent = f" {self.entity}" if self.entity else ""
        fld = f" {self.field}:" if self.field else ""
        return f"{where}:{ent}{fld} {self.severity.value}: {self.message}"


class ObsctlError(Exception):
    """Base of every error obsctl raises on purpose."""


@dataclass
class SpecError(ObsctlError):
    """Every problem found in some input at once."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class TemporaryError(ObsctlError):
    """A failure worth retrying later (5xx, timeout, 429, connection refused)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ObsctlError):
    """A failure that retrying cannot fix (validation error, 4xx, forbidden)."""


class ConfigError(ObsctlError):
    """Invalid platform settings."""


class PruneRefused(ObsctlError):
    """A plan would delete more than the safety limit allows."""
