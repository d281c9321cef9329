"""Pure planning: desired artifacts vs what a sink owns -> create, update, delete, unchanged."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from obsctl.errors import PruneRefused
from obsctl.model.artifact import Artifact, Observed, Staged


class Action(str, Enum):
    """What a plan does to one artifact."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class Change:
    """One planned change."""

    action: Action
    id: str
    artifact: Artifact | None = None  # create/update/unchanged
    observed: Observed | None = None  # update/delete/unchanged
    # a create/update planned by a streamed render (artifact None then; an unchanged one has neither: its
    # digest is the observed one)
    staged: Staged | None = None

    @property
    def path(self) -> str:
        """The artifact's output path (or id for deletes)."""
        if self.artifact:
            return self.artifact.path
        return self.staged.path if self.staged else self.id

    @property
    def digest(self) -> str:
        """The digest obsctl would write ("" for a delete)."""
        if self.artifact:
            return self.artifact.digest
        if self.staged:
            return self.staged.digest
        return self.observed.digest if self.observed and self.action is Action.UNCHANGED else ""

    def diff(self) -> str:
        """A unified diff from what is there to what obsctl would write."""
        if self.artifact is None and self.staged is not None and self.staged.diff is not None:
            return self.staged.diff
        old = self.observed.content().decode(errors="replace").splitlines(keepends=True) if self.observed else []
        new = self.artifact.body.decode(errors="replace").splitlines(keepends=True) if self.artifact else []
        return "".join(difflib.unified_diff(old, new, f"a/{self.path}", f"b/{self.path}"))


@dataclass
class Plan:
    """Changes for one sink, sorted by id."""

    changes: list[Change] = field(default_factory=list)

    def of(self, action: Action) -> list[Change]:
        """Changes of one action."""
        return [c for c in self.changes if c.action is action]

    @property
    def writes(self) -> list[Change]:
        """Everything except unchanged."""
        return [c for c in self.changes if c.action is not Action.UNCHANGED]

    def summary(self) -> dict[str, int]:
        """Counts per action."""
        return {a.value: len(self.of(a)) for a in Action}


def make_plan(desired: Mapping[str, Artifact], owned: Mapping[str, Observed], *, prune: bool = True,
              max_delete_fraction: float = 0.5, allow_mass_delete: bool = False,
              owned_count: int | None = None) -> Plan:
    """Compare desired with owned. Deletes only owned ids; refuses a mass deletion unless allowed.

    A mass deletion is deleting more than `max_delete_fraction` of what is owned (and more than
    one artifact): the signature of a catalog that suddenly reads empty. `owned_count` is how much
    is owned when `owned` is only a part of it (a plan over the artifacts that changed).
    """
    changes = [change_for(art, owned.get(aid)) for aid, art in desired.items()]
    deletes = [Change(Action.DELETE, aid, None, obs) for aid, obs in owned.items() if aid not in desired]
    if prune:
        check_deletes(len(deletes), len(owned) if owned_count is None else owned_count,
                      max_delete_fraction=max_delete_fraction, allow_mass_delete=allow_mass_delete)
        changes.extend(deletes)
    return Plan(sorted(changes, key=lambda c: c.id))


def action_for(digest: str, seen: Observed | None) -> Action:
    """What a plan does to a desired artifact of this digest, given what the sink holds under its id."""
    if seen is None:
        return Action.CREATE
    if seen.digest != digest or seen.drifted:
        return Action.UPDATE
    return Action.UNCHANGED


def change_for(art: Artifact, seen: Observed | None) -> Change:
    """The change a plan makes for one desired artifact."""
    return Change(action_for(art.digest, seen), art.id, art, seen)


def check_deletes(deletes: int, total: int, *, max_delete_fraction: float, allow_mass_delete: bool) -> None:
    """Raise PruneRefused when deleting `deletes` of `total` owned artifacts is a mass deletion."""
    if deletes and not allow_mass_delete and deletes > 1 and deletes > max_delete_fraction * total:
        raise PruneRefused(
            f"refusing to delete {deletes} of {total} owned artifacts (limit "
            f"{max_delete_fraction:.0%}); if the catalog really shrank, allow it explicitly "
            "(--allow-mass-delete)")
