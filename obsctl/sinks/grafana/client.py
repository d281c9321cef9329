"""The Grafana HTTP client of the sink: pooled grafana-client sessions, answers mapped to obsctl's errors.

Temporary (retried): 5xx, 408, 429 (with Retry-After), timeouts, connection errors, an answer with no
status. Permanent: 401/403. Every other 4xx is an HttpError the caller decides about (400, 404, 409,
412, 422). Reads get a few quick retries: a listing must be complete or fail.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaServerError,
    GrafanaTimeoutError,
)
from niquests.exceptions import RequestException

from obsctl.errors import PermanentError, TemporaryError, is_temporary_status, parse_retry_after

T = TypeVar("T")
_READ_ATTEMPTS = 3


class HttpError(Exception):
    """A 4xx answer the caller decides about (400, 404, 409, 412, 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


def message_of(exc: GrafanaException) -> str:
    """The message Grafana put in an error answer."""
    body = exc.response
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return str(exc.message)


@dataclass
class _Client:
    """One pooled grafana-client instance and the Retry-After of its last answer."""

    api: GrafanaApi
    retry_after: str | None = None


class GrafanaClient:
    """Calls to one Grafana org; `parallelism` bounds the parallel reads of `map`."""

    def __init__(self, url: str, token: str | tuple[str, str], *, org_id: int = 1, timeout: float = 10.0,
                 verify: bool = True, parallelism: int = 8) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not a Grafana URL: {url!r}")
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        prefix = parts.path.strip("/")
        self._prefix = f"{prefix}/" if prefix else ""
        self._auth = token
        self._org_id = org_id
        self._timeout = timeout
        self._verify = verify
        self.parallelism = max(1, parallelism)
        self._clients: queue.SimpleQueue[_Client] = queue.SimpleQueue()

    def _new_client(self) -> _Client:
        api = GrafanaApi(self._auth, host=self._host, port=self._port, url_path_prefix=self._prefix,
                         protocol=self._scheme, verify=self._verify, timeout=self._timeout,
                         organization_id=self._org_id, session_pool_size=2)
        client = _Client(api)

        def remember(response: Any, **_: Any) -> Any:
            client.retry_after = response.headers.get("Retry-After")
            return response

        api.client.s.hooks["response"].append(remember)
        return client

    def close(self) -> None:
        """Close every HTTP session this client opened."""
        while True:
            try:
                client = self._clients.get_nowait()
            except queue.Empty:
                return
            client.api.client.s.close()

    def http(self, method: str, path: str, *, json_body: Any = None,
             params: Mapping[str, Any] | None = None) -> Any:
        """One API call, mapped: temporary errors raise TemporaryError, 401/403 PermanentError, other 4xx HttpError.

        Clients are pooled (one borrower at a time each), so the pool never outgrows the concurrency.
        """
        try:
            client = self._clients.get_nowait()
        except queue.Empty:
            client = self._new_client()
        try:
            return self._call(client, method, path, json_body, params)
        finally:
            self._clients.put(client)

    def _call(self, client: _Client, method: str, path: str, json_body: Any,
              params: Mapping[str, Any] | None) -> Any:
        client.retry_after = None
        what = f"{method} {path}"
        try:
            return getattr(client.api.client, method)(path, json=json_body, params=dict(params) if params else None)
        except GrafanaTimeoutError as exc:
            raise TemporaryError(f"grafana: {what}: timeout ({exc.message})") from None
        except GrafanaServerError as exc:
            raise TemporaryError(f"grafana: {what}: {exc.status_code} {message_of(exc)}",
                                 parse_retry_after(client.retry_after)) from None
        except GrafanaClientError as exc:
            status = exc.status_code
            message = message_of(exc)
            if is_temporary_status(status):
                raise TemporaryError(f"grafana: {what}: {status} {message}",
                                     parse_retry_after(client.retry_after)) from None
            if status in (401, 403):
                raise PermanentError(f"grafana: {what}: {status} {message} (check the token and its role)") \
                    from None
            raise HttpError(status, message) from None
        except GrafanaException as exc:  # no HTTP status at all
            raise TemporaryError(f"grafana: {what}: {exc.message}") from None
        except (RequestException, OSError) as exc:  # refused, reset, dropped: grafana-client lets these through
            raise TemporaryError(f"grafana: {what}: connection failed ({exc})") from None

    def read(self, method: Callable[[], T]) -> T:
        """A read with a few quick retries: list_owned must be complete or fail."""
        for attempt in range(1, _READ_ATTEMPTS + 1):
            try:
                return method()
            except TemporaryError as exc:
                if attempt == _READ_ATTEMPTS:
                    raise
                time.sleep(min(5.0, max(0.1 * 2 ** attempt, exc.retry_after or 0.0)))
        raise AssertionError("unreachable")

    def map(self, fn: Callable[[T], Any], items: Iterable[T]) -> list[Any]:
        items = list(items)
        if self.parallelism == 1 or len(items) < 2:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(self.parallelism, thread_name_prefix="grafana-read") as pool:
            return list(pool.map(fn, items))
