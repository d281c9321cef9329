"""The state store (registrations, artifact status, audit, reports) and leader election."""

from obsctl.store.leader import AlwaysLeader, Elector, PostgresLeader
from obsctl.store.state import AuditEntry, Registration, StateStore

__all__ = ["AlwaysLeader", "AuditEntry", "Elector", "PostgresLeader", "Registration", "StateStore"]
