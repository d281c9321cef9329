"""A service's rule text from pre-rendered text per SLO shape: the rules part of a render, cheaply.

Building rule dicts and writing them as YAML cost ~3 ms per service. The rules of two services'
SLOs differ, mostly, only where the service's own names go: service, namespace, team, environment,
runbook, and (for custom events SLIs) the PromQL of its queries. So an SLO is rendered once per
*shape* (the SLO and what else of the service the rules read, see `_shape_key`) with tokens in
those places, written as text in the three forms (rule file, PrometheusRule, ruler group), and a
service's text is that text with the tokens filled in.

Why filling is exact (a property test compares it with the dict -> YAML path byte for byte):
- Inert values (service, namespace, team name and namespace, environment) fill by plain text.
  Such a value is `[A-Za-z0-9]` at both ends and `[A-Za-z0-9._-]` inside, and YAML reads it back
  as the same string on its own. Every escaping obsctl applies to them is then the identity (PromQL
  strings, Go-template literals, YAML double quotes), and no YAML style decision can change: the
  value adds no space, `:`, `#`, quote, brace or newline, does not start or end a scalar with a
  character a plain scalar cannot, and a scalar holding it next to fixed text never reads as a number,
  boolean, null or date. A value that is not inert takes the dict path.
- Values the renderer derives from them are checked: the dashboard uid must be the one the tokens
  spell (it is hashed when long, and `.` is folded).
- The runbook fills a whole scalar: only when it is written plain and no Go template changes it.
- A spec label whose value equals the service's, namespace's or team's name changes which labels an
  alert gets (`obsctl_<name>` copies): such SLOs take the dict path.
- Expressions holding a custom query are *dynamic*: filled, then checked by the PromQL parser and
  written by the YAML writer itself (`yamltext.value_text`), so their style is the writer's own.
Each shape is checked once when built: its text filled with the first service's values must equal
that service's dict-path text, else the shape is marked unusable and its services take the dict path.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from obsctl.model import conventions as cv
from obsctl.model import yamltext
from obsctl.model.entities import SLO, EntityRef, EventsSLI, Service
from obsctl.model.escape.gotemplate import literal as template_literal
from obsctl.model.platform import Templates
from obsctl.render.options import RenderOptions
from obsctl.render.promql import parse_error

# `~` is in no value that fills by text, so a token can neither hide in one nor form across one.
TOKEN = "Zq~"  # noqa: S105 - a placeholder, not a secret
_VALUE_KEYS = "nstmeru"  # name, namespace (s), team namespace (t), team name (m), environment, runbook, uid
_QUERY_SLOT = re.compile(re.escape(TOKEN) + r"(?:([nstmeru])|q([tegr])([0-9a-z]*)" + re.escape(TOKEN) + ")")
_INERT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_QUERY_FIELDS = {"t": "total_query", "e": "error_query", "g": "good_query", "r": "error_ratio_query"}
FORMS = ("file", "crd", "ruler")
_FORM_INDENT = {"file": 2, "crd": 4, "ruler": 0}
_CACHE_MAX = 512  # shapes held (a shape's text is ~100 kB in three forms); then the cache starts over

Rule = dict[str, Any]
# (svc, slo, templates, options) -> {part: rules}: the dict path's rules of one SLO
SloRules = Callable[[Service, SLO, Templates, RenderOptions], dict[str, list[Rule]]]


def inert(value: str) -> bool:
    """Whether `value` can fill a token by plain text (see the module doc)."""
    return _INERT.fullmatch(value) is not None and yamltext.inline(value) == value


@dataclass(frozen=True)
class _Text:
    """One part of an SLO's rules in one form: fixed pieces, and between each two the key of what goes
    there: a value key (one of `_VALUE_KEYS`) or a dynamic expression's `d<index>_<indent of its children>`."""

    fixed: tuple[str, ...]
    keys: tuple[str, ...]
    dynamic: tuple[tuple[str, int, int], ...]  # (key, index, indent) of each dynamic slot


@dataclass(frozen=True)
class Shape:
    """An SLO's rules as tokenised text: per part, per form; and the dynamic expressions."""

    texts: Mapping[str, Mapping[str, _Text]]  # part -> form -> text; parts without rules absent
    dynamic: tuple[str, ...]  # expressions with query tokens (and value tokens)


_SLOT = re.compile(re.escape(TOKEN) + r"(?:([nstmeru])|d(\d+)x)")


