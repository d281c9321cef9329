"""The contract checker itself: it names what is wrong, so the emulator tests can fail."""

from __future__ import annotations

from tests.grafana_emulator.contract import ROUTES, problems, shape_of


def test_a_body_with_the_declared_shape_passes() -> None:
    body = {"id": 1, "uid": "a", "title": "A", "message": "Folder A deleted"}
    assert problems(shape_of("/folders/{folder_uid}", "DELETE"), body) == []


def test_missing_undeclared_and_mistyped_keys_are_named() -> None:
    hit = {"id": True, "uid": "u", "title": "T", "uri": "db/t", "url": "/d/u/t", "slug": "", "type": "dash-db",
           "tags": ["a", 3], "isStarred": False, "sortMeta": 0, "extra": 1}
    found = problems(shape_of("/search", "get"), [hit])
    assert found == ["body[0].id: expected <class 'int'>, got bool True",
                     "body[0].tags[1]: expected <class 'str'>, got int 3",
                     "body[0].isDeleted: missing",
                     "body[0].extra: not in the contract"]


def test_every_error_status_answers_with_the_error_body() -> None:
    assert problems(shape_of("/search", "get", "422"), {"message": "Limit is above maximum allowed"}) == []
    assert problems(shape_of("/dashboards/db", "post", "412"), {"status": "version-mismatch"}) == \
        ["body.message: missing"]
    assert all(method in ("get", "post", "put", "delete") for _, method, _ in ROUTES)
