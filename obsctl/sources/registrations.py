"""The registration store as a catalog source: documents registered through the service's API."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from obsctl.errors import TemporaryError
from obsctl.model.source import SourceFile
from obsctl.sources.base import FetchResult, Wake

ORIGIN_PREFIX = "registration:"


class RegisteredDoc(Protocol):
    """What the source needs of one stored registration."""

    @property
    def namespace(self) -> str:
        """Namespace of the registered service."""
        ...

    @property
    def name(self) -> str:
        """Name of the registered service."""
        ...

    @property
    def document(self) -> bytes:
        """The document, YAML bytes."""
        ...


class RegistrationReader(Protocol):
    """The part of the state store this source reads."""

    def list_registrations(self) -> Sequence[RegisteredDoc]:
        """Every registration."""
        ...

    def registrations_revision(self) -> int:
        """A counter bumped on every change."""
        ...


def origin(namespace: str, name: str) -> str:
    """The SourceFile path of a registration, shown in problems and status."""
    return f"{ORIGIN_PREFIX}{namespace}/{name}"


class RegistrationSource:
    """Registered documents; `watch` polls the revision counter so any replica's writes wake the leader."""

    name = "registrations"

    def __init__(self, store: RegistrationReader, poll_seconds: float = 1.0) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self._fetched_revision: int | None = None
        self._files: list[SourceFile] | None = None

    def fetch(self) -> FetchResult:
        """Every registration as a document."""
        try:
            revision = self.store.registrations_revision()  # before the listing: a later change is newer
            regs = self.store.list_registrations()
            self._fetched_revision = revision
        except TemporaryError:
            raise
        except Exception as exc:  # a database driver error: an outage, never an empty catalog
            raise TemporaryError(f"registrations: {exc}") from exc
        self._files = [SourceFile(origin(r.namespace, r.name), r.document) for r in regs]
        return FetchResult(list(self._files), True)

    def fetch_changed(self) -> FetchResult:
        """As `fetch`, without listing when the revision did not move since the last listing."""
        try:
            revision = self.store.registrations_revision()
        except TemporaryError:
            raise
        except Exception as exc:
            raise TemporaryError(f"registrations: {exc}") from exc
        if self._files is not None and revision == self._fetched_revision:
            return FetchResult(list(self._files), True)
        return self.fetch()

    def watch(self, wake: Wake, stop: threading.Event) -> None:
        """Wake when the revision moves past what the loop already read (another replica wrote)."""
        last: int | None = None
        while not stop.is_set():
            rev: int | None
            try:
                rev = self.store.registrations_revision()
            except Exception:  # the database is down: the loop's own reads report it
                rev = last
            seen = self._fetched_revision
            if last is not None and rev is not None and rev != last and (seen is None or rev > seen):
                wake("registration changed")
            last = rev
            stop.wait(self.poll_seconds)
