"""The HTTP answer rules every client shares: which statuses are temporary, how Retry-After reads."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from obsctl.errors import PermanentError, TemporaryError, is_temporary_status, parse_retry_after, status_error
from obsctl.sinks.reload import raise_for


@pytest.mark.parametrize(("status", "temporary"), [
    (400, False), (401, False), (403, False), (404, False), (409, False), (412, False), (422, False),
    (408, True), (429, True), (500, True), (502, True), (503, True), (504, True)])
def test_temporary_statuses(status: int, temporary: bool) -> None:
    assert is_temporary_status(status) is temporary
    err = status_error(status, "x", "7")
    assert isinstance(err, TemporaryError if temporary else PermanentError)
    if temporary:
        assert isinstance(err, TemporaryError) and err.retry_after == 7.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("-3", now) == 0.0
    in_90s = format_datetime(datetime(2026, 11, 28, 12, 1, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(in_90s, now) == pytest.approx(90.0)
    past = format_datetime(datetime(2026, 11, 28, 11, 0, 0, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(past, now) == 0.0
    for bad in (None, "", "soon", "Mon, 99 Foo 2026"):
        assert parse_retry_after(bad, now) is None


def test_a_reload_answer_is_classified_by_the_shared_rule() -> None:
    req = httpx.Request("POST", "http://127.0.0.1/-/reload")
    raise_for(httpx.Response(200, request=req), "reload")
    with pytest.raises(TemporaryError) as temp:
        raise_for(httpx.Response(408, request=req, headers={"Retry-After": "4"}), "reload")
    assert temp.value.retry_after == 4.0
    with pytest.raises(PermanentError, match="HTTP 404"):
        raise_for(httpx.Response(404, request=req, text="no such endpoint"), "reload")
