"""The Alertmanager config in place, read back: the part of each team whose routing a catalog read lost.

When a team's Group is held back for errors, or the routing check holds its services back, the catalog no
longer says where the team's alerts go. The config in place (what the sink that writes the Alertmanager
config holds) still does: the team's route under `route.routes` (matched on `team="<label>"`) and the
receivers that route and its sub-routes name. A team is keyed by its `cv.team_label` (its name in the default
namespace, `<namespace>/<name>` elsewhere), as the routes renderer keys it. This module finds that part and
re-emits it with the same YAML writer the routes renderer uses, so a held team's lines are what obsctl wrote
for it before, and the other teams can be rendered from the catalog beside it.

A config that cannot be read completely (the sink's read fails, the file is gone or not a config obsctl
wrote, a receiver a held route names is missing), or a held part that cannot be kept beside the others, gives an
`Unkept` that says why: then the caller keeps the whole config as it is, never dropping a team's route because of
an incomplete read, and tells the user that reason.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from obsctl.errors import Problem
from obsctl.model import conventions as cv
from obsctl.model import yamltext
from obsctl.model.artifact import Kind
from obsctl.model.entities import EntityRef
from obsctl.model.status import owner_key
from obsctl.render.context import ServiceSummary, summary_of
from obsctl.render.options import HeldRoutes
from obsctl.render.routes import held_part, matcher, routing_team
from obsctl.sinks.base import ListsScoped, Sink
from obsctl.spec.load import LoadResult

log = logging.getLogger("obsctl.reconcile")

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser when libyaml is there: a config of 10k routes
CONFIG_ID = f"{Kind.ALERTMANAGER_CONFIG.value}/{cv.ALERTMANAGER_CONFIG_KEY}"
_SHOWN = 200  # characters of a hand-edited route a reason quotes


@dataclass(frozen=True)
class Unkept:
    """Why no team part can be taken from the Alertmanager config in place, so the whole config is kept as it is:
    the reason names the team, the receivers or the route, for the warning the user reads."""

    reason: str


def _unkept(reason: str) -> Unkept:
    log.warning("%s", reason)
    return Unkept(reason)


def config_in_place(sinks: Sequence[Sink]) -> bytes | Unkept:
    """The Alertmanager config obsctl owns in the first sink that writes it: its bytes, b"" when there is none
    (no such sink, or nothing owned there), Unkept when it cannot be read (the read failed, the owned file is gone)."""
    sink = next((s for s in sinks if Kind.ALERTMANAGER_CONFIG in s.kinds), None)
    if sink is None:
        return b""
    try:
        owned = (sink.list_scoped({CONFIG_ID}, deep=True) if isinstance(sink, ListsScoped)
                 else sink.list_owned(deep=True))
        observed = owned.get(CONFIG_ID)
        if observed is None:
            return b""
        body = observed.content()
    except Exception as exc:  # a temporary or permanent failure, an OSError: an incomplete read either way
        return _unkept(f"the Alertmanager config in place ({sink.name}) could not be read ({exc})")
    # owned, yet empty or gone: nothing complete to take a team's route from
    return body or _unkept(f"the Alertmanager config in place ({sink.name}) is empty or gone")


_LAST: list[tuple[bytes, Any]] = [(b"", None)]  # the last config parsed: serve reads the same one round after round


def _parsed(body: bytes) -> Any:
    """The YAML document of a config (None when it is not YAML), parsed once per distinct body (a config of 10k
    services takes about 0.2 s to parse; the document is only read, never changed)."""
    last = _LAST[0]
    if last[0] == body and body:
        return last[1]
    try:
        doc = yaml.load(body, Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        doc = None
    _LAST[0] = (body, doc)
    return doc


def team_parts(body: bytes, teams: Iterable[EntityRef], others: Collection[str] = ()
               ) -> dict[EntityRef, tuple[str, str]] | Unkept:
    """(route lines, receiver lines) of each team in the config `body`, as the routes renderer writes them
    (("", "") for a team with no route there); Unkept when the config cannot be read completely, or when a team's
    part cannot be kept beside the teams rendered from the catalog (`others`, by team label): a receiver it names is not
    its own or could be theirs, or it has no route obsctl wrote while some route is in a form obsctl does not write
    (the team's route may be that one)."""
    doc = _parsed(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("route"), dict):
        return _unkept("the Alertmanager config in place is not a YAML config with a route obsctl can read")
    routes, receivers = doc["route"].get("routes") or [], doc.get("receivers") or []
    if not isinstance(routes, list) or not isinstance(receivers, list) \
            or not all(isinstance(r, dict) and isinstance(r.get("name"), str) for r in receivers):
        return _unkept("the Alertmanager config in place has route.routes or receivers that are not a list of "
                       "routes and of named receivers")
    by_name = {r["name"]: r for r in receivers}
    foreign = next((r for r in routes if _team_route(r) is None), None)
    out: dict[EntityRef, tuple[str, str]] = {}
    for team in teams:
        label = cv.team_label(team)
        mine = [r for r in routes if isinstance(r, dict) and r.get("matchers") == [matcher(cv.LABEL_TEAM, label)]]
        if not mine and foreign is not None:
            return _unkept(f"{team} has no route team=\"{label}\" in the Alertmanager config in place, and a route "
                           f"there is in a form obsctl does not write, which may be the team's: {_shown(foreign)}")
        names = _receivers_named(mine)
        if names is None:
            return _unkept(f"{team}'s route in the Alertmanager config in place has sub-routes or receivers obsctl "
                           f"cannot read: {_shown(mine)}")
        missing = sorted(names - by_name.keys())
        if missing:
            return _unkept(f"{team}'s route in the Alertmanager config in place names receivers the config does not "
                           f"define: {', '.join(missing)}")
        shared = sorted(n for n in names if not n.startswith(f"obsctl-{label}-") or _claimed(n, others))
        if shared:
            return _unkept(f"{team}'s route in the Alertmanager config in place names receivers that are not its own "
                           f"or may be another team's, which would be defined twice beside the teams the catalog "
                           f"routes: {', '.join(shared)}")
        wanted = [r for r in receivers if r["name"] in names]
        try:
            out[team] = (yamltext.dump_at(mine, 2) if mine else "", yamltext.dump_at(wanted, 0) if wanted else "")
        except (TypeError, ValueError) as exc:  # a hand-edited value the writer cannot emit (a date, a set, bytes)
            return _unkept(f"the Alertmanager config in place has lines of {team} that cannot be written again "
                           f"({exc})")
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def routed_teams(body: bytes) -> set[str] | None:
    """The teams (their `cv.team_label`) the config `body` routes (a route under route.routes on `team="<label>"`);
    None when it cannot be read."""
    doc = _parsed(body) if body else {"route": {}}
    if not isinstance(doc, dict) or not isinstance(doc.get("route"), dict) \
            or not isinstance(doc["route"].get("routes") or [], list):
        return None
    return {name for route in doc["route"].get("routes") or [] if (name := _team_route(route)) is not None}


_TEAM_MATCHER = re.compile(rf'{cv.LABEL_TEAM}="((?:[a-z0-9-]+/)?[A-Za-z0-9._-]+)"')


def _team_route(route: Any) -> str | None:
    """The team label of a route under route.routes in the one form obsctl writes (matchers: [team="<label>"]),
    else None."""
    matchers = route.get("matchers") if isinstance(route, dict) else None
    if isinstance(matchers, list) and len(matchers) == 1 and isinstance(matchers[0], str) \
            and set(route) <= {"matchers", "receiver", "routes", "continue", "group_by", "group_wait",
                               "group_interval", "repeat_interval"}:
        found = _TEAM_MATCHER.fullmatch(matchers[0])
        if found and cv.team_of_label(found.group(1)) is not None:
            return found.group(1)
    return None


def _claimed(receiver: str, teams: Collection[str]) -> bool:
    """Whether a team of `teams` (team labels) could write a receiver of this name (obsctl-<team label>-...)."""
    parts = receiver.split("-")
    return any("-".join(parts[1:i]) in teams for i in range(2, len(parts)))


def _receivers_named(routes: Sequence[Any]) -> set[str] | None:
    """Every receiver the routes and their sub-routes name, obsctl's root receiver aside (None: not a route tree)."""
    names: set[str] = set()
    todo = list(routes)
    while todo:
        route = todo.pop()
        if not isinstance(route, dict):
            return None
        name = route.get("receiver")
        if name is not None:
            if not isinstance(name, str):
                return None
            if name != cv.DEFAULT_RECEIVER:
                names.add(name)
        subs = route.get("routes") or []
        if not isinstance(subs, list):
            return None
        todo.extend(subs)
    return names


def lost_routing(result: LoadResult) -> dict[EntityRef, Problem]:
    """Each team whose routing is lost in this read (its Group held back for errors, or the routing check held its
    services back), with the first error that says why."""
    lost: dict[EntityRef, Problem] = {}
    # a routing problem names its service and its team by name: the team is the service's owner, the identity its
    # fresh part has (its Group may be missing from the read)
    owners = {str(s.ref): s.team for s in (*result.catalog.services, *result.held_back)}
    groups = {cv.team_label(t.ref): t.ref for t in result.catalog.teams}
    for p in result.errors:
        if p.entity.startswith("group:") and p.entity in result.skipped:
            lost.setdefault(EntityRef.parse(p.entity, "group"), p)
        elif (label := routing_team(p)) and (ref := owners.get(p.entity) or groups.get(label)
                                             or cv.team_of_label(label)):
            lost.setdefault(ref, p)
    return lost


def _routes_on_its_own(route: Any, key: str) -> bool:
    """Whether a team's route (an item of route.routes) has a sub-route for the service `key` (`namespace/name`)
    alone, as the routes renderer writes one for a Component's own receivers."""
    namespace, _slash, name = key.partition("/")
    wanted = {matcher(cv.LABEL_NAMESPACE, namespace), matcher(cv.LABEL_SERVICE, name)}
    subs = route.get("routes") if isinstance(route, dict) else None
    return isinstance(subs, list) and any(
        isinstance(sub, dict) and isinstance(sub.get("matchers"), list) and wanted <= set(map(str, sub["matchers"]))
        for sub in subs)


def carried_teams(result: LoadResult, body: bytes, carried: Collection[str]) -> dict[EntityRef, Problem]:
    """The teams whose routing must stay as the config `body` has it because a service of theirs keeps its last good
    alerts in this read (`carried`: owner keys of the services skipped or loaded without an SLO for errors that name
    them), each with the first error that names such a service: the team the read gives the service, and each team
    whose route in place routes it on its own (its own PagerDuty service; an edit may have changed its owner); for
    a skipped Component with no route of its own there, each team routed in place that the read renders no service
    for (the read cannot say which team it was). Rendered from this read, the team's config would drop or change
    the routes of alerts that still fire."""
    first: dict[str, Problem] = {}
    for p in result.errors:
        if carried_service(p) and owner_key(p.entity) in carried:
            first.setdefault(owner_key(p.entity), p)
    out: dict[EntityRef, Problem] = {}
    for svc in result.catalog.services:
        named = first.get(owner_key(str(svc.ref)))
        if named is not None:
            out.setdefault(svc.team, named)
    doc = _parsed(body) if body else None
    routes = doc["route"].get("routes") if isinstance(doc, dict) and isinstance(doc.get("route"), dict) else None
    teams = {cv.team_label(t.ref): t.ref for t in result.catalog.teams}
    found: set[str] = set()
    for route in routes if isinstance(routes, list) else ():
        label = _team_route(route)
        ref = None if label is None else teams.get(label) or cv.team_of_label(label)
        if ref is not None:
            for key in sorted(first):
                if _routes_on_its_own(route, key):
                    out.setdefault(ref, first[key])
                    found.add(key)
    # a skipped Component with no route of its own in place has no team this read can name: any team the config in
    # place routes and the read renders no service for may be its team, whose route would go with its alerts firing
    unknown = sorted(set(first) - found - {owner_key(str(s.ref)) for s in result.catalog.services})
    if unknown:
        rendered = {cv.team_label(s.team) for s in (*result.catalog.services, *result.held_back)}
        for route in routes if isinstance(routes, list) else ():
            label = _team_route(route)
            ref = None if label is None or label in rendered else teams.get(label) or cv.team_of_label(label)
            if ref is not None:
                out.setdefault(ref, first[unknown[0]])
    return out


def nothing_in_place(rendered: bool) -> str:
    """What becomes of a held team the Alertmanager config in place has no route for (its part there is empty, so
    nothing is kept): `rendered`, some service of it renders in this read (the catalog's part is written), or none."""
    return ("the Alertmanager config in place has no route for this team, so " +
            ("its route and receivers are rendered from this catalog read" if rendered else
             f"it gets none (this read renders no service of it): its alerts go to the default receiver "
             f"{cv.DEFAULT_RECEIVER}"))


def carried_service(problem: Problem) -> bool:
    """Whether `problem`, the error a held team is held for, names a service whose artifacts are carried
    (`carried_teams`) rather than a Group or a routing problem (`lost_routing`)."""
    return problem.entity.startswith("component:") and not routing_team(problem)


def held_routes(result: LoadResult, read_config: Callable[[], bytes | Unkept], *, complete: bool,
                kept: Collection[EntityRef] = (), carried: Collection[str] = ()
                ) -> tuple[tuple[HeldRoutes, ...], dict[EntityRef, Problem]] | Unkept:
    """The part of the Alertmanager config in place (`read_config`: `config_in_place` of the sinks, read only when
    some team needs it) of each team whose routing `result` lost (`lost_routing`), of each team of a service
    whose artifacts a one-off run carries (`carried`, see `carried_teams`) and, when the read is not
    `complete`, of each team the config in place routes whose Group the read lacks (the file or source that failed
    may hold it), with those teams and the error that explains each. Teams in `kept` are left out (`serve` routes
    them with their last good Group). The team's services the routing check held back (`result.held_back`) still
    bring their dependencies to the inhibitions. Unkept (why) when the config in place cannot be read completely
    while some team needs it, or a part cannot be kept beside the others; ((), {}) when no team needs it."""
    lost = {ref: p for ref, p in lost_routing(result).items() if ref not in kept}
    if carried:  # only services an error names: a service held back for its team's routing is `lost` above
        named = {owner_key(p.entity) for p in result.errors if p.entity.startswith("component:")}
        carried = sorted(named.intersection(carried))
    if complete and not lost and not carried:
        return (), lost
    body = read_config()
    if isinstance(body, Unkept):
        # as before the config in place was read back: an incomplete read with no team known lost writes the config
        # (a carried service's routes cannot be known either: keep the config rather than drop them)
        return body if lost or carried else ((), lost)
    if carried and body:  # nothing in place (a first run): nothing to keep
        if routed_teams(body) is None:
            return _unkept("the Alertmanager config in place is not a config obsctl can read, so the routes the "
                           "alerts this run carries follow cannot be taken from it")
        for team, p in carried_teams(result, body, set(carried)).items():
            if team not in kept:
                lost.setdefault(team, p)
    routed = routed_teams(body) if not complete else set()
    if routed is None:
        return _unkept("the Alertmanager config in place is not a config obsctl can read (its route.routes is not "
                       "a list)") if lost else ((), lost)
    if routed:
        read = {cv.team_label(t.ref) for t in result.catalog.teams} | {cv.team_label(t) for t in kept}
        owners = {cv.team_label(s.team): s.team for s in (*result.catalog.services, *result.held_back)}
        unpinned = next((p for p in result.errors if not p.entity), None)  # what made the read incomplete
        for label in sorted(routed - read):
            ref = owners.get(label) or cv.team_of_label(label)
            if ref is not None:  # routed_teams only gives labels team_of_label reads
                lost.setdefault(ref, unpinned or Problem("", 0, str(ref), "routing", "the catalog read is incomplete"))
    if not lost:
        return (), lost
    others = ({cv.team_label(s.team) for s in (*result.catalog.services, *result.held_back)}
              | {cv.team_label(t.ref) for t in result.catalog.teams}
              | {cv.team_label(t) for t in kept}) - {cv.team_label(t) for t in lost}
    parts = {team: ("", "") for team in lost} if not body else team_parts(body, lost, others)
    if isinstance(parts, Unkept):
        return parts
    held: dict[EntityRef, list[ServiceSummary]] = {}
    for svc in result.held_back:
        if svc.team in lost:
            held.setdefault(svc.team, []).append(summary_of(svc))  # its entity and dependencies: all the rules read
    return tuple(held_part(team, *parts[team], held.get(team, ())) for team in sorted(lost, key=str)), lost
