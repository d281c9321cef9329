"""Hypothesis fuzzing of every loader (obsctl.dev/v1, Backstage Component and Group, Sloth, OpenSLO):
documents mutated in structure, unicode, numbers, depth and size. Whatever comes in, loading never
raises and every problem is located (file, and entity or field); what loads renders, or fails with
located problems (a SpecError), never with another exception; every artifact path stays relative and
inside the output tree."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obsctl import app
from obsctl.config import Settings
from obsctl.errors import SpecError
from obsctl.spec.load import SourceFile, load_catalog
from obsctl.spec.templates import Templates

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "catalog"
SETTINGS = Settings()
TEMPLATES: Templates = app.load_templates(SETTINGS)
OPTIONS = app.render_options(SETTINGS)


def _seed_documents() -> list[Any]:
    docs: list[Any] = []
    for path in sorted(EXAMPLES.iterdir()):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


SEEDS = _seed_documents()

HOSTILE_TEXT = st.sampled_from([
    "", " ", "a/b", "../../etc/passwd", "/abs", "x" * 300, "${env:HOME}", "${file:/etc/shadow}", "{{window}}",
    "}}{{", "a\x00b", "\x1b[31m", "\u2028", "é", "😀", "Ω" * 70, "-", ".", "a..b", "team-payments",
    'x"}) or vector(1', "`", "%", "99.9%", "1e309", "nan", "-0", "0x10", "yes", "null", "\\", "\r\n",
])
NUMBERS = st.one_of(st.integers(min_value=-(10**30), max_value=10**30),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0, 1, 99.9, 100, 101, 1e308]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=40), HOSTILE_TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=12), HOSTILE_TEXT), inner, max_size=4)),
    max_leaves=20)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A seed document with a few of its fields replaced, removed or deepened."""
    doc = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        if not path:
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "deepen", "hostile"]))
        key = path[-1]
        if action == "delete" and isinstance(parent, dict):
            del parent[key]
        elif action == "deepen":
            nested: Any = parent[key]
            for _ in range(draw(st.integers(1, 40))):
                nested = [nested] if draw(st.booleans()) else {"x": nested}
            parent[key] = nested
        elif action == "hostile":
            parent[key] = draw(HOSTILE_TEXT)
        else:
            parent[key] = draw(VALUES)
    return doc


def _check(files: list[SourceFile]) -> None:
    result = load_catalog(files, TEMPLATES)
    names = {f.path for f in files}
    for p in result.problems:
        assert p.file in names, p
        assert p.message, p
        assert p.entity or p.field or p.line or p.file, p
    try:
        desired = app.render_all(result.catalog, TEMPLATES, OPTIONS)
    except SpecError as exc:
        assert exc.problems and all(p.message for p in exc.problems)
        return
    for art in desired.values():
        assert not art.path.startswith("/") and ".." not in art.path.split("/"), art.path
        assert "\x00" not in art.path


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_documents_load_or_fail_located(doc: Any) -> None:
    body = yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass")
    _check([SourceFile("catalog/fuzz.yaml", body)])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_arbitrary_structures_load_or_fail_located(doc: Any) -> None:
    body = yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass")
    _check([SourceFile("catalog/any.yaml", body)])


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_load_or_fail_located(raw: bytes) -> None:
    _check([SourceFile("catalog/raw.yaml", raw)])


@pytest.mark.parametrize("size", [1 << 20, (1 << 20) + 1])
def test_size_limit_is_a_located_problem(size: int) -> None:
    body = b"# " + b"x" * (size - 3) + b"\n"
    result = load_catalog([SourceFile("catalog/big.yaml", body)], TEMPLATES)
    if size > 1 << 20:
        assert any("limit" in p.message and p.file == "catalog/big.yaml" for p in result.problems)
    else:
        assert not result.errors


@pytest.mark.parametrize("body", [b"a: " + b"[" * 900 + b"]" * 900, b"a: " + b"{b: " * 990 + b"1" + b"}" * 990,
                                  b"spec:\n" + b"".join(b"  " * (i + 1) + b"x:\n" for i in range(200))])
def test_deep_nesting_is_a_located_problem_and_blocks_nothing_else(body: bytes) -> None:
    good = next(p for p in sorted(EXAMPLES.iterdir()) if p.name == "checkout.yaml")
    result = load_catalog([SourceFile("catalog/deep.yaml", body), SourceFile(str(good), good.read_bytes())],
                          TEMPLATES)
    assert any(p.file == "catalog/deep.yaml" and "nests deeper" in p.message for p in result.problems)
    assert [s.name for s in result.catalog.services] == ["checkout"]
