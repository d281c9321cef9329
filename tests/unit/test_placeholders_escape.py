"""The one placeholder syntax of the template folders and the escaping modules per target language."""

from __future__ import annotations

import json

import promql_parser
import pytest

from obsctl.model import placeholders
from obsctl.model.escape import gotemplate, otelcol, promql
from obsctl.sources.directory import read_template_tree


def test_fill_replaces_and_whole_values_keep_their_type() -> None:
    assert placeholders.fill("a-@{x}-@{y}", {"x": 1, "y": "b"}) == "a-1-b"
    tree = {"n": "@{port}", "s": ["@{name}!"], "grafana": "$__rate_interval ${datasource} {{label}}"}
    assert placeholders.fill_tree(tree, {"port": 8888, "name": "x"}, lambda where, exc: exc) == \
        {"n": 8888, "s": ["x!"], "grafana": "$__rate_interval ${datasource} {{label}}"}


@pytest.mark.parametrize(("template", "message"), [
    ("@{nope}", r"undefined placeholder @\{nope\} \(known here: x\)"),
    ("@{bad name}", "malformed placeholder"),
    ("${name}", r"\$\{name\} is not a placeholder: write @\{name\}"),
    ('service_name="{service}"', r"\{service\} is not a placeholder: write @\{service\}"),
])
def test_undefined_malformed_and_old_syntax_fail_loudly(template: str, message: str) -> None:
    with pytest.raises(placeholders.PlaceholderError, match=message):
        placeholders.fill(template, {"x": 1}, dollar_names=True)
    assert placeholders.fill("${datasource} {{team}}", {}) == "${datasource} {{team}}"  # Grafana's, legend's


def test_every_packaged_template_uses_only_the_one_syntax() -> None:
    for path, body in read_template_tree().items():
        for line in body.decode().splitlines():
            if not line.lstrip().startswith("#"):
                placeholders.check(line, dollar_names=path.startswith("collectors/"))
        assert path


HOSTILE = ['a"b', "back\\slash", "new\nline", "tab\t", "\x00\x7f", '"} or vector(1) #', "$datasource", "ü€"]


@pytest.mark.parametrize("value", HOSTILE)
def test_promql_strings_parse_back_to_the_value(value: str) -> None:
    expr = promql_parser.parse(f"up{{x={promql.string(value)}}}")
    (matcher,) = [m for m in expr.matchers.matchers if m.name == "x"]
    assert matcher.value == value
    assert "$" not in promql.grafana_string_body(value)


def test_go_template_literal_is_json_quoted_only_with_braces() -> None:
    assert gotemplate.literal("plain") == "plain"
    lit = gotemplate.literal("{{ .Value }}")
    assert lit.startswith("{{ ") and json.loads(lit[3:-3]) == "{{ .Value }}"


def test_collector_values_escape_every_dollar() -> None:
    assert otelcol.value("${env:HOME}") == "$${env:HOME}"
    assert otelcol.unescape(otelcol.value("a$$b${x}")) == "a$$b${x}"
    assert otelcol.tree({"k": ["${file:/etc/passwd}", 3]}) == {"k": ["$${file:/etc/passwd}", 3]}