def _split(text: str) -> _Text | None:
    """The text cut at its tokens; None when a `~`-token remains that is none of ours (a spec value
    holding one)."""
    if _SLOT.sub("", text).count(TOKEN):
        return None
    fixed: list[str] = []
    keys: list[str] = []
    dynamic: list[tuple[str, int, int]] = []
    last = 0
    for m in _SLOT.finditer(text):
        fixed.append(text[last:m.start()])
        if m.group(1):
            keys.append(m.group(1))
        else:
            line = text[text.rfind("\n", 0, m.start()) + 1:m.start()]
            indent = len(line) - len(line.lstrip(" -")) + 2  # a list item's "- " is part of its indent
            keys.append(f"d{m.group(2)}_{indent}")
            dynamic.append((keys[-1], int(m.group(2)), indent))
        last = m.end()
    fixed.append(text[last:])
    return _Text(tuple(fixed), tuple(keys), tuple(dynamic))


def _tokenised_slo(slo: SLO) -> SLO:
    """The SLO with tokens for its custom queries (`{{window}}` kept inside them)."""
    sli = slo.sli
    if not isinstance(sli, EventsSLI):
        return slo
    return dataclasses.replace(slo, sli=dataclasses.replace(sli, **{
        f: f"{TOKEN}q{k}{{{{window}}}}{TOKEN}" for k, f in _QUERY_FIELDS.items() if getattr(sli, f) is not None}))


def _tokenised_service(svc: Service, tok_slo: SLO, environment: str) -> Service:
    """The service with tokens where its own values go."""
    return dataclasses.replace(
        svc, ref=EntityRef(svc.ref.kind, TOKEN + "s", TOKEN + "n"),
        # a team in the default namespace keeps it: its `team` label is its name alone (cv.team_label)
        team=EntityRef(svc.team.kind, _team_namespace(svc), TOKEN + "m"),
        environment=TOKEN + "e" if environment else "production",
        links=dataclasses.replace(svc.links, runbook=TOKEN + "r" if svc.links.runbook else ""),
        slos=(tok_slo,))


def _team_namespace(svc: Service) -> str:
    """The team namespace of a service's tokenised form: the default namespace itself, else a token."""
    return cv.DEFAULT_NAMESPACE if svc.team.namespace == cv.DEFAULT_NAMESPACE else TOKEN + "t"


def _shape_key(svc: Service, tok_slo: SLO, environment: str) -> tuple[Any, ...]:
    """Everything of a service (beyond the tokens) the rules of one SLO read."""
    return (tok_slo, svc.ref.kind, svc.team.kind, _team_namespace(svc), svc.tier, svc.protocol,
            svc.latency_buckets, svc.depends_on, bool(svc.links.runbook), bool(environment))


def _values(svc: Service, environment: str) -> dict[str, str] | None:
    """The token values of a service, or None when one cannot fill by plain text."""
    values = {"n": svc.name, "s": svc.namespace, "t": svc.team.namespace, "m": svc.team.name, "e": environment,
              "r": svc.links.runbook, "u": cv.service_dashboard_uid(svc)}
    for key in "nstm":
        if not inert(values[key]):
            return None
    if environment and not inert(environment):
        return None
    runbook = values["r"]
    if runbook and ("~" in runbook or yamltext.inline(runbook) != runbook or template_literal(runbook) != runbook):
        return None
    return values


def _user_values(slo: SLO) -> set[str]:
    policy = slo.alerting
    return {v for pairs in (slo.labels, policy.labels, policy.page_labels, policy.ticket_labels) for _, v in pairs}


