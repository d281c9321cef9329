"""The fast YAML writer reads back as exactly the data it was given, whatever the strings hold."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from obsctl.model.yamltext import dump

HOSTILE = ['"} or vector(1)', "{{ .Value }}", "a: b", "- x", "#c", "x #c", "true", "no", "~", "null", "0x1f", "1e5",
           "1_000", "2026-11-26", ".inf", "*alias", "&anchor", "!tag", "%dir", "@at", "`tick`", "'q'", " lead",
           "trail ", "tab\tin", "line\nbreak", "\n", "", "crlf\r\n", "\x00nul", "\u2028sep", "\u0085nel", "ü", "€",
           "emoji \U0001f600", "x:", "a\n b", "  \n", "a\n\n\n", "|", ">", "? q", "[1]", "{a: 1}", ",", "http://x/y?z=1#f",
           'sum(rate(x{a="b",c=~"5.."}[5m]))', "a{b}", "x, y", "a [b]: c", "a\\b", "p: q", "a #b", "a:b",
           "(x) or vector(1)", "x'y", "k=v,k2=v2"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=False, allow_infinity=True, width=64), st.text(max_size=40),
                    st.sampled_from(HOSTILE))
keys = st.one_of(st.text(min_size=1, max_size=20), st.sampled_from(HOSTILE[:-10]))
data: st.SearchStrategy[Any] = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=40)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.dictionaries(keys, data, max_size=6), st.lists(data, max_size=6)))
def test_round_trip(value: Any) -> None:
    assert yaml.safe_load(dump(value)) == value
    assert yaml.safe_load(dump(value, sort_keys=True)) == value


def test_hostile_strings_stay_strings() -> None:
    value = {s or "empty": s for s in HOSTILE}
    text = dump(value)
    assert yaml.safe_load(text) == value
    assert "injected" not in yaml.safe_load(dump({"k": 'x\ninjected: true'}))


def test_readable_output_for_rule_files() -> None:
    text = dump({"groups": [{"name": "g", "rules": [{"record": "obsctl:slo_errors:rate5m", "expr": "a\n/\nb",
                                                   "labels": {"service": "checkout"}}]}]})
    assert text == ("groups:\n- name: g\n  rules:\n  - record: obsctl:slo_errors:rate5m\n    expr: |-\n      a\n"
                    "      /\n      b\n    labels:\n      service: checkout\n")
