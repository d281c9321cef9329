"""Bearer tokens with read and write scopes, optionally limited to some teams' services.

Tokens are compared in constant time and never logged; an actor is named by a short hash of its
token. With no token configured the write API is closed unless the operator opened it on purpose.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from obsctl.errors import ConfigError

READ = "read"
WRITE = "write"

HOW_TO_CONFIGURE = ("configure write tokens: serve.write_tokens (env OBSCTL_SERVE__WRITE_TOKENS='[\"...\"]'), "
                    "serve.team_write_tokens ({team: [tokens]}) or serve.tokens_file; or, for a trusted local "
                    "setup only, serve.allow_unauthenticated_writes: true")


def token_id(token: str) -> str:
    """A name for a token that reveals nothing usable: `token:` + 8 hex of its sha256."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Principal:
    """Who is calling: an actor name, its scopes, and the teams it may write (None: every team)."""

    actor: str
    scopes: frozenset[str]
    teams: frozenset[str] | None = None

    def may_write_team(self, team: str) -> bool:
        """True when this principal may write a service owned by `team` (a name or an entity ref)."""
        if WRITE not in self.scopes:
            return False
        if self.teams is None:
            return True
        return any(_same_team(team, allowed) for allowed in self.teams)


def _same_team(owner: str, allowed: str) -> bool:
    """`team-a`, `default/team-a` and `group:default/team-a` name one team."""
    def norm(text: str) -> str:
        rest = text.split(":", 1)[1] if ":" in text else text
        return rest if "/" in rest else f"default/{rest}"
    return norm(owner.strip()).lower() == norm(allowed.strip()).lower()


ANONYMOUS_READER = Principal("anonymous", frozenset({READ}))
ANONYMOUS_WRITER = Principal("anonymous", frozenset({READ, WRITE}))


@dataclass(frozen=True)
class Tokens:
    """Known tokens by scope; write implies read. `team_write` tokens write only their teams' services."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    team_write: tuple[tuple[str, frozenset[str]], ...] = field(default=())

    @property
    def enabled(self) -> bool:
        """True when any token is configured."""
        return bool(self.read or self.write or self.team_write)

    @property
    def can_write(self) -> bool:
        """True when some token may write."""
        return bool(self.write or self.team_write)

    def principal(self, token: str) -> Principal | None:
        """Who presents this token, or None when unknown."""
        scopes: set[str] = set()
        teams: set[str] = set()
        unlimited = False
        presented = token.encode()
        for known in self.write:
            if hmac.compare_digest(known.encode(), presented):
                scopes |= {READ, WRITE}
                unlimited = True
        for known, its_teams in self.team_write:
            if hmac.compare_digest(known.encode(), presented):
                scopes |= {READ, WRITE}
                teams |= its_teams
        for known in self.read:
            if hmac.compare_digest(known.encode(), presented):
                scopes.add(READ)
        if not scopes:
            return None
        limited = WRITE in scopes and not unlimited
        return Principal(token_id(token), frozenset(scopes), frozenset(teams) if limited else None)

    def scopes(self, token: str) -> frozenset[str] | None:
        """The scopes of a presented token, or None when unknown."""
        p = self.principal(token)
        return p.scopes if p is not None else None


def load_tokens(read: Sequence[str], write: Sequence[str], tokens_file: Path | None,
                team_write: Mapping[str, Sequence[str]] | None = None) -> Tokens:
    """Tokens from settings plus an optional YAML file `{read: [...], write: [...], teams: {team: [...]}}`."""
    r, w = list(read), list(write)
    by_token: dict[str, set[str]] = {}
    for team, toks in (team_write or {}).items():
        for t in toks:
            by_token.setdefault(t, set()).add(team)
    if tokens_file is not None:
        try:
            data = yaml.safe_load(tokens_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"serve.tokens_file {tokens_file}: cannot read ({type(exc).__name__})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"serve.tokens_file {tokens_file}: expected a mapping with read, write and teams")
        r += [str(t) for t in data.get("read") or []]
        w += [str(t) for t in data.get("write") or []]
        teams = data.get("teams") or {}
        if not isinstance(teams, dict):
            raise ConfigError(f"serve.tokens_file {tokens_file}: teams must map a team to a list of tokens")
        for team, toks in teams.items():
            for t in toks or []:
                by_token.setdefault(str(t), set()).add(str(team))
    for t in r + w + list(by_token):
        if len(t) < 8 or any(c.isspace() for c in t):
            raise ConfigError("serve tokens need at least 8 characters and no spaces")
    return Tokens(tuple(r), tuple(w), tuple(sorted((t, frozenset(ts)) for t, ts in by_token.items())))
