"""Apply a plan to a sink: per-artifact outcomes, bounded retries for temporary errors, bounded parallelism."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import cast

from obsctl.errors import PermanentError, TemporaryError
from obsctl.reconcile.plan import Action, Change, Plan
from obsctl.sinks.base import Reloads, Sink, StagesWrites

log = logging.getLogger("obsctl.reconcile.apply")


class OutcomeState(str, Enum):
    """How applying one change ended."""

    APPLIED = "applied"
    UNCHANGED = "unchanged"
    FAILED_TEMPORARY = "failed-temporary"
    FAILED_PERMANENT = "failed-permanent"


@dataclass(frozen=True)
class Outcome:
    """The result of one change."""

    id: str
    action: Action
    state: OutcomeState
    sink: str
    attempts: int = 1
    error: str = ""
    retry_after: float | None = None
    digest: str = ""


@dataclass
class RetryPolicy:
    """Bounded exponential backoff with jitter; Retry-After wins when larger."""

    attempts: int = 4
    base_delay: float = 0.2
    max_delay: float = 10.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before the next attempt (attempt counts from 1)."""
        backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        return float(min(self.max_delay, max(backoff, retry_after or 0.0)))


@dataclass
class ApplyResult:
    """Every outcome of one apply."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        """Outcomes that did not apply."""
        return [o for o in self.outcomes if o.state in (OutcomeState.FAILED_PERMANENT, OutcomeState.FAILED_TEMPORARY)]

    @property
    def writes(self) -> int:
        """How many changes were written."""
        return sum(1 for o in self.outcomes if o.state is OutcomeState.APPLIED)


def _apply_one(sink: Sink, change: Change, retry: RetryPolicy) -> Outcome:
    attempt = 0
    while True:
        attempt += 1
        try:
            if change.action is Action.DELETE:
                assert change.observed is not None
                sink.delete(change.observed)
            elif change.artifact is None and change.staged is not None:  # planned and staged by a render worker
                if change.staged.error:
                    state = OutcomeState.FAILED_TEMPORARY if change.staged.temporary else OutcomeState.FAILED_PERMANENT
                    return Outcome(change.id, change.action, state, sink.name, attempt, change.staged.error)
                cast("StagesWrites", sink).commit(change.id, change.staged)  # only a staging sink plans these
            else:
                assert change.artifact is not None
                sink.put(change.artifact)
            return Outcome(change.id, change.action, OutcomeState.APPLIED, sink.name, attempt, digest=change.digest)
        except TemporaryError as exc:
            if attempt >= retry.attempts:
                return Outcome(change.id, change.action, OutcomeState.FAILED_TEMPORARY, sink.name, attempt,
                               str(exc), exc.retry_after)
            retry.sleep(retry.delay(attempt, exc.retry_after))
        except PermanentError as exc:
            return Outcome(change.id, change.action, OutcomeState.FAILED_PERMANENT, sink.name, attempt, str(exc))
        except Exception as exc:  # OSError (a read-only directory, a full disk) or a sink bug: this artifact only
            log.warning("%s: %s %s failed: %s: %s", sink.name, change.action.value, change.id, type(exc).__name__, exc)
            return Outcome(change.id, change.action, OutcomeState.FAILED_PERMANENT, sink.name, attempt,
                           f"{type(exc).__name__}: {exc}")


def _staged(change: Change) -> bool:
    """A write a render worker planned and staged (its body is beside the sink's files, not here)."""
    return change.action is not Action.DELETE and change.artifact is None and change.staged is not None \
        and not change.staged.error


def _commit_staged(sink: Sink, batch: list[Change], on_outcome: Callable[[Outcome], None] | None) -> list[Outcome]:
    """Staged writes committed in one `commit_many` (one journal write, then the renames); their outcomes."""
    errors = cast("StagesWrites", sink).commit_many([(c.id, c.staged) for c in batch if c.staged is not None])
    outcomes: list[Outcome] = []
    for change, exc in zip(batch, errors, strict=True):
        if exc is None:
            outcome = Outcome(change.id, change.action, OutcomeState.APPLIED, sink.name, 1, digest=change.digest)
        elif isinstance(exc, PermanentError):
            outcome = Outcome(change.id, change.action, OutcomeState.FAILED_PERMANENT, sink.name, 1, str(exc))
        else:  # OSError (a read-only directory, a full disk)
            log.warning("%s: %s %s failed: %s: %s", sink.name, change.action.value, change.id, type(exc).__name__, exc)
            outcome = Outcome(change.id, change.action, OutcomeState.FAILED_PERMANENT, sink.name, 1,
                              f"{type(exc).__name__}: {exc}")
        outcomes.append(_reported(outcome, on_outcome))
    return outcomes


def _reported(outcome: Outcome, on_outcome: Callable[[Outcome], None] | None) -> Outcome:
    if on_outcome is not None:
        on_outcome(outcome)
    return outcome


def apply_plan(sink: Sink, plan: Plan, retry: RetryPolicy | None = None, parallelism: int = 1,
               on_outcome: Callable[[Outcome], None] | None = None) -> ApplyResult:
    """Apply every write of the plan; one failure never blocks the others. Calls sink.finish() once.

    on_outcome (a progress report) hears each write's outcome as it lands, possibly from worker threads.
    """
    retry = retry or RetryPolicy()
    result = ApplyResult([Outcome(c.id, c.action, OutcomeState.UNCHANGED, sink.name, 0,
                                  digest=c.digest)
                          for c in plan.of(Action.UNCHANGED)])
    writes = plan.writes
    if isinstance(sink, StagesWrites):  # each run of consecutive staged writes committed at once, in plan order
        i = 0
        while i < len(writes):
            j = i
            while j < len(writes) and _staged(writes[j]):
                j += 1
            if j > i:
                result.outcomes.extend(_commit_staged(sink, writes[i:j], on_outcome))
                i = j
            else:
                result.outcomes.append(_reported(_apply_one(sink, writes[i], retry), on_outcome))
                i += 1
    elif parallelism > 1 and len(writes) > 1:
        with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix=f"apply-{sink.name}") as pool:
            result.outcomes.extend(pool.map(lambda c: _reported(_apply_one(sink, c, retry), on_outcome), writes))
    else:
        result.outcomes.extend(_reported(_apply_one(sink, c, retry), on_outcome) for c in writes)
    try:
        if writes or (isinstance(sink, Reloads) and sink.stale()):  # a failed reload is retried until it works
            sink.finish()
    except Exception as exc:  # any error of the batch's end (OSError included) is this sink's, reported
        message = str(exc) if isinstance(exc, TemporaryError | PermanentError) else f"{type(exc).__name__}: {exc}"
        result.outcomes.append(Outcome("finish", Action.UPDATE, OutcomeState.FAILED_TEMPORARY
                                       if isinstance(exc, TemporaryError) else OutcomeState.FAILED_PERMANENT,
                                       sink.name, 1, message))
    return result
