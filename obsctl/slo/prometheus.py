"""Transport of SLO reports: the Prometheus HTTP API, the reports' only I/O.

`PrometheusAPI` sends instant and range queries, counts them, and maps failures to the error
taxonomy: unreachable, slow, 5xx or 429 -> TemporaryError (with Retry-After); a rejected query or
an answer that is not the API's JSON -> PermanentError.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from obsctl.errors import PermanentError, TemporaryError, is_temporary_status, parse_retry_after
from obsctl.slo.assemble import Answer
from obsctl.slo.query_plan import fmt_ts
from obsctl.slo.report import Point

DEFAULT_TIMEOUT_S = 15.0
_TEMPORARY_ERROR_TYPES = {"timeout", "canceled", "unavailable", "internal"}


class PrometheusAPI:
    """A minimal Prometheus HTTP API client that counts the queries it sends."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT_S, client: httpx.Client | None = None) -> None:
        if not url:
            raise PermanentError("no Prometheus URL given (--prometheus or OBSCTL_PROMETHEUS__URL)")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._client = client or httpx.Client(timeout=timeout)
        self._own_client = client is None
        self.queries = 0
        self._count_lock = threading.Lock()

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._own_client:
            self._client.close()

    def _post(self, path: str, form: Mapping[str, str], expr: str) -> dict[str, Any]:
        with self._count_lock:  # queries may be sent from several threads at once
            self.queries += 1
        where = f"Prometheus at {self.url}"
        try:
            resp = self._client.post(self.url + path, data=dict(form), timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise TemporaryError(f"{where} did not answer within {self.timeout:g}s (query {expr!r})") from exc
        except httpx.TransportError as exc:
            raise TemporaryError(f"{where} is unreachable: {exc}") from exc
        try:
            doc = orjson.loads(resp.content)  # answers for 10,000 SLOs run to ~20 MB: the fast parser
        except orjson.JSONDecodeError:
            try:
                doc = resp.json()  # what orjson refuses but the standard library reads
            except ValueError:
                doc = None
        if not isinstance(doc, dict):
            if is_temporary_status(resp.status_code):
                raise TemporaryError(f"{where} answered HTTP {resp.status_code} to query {expr!r}",
                                     parse_retry_after(resp.headers.get("Retry-After")))
            raise PermanentError(f"{where} answered HTTP {resp.status_code} with a body that is not the "
                                 f"Prometheus API's JSON (wrong URL?): {resp.text[:200]!r}")
        if doc.get("status") != "success":
            msg = f"{where} rejected query {expr!r}: {doc.get('errorType', '')}: {doc.get('error', '')}"
            if is_temporary_status(resp.status_code) or doc.get("errorType") in _TEMPORARY_ERROR_TYPES:
                raise TemporaryError(msg, parse_retry_after(resp.headers.get("Retry-After")))
            raise PermanentError(msg)
        data = doc.get("data")
        if not isinstance(data, dict):
            raise PermanentError(f"{where} answered query {expr!r} without a data object")
        data["warnings"] = [str(w) for w in doc.get("warnings") or []]
        return data

    def instant(self, expr: str, at: float) -> Answer:
        """An instant query evaluated at `at` (unix seconds); the result must be a vector."""
        data = self._post("/api/v1/query", {"query": expr, "time": fmt_ts(at)}, expr)
        if data.get("resultType") != "vector":
            raise PermanentError(f"query {expr!r} returned a {data.get('resultType')}, expected a vector")
        series = [(item["metric"], [_sample(item["value"])]) for item in data.get("result") or []]
        return Answer(series, data["warnings"])

    def range(self, expr: str, start: float, end: float, step: float) -> Answer:
        """A range query; the result must be a matrix."""
        data = self._post("/api/v1/query_range", {"query": expr, "start": fmt_ts(start), "end": fmt_ts(end),
                                                   "step": fmt_ts(step)}, expr)
        if data.get("resultType") != "matrix":
            raise PermanentError(f"query {expr!r} returned a {data.get('resultType')}, expected a matrix")
        series = [(item["metric"], [_sample(v) for v in item.get("values") or []])
                  for item in data.get("result") or []]
        return Answer(series, data["warnings"])


def _sample(pair: Sequence[Any]) -> Point:
    return float(pair[0]), float(pair[1])  # float() reads "NaN", "+Inf" as Prometheus writes them
