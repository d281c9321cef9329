"""The error taxonomy of obsctl. No other module defines base errors."""

from __future__ import annotations

import time
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


class WorkerLost(TemporaryError):
    """A worker process died (killed, out of memory) before it finished its share: the run stops, nothing
    of it is committed, and running again may succeed."""


class ConfigError(ObsctlError):
    """Invalid platform settings."""


class PruneRefused(ObsctlError):
    """A plan would delete more than the safety limit allows."""


# -- HTTP answers: one rule for every client (sinks, sources, the Prometheus query client) ------------


def is_temporary_status(status: int) -> bool:
    """An HTTP error status worth retrying: 5xx, 429 (too many requests), 408 (request timeout)."""
    return status >= 500 or status in (408, 429)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date); None when absent or unreadable."""
    if not value or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime  # only HTTP sinks need it: keep it off every command's start

    try:
        when = parsedate_to_datetime(value.strip()).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def status_error(status: int, message: str, retry_after: str | None = None) -> TemporaryError | PermanentError:
    """The error an HTTP error status (>= 400) means: TemporaryError with its Retry-After, or PermanentError."""
    if is_temporary_status(status):
        return TemporaryError(message, parse_retry_after(retry_after))
    return PermanentError(message)
