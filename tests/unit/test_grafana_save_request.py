"""The Grafana sink's save request is spliced into the canonical dashboard body: it must be the same
JSON as parsing the body, adding the digest tag and the version, and serialising it again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from obsctl.model import conventions as cv
from obsctl.model.artifact import Kind
from obsctl.render import render_all
from obsctl.render.options import RenderOptions
from obsctl.sinks.grafana import save_request
from obsctl.sources.directory import read_directory, read_template_tree
from obsctl.spec.load import load_catalog
from obsctl.spec.templates import parse_templates

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = 'a"b\\c\n</script>\u2028é'


def _expected(body: bytes, tag: str, folder: str, message: str, with_version: bool, version: int | None) -> Any:
    model = json.loads(body)
    model["tags"] = [*(model.get("tags") or []), tag]
    if with_version:
        model["version"] = version
    return {"dashboard": model, "folderUid": folder, "overwrite": False, "message": message}


def _check(body: bytes) -> None:
    for with_version, version in ((False, None), (True, 7), (True, None)):
        for tag, folder, message in (("obsctl-sha:0123456789abcdef", "team-a", "obsctl apply sha256=x"),
                                     (HOSTILE, HOSTILE, HOSTILE)):
            got = save_request(body, digest_tag=tag, folder=folder, message=message, with_version=with_version,
                               version=version)
            assert json.loads(got) == _expected(body, tag, folder, message, with_version, version)


def test_rendered_dashboards() -> None:
    templates = parse_templates(read_template_tree(ROOT))
    catalog = load_catalog(read_directory(ROOT / "examples" / "catalog"), templates).catalog
    desired = render_all(catalog, templates, RenderOptions(), only=["dashboards"])
    bodies = [a.body for a in desired.values() if a.kind is Kind.GRAFANA_DASHBOARD]
    assert len(bodies) > 3
    for body in bodies:
        _check(body)


@pytest.mark.parametrize("model", [
    {"title": "empty tags", "tags": [], "panels": [{"tags": ["inner"], "title": "p"}]},
    {"title": "no tags", "panels": []},
    {"title": "a version already", "tags": ["obsctl"], "version": 3},
    {"title": "tags last", "zz": {"tags": ["nested"]}, "tags": ["obsctl", HOSTILE]},
    {"title": HOSTILE, "tags": [HOSTILE], "description": '\n  "tags": [\n  ]'},
])
def test_edge_bodies(model: dict[str, Any]) -> None:
    _check(cv.grafana_json(model))  # canonical
    _check(json.dumps(model).encode())  # not canonical: parsed instead
