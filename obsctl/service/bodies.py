"""Request bodies: read as a stream with the size limit enforced while reading, parsed off the
event loop, and bounded in depth, so no body can exhaust memory, stall the loop or crash a parser."""

from __future__ import annotations

import json
import logging
from typing import Any

import yaml
from fastapi import HTTPException, Request, status

log = logging.getLogger("obsctl.service.bodies")

MAX_DOCUMENT_BYTES = 256 * 1024
MAX_DEPTH = 32  # an obsctl document nests about 7 levels deep
ACCEPTED_TYPES = {"application/json": "json", "application/yaml": "yaml", "application/x-yaml": "yaml",
                  "text/yaml": "yaml", "text/x-yaml": "yaml"}
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def body_format(request: Request) -> str:
    """`json` or `yaml` from the Content-Type (absent: JSON); anything else is 415.

    Refusing text/plain and form types also refuses what a browser sends cross-origin without a
    preflight.
    """
    raw = request.headers.get("content-type", "application/json")
    ctype = raw.split(";")[0].strip().lower()
    fmt = ACCEPTED_TYPES.get(ctype)
    if fmt is None:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            f"Content-Type {ctype!r} is not accepted; send application/json or application/yaml")
    return fmt


async def read_limited(request: Request, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The body, refused with 413 as soon as it (or its declared length) passes `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                            f"document too large: {declared} bytes, the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                                f"document too large: over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of parsed JSON/YAML (iterative; stops counting past `limit`)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if not isinstance(item, dict | list):
            continue
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, level + 1) for child in children)
    return deepest


def _yaml_depth_ok(raw: bytes, limit: int) -> bool:
    """Walk YAML events (no objects built) and check collection nesting stays within `limit`."""
    level = 0
    for event in yaml.parse(raw, Loader=_LOADER):
        if isinstance(event, yaml.CollectionStartEvent):
            level += 1
            if level > limit:
                return False
        elif isinstance(event, yaml.CollectionEndEvent):
            level -= 1
    return True


def parse_document(raw: bytes, fmt: str) -> dict[str, Any]:
    """Bytes -> a mapping; 400 for what does not parse (deep nesting included), 422 for a non-mapping.

    Runs in a worker thread (the caller uses run_in_threadpool): parsing a hostile document never
    stalls the event loop.
    """
    try:
        if fmt == "json":
            data = json.loads(raw)
        else:
            if not _yaml_depth_ok(raw, MAX_DEPTH):
                raise _TooDeep
            data = yaml.load(raw, Loader=_LOADER)  # noqa: S506 (a safe loader)
    except _TooDeep:
        data = None
        too_deep = True
    except RecursionError:
        too_deep = True
        data = None
    except (ValueError, yaml.YAMLError) as exc:
        if "nesting" in str(exc):  # libyaml's own depth limit
            log.warning("document refused: nested too deep for the YAML parser")
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"the document nests too deep: {exc}") from exc
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"cannot parse the body as {fmt}: {exc}") from exc
    else:
        too_deep = depth(data) > MAX_DEPTH
    if too_deep:
        log.warning("document refused: nested deeper than %d levels", MAX_DEPTH)
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"the document nests deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "the document must be a mapping")
    return data


class _TooDeep(Exception):
    pass
