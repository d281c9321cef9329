"""Bearer tokens with read and write scopes. Tokens are compared in constant time and never logged;
an actor is named by a short hash of its token."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

import yaml

from obsctl.errors import ConfigError

READ = "read"
WRITE = "write"


def token_id(token: str) -> str:
    """A name for a token that reveals nothing usable: `token:` + 8 hex of its sha256."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Tokens:
    """Known tokens by scope; write implies read. No tokens at all means auth is off."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        """True when any token is configured."""
        return bool(self.read or self.write)

    def scopes(self, token: str) -> frozenset[str] | None:
        """The scopes of a presented token, or None when unknown."""
        found: set[str] = set()
        for known in self.write:
            if hmac.compare_digest(known.encode(), token.encode()):
                found |= {READ, WRITE}
        for known in self.read:
            if hmac.compare_digest(known.encode(), token.encode()):
                found.add(READ)
        return frozenset(found) if found else None


def load_tokens(read: list[str], write: list[str], tokens_file: Path | None) -> Tokens:
    """Tokens from settings plus an optional YAML file `{read: [...], write: [...]}`."""
    r, w = list(read), list(write)
    if tokens_file is not None:
        try:
            data = yaml.safe_load(tokens_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"serve.tokens_file {tokens_file}: cannot read ({type(exc).__name__})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"serve.tokens_file {tokens_file}: expected a mapping with read and write lists")
        r += [str(t) for t in data.get("read") or []]
        w += [str(t) for t in data.get("write") or []]
    for t in r + w:
        if len(t) < 8 or any(c.isspace() for c in t):
            raise ConfigError("serve tokens need at least 8 characters and no spaces")
    return Tokens(tuple(r), tuple(w))