def _fill_dynamic(template: str, values: Mapping[str, str], queries: Mapping[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return values[m.group(1)]
        return queries[m.group(2)].replace("{{window}}", m.group(3))
    return _QUERY_SLOT.sub(sub, template)


def fill(text: _Text, values: Mapping[str, str], dynamic: list[str]) -> str:
    """A part's text with the service's values and its dynamic expressions in place."""
    if text.dynamic:
        values = {**values, **{key: yamltext.value_text(dynamic[index], indent)
                               for key, index, indent in text.dynamic}}
    out: list[str] = [""] * (2 * len(text.keys) + 1)
    out[0::2] = text.fixed
    out[1::2] = [values[k] for k in text.keys]
    return "".join(out)


class ShapeCache:
    """Shapes by key for one (templates, options), built on first use and checked once."""

    def __init__(self, templates: Templates, options: RenderOptions, slo_rules: SloRules) -> None:
        self.templates = templates
        self.options = options
        self.slo_rules = slo_rules
        self.shapes: dict[tuple[Any, ...], Shape | None] = {}
        self.seen: set[tuple[Any, ...]] = set()  # keys met once: a shape is built on the second service
        # platform data or settings holding a token would read as one: then every service takes the dict path
        self.usable = TOKEN not in repr(templates) and TOKEN not in repr(options)

    def texts(self, svc: Service, slo: SLO, forms: tuple[str, ...] = FORMS) -> dict[str, dict[str, str]] | None:
        """Per part and form (those in `forms`), the text of one SLO's rules for `svc`; None: take the dict path."""
        if not self.usable:
            return None
        environment = cv.service_environment(svc, self.options.environment)
        values = _values(svc, environment)
        if values is None or _user_values(slo) & {svc.name, svc.namespace, svc.team.name, cv.team_label(svc.team)}:
            return None
        tok_slo = _tokenised_slo(slo)
        key = _shape_key(svc, tok_slo, environment)
        if key in self.shapes:
            shape = self.shapes[key]
        elif key not in self.seen:  # an SLO shape no other service shares costs no more than the dict path
            if len(self.seen) >= 8 * _CACHE_MAX:
                self.seen.clear()
            self.seen.add(key)
            return None
        else:
            shape = self._build(_tokenised_service(svc, tok_slo, environment), tok_slo, svc, slo, values)
            if len(self.shapes) >= _CACHE_MAX:
                self.shapes.clear()
            self.shapes[key] = shape
        if shape is None:
            return None
        return self._fill(shape, slo, values, forms)

    def _fill(self, shape: Shape, slo: SLO, values: Mapping[str, str],
              forms: tuple[str, ...] = FORMS) -> dict[str, dict[str, str]] | None:
        dynamic: list[str] = []
        if shape.dynamic:
            sli = slo.sli
            queries = {k: getattr(sli, f) or "" for k, f in _QUERY_FIELDS.items()} if isinstance(sli, EventsSLI) else {}
            if any(TOKEN in q for q in queries.values()):
                return None
            for template in shape.dynamic:
                expr = _fill_dynamic(template, values, queries)
                if parse_error(expr) is not None:
                    return None  # the dict path reports it, located
                dynamic.append(expr)
        return {part: {form: fill(texts[form], values, dynamic) for form in forms}
                for part, texts in shape.texts.items()}

    def _build(self, tok_svc: Service, tok_slo: SLO, svc: Service, slo: SLO,
               values: Mapping[str, str]) -> Shape | None:
        if TOKEN in repr(slo):  # a spec value holding a token would read as one
            return None
        try:
            parts = self.slo_rules(tok_svc, tok_slo, self.templates, self.options)
            want = self.slo_rules(svc, slo, self.templates, self.options)
        except Exception:
            return None
        dynamic: list[str] = []
        uid = cv.service_dashboard_uid(tok_svc)  # the tokens folded by the uid's alphabet: its own token
        for rules in parts.values():
            for rule in rules:
                if "annotations" in rule:
                    rule["annotations"] = {k: v.replace(uid, TOKEN + "u") for k, v in rule["annotations"].items()}
                if f"{TOKEN}q" in rule["expr"]:
                    dynamic.append(rule["expr"])
                    rule["expr"] = f"{TOKEN}d{len(dynamic) - 1}x"
        texts: dict[str, dict[str, _Text]] = {}
        for part, rules in parts.items():
            if not rules:
                continue
            forms = {}
            for form in FORMS:
                text = yamltext.dump_at(rules, _FORM_INDENT[form], sort_keys=form == "ruler")
                split = _split(text)
                if split is None or f"{TOKEN}q" in text:
                    return None
                forms[form] = split
            texts[part] = forms
        shape = Shape(texts, tuple(dynamic))
        # checked once: the first service's filled text is its dict-path text
        got = self._fill(shape, slo, values)
        for part, rules in want.items():
            for form in FORMS:
                expect = yamltext.dump_at(rules, _FORM_INDENT[form], sort_keys=form == "ruler") if rules else None
                have = (got or {}).get(part, {}).get(form)
                if have != expect:
                    return None
        return shape
