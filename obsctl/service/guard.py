"""Who may call the API, and from where.

- `Access` turns a request's bearer token into a `Principal` (401/403 otherwise). With no token
  configured, reads are open and writes are refused, unless writes were opened on purpose.
- `HostOriginGuard` (ASGI middleware) refuses a `Host` header that names neither this server nor an
  allowed host (DNS rebinding: a web page whose name resolves to 127.0.0.1), and a write whose
  `Origin` is neither this server nor an allowed origin (a cross-origin form or text/plain POST).
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status

from obsctl.errors import ConfigError
from obsctl.service.auth import (
    ANONYMOUS_READER,
    ANONYMOUS_WRITER,
    HOW_TO_CONFIGURE,
    READ,
    WRITE,
    Principal,
    Tokens,
)

log = logging.getLogger("obsctl.service.guard")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"serve.listen {listen!r} must be host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


class Access:
    """Bearer-token access control for one runtime's tokens."""

    def __init__(self, tokens: Tokens, allow_unauthenticated_writes: bool = False) -> None:
        self.tokens = tokens
        self.open_writes = allow_unauthenticated_writes

    def principal(self, request: Request, required: str) -> Principal:
        """The caller, holding `required`; raises 401/403 otherwise."""
        if not self.tokens.enabled:
            if required == READ:
                return ANONYMOUS_READER
            if self.open_writes:
                return ANONYMOUS_WRITER
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"writes are closed: no token is configured; "
                                                           f"{HOW_TO_CONFIGURE}")
        header = request.headers.get("authorization", "")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        found = self.tokens.principal(token.strip())
        if found is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown token",
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if required not in found.scopes:
            hint = f"; {HOW_TO_CONFIGURE}" if required == WRITE and not self.tokens.can_write else ""
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this token lacks the {required} scope{hint}")
        return found

    def dependency(self, required: str) -> Callable[[Request], Principal]:
        """A FastAPI dependency returning the caller holding `required`."""
        def check(request: Request) -> Principal:
            return self.principal(request, required)
        return check


def _split_host(value: str) -> str:
    """`Host` header -> host name without port, lower-cased (`[::1]:8080` -> `::1`)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        return value.partition(":")[0]
    return value


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostOriginGuard:
    """Refuse requests whose Host (any method) or Origin (writes) is not ours.

    Allowed hosts: IP literals (a rebinding attack needs a name), loopback names, the listen host,
    and `allowed_hosts` (`*` allows any). Allowed origins for writes: an origin whose host is the
    request's own Host, and `allowed_origins` (`*` allows any). A request without Origin (curl, a
    server-side client) is not a browser's cross-origin request and passes.
    """

    def __init__(self, app: ASGIApp, listen_host: str, allowed_hosts: Sequence[str] = (),
                 allowed_origins: Sequence[str] = ()) -> None:
        self.app = app
        hosts = {h.strip().lower() for h in allowed_hosts} | LOOPBACK_NAMES
        if listen_host.lower() not in WILDCARD_HOSTS:
            hosts.add(listen_host.lower().strip("[]"))
        self.any_host = "*" in hosts
        self.hosts = frozenset(hosts)
        origins = {o.strip().rstrip("/").lower() for o in allowed_origins}
        self.any_origin = "*" in origins
        self.origins = frozenset(origins)

    def host_allowed(self, host_header: str) -> bool:
        """True when the Host header names this server."""
        host = _split_host(host_header)
        return self.any_host or _is_ip(host) or host in self.hosts

    def origin_allowed(self, origin: str, host_header: str) -> bool:
        """True when a write from `origin` may proceed."""
        origin = origin.strip().rstrip("/").lower()
        if self.any_origin or origin in self.origins:
            return True
        parts = urlsplit(origin)
        return bool(parts.netloc) and parts.netloc == host_header.strip().lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        problem = ""
        if not self.host_allowed(host):
            problem = (f"Host {host!r} is not served here (DNS rebinding guard); add it to serve.allowed_hosts "
                       "if this server is reached by that name")
        elif scope.get("method", "GET") not in SAFE_METHODS and "origin" in headers and \
                not self.origin_allowed(headers["origin"], host):
            problem = (f"Origin {headers['origin']!r} may not write here (cross-origin guard); add it to "
                       "serve.allowed_origins to allow it")
        if not problem:
            await self.app(scope, receive, send)
            return
        log.warning("request refused: %s", problem,
                    extra={"fields": {"method": scope.get("method"), "path": scope.get("path")}})
        body = json.dumps({"detail": problem}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
