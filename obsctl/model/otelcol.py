"""obsctl's own typed model of OpenTelemetry Collector configs, pinned to collector v0.161.0.

`validate_collector_config` checks a config mapping (YAML already parsed) the way the collector
does at start-up, so `obsctl validate` works where no collector is installed:

- structure and strict decoding (unknown keys, wrong value types), component ids `type[/name]`,
  component types compiled into our distribution (collectors/builder-config.yaml);
- the service graph: pipelines per signal, references, connectors, extensions, cycles;
- each known component's own checks (required fields, ranges, enums), on field tables that
  mirror the collector's config structs;
- obsctl's policy on top (memory_limiter first, batch last, explicit prometheusremotewrite
  endpoint), reported with `policy=True`.

What changes with a collector release is data, pinned by `COLLECTOR_VERSION`: the component
table `COMPONENTS` (one row per component: kind, canonical type and deprecated aliases, Go module
of the builder manifest, signals, connector pairs, config table), checked by tests against the
builder manifest and `otelcol-obsctl components`; and one field table per config block
(`table_config`: key -> (type, default), plus the checks of the block's Validate), for the
components' own configs and the building blocks they nest (TLS, HTTP/gRPC client and server,
queues, retry, sampling policies, match blocks, OTTL groups). One decoder walks every table and
reports each problem with its path in the component (`protocols.grpc.tls.min_version`).

Each problem carries a stable rule id from `RULES`; tests/collector proves the verdicts agree with
`otelcol-obsctl validate` (and with a real start-up for the checks only start-up performs).

Decoding follows the collector's quirks on purpose: a float into an integer field is truncated,
"a,b" into a string list is split, blocks that squash confighttp settings (otlphttp,
prometheusremotewrite, the otlp receiver's http protocol, zpages) ignore unknown keys, and a
section with `enabled: false` is decoded but not validated.

Known gaps: OTTL is only lexed (tokens, brackets) and its context inferred from path roots, not
parsed against the grammar and function signatures; the legacy include/exclude match blocks are
checked without their per-signal rules; `service.telemetry.metrics/traces` check only `level`.
Problems in a component that no pipeline uses are reported even when only building the pipeline
would reveal them to the collector (stage "build").
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Literal, NamedTuple, TypeAlias

__all__ = [
    "COLLECTOR_VERSION",
    "COMPONENTS",
    "COMPONENT_MODELS",
    "REQUIRED",
    "RULES",
    "TYPE_ALIASES",
    "Block",
    "CollectorConfigProblem",
    "Component",
    "ComponentID",
    "ComponentKind",
    "DecodeError",
    "ListOf",
    "MapOf",
    "RuleInfo",
    "Signal",
    "Table",
    "component_for_module",
    "component_problems",
    "known_component_types",
    "ottl_lexical_problem",
    "ottl_path_roots",
    "parse_go_duration",
    "table_config",
    "validate_collector_config",
]


# --------------------------------------------------------------------------- public vocabulary


class ComponentKind(StrEnum):
    """The five kinds of collector components; the value is the config section's singular."""

    RECEIVER = "receiver"
    PROCESSOR = "processor"
    EXPORTER = "exporter"
    CONNECTOR = "connector"
    EXTENSION = "extension"

    @property
    def section(self) -> str:
        """The top-level config section holding this kind ("receivers", ...)."""
        return f"{self.value}s"


class Signal(StrEnum):
    """Pipeline signals the pinned collector accepts (profiles is gated off)."""

    TRACES = "traces"
    METRICS = "metrics"
    LOGS = "logs"


Stage = Literal["decode", "validate", "build", "startup", "policy"]


class RuleInfo(NamedTuple):
    """What a rule checks and where the rule comes from."""

    summary: str
    reference: str
    policy: bool = False


RULES: Mapping[str, RuleInfo] = {
    # README B.2 item 1-2: structure
    "config-empty": RuleInfo("the config defines no component at all", "B.2 #2"),
    "config-no-receivers": RuleInfo("no receiver is configured", "B.2 #2"),
    "config-no-exporters": RuleInfo("no exporter is configured", "B.2 #2"),
    "invalid-keys": RuleInfo("unknown keys (strict decode) at the top level, in service or a component", "B.2 #1"),
    "invalid-value-type": RuleInfo("a value has the wrong type or cannot be parsed", "B.2 #1, #7"),
    # item 3: ids and types
    "invalid-component-id": RuleInfo("a component id does not match type[/name]", "B.2 #3"),
    "unknown-component-type": RuleInfo("the type is not compiled into otelcol-obsctl", "B.2 #3"),
    # item 4: extensions
    "service-extension-not-configured": RuleInfo("service.extensions names an undefined extension", "B.2 #4"),
    # item 5: pipelines
    "invalid-pipeline-id": RuleInfo("a pipeline id is not traces|metrics|logs[/name]", "B.2 #5"),
    "service-no-pipelines": RuleInfo("service.pipelines is empty", "B.2 #5"),
    "pipeline-no-receivers": RuleInfo("a pipeline has no receiver", "B.2 #5"),
    "pipeline-no-exporters": RuleInfo("a pipeline has no exporter", "B.2 #5"),
    "pipeline-duplicate-processor": RuleInfo("a processor appears twice in one pipeline", "B.2 #5"),
    "pipeline-references-undefined-component": RuleInfo(
        "a pipeline references a receiver, processor or exporter that is not configured", "B.2 #5"
    ),
    "pipeline-signal-unsupported": RuleInfo(
        "a component is used in a pipeline whose signal it does not support", "B.2 #5, #7"
    ),
    # item 6: connectors
    "connector-ambiguous-id": RuleInfo("an id is both a connector and a receiver or exporter", "B.2 #6"),
    "connector-not-used-as-receiver": RuleInfo(
        "a connector exports from a pipeline but no supported pipeline receives from it", "B.2 #6"
    ),
    "connector-not-used-as-exporter": RuleInfo(
        "a connector feeds a pipeline but no supported pipeline exports to it", "B.2 #6"
    ),
    "pipeline-cycle": RuleInfo("connectors chain pipelines into a cycle", "B.2 #6"),
    # item 7: each component's own checks
    "component-missing-required-field": RuleInfo("a required field is missing or empty", "B.2 #7"),
    "component-value-out-of-range": RuleInfo("a number or duration is outside its allowed range", "B.2 #7"),
    "component-invalid-value": RuleInfo("a value is not one the component accepts", "B.2 #7"),
    "component-conflicting-fields": RuleInfo("fields that exclude each other are set together", "B.2 #7"),
    "component-duplicate-entry": RuleInfo("an entry that must be unique is repeated", "B.2 #7"),
    # obsctl's own policy
    "policy-memory-limiter-first": RuleInfo(
        "memory_limiter must be the first processor of every pipeline that ingests from a receiver",
        "obsctl policy (README B.2 component table: memory_limiter first)",
        policy=True,
    ),
    "policy-batch-last": RuleInfo(
        "batch must be the last processor of every pipeline",
        "obsctl policy (README B.2 component table: batch after memory_limiter/samplers)",
        policy=True,
    ),
    "policy-explicit-endpoint": RuleInfo(
        "prometheusremotewrite must name its endpoint as an http(s) URL (the collector silently defaults "
        "to a placeholder URL and accepts opaque URIs)",
        "obsctl policy (README B.2 component table: prometheusremotewrite endpoint)",
        policy=True,
    ),
}


class CollectorConfigProblem(NamedTuple):
    """One reason the collector (or obsctl's policy) rejects a config.

    `component` names where the problem is, in the collector's notation
    ("processors::memory_limiter", "service::pipelines::traces", "service::extensions",
    "receivers" for a section, "config" for the whole file); `rule` is a key of `RULES`;
    `message` is human-readable and names both. `stage` says when the real collector notices:
    "decode"/"validate"/"build" all fail `otelcol validate`, "startup" only fails a real start
    (tail_sampling policies), "policy" is obsctl's own and never checked by the collector.
    """

    component: str
    rule: str
    message: str
    stage: Stage = "validate"

    @property
    def policy(self) -> bool:
        """True for obsctl policy violations, which the collector itself accepts."""
        return RULES[self.rule].policy


def _problem(component: str, rule: str, detail: str, stage: Stage = "validate") -> CollectorConfigProblem:
    return CollectorConfigProblem(component, rule, f"{component}: {detail} (rule {rule})", stage)


# --------------------------------------------------------------------------- component ids

_TYPE_RE = re.compile(r"^[a-zA-Z][0-9a-zA-Z_]{0,62}$")
_NAME_MAX = 1024


def _name_char_ok(ch: str) -> bool:
    # The collector rejects separators (Z*), control/format (C*) and symbols (S*) in names.
    return unicodedata.category(ch)[0] not in "ZCS"


class ComponentID(NamedTuple):
    """A component id `type[/name]`, validated like the collector's component.ID."""

    type: str
    name: str = ""

    @classmethod
    def parse(cls, text: str) -> ComponentID:
        """Parse `type[/name]`; raise ValueError with the collector's wording when invalid."""
        type_part, sep, name = text.partition("/")
        type_part = type_part.strip()
        if sep:
            name = name.strip()
            if not name:
                raise ValueError(f'in "{text}" id: the part after / should not be empty')
        if not type_part:
            raise ValueError(f'in "{text}" id: the part before / should not be empty')
        if not _TYPE_RE.match(type_part):
            raise ValueError(
                f'in "{text}" id: invalid character(s) in type "{type_part}" '
                f"(must match {_TYPE_RE.pattern})"
            )
        if len(name) > _NAME_MAX:
            raise ValueError(f'in "{text}" id: name is longer than {_NAME_MAX} characters')
        if name and not all(_name_char_ok(ch) for ch in name):
            raise ValueError(f'in "{text}" id: invalid character(s) in name "{name}"')
        return cls(type_part, name)

    def __str__(self) -> str:
        return f"{self.type}/{self.name}" if self.name else self.type


class _PipelineID(NamedTuple):
    signal: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.signal}/{self.name}" if self.name else self.signal


# --------------------------------------------------------------------------- decoding errors


class _Reject(Exception):
    """Why a value or a block is rejected: a rule id of RULES, a detail and the collector's stage."""

    def __init__(self, rule: str, detail: str, stage: Stage = "validate") -> None:
        super().__init__(detail)
        self.rule, self.detail, self.stage = rule, detail, stage


def _fail(rule: str, detail: str, stage: Stage = "validate") -> _Reject:
    """Build the error a block's check raises."""
    return _Reject(rule, detail, stage)


Loc = tuple[int | str, ...]


class _Error(NamedTuple):
    """One decoding error at `loc` (keys and list indexes from the component body).

    `kind` is a rule id of RULES, or "extra" (unknown key), "mapping"/"list" (wrong container),
    "missing" (a required key is absent).
    """

    loc: Loc
    kind: str
    detail: str = ""
    stage: Stage = "decode"
    value: Any = None


class DecodeError(ValueError):
    """A block did not decode or did not pass its checks; `errors` says where and why."""

    def __init__(self, errors: Sequence[_Error]) -> None:
        super().__init__("; ".join(f"{_dotted(e.loc) or '(body)'}: {e.kind} {e.detail}" for e in errors))
        self.errors = list(errors)


# --------------------------------------------------------------------------- scalar decoding
# The collector decodes with mapstructure, WeaklyTypedInput off: strings stay strings, numbers
# stay numbers (a float into an integer field is truncated), "a,b" becomes a list of strings,
# durations are Go duration strings or integer nanoseconds. These decoders do the same.

_GO_TYPES = {bool: "bool", int: "int", float: "float64", str: "string", list: "[]interface {}", dict: "map"}


def _go_type_name(value: Any) -> str:
    return next((name for py, name in _GO_TYPES.items() if isinstance(value, py)), type(value).__name__)


def _type_error(expected: str, value: Any) -> _Reject:
    return _Reject("invalid-value-type",
                   f"expected type '{expected}', got unconvertible type '{_go_type_name(value)}'", "decode")


def _int_in(expected: str, lo: int, hi: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(expected, value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise _type_error(expected, value)
            value = int(value)
        number = int(value)
        if number < lo or number > hi:
            raise _Reject("invalid-value-type", f"cannot parse value as '{expected}': {number} overflows {expected}",
                          "decode")
        return number

    return check


def _strict_str(value: Any) -> str:
    if not isinstance(value, str):
        raise _type_error("string", value)
    return value


def _strict_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _type_error("bool", value)
    return value


def _float64(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error("float64", value)
    return float(value)


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [] if value == "" else value.split(",")
    if not isinstance(value, list):
        raise _type_error("[]string", value)
    for item in value:
        if not isinstance(item, str):
            raise _type_error("string", item)
    return list(value)


_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9,
                   "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_NUMBER = re.compile(r"(\d*)(?:\.(\d*))?")
_DURATION_UNIT = re.compile(r"[^\d.]*")


def parse_go_duration(text: str) -> int:
    """Parse a Go duration ("1s", "1m30s", "250ms", "-2h") into nanoseconds, like time.ParseDuration."""
    rest = text
    sign = 1
    if rest[:1] in ("+", "-") and rest:
        sign = -1 if rest[0] == "-" else 1
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0.0
    while rest:
        number = _DURATION_NUMBER.match(rest)
        assert number is not None  # the pattern also matches the empty string
        whole, frac = number.group(1), number.group(2)
        if not whole and not frac:
            raise ValueError(f'time: invalid duration "{text}"')
        rest = rest[number.end():]
        unit_match = _DURATION_UNIT.match(rest)
        unit = unit_match.group(0) if unit_match else ""
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        rest = rest[len(unit):]
        total += float(f"{whole or 0}.{frac or 0}") * _DURATION_UNITS[unit]
    return sign * round(total)


_INT64 = _int_in("time.Duration", -(2**63), 2**63 - 1)


def _duration(value: Any) -> int:
    if isinstance(value, str):
        try:
            return parse_go_duration(value)
        except ValueError as err:
            raise _Reject("invalid-value-type", str(err), "decode") from None
    return _INT64(value)


def _component_id_str(value: Any) -> str:
    text = _strict_str(value)
    try:
        ComponentID.parse(text)
    except ValueError as err:
        raise _Reject("invalid-component-id", str(err), "decode") from None
    return text


def _int8_or_text(value: Any) -> str:
    # Go enums declared as int8 with a text form (spanmetrics Unit, zap Level) also decode from a
    # plain YAML integer; keep it as "#<n>" so the text checks can tell it apart.
    if isinstance(value, int) and not isinstance(value, bool):
        return f"#{_int_in('int8', -128, 127)(value)}"
    return _strict_str(value)


def _any(value: Any) -> Any:
    return value


Decoder = Callable[[Any], Any]
"""A scalar column type: returns the decoded value or raises _Reject."""

Str: Decoder = _strict_str
Bool: Decoder = _strict_bool
Int: Decoder = _int_in("int", -(2**63), 2**63 - 1)
Int32: Decoder = _int_in("int32", -(2**31), 2**31 - 1)
UInt32: Decoder = _int_in("uint32", 0, 2**32 - 1)
UInt64: Decoder = _int_in("uint64", 0, 2**64 - 1)
Float64: Decoder = _float64
StrList: Decoder = _str_list
Duration: Decoder = _duration
"""A Go time.Duration in nanoseconds."""
ComponentRef: Decoder = _component_id_str
Int8OrText: Decoder = _int8_or_text
AnyValue: Decoder = _any

_SECOND = 10**9


# --------------------------------------------------------------------------- field tables
# Every config block, a component's own and the shared ones it nests (TLS, HTTP/gRPC client and
# server, queues, sampling policies, ...), is one `Table`: {key: (type, default)} as the
# collector's config struct declares it, plus the checks of its Validate. One decoder below walks
# any table; moving to the next collector release means editing rows, not code.


FieldRow = tuple[Any, Any]
"""One row of a field table: (type, default), as the collector's config struct declares the key.

The type is a scalar decoder (Str, Int, Duration, ...), a nested Table, ListOf(...) or MapOf(...).
The default is the value when the key is absent or null; REQUIRED makes the key mandatory, and a
Table as default stands for that table's defaults."""

REQUIRED: Any = object()
Check = Callable[[Any], None]


class Block:
    """A decoded config block: its keys as attributes (`cfg.endpoint`, `cfg["not"]`), defaults filled in.

    `fields_set` holds the keys the config set (not null), as mapstructure saw them.
    """

    fields_set: frozenset[str]

    def __init__(self, values: dict[str, Any], fields_set: frozenset[str]) -> None:
        self.__dict__.update(values)
        self.__dict__["fields_set"] = fields_set

    def __getattr__(self, name: str) -> Any:  # only reached for keys the table does not have
        raise AttributeError(name)

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]

    def __repr__(self) -> str:
        return f"Block({self.__dict__!r})"


class Table:
    """A config block's field table and checks; `decode` turns a mapping into a Block.

    `optional` marks a configoptional section (`enabled: false` switches it off: decoded, not
    checked). `lenient` marks blocks that squash-embed confighttp's Client/ServerConfig: the
    collector decodes those, and the plain blocks nested in them, ignoring unknown keys; strictness
    resumes in optional sections, which decode on their own. `extra` is what unknown keys are:
    "forbid" (errors), "allow" (kept), "remain" (a policy extension's settings: any mapping).
    `null_means_empty` lists keys whose null means "present with defaults".
    """

    __slots__ = ("__plan", "checks", "doc", "extra", "fields", "lenient", "name", "normalisers",
                 "null_means_empty", "optional")

    def __init__(self, name: str, fields: Mapping[str, FieldRow], checks: tuple[Check, ...] = (),
                 normalisers: tuple[Callable[[Any], Any], ...] = (), *, optional: bool = False,
                 lenient: bool = False, null_means_empty: frozenset[str] = frozenset(),
                 extra: Literal["forbid", "allow", "remain"] = "forbid", doc: str = "") -> None:
        self.name, self.fields, self.checks, self.normalisers = name, fields, checks, normalisers
        self.optional, self.lenient, self.null_means_empty, self.extra = optional, lenient, null_means_empty, extra
        self.doc = doc
        self.__plan: _Plan | None = None

    def __repr__(self) -> str:
        return f"Table({self.name!r}, {list(self.fields)!r})"

    def decode(self, data: Any) -> Block:
        """Decode and check `data`; raise DecodeError listing every problem."""
        errors: list[_Error] = []
        block = _decode_block(self, data, (), errors)
        if errors or block is None:
            raise DecodeError(errors)
        return block

    def defaults(self, **overrides: Any) -> Block:
        """The block as an absent (or empty) section decodes, without its checks."""
        return Block(self._plan.defaults | overrides, frozenset(overrides))

    @property
    def _plan(self) -> _Plan:
        if self.__plan is None:  # built on first decode, so importing the module stays cheap
            self.__plan = self._make_plan()
        return self.__plan

    def _make_plan(self) -> _Plan:
        defaults = {key: _default(default) for key, (_, default) in self.fields.items()
                    if default is not REQUIRED}
        required = tuple(key for key, (_, default) in self.fields.items() if default is REQUIRED)
        order: dict[int | str, int] = {key: index for index, key in enumerate(self.fields)}
        return _Plan(defaults, required, order)


class _Plan(NamedTuple):
    defaults: dict[str, Any]  # shared read-only values (nested defaults are Blocks nobody mutates)
    required: tuple[str, ...]
    order: dict[int | str, int]  # a key's place in the table: errors are reported in table order


class ListOf(NamedTuple):
    """A list column; `before` reshapes the raw value first (configopaque's map-style lists)."""

    item: FieldType
    before: Callable[[Any], Any] | None = None


class MapOf(NamedTuple):
    """A map column: string keys, values of one type."""

    value: FieldType


FieldType: TypeAlias = "Table | ListOf | MapOf | Decoder"


def _default(default: Any) -> Any:
    if default is REQUIRED:
        return None
    return default.defaults() if isinstance(default, Table) else default


_NO_BASE = Table("", {})


def table_config(name: str, fields: Mapping[str, FieldRow], check: Check | None = None, *,
                 base: Table | None = None, doc: str = "", normalise: Callable[[Any], Any] | None = None,
                 lenient: bool | None = None, optional: bool = False, null_means_empty: Iterable[str] = (),
                 extra: Literal["forbid", "allow", "remain"] | None = None) -> Table:
    """A config block from a field table {key: (type, default)} plus an optional check of the decoded
    values (raise with `_fail`). `base` contributes its rows first (a key listed again keeps its place
    and takes the new row), its checks run first and its normalisers last; `optional=True` adds the
    configoptional `enabled` key. Data to copy from the next release's config struct, not a class."""
    parent = base or _NO_BASE
    rows: dict[str, FieldRow] = {"enabled": (Bool, True)} if optional and not parent.optional else {}
    return Table(
        name=name,
        fields=rows | dict(parent.fields) | dict(fields),
        checks=parent.checks + ((check,) if check is not None else ()),
        normalisers=((normalise,) if normalise is not None else ()) + parent.normalisers,
        optional=optional or parent.optional,
        lenient=parent.lenient if lenient is None else lenient,
        null_means_empty=parent.null_means_empty | frozenset(null_means_empty),
        extra=extra or parent.extra,
        doc=doc or parent.doc or f"`{name}` (field table)",
    )


# --------------------------------------------------------------------------- the decoder

_SEMANTIC_RULES = frozenset(RULES) - {"invalid-value-type", "invalid-component-id", "invalid-keys"}


def _decode_block(table: Table, data: Any, loc: Loc, errors: list[_Error]) -> Block | None:
    """Decode one block into `errors`; None when it (or anything in it) failed."""
    try:
        for normalise in table.normalisers:  # reshape the raw mapping first (shorthand forms)
            data = normalise(data)
    except _Reject as err:
        errors.append(_Error(loc, err.rule, err.detail, err.stage))
        return None
    if table.optional and isinstance(data, dict) and data.get("enabled") is False:
        # The collector still decodes a disabled section (keys, types) but never validates it.
        inner: list[_Error] = []
        _decode_checked(table, data, loc, inner)
        kept = [err for err in inner if err.kind not in _SEMANTIC_RULES]
        errors.extend(kept)
        return None if kept else table.defaults(enabled=False)
    return _decode_checked(table, data, loc, errors)


def _decode_checked(table: Table, data: Any, loc: Loc, errors: list[_Error]) -> Block | None:
    if not isinstance(data, dict):
        errors.append(_Error(loc, "mapping", value=data))
        return None
    start = len(errors)
    block = _decode_fields(table, data, loc, errors)
    if len(errors) > start:  # a block's checks only see a block that decoded
        return None
    try:
        for check in table.checks:
            check(block)
    except _Reject as err:
        errors.append(_Error(loc, err.rule, err.detail, err.stage))
        return None
    return block


def _decode_fields(table: Table, data: dict[Any, Any], loc: Loc, errors: list[_Error]) -> Block:
    fields, plan = table.fields, table._plan
    start = len(errors)
    if table.extra == "remain":
        # Unknown keys are a policy extension's settings (the collector's `,remain` field): each
        # must be a mapping, nulls included.
        errors.extend(_Error((*loc, key), "mapping", value=value) for key, value in data.items()
                      if key not in fields and not isinstance(value, dict))
        data = {key: value for key, value in data.items() if key in fields}
    present: dict[Any, Any] = {}
    for key, value in data.items():
        if value is None:
            if key in table.null_means_empty:
                present[key] = {}
            continue
        present[key] = value
    if table.lenient:
        present = _strip_unknown(table, present)
    values = dict(plan.defaults)
    for key, value in present.items():
        row = fields.get(key)
        if row is not None:
            values[key] = _decode_value(row[0], value, (*loc, key), errors)
        elif table.extra == "forbid":
            errors.append(_Error((*loc, key), "extra"))
        else:
            values[key] = value
    for key in plan.required:
        if key not in present:
            errors.append(_Error((*loc, key), "missing", "Field required"))
    if len(errors) - start > 1:  # report in table order, like the collector's struct walk
        depth, order, last = len(loc), plan.order, len(plan.order)
        errors[start:] = sorted(errors[start:], key=lambda err: order.get(err.loc[depth], last)
                                if len(err.loc) > depth else last)
    return Block(values, frozenset(key for key in present if key in fields))


def _decode_value(kind: Any, value: Any, loc: Loc, errors: list[_Error]) -> Any:
    if isinstance(kind, Table):
        return _decode_block(kind, value, loc, errors)
    if isinstance(kind, ListOf):
        if kind.before is not None:
            value = kind.before(value)
        if not isinstance(value, list):
            errors.append(_Error(loc, "list", value=value))
            return None
        return [_decode_value(kind.item, item, (*loc, index), errors) for index, item in enumerate(value)]
    if isinstance(kind, MapOf):
        if not isinstance(value, dict):
            errors.append(_Error(loc, "mapping", value=value))
            return None
        return {key: _decode_value(kind.value, item, (*loc, key), errors) for key, item in value.items()}
    try:
        return kind(value)
    except _Reject as err:
        errors.append(_Error(loc, err.rule, err.detail, err.stage, value))
        return None


def _nested_table(kind: Any) -> tuple[Table | None, bool]:
    """The Table a column holds (directly or as list items), and whether it is a list."""
    if isinstance(kind, Table):
        return kind, False
    if isinstance(kind, ListOf) and isinstance(kind.item, Table):
        return kind.item, True
    return None, False


def _strip_unknown(table: Table, data: dict[Any, Any]) -> dict[Any, Any]:
    """Drop keys `table` does not know, recursively into plain (non-optional) nested blocks."""
    out: dict[Any, Any] = {}
    for key, value in data.items():
        row = table.fields.get(key)
        if row is None:
            continue
        nested, is_list = _nested_table(row[0])
        if nested is None or nested.optional:
            out[key] = value
        elif is_list and isinstance(value, list):
            out[key] = [_strip_unknown(nested, v) if isinstance(v, dict) else v for v in value]
        elif not is_list and isinstance(value, dict):
            out[key] = _strip_unknown(nested, value)
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- shared blocks
# Mirrors of the collector's config/* packages (configtls, configgrpc, confighttp, ...).

_TLS_VERSIONS = {"": 0, "1.0": 10, "1.1": 11, "1.2": 12, "1.3": 13}
_COMPRESSION = {"", "none", "gzip", "zlib", "deflate", "snappy", "x-snappy-framed", "zstd", "lz4"}


TPMConfig = table_config("tpm", {
    "auth": (Str, None),
    "enabled": (Bool, False),
    "owner_auth": (Str, None),
    "path": (Str, None),
})


def _check_tls(tls: Any) -> None:
    if tls.ca_file and tls.ca_pem:
        raise _fail("component-conflicting-fields", "tls: set either ca_file or ca_pem, not both")
    if tls.cert_file and tls.cert_pem:
        raise _fail("component-conflicting-fields", "tls: set either cert_file or cert_pem, not both")
    if tls.key_file and tls.key_pem:
        raise _fail("component-conflicting-fields", "tls: set either key_file or key_pem, not both")
    if bool(tls.cert_file or tls.cert_pem) != bool(tls.key_file or tls.key_pem):
        raise _fail("component-missing-required-field", "tls: a certificate needs a key and a key a certificate")
    for field in ("min_version", "max_version"):
        if getattr(tls, field) not in _TLS_VERSIONS:
            raise _fail("component-invalid-value",
                        f'tls: invalid TLS {field}: unsupported TLS version: "{getattr(tls, field)}"')
    lo, hi = _TLS_VERSIONS[tls.min_version], _TLS_VERSIONS[tls.max_version]
    if lo and hi and hi < lo:
        raise _fail("component-value-out-of-range", "tls: min_version cannot be greater than max_version")


TLSConfig = table_config("tls", {
    "ca_file": (Str, ""),
    "ca_pem": (Str, ""),
    "cert_file": (Str, ""),
    "cert_pem": (Str, ""),
    "key_file": (Str, ""),
    "key_pem": (Str, ""),
    "cipher_suites": (StrList, None),
    "curve_preferences": (StrList, None),
    "include_insecure_cipher_suites": (Bool, False),
    "include_system_ca_certs_pool": (Bool, False),
    "min_version": (Str, ""),
    "max_version": (Str, ""),
    "reload_interval": (Duration, 0),
    "tpm": (TPMConfig, None),
}, _check_tls, doc="configtls.Config: certificates for either side of a connection.")

TLSClientConfig = table_config("tls_client", {
    "insecure": (Bool, False),
    "insecure_skip_verify": (Bool, False),
    "server_name_override": (Str, ""),
}, base=TLSConfig)


def _check_tls_server(tls: Any) -> None:
    if not (tls.cert_file or tls.cert_pem) and not (tls.key_file or tls.key_pem):
        raise _fail("component-missing-required-field",
                    "tls: a server TLS configuration must include both certificate and key")


TLSServerConfig = table_config("tls_server", {
    "client_ca_file": (Str, ""),
    "client_ca_file_reload": (Bool, False),
}, _check_tls_server, base=TLSConfig)
OptionalTLSServerConfig = table_config("tls_server", {}, base=TLSServerConfig, optional=True)

AuthConfig = table_config("auth", {"authenticator": (ComponentRef, REQUIRED)}, optional=True)
HTTPServerAuthConfig = table_config("auth", {"request_params": (StrList, None)}, base=AuthConfig)
MiddlewareConfig = table_config("middleware", {"id": (ComponentRef, REQUIRED)})


def _headers(value: Any) -> Any:
    # configopaque.MapList: a {name: value} mapping or a list of {name, value} pairs.
    if isinstance(value, dict):
        return [{"name": k, "value": v} for k, v in value.items()]
    return value


HeaderPair = table_config("header", {"name": (Str, ""), "value": (Str, "")})
Headers = ListOf(HeaderPair, before=_headers)


def _check_headers(field: str, headers: Sequence[Block] | None) -> None:
    names = [pair.name for pair in headers or ()]
    dups = sorted({name for name in names if names.count(name) > 1})
    if dups:
        raise _fail("component-duplicate-entry", f"{field}: duplicate keys in map-style list: [{' '.join(dups)}]")


DialerConfig = table_config("dialer", {"timeout": (Duration, 0)})

_TRANSPORTS = {"tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "ip", "ip4", "ip6", "unix", "unixgram",
               "unixpacket", "npipe"}

GRPCKeepaliveServerParameters = table_config("server_parameters", {
    "max_connection_idle": (Duration, 0),
    "max_connection_age": (Duration, 0),
    "max_connection_age_grace": (Duration, 0),
    "time": (Duration, 0),
    "timeout": (Duration, 0),
}, optional=True)
GRPCKeepaliveEnforcementPolicy = table_config("enforcement_policy", {
    "min_time": (Duration, 0),
    "permit_without_stream": (Bool, False),
}, optional=True)
GRPCKeepaliveServerConfig = table_config("keepalive", {
    "server_parameters": (GRPCKeepaliveServerParameters, None),
    "enforcement_policy": (GRPCKeepaliveEnforcementPolicy, None),
}, optional=True)


def _check_grpc_server(cfg: Any) -> None:
    if cfg.transport not in _TRANSPORTS:
        raise _fail("component-invalid-value", f'invalid transport type "{cfg.transport}"')
    if cfg.max_recv_msg_size_mib < 0 or cfg.max_recv_msg_size_mib * 1024 * 1024 >= 2**63:
        raise _fail("component-value-out-of-range", f"invalid max_recv_msg_size_mib value: {cfg.max_recv_msg_size_mib}")
    for field in ("read_buffer_size", "write_buffer_size"):
        if getattr(cfg, field) < 0:
            raise _fail("component-value-out-of-range", f"invalid {field} value: {getattr(cfg, field)}")


GRPCServerFields = table_config("grpc", {
    "endpoint": (Str, ""),
    "transport": (Str, "tcp"),
    "dialer": (DialerConfig, None),
    "tls": (OptionalTLSServerConfig, None),
    "max_recv_msg_size_mib": (Int, 0),
    "max_concurrent_streams": (UInt32, 0),
    "read_buffer_size": (Int, 0),
    "write_buffer_size": (Int, 0),
    "keepalive": (GRPCKeepaliveServerConfig, None),
    "auth": (AuthConfig, None),
    "include_metadata": (Bool, False),
    "middlewares": (ListOf(MiddlewareConfig), None),
}, _check_grpc_server, doc="configgrpc.ServerConfig (a gRPC listener).")
GRPCServerConfig = table_config("grpc", {}, base=GRPCServerFields, optional=True,
                                doc="configgrpc.ServerConfig as an optional section (`enabled: false` turns it off).")

CORSConfig = table_config("cors", {
    "allowed_origins": (StrList, None),
    "allowed_headers": (StrList, None),
    "exposed_headers": (StrList, None),
    "max_age": (Int, 0),
}, optional=True)
HTTPKeepaliveServerConfig = table_config("keepalive", {"idle_timeout": (Duration, 0)}, optional=True)


def _check_http_server(cfg: Any) -> None:
    if cfg.transport not in _TRANSPORTS:
        raise _fail("component-invalid-value", f'invalid transport type "{cfg.transport}"')
    _check_headers("response_headers", cfg.response_headers)
    legacy = cfg.idle_timeout or ("keep_alives_enabled" in cfg.fields_set and not cfg.keep_alives_enabled)
    if cfg.keepalive is not None and legacy:
        raise _fail("component-conflicting-fields",
                    "cannot use deprecated keepalive fields (idle_timeout, keep_alives_enabled) alongside "
                    "the 'keepalive' section")


HTTPServerFields = table_config("http", {
    "endpoint": (Str, ""),
    "transport": (Str, "tcp"),
    "dialer": (DialerConfig, None),
    "tls": (OptionalTLSServerConfig, None),
    "cors": (CORSConfig, None),
    "auth": (HTTPServerAuthConfig, None),
    "max_request_body_size": (Int, 0),
    "include_metadata": (Bool, False),
    "response_headers": (Headers, None),
    "compression_algorithms": (StrList, None),
    "read_timeout": (Duration, 0),
    "read_header_timeout": (Duration, 0),
    "write_timeout": (Duration, 0),
    "idle_timeout": (Duration, 0),
    "keep_alives_enabled": (Bool, True),
    "keepalive": (HTTPKeepaliveServerConfig, None),
    "middlewares": (ListOf(MiddlewareConfig), None),
}, _check_http_server, lenient=True, doc="confighttp.ServerConfig (an HTTP listener).")
HTTPServerConfig = table_config("http", {}, base=HTTPServerFields, optional=True,
                                doc="confighttp.ServerConfig as an optional section (`enabled: false` turns it off).")

GRPCKeepaliveClientConfig = table_config("keepalive", {
    "time": (Duration, 0),
    "timeout": (Duration, 0),
    "permit_without_stream": (Bool, False),
}, optional=True)


def _check_compression(value: str) -> None:
    if value not in _COMPRESSION:
        raise _fail("component-invalid-value", f'unsupported compression type "{value}"')


def _check_grpc_client(cfg: Any) -> None:
    _check_compression(cfg.compression)
    _check_headers("headers", cfg.headers)
    if cfg.balancer_name not in ("", "pick_first", "round_robin"):
        raise _fail("component-invalid-value", f"invalid balancer_name: {cfg.balancer_name}")


GRPCClientConfig = table_config("grpc_client", {
    "endpoint": (Str, ""),
    "compression": (Str, ""),
    "tls": (TLSClientConfig, None),
    "keepalive": (GRPCKeepaliveClientConfig, None),
    "read_buffer_size": (Int, 0),
    "write_buffer_size": (Int, 0),
    "wait_for_ready": (Bool, False),
    "headers": (Headers, None),
    "user_agent": (Str, ""),
    "balancer_name": (Str, ""),
    "authority": (Str, ""),
    "auth": (AuthConfig, None),
    "middlewares": (ListOf(MiddlewareConfig), None),
}, _check_grpc_client, doc="configgrpc.ClientConfig (an exporter's gRPC connection).")

CompressionParams = table_config("compression_params", {"level": (Int, 0)})
HTTPKeepaliveClientConfig = table_config("keepalive", {
    "idle_conn_timeout": (Duration, 0),
    "max_idle_conns": (Int, 0),
    "max_idle_conns_per_host": (Int, 0),
}, optional=True)
CookiesConfig = table_config("cookies", {}, optional=True)


def _check_http_client(cfg: Any) -> None:
    _check_compression(cfg.compression)
    _check_headers("headers", cfg.headers)
    legacy = cfg.idle_conn_timeout or cfg.max_idle_conns or cfg.max_idle_conns_per_host or cfg.disable_keep_alives
    if cfg.keepalive is not None and legacy:
        raise _fail("component-conflicting-fields",
                    "cannot use deprecated keepalive fields (idle_conn_timeout, max_idle_conns, "
                    "max_idle_conns_per_host, disable_keep_alives) alongside the 'keepalive' section")


HTTPClientConfig = table_config("http_client", {
    "endpoint": (Str, ""),
    "proxy_url": (Str, ""),
    "tls": (TLSClientConfig, None),
    "read_buffer_size": (Int, 0),
    "write_buffer_size": (Int, 0),
    "timeout": (Duration, 0),
    "headers": (Headers, None),
    "auth": (AuthConfig, None),
    "compression": (Str, ""),
    "compression_params": (CompressionParams, None),
    "max_conns_per_host": (Int, 0),
    "http2_read_idle_timeout": (Duration, 0),
    "http2_ping_timeout": (Duration, 0),
    "cookies": (CookiesConfig, None),
    "force_attempt_http2": (Bool, False),
    "middlewares": (ListOf(MiddlewareConfig), None),
    "keepalive": (HTTPKeepaliveClientConfig, None),
    "idle_conn_timeout": (Duration, 0),
    "max_idle_conns": (Int, 0),
    "max_idle_conns_per_host": (Int, 0),
    "disable_keep_alives": (Bool, False),
}, _check_http_client, lenient=True, doc="confighttp.ClientConfig (an exporter's HTTP client).")


def _check_backoff(cfg: Any) -> None:
    for field in ("initial_interval", "max_interval", "max_elapsed_time", "multiplier"):
        if getattr(cfg, field) < 0:
            raise _fail("component-value-out-of-range",
                        f"retry_on_failure: {field} value must be greater than or equal to 0")
    if not 0 <= cfg.randomization_factor <= 1:
        raise _fail("component-value-out-of-range", "retry_on_failure: randomization_factor must be between 0 and 1")
    if cfg.max_elapsed_time and cfg.max_elapsed_time < cfg.initial_interval:
        raise _fail("component-value-out-of-range",
                    "retry_on_failure: max_elapsed_time must not be less than initial_interval")
    if cfg.max_elapsed_time and cfg.max_elapsed_time < cfg.max_interval:
        raise _fail("component-value-out-of-range",
                    "retry_on_failure: max_elapsed_time must not be less than max_interval")


BackOffConfig = table_config("retry_on_failure", {
    "enabled": (Bool, True),
    "initial_interval": (Duration, 5 * _SECOND),
    "max_interval": (Duration, 30 * _SECOND),
    "max_elapsed_time": (Duration, 300 * _SECOND),
    "multiplier": (Float64, 1.5),
    "randomization_factor": (Float64, 0.5),
}, _check_backoff, doc="configretry.BackOffConfig (`retry_on_failure`).")


_SIZERS = {"requests", "items", "bytes"}

PartitionConfig = table_config("partition", {"metadata_keys": (StrList, None)})
QueueBatchConfig = table_config("batch", {
    "flush_timeout": (Duration, 200 * 10**6),
    "sizer": (Str, None),
    "min_size": (Int, 8192),
    "max_size": (Int, 0),
    "partition": (PartitionConfig, None),
}, optional=True)


def _check_sending_queue(cfg: Any) -> None:
    if cfg.sizer not in _SIZERS:
        raise _fail("component-invalid-value", f'sending_queue: invalid sizer: "{cfg.sizer}"')
    if cfg.num_consumers <= 0:
        raise _fail("component-value-out-of-range", "sending_queue: `num_consumers` must be positive")
    if cfg.queue_size <= 0:
        raise _fail("component-value-out-of-range", "sending_queue: `queue_size` must be positive")
    if cfg.storage is not None and cfg.wait_for_result:
        raise _fail("component-conflicting-fields",
                    "sending_queue: `wait_for_result` is not supported with a persistent queue (`storage`)")
    batch = cfg.batch
    if batch is None or not batch.enabled:
        return
    # The batch inherits the queue's sizer only when the queue names one explicitly.
    inherited = cfg.sizer if "sizer" in cfg.fields_set else "items"
    sizer = batch.sizer if batch.sizer is not None else inherited
    if sizer not in ("items", "bytes"):
        raise _fail("component-invalid-value",
                    f'sending_queue: `batch` supports only `items` or `bytes` sizer, found "{sizer}"')
    if batch.flush_timeout <= 0:
        raise _fail("component-value-out-of-range", "sending_queue: `flush_timeout` must be positive")
    if batch.min_size < 0 or batch.max_size < 0:
        raise _fail("component-value-out-of-range", "sending_queue: batch sizes must be non-negative")
    if 0 < batch.max_size < batch.min_size:
        raise _fail("component-value-out-of-range", "sending_queue: `max_size` must be greater or equal to `min_size`")
    if sizer == cfg.sizer and batch.min_size > cfg.queue_size:
        raise _fail("component-value-out-of-range",
                    "sending_queue: `min_size` must be less than or equal to `queue_size`")


SendingQueueConfig = table_config("sending_queue", {
    "wait_for_result": (Bool, False),
    "sizer": (Str, "requests"),
    "queue_size": (Int, 1000),
    "block_on_overflow": (Bool, False),
    "storage": (ComponentRef, None),
    "num_consumers": (Int, 10),
    "batch": (QueueBatchConfig, None),
}, _check_sending_queue, optional=True, null_means_empty=("batch",),
    doc="exporterhelper.QueueBatchConfig (`sending_queue`).")


def _duplicate_ci(keys: Sequence[str] | None) -> str | None:
    seen: set[str] = set()
    for key in keys or ():
        low = key.lower()
        if low in seen:
            return low
        seen.add(low)
    return None


# --------------------------------------------------------------------------- receivers

OTLPHTTPServerConfig = table_config("http", {
    "traces_url_path": (Str, ""),
    "metrics_url_path": (Str, ""),
    "logs_url_path": (Str, ""),
}, base=HTTPServerConfig)
OTLPProtocols = table_config("protocols", {
    "grpc": (GRPCServerConfig, None),
    "http": (OTLPHTTPServerConfig, None),
}, null_means_empty=("grpc", "http"))


def _check_otlp(cfg: Any) -> None:
    grpc, http = cfg.protocols.grpc, cfg.protocols.http
    if not (grpc is not None and grpc.enabled) and not (http is not None and http.enabled):
        raise _fail(
            "component-missing-required-field",
            "must specify at least one protocol (protocols.grpc or protocols.http) "
            "when using the OTLP receiver",
        )


OTLPReceiverConfig = table_config("otlp", {
    "protocols": (OTLPProtocols, OTLPProtocols),
}, _check_otlp,
    doc='`otlp` receiver: at least one of protocols.grpc / protocols.http.')


# --------------------------------------------------------------------------- processors


def _check_memory_limiter(cfg: Any) -> None:
    rng = "component-value-out-of-range"
    soft_min, hard_min = cfg.min_gc_interval_when_soft_limited, cfg.min_gc_interval_when_hard_limited
    soft_max, hard_max = cfg.max_gc_interval_when_soft_limited, cfg.max_gc_interval_when_hard_limited
    if cfg.check_interval <= 0:
        raise _fail(rng, "'check_interval' must be greater than zero")
    if soft_min < hard_min:
        raise _fail(rng, "'min_gc_interval_when_soft_limited' should be larger than "
                         "'min_gc_interval_when_hard_limited'")
    if soft_max < 0 or hard_max < 0:
        raise _fail(rng, "'max_gc_interval_when_soft_limited' and 'max_gc_interval_when_hard_limited' "
                         "must be non-negative")
    if 0 < soft_max < soft_min or 0 < hard_max < hard_min:
        raise _fail(rng, "a 'max_gc_interval_when_*_limited' must be at least its 'min_gc_interval_*' "
                         "(or 0 to disable)")
    if soft_max > 0 and hard_max > 0 and soft_max < hard_max:
        raise _fail(rng, "'max_gc_interval_when_soft_limited' should be larger than or equal to "
                         "'max_gc_interval_when_hard_limited'")
    if cfg.limit_mib == 0 and cfg.limit_percentage == 0:
        raise _fail("component-missing-required-field",
                    "'limit_mib' or 'limit_percentage' must be greater than zero")
    if cfg.limit_percentage > 100 or cfg.spike_limit_percentage > 100:
        raise _fail(rng, "'limit_percentage' and 'spike_limit_percentage' must be greater than zero "
                         "and less than or equal to hundred")
    if 0 < cfg.limit_mib <= cfg.spike_limit_mib:
        raise _fail(rng, "'spike_limit_mib' must be smaller than 'limit_mib'")
    if 0 < cfg.limit_percentage <= cfg.spike_limit_percentage:
        raise _fail(rng, "'spike_limit_percentage' must be smaller than 'limit_percentage'")


MemoryLimiterConfig = table_config("memory_limiter", {
    "check_interval": (Duration, 0),
    "limit_mib": (UInt32, 0),
    "spike_limit_mib": (UInt32, 0),
    "limit_percentage": (UInt32, 0),
    "spike_limit_percentage": (UInt32, 0),
    "min_gc_interval_when_soft_limited": (Duration, 10 * _SECOND),
    "min_gc_interval_when_hard_limited": (Duration, 0),
    "max_gc_interval_when_soft_limited": (Duration, 30 * _SECOND),
    "max_gc_interval_when_hard_limited": (Duration, 30 * _SECOND),
}, _check_memory_limiter, doc='`memory_limiter`: check_interval > 0, a limit, spike below limit, percentages <= 100.')


def _check_batch(cfg: Any) -> None:
    if 0 < cfg.send_batch_max_size < cfg.send_batch_size:
        raise _fail("component-value-out-of-range",
                    "send_batch_max_size must be greater or equal to send_batch_size")
    dup = _duplicate_ci(cfg.metadata_keys)
    if dup is not None:
        raise _fail("component-duplicate-entry", f'duplicate entry in metadata_keys: "{dup}" (case-insensitive)')
    if cfg.timeout < 0:
        raise _fail("component-value-out-of-range", "timeout must be greater or equal to 0")


BatchConfig = table_config("batch", {
    "timeout": (Duration, 200 * 10**6),
    "send_batch_size": (UInt32, 8192),
    "send_batch_max_size": (UInt32, 0),
    "metadata_keys": (StrList, None),
    "metadata_cardinality_limit": (UInt32, 1000),
}, _check_batch, doc='`batch`: send_batch_max_size >= send_batch_size when set; unique metadata_keys.')


_ACTIONS = ("insert", "update", "upsert", "delete", "hash", "extract", "convert")


AttributeAction = table_config("action", {
    "key": (Str, ""),
    "value": (AnyValue, None),
    "default_value": (AnyValue, None),
    "pattern": (Str, ""),
    "from_attribute": (Str, ""),
    "from_context": (Str, ""),
    "converted_type": (Str, ""),
    "action": (Str, ""),
}, doc="One attribute action of the resource/attributes processors.")


def _action_problem(act: Block, index: int) -> str | None:
    """The collector's complaint about one attribute action (its NewAttrProc checks), or None."""
    action = act.action.lower()
    where = f'action {index} (key "{act.key}")'
    sources = sum((act.value is not None, bool(act.from_attribute), bool(act.from_context)))
    if action in ("delete", "hash"):
        if not act.key and not act.pattern:
            return f'missing required field (at least one of "key" and "pattern") at action {index}'
    elif not act.key:
        return f'missing required field "key" at action {index}'
    if action in ("insert", "update", "upsert"):
        if sources == 0 and act.default_value is None:
            return f'{where}: one of "value", "from_attribute", "from_context" or "default_value" must be specified'
        if sources > 1:
            return f"{where}: multiple value sources are set"
        if act.pattern or act.converted_type:
            return f'{where}: action "{action}" does not use "pattern" or "converted_type"'
    elif action in ("delete", "hash"):
        if act.value is not None or act.from_attribute:
            return f'{where}: action "{action}" does not use "value" or "from_attribute"'
        if act.converted_type:
            return f'{where}: action "{action}" does not use "converted_type"'
        if act.pattern and _regex_error(act.pattern):
            return f'{where}: field "pattern" has invalid pattern "{act.pattern}"'
    elif action == "extract":
        if sources:
            return f'{where}: action "extract" does not use a value source'
        if not act.pattern:
            return f'{where}: missing required field "pattern" for action "extract"'
        if act.converted_type:
            return f'{where}: action "extract" does not use "converted_type"'
        if _regex_error(act.pattern):
            return f'{where}: field "pattern" has invalid pattern "{act.pattern}"'
        if not re.search(r"\(\?P?<[A-Za-z_]\w*>", act.pattern):
            return f'{where}: field "pattern" contains no named matcher groups'
        if re.search(r"\((?!\?)", act.pattern):
            return f'{where}: field "pattern" contains at least one unnamed matcher group'
    elif action == "convert":
        if sources or act.pattern:
            return f'{where}: action "convert" does not use value sources or "pattern"'
        if not act.converted_type:
            return f'{where}: missing required field "converted_type" for action "convert"'
        if act.converted_type not in ("string", "int", "double"):
            return f'{where}: invalid converted_type "{act.converted_type}" (string, int or double)'
    else:
        return f'{where}: unsupported action "{act.action}" (one of {", ".join(_ACTIONS)})'
    return None


def _regex_error(pattern: str) -> bool:
    # Go's RE2 syntax: translate named groups (?P<x>) / (?<x>) which Python also accepts.
    try:
        re.compile(pattern)
    except re.error:
        return True
    return False


def _rule_for_action_problem(text: str) -> str:
    if "missing required" in text or "must be specified" in text:
        return "component-missing-required-field"
    if "does not use" in text or "multiple value sources" in text:
        return "component-conflicting-fields"
    return "component-invalid-value"


def _check_actions(actions: Sequence[Block]) -> None:
    for index, action in enumerate(actions):
        text = _action_problem(action, index)
        if text is not None:
            raise _fail(_rule_for_action_problem(text), text, "build")


def _check_resource(cfg: Any) -> None:
    if not cfg.attributes:
        raise _fail("component-missing-required-field", 'missing required field "attributes"')
    _check_actions(cfg.attributes)


ResourceProcessorConfig = table_config("resource", {
    "attributes": (ListOf(AttributeAction), None),
}, _check_resource,
    doc='`resource`: a non-empty `attributes` list of actions.')


RegexpCacheConfig = table_config("regexp", {
    "cacheenabled": (Bool, False),
    "cachemaxnumentries": (Int, 0),
})


MatchAttribute = table_config("match_attribute", {
    "key": (Str, ""),
    "value": (AnyValue, None),
})


MatchLibrary = table_config("match_library", {
    "name": (Str, ""),
    "version": (Str, None),
})


SeverityNumberMatch = table_config("severity_number_match", {
    "min": (AnyValue, None),
    "match_undefined": (Bool, False),
})


def _check_match_type(where: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise _fail("component-invalid-value", f"{where}: unrecognized match_type: '{value}', valid types are: "
                    f"[{' '.join(allowed)}]", "build")


def _check_match_properties(cfg: Any) -> None:
    _check_match_type("match", cfg.match_type, ("regexp", "strict"))
    criteria = (cfg.services, cfg.span_names, cfg.span_kinds, cfg.log_bodies, cfg.log_severity_texts,
                cfg.log_severity_number, cfg.metric_names, cfg.attributes, cfg.resources, cfg.libraries)
    if not any(criteria):
        raise _fail("component-missing-required-field",
                    "an include/exclude block needs at least one matching criterion "
                    "(attributes, resources, libraries, services, span_names, ...)", "build")


MatchProperties = table_config("match", {
    "match_type": (Str, ""),
    "regexp": (RegexpCacheConfig, None),
    "services": (StrList, None),
    "span_names": (StrList, None),
    "span_kinds": (StrList, None),
    "log_bodies": (StrList, None),
    "log_severity_texts": (StrList, None),
    "log_severity_number": (SeverityNumberMatch, None),
    "metric_names": (StrList, None),
    "attributes": (ListOf(MatchAttribute), None),
    "resources": (ListOf(MatchAttribute), None),
    "libraries": (ListOf(MatchLibrary), None),
}, _check_match_properties,
    doc="filterconfig.MatchProperties: the legacy include/exclude block (attributes, filter spans).")


MetricMatchProperties = table_config("metrics_match", {
    "match_type": (Str, ""),
    "regexp": (RegexpCacheConfig, None),
    "metric_names": (StrList, None),
    "expressions": (StrList, None),
    "resource_attributes": (ListOf(MatchAttribute), None),
}, lambda cfg: _check_match_type("metrics", cfg.match_type, ("regexp", "strict", "expr")),
    doc="filter processor `metrics.include/exclude` (legacy).")


LogSeverityMatch = table_config("log_severity_match", {
    "min": (Str, ""),
    "match_undefined": (Bool, False),
})


LogMatchProperties = table_config("logs_match", {
    "match_type": (Str, ""),
    "resource_attributes": (ListOf(MatchAttribute), None),
    "record_attributes": (ListOf(MatchAttribute), None),
    "severity_texts": (StrList, None),
    "severity_number": (LogSeverityMatch, None),
    "bodies": (StrList, None),
}, lambda cfg: _check_match_type("logs", cfg.match_type, ("regexp", "strict")),
    doc="filter processor `logs.include/exclude` (legacy).")


def _check_attributes(cfg: Any) -> None:
    if not cfg.actions:
        raise _fail("component-missing-required-field", 'missing required field "actions"')
    _check_actions(cfg.actions)


AttributesProcessorConfig = table_config("attributes", {
    "actions": (ListOf(AttributeAction), None),
    "include": (MatchProperties, None),
    "exclude": (MatchProperties, None),
}, _check_attributes,
    doc='`attributes`: a non-empty `actions` list, optional include/exclude match blocks.')


_ERROR_MODES = {"ignore", "propagate", "silent"}


def _check_error_mode(value: str | None, where: str = "error_mode") -> None:
    if value is not None and value.lower() not in _ERROR_MODES:
        raise _fail("component-invalid-value", f'{where}: unknown error mode "{value}" (ignore, propagate, silent)')


# OTTL's lexer tokens (pkg/ottl grammar), tried in order like the collector's lexer. Only a lexical
# check: a statement that lexes may still not parse (OTTL grammar and functions are not modelled).
_OTTL_LEXEMES = (
    r'0x[a-fA-F0-9]+|(\d+\.\d*|\d*\.\d+)([eE][-+]?\d+)?|\d+|"(\\.|[^\\"])*"'
    r"|==|!=|>=|<=|=>|[><=+\-/*(){}:,.\[\]]|[A-Za-z_][A-Za-z0-9_]*|\s+"
)


@functools.cache
def _ottl_token() -> re.Pattern[str]:
    return re.compile(_OTTL_LEXEMES)  # compiled on first OTTL statement, not at import
_OTTL_PAIRS = {")": "(", "]": "[", "}": "{"}


def ottl_lexical_problem(text: str) -> str | None:
    """Why OTTL's lexer (or bracket matching) rejects `text`, or None if it lexes cleanly."""
    if not text.strip():
        return "statement has invalid syntax: empty statement"
    stack: list[str] = []
    pos = 0
    while pos < len(text):
        match = _ottl_token().match(text, pos)
        if match is None or match.end() == pos:
            return f'statement has invalid syntax: 1:{pos + 1}: lexer: invalid input text "{text[pos:pos + 10]}"'
        lexeme = match.group(0)
        if lexeme in ("(", "[", "{"):
            stack.append(lexeme)
        elif lexeme in _OTTL_PAIRS and (not stack or stack.pop() != _OTTL_PAIRS[lexeme]):
            return f"statement has invalid syntax: 1:{pos + 1}: unexpected {lexeme!r}"
        pos = match.end()
    if stack:
        return f"statement has invalid syntax: unclosed {stack[-1]!r}"
    return None


_OTTL_KEYWORDS = {"and", "or", "not", "true", "false", "nil", "where"}


def ottl_path_roots(text: str) -> list[str]:
    """First segments of the paths in an OTTL statement (`span` in `span.attributes["x"]`)."""
    tokens = [m.group(0) for m in _ottl_token().finditer(text) if not m.group(0).isspace()]
    roots: list[str] = []
    for index, token in enumerate(tokens):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", token) or token in _OTTL_KEYWORDS:
            continue
        before = tokens[index - 1] if index else ""
        after = tokens[index + 1] if index + 1 < len(tokens) else ""
        if before == "." or after in ("(", "="):
            continue  # a later path segment, a function call or a named argument
        roots.append(token)
    return roots


def _check_inferred_context(where: str, texts: Sequence[str], contexts: set[str]) -> None:
    # Without `context`, the collector infers it from the paths' first segments.
    roots = [root for text in texts for root in ottl_path_roots(text)]
    if not roots or any(root not in contexts for root in roots):
        raise _fail("component-missing-required-field",
                    f"{where}: unable to infer context from {list(texts)!r}: without `context`, every path "
                    f"must start with a context name ({', '.join(sorted(contexts))})")


def _check_ottl(where: str, texts: Sequence[str] | None, stage: Stage = "validate") -> None:
    for text in texts or ():
        found = ottl_lexical_problem(text)
        if found is not None:
            raise _fail("component-invalid-value", f"{where}: unable to parse OTTL {text!r}: {found}", stage)


ContextConditions = table_config("context_conditions", {
    "context": (Str, None),
    "conditions": (StrList, None),
    "error_mode": (Str, None),
})


def _basic_or_advanced(value: Any, item_key: str) -> Any:
    # A list of plain strings is the "basic" style: one group without an explicit context.
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [{item_key: value}]
    if isinstance(value, list) and any(isinstance(v, str) for v in value):
        raise _fail("component-conflicting-fields",
                    "configuring multiple configuration styles is not supported, please use only "
                    "Basic configuration or only Advanced configuration")
    return value


_FILTER_CONTEXTS = {
    "trace_conditions": {"resource", "scope", "span", "spanevent"},
    "metric_conditions": {"resource", "scope", "metric", "datapoint"},
    "log_conditions": {"resource", "scope", "log"},
    "profile_conditions": {"resource", "scope", "profile"},
}


FilterTraces = table_config("filter_traces", {
    "resource": (StrList, None),
    "span": (StrList, None),
    "spanevent": (StrList, None),
})


FilterMetrics = table_config("filter_metrics", {
    "include": (MetricMatchProperties, None),
    "exclude": (MetricMatchProperties, None),
    "regexp": (RegexpCacheConfig, None),
    "resource": (StrList, None),
    "metric": (StrList, None),
    "datapoint": (StrList, None),
})


FilterLogs = table_config("filter_logs", {
    "include": (LogMatchProperties, None),
    "exclude": (LogMatchProperties, None),
    "resource": (StrList, None),
    "log_record": (StrList, None),
})


FilterProfiles = table_config("filter_profiles", {
    "resource": (StrList, None),
    "profile": (StrList, None),
})


FilterSpans = table_config("filter_spans", {
    "include": (MatchProperties, None),
    "exclude": (MatchProperties, None),
})


def _check_filter(cfg: Any) -> None:
    _check_error_mode(cfg.error_mode)
    t, m, lg = cfg.traces, cfg.metrics, cfg.logs
    conflict = "component-conflicting-fields"
    if t and (t.resource or t.span or t.spanevent) and cfg.spans and (cfg.spans.include or cfg.spans.exclude):
        raise _fail(conflict, 'cannot use "traces.*" conditions and "spans.include/exclude" together')
    if m and (m.resource or m.metric or m.datapoint) and (m.include or m.exclude):
        raise _fail(conflict, 'cannot use "metrics.*" conditions and "metrics.include/exclude" together')
    if lg and (lg.resource or lg.log_record) and (lg.include or lg.exclude):
        raise _fail(conflict, 'cannot use "logs.*" conditions and "logs.include/exclude" together')
    if cfg.trace_conditions and t and (t.resource or t.span or t.spanevent):
        raise _fail(conflict, 'cannot use "trace_conditions" and "traces.*" together')
    if cfg.metric_conditions and m and (m.resource or m.metric or m.datapoint or m.include or m.exclude):
        raise _fail(conflict, 'cannot use "metric_conditions" and "metrics.*" together')
    if cfg.log_conditions and lg and (lg.resource or lg.log_record or lg.include or lg.exclude):
        raise _fail(conflict, 'cannot use "log_conditions" and "logs.*" together')
    for key, contexts in _FILTER_CONTEXTS.items():
        for index, group in enumerate(getattr(cfg, key) or ()):
            if group.context is not None and group.context.lower() not in contexts:
                raise _fail("component-invalid-value", f'{key}[{index}].context: unknown context '
                            f'"{group.context}" (one of {", ".join(sorted(contexts))})')
            _check_error_mode(group.error_mode, f"{key}[{index}].error_mode")
            _check_ottl(f"{key}[{index}]", group.conditions)
            if group.context is None and group.conditions:
                _check_inferred_context(f"{key}[{index}]", group.conditions, contexts)
    for section, names in (("traces", ("resource", "span", "spanevent")),
                           ("metrics", ("resource", "metric", "datapoint")),
                           ("logs", ("resource", "log_record")), ("profiles", ("resource", "profile"))):
        block = getattr(cfg, section)
        for name in names:
            _check_ottl(f"{section}.{name}", getattr(block, name) if block is not None else None)


def _normalise_filter(data: Any) -> Any:
    if isinstance(data, dict):
        data = dict(data)
        for key in _FILTER_CONTEXTS:
            if key in data:
                data[key] = _basic_or_advanced(data[key], "conditions")
    return data


FilterProcessorConfig = table_config("filter", {
    "error_mode": (Str, None),
    "spans": (FilterSpans, None),
    "traces": (FilterTraces, None),
    "metrics": (FilterMetrics, None),
    "logs": (FilterLogs, None),
    "profiles": (FilterProfiles, None),
    "trace_conditions": (ListOf(ContextConditions), None),
    "metric_conditions": (ListOf(ContextConditions), None),
    "log_conditions": (ListOf(ContextConditions), None),
    "profile_conditions": (ListOf(ContextConditions), None),
}, _check_filter, normalise=_normalise_filter,
    doc='`filter`: OTTL conditions per signal (not parsed here) or legacy include/exclude.')


ContextStatements = table_config("context_statements", {
    "context": (Str, None),
    "conditions": (StrList, None),
    "statements": (StrList, None),
    "error_mode": (Str, None),
    "shared_cache": (Bool, False),
})


_TRANSFORM_CONTEXTS = {
    "trace_statements": {"resource", "scope", "span", "spanevent"},
    "metric_statements": {"resource", "scope", "metric", "datapoint", "exemplar"},
    "log_statements": {"resource", "scope", "log"},
    "profile_statements": {"resource", "scope", "profile"},
}


def _check_transform(cfg: Any) -> None:
    _check_error_mode(cfg.error_mode)
    for key, contexts in _TRANSFORM_CONTEXTS.items():
        for index, group in enumerate(getattr(cfg, key) or ()):
            if group.context is not None and group.context.lower() not in contexts:
                raise _fail("component-invalid-value", f'{key}[{index}].context: unknown context '
                            f'"{group.context}" (one of {", ".join(sorted(contexts))})')
            _check_error_mode(group.error_mode, f"{key}[{index}].error_mode")
            _check_ottl(f"{key}[{index}].statements", group.statements)
            _check_ottl(f"{key}[{index}].conditions", group.conditions)
            texts = [*(group.statements or ()), *(group.conditions or ())]
            if group.context is None and texts:
                _check_inferred_context(f"{key}[{index}]", texts, contexts)
    if cfg.flatten_data:
        raise _fail("component-invalid-value",
                    "'flatten_data' requires the 'transform.flatten.logs' feature gate to be enabled")


def _normalise_transform(data: Any) -> Any:
    if isinstance(data, dict):
        data = dict(data)
        for key in _TRANSFORM_CONTEXTS:
            if isinstance(data.get(key), list) and any(isinstance(v, str) for v in data[key]):
                strings = [v for v in data[key] if isinstance(v, str)]
                others = [v for v in data[key] if not isinstance(v, str)]
                if others:
                    raise _fail("component-conflicting-fields",
                                "configuring multiple configuration styles is not supported, please "
                                "use only Basic configuration or only Advanced configuration")
                data[key] = [{"statements": strings}]
    return data


TransformProcessorConfig = table_config("transform", {
    "error_mode": (Str, None),
    "trace_statements": (ListOf(ContextStatements), None),
    "metric_statements": (ListOf(ContextStatements), None),
    "log_statements": (ListOf(ContextStatements), None),
    "profile_statements": (ListOf(ContextStatements), None),
    "flatten_data": (Bool, False),
}, _check_transform, normalise=_normalise_transform,
    doc='`transform`: OTTL statements per signal, in contexts valid for that signal.')


# tail_sampling: policies are only built when the processor starts, so their problems are
# "startup" problems (`otelcol validate` accepts them; the collector then fails to start).

_STATUS_CODES = {"OK", "ERROR", "UNSET"}


LatencyPolicy = table_config("latency", {
    "threshold_ms": (Int, 0),
    "upper_threshold_ms": (Int, 0),
})


NumericAttributePolicy = table_config("numeric_attribute", {
    "key": (Str, ""),
    "min_value": (Int, 0),
    "max_value": (Int, 0),
    "invert_match": (Bool, False),
})


ProbabilisticPolicy = table_config("probabilistic", {
    "hash_salt": (Str, ""),
    "sampling_percentage": (Float64, 0.0),
})


StatusCodePolicy = table_config("status_code", {
    "status_codes": (StrList, None),
})


StringAttributePolicy = table_config("string_attribute", {
    "key": (Str, ""),
    "values": (StrList, None),
    "enabled_regex_matching": (Bool, False),
    "cache_max_size": (Int, 0),
    "invert_match": (Bool, False),
})


RateLimitingPolicy = table_config("rate_limiting", {
    "spans_per_second": (Int, 0),
    "burst_capacity": (Int, 0),
})


BytesLimitingPolicy = table_config("bytes_limiting", {
    "bytes_per_second": (Int, 0),
    "burst_capacity": (Int, 0),
})


SpanCountPolicy = table_config("span_count", {
    "min_spans": (Int32, 0),
    "max_spans": (Int32, 0),
})


TraceStatePolicy = table_config("trace_state", {
    "key": (Str, ""),
    "values": (StrList, None),
})


BooleanAttributePolicy = table_config("boolean_attribute", {
    "key": (Str, ""),
    "value": (Bool, False),
    "invert_match": (Bool, False),
})


OTTLConditionPolicy = table_config("ottl_condition", {
    "error_mode": (Str, None),
    "span": (StrList, None),
    "spanevent": (StrList, None),
})


_LEAF_POLICIES = ("always_sample", "latency", "numeric_attribute", "probabilistic", "status_code",
                  "string_attribute", "rate_limiting", "bytes_limiting", "span_count", "trace_state",
                  "boolean_attribute", "ottl_condition", "trace_flags")


# A policy's keys the collector does not know are kept as settings of a policy extension (its
# `,remain` field) when their value is a mapping; anything else fails to decode.
_SharedPolicy = table_config("policy", {
    "name": (Str, ""),
    "type": (Str, ""),
    "latency": (LatencyPolicy, None),
    "numeric_attribute": (NumericAttributePolicy, None),
    "probabilistic": (ProbabilisticPolicy, None),
    "status_code": (StatusCodePolicy, None),
    "string_attribute": (StringAttributePolicy, None),
    "rate_limiting": (RateLimitingPolicy, None),
    "bytes_limiting": (BytesLimitingPolicy, None),
    "span_count": (SpanCountPolicy, None),
    "trace_state": (TraceStatePolicy, None),
    "boolean_attribute": (BooleanAttributePolicy, None),
    "ottl_condition": (OTTLConditionPolicy, None),
}, extra="remain")


def _leaf_problem(policy: Block) -> tuple[str, str] | None:
    """(rule, detail) for a leaf policy the collector cannot build, else None."""
    kind = policy.type
    if kind == "status_code":
        codes = (policy.status_code.status_codes if policy.status_code else None) or []
        if not codes:
            return "component-missing-required-field", "expected at least one status code to filter on"
        for code in codes:
            if code not in _STATUS_CODES:
                return "component-invalid-value", f'unknown status code "{code}", supported: OK, ERROR, UNSET'
    elif kind == "string_attribute":
        cfg = policy.string_attribute
        if cfg is not None and cfg.enabled_regex_matching:
            for value in cfg.values or ():
                if _regex_error(value):
                    return "component-invalid-value", f"invalid regex `{value}`"
    elif kind == "ottl_condition":
        cfg_o = policy.ottl_condition
        if cfg_o is None or not (cfg_o.span or cfg_o.spanevent):
            return "component-missing-required-field", "expected at least one OTTL condition to filter on"
        if cfg_o.error_mode is not None and cfg_o.error_mode.lower() not in _ERROR_MODES:
            return "component-invalid-value", f'unknown error mode "{cfg_o.error_mode}"'
        for text in [*(cfg_o.span or ()), *(cfg_o.spanevent or ())]:
            found = ottl_lexical_problem(text)
            if found is not None:
                return "component-invalid-value", f"unable to parse OTTL condition {text!r}: {found}"
    elif kind not in _LEAF_POLICIES:
        return "component-invalid-value", f"unknown sampling policy type {kind or '(empty)'}"
    return None


def _not_problem(policy: Block) -> tuple[str, str] | None:
    sub = policy["not"].not_sub_policy if policy["not"] else None
    return _leaf_problem(sub or NotSubPolicy.defaults())


NotSubPolicy = table_config("not_sub_policy", {}, base=_SharedPolicy)


NotPolicy = table_config("not", {
    "not_sub_policy": (NotSubPolicy, None),
})


AndSubPolicy = table_config("and_sub_policy", {"not": (NotPolicy, None)}, base=_SharedPolicy)


def _and_sub_problem(policy: Block) -> tuple[str, str] | None:
    """(rule, detail) for an `and`/`drop` sub-policy, or None."""
    return _not_problem(policy) if policy.type == "not" else _leaf_problem(policy)


AndPolicy = table_config("and", {
    "and_sub_policy": (ListOf(AndSubPolicy), None),
})


DropPolicy = table_config("drop", {
    "drop_sub_policy": (ListOf(AndSubPolicy), None),
})


CompositeSubPolicy = table_config("composite_sub_policy", {"and": (AndPolicy, None)}, base=_SharedPolicy)


def _composite_sub_problem(policy: Block) -> tuple[str, str] | None:
    """(rule, detail) for a composite sub-policy, or None."""
    if policy.type == "and":
        subs = (policy["and"].and_sub_policy if policy["and"] else None) or []
        return _first(_and_sub_problem(sub) for sub in subs)
    return _leaf_problem(policy)


RateAllocation = table_config("rate_allocation", {
    "policy": (Str, ""),
    "percent": (Int, 0),
})


CompositePolicy = table_config("composite", {
    "max_total_spans_per_second": (Int, 0),
    "policy_order": (StrList, None),
    "composite_sub_policy": (ListOf(CompositeSubPolicy), None),
    "rate_allocation": (ListOf(RateAllocation), None),
})


TailSamplingPolicy = table_config("policies", {
    "composite": (CompositePolicy, None),
    "and": (AndPolicy, None),
    "not": (NotPolicy, None),
    "drop": (DropPolicy, None),
}, base=_SharedPolicy, doc="One `policies` entry: a unique non-empty name and a known type with its settings.")


def _policy_problem(policy: Block) -> tuple[str, str] | None:
    """(rule, detail) for a policy and its sub-policies, as the collector's start-up reports."""
    if policy.type == "composite":
        comp = (policy.composite.composite_sub_policy if policy.composite else None) or []
        return _first(_composite_sub_problem(sub) for sub in comp)
    if policy.type == "and":
        ands = (policy["and"].and_sub_policy if policy["and"] else None) or []
        return _first(_and_sub_problem(sub) for sub in ands)
    if policy.type == "drop":
        drops = (policy.drop.drop_sub_policy if policy.drop else None) or []
        return _first(_and_sub_problem(sub) for sub in drops)
    if policy.type == "not":
        return _not_problem(policy)
    return _leaf_problem(policy)


def _first(items: Iterable[tuple[str, str] | None]) -> tuple[str, str] | None:
    return next((item for item in items if item is not None), None)


DecisionCacheConfig = table_config("decision_cache", {
    "sampled_cache_size": (Int, 0),
    "non_sampled_cache_size": (Int, 0),
})


def _check_tail_sampling(cfg: Any) -> None:
    if cfg.sampling_strategy not in ("trace-complete", "span-ingest"):
        raise _fail("component-invalid-value", f'invalid sampling_strategy "{cfg.sampling_strategy}", '
                    'expected one of "trace-complete" or "span-ingest"')
    if cfg.num_shards > 256:
        raise _fail("component-value-out-of-range", f"num_shards ({cfg.num_shards}) must not exceed 256")
    if cfg.tail_storage is not None:
        raise _fail("component-invalid-value",
                    "'tail_storage' requires a feature gate that otelcol-obsctl does not enable")
    names: set[str] = set()
    for policy in cfg.policies or ():
        if not policy.name:
            raise _fail("component-missing-required-field", "policy name cannot be empty", "startup")
        if policy.name in names:
            raise _fail("component-duplicate-entry", f'duplicate policy name "{policy.name}"', "startup")
        names.add(policy.name)
        found = _policy_problem(policy)
        if found is not None:
            rule, detail = found
            raise _fail(rule, f'failed to create policy evaluator for "{policy.name}": {detail}', "startup")


TailSamplingConfig = table_config("tail_sampling", {
    "decision_wait": (Duration, 30 * _SECOND),
    "decision_wait_after_root_received": (Duration, 0),
    "num_traces": (UInt64, 50000),
    "block_on_overflow": (Bool, False),
    "expected_new_traces_per_sec": (UInt64, 0),
    "policies": (ListOf(TailSamplingPolicy), None),
    "decision_cache": (DecisionCacheConfig, None),
    "tail_storage": (ComponentRef, None),
    "sample_on_first_match": (Bool, False),
    "sampling_strategy": (Str, "trace-complete"),
    "drop_pending_traces_on_shutdown": (Bool, False),
    "maximum_trace_size_bytes": (UInt64, 0),
    "num_shards": (UInt32, 1),
}, _check_tail_sampling,
    doc='`tail_sampling` (traces only): policies with unique names and known types.')


# --------------------------------------------------------------------------- exporters


def _grpc_endpoint_problem(endpoint: str) -> str | None:
    """What configgrpc.ClientConfig.Validate says about an endpoint (host:port after any scheme)."""
    if endpoint.startswith("unix://"):
        return None if endpoint[len("unix://"):] else "unix socket path cannot be empty"
    if endpoint.startswith("http://"):
        address = endpoint[len("http://"):]
    elif endpoint.startswith("https://"):
        address = endpoint[len("https://"):]
    elif "://" in endpoint:
        address = endpoint.split("://", 1)[1]
        address = address.split("/", 1)[1] if "/" in address else ""
    else:
        address = endpoint
    if not address:
        return None
    host, sep, port = address.rpartition(":")
    if not sep:
        return f"address {address}: missing port in address"
    if host.startswith("[") != host.endswith("]") or (":" in host and not host.startswith("[")):
        return f"address {address}: too many colons in address"
    if not port.isdigit():
        return f'invalid port "{port}"'
    return None


def _check_otlp_grpc(cfg: Any) -> None:
    address = cfg.endpoint
    for prefix in ("http://", "https://"):
        if address.startswith(prefix):
            address = address[len(prefix):]
    if address.startswith("dns://"):
        address = re.sub(r"^dns:///?", "", address)
    if not address:
        raise _fail("component-missing-required-field", 'requires a non-empty "endpoint"')
    problem = _grpc_endpoint_problem(cfg.endpoint)
    if problem is not None:
        raise _fail("component-invalid-value", f"endpoint: {problem}")


OTLPExporterConfig = table_config("otlp_grpc", {
    "timeout": (Duration, 5 * _SECOND),
    "sending_queue": (SendingQueueConfig, None),
    "retry_on_failure": (BackOffConfig, None),
}, _check_otlp_grpc, base=GRPCClientConfig,
    doc='`otlp` / `otlp_grpc` exporter: a host:port endpoint.')


def _check_otlp_http(cfg: Any) -> None:
    if cfg.encoding not in ("proto", "json"):
        raise _fail("component-invalid-value", f'invalid encoding type: {cfg.encoding} (proto or json)')
    if not any((cfg.endpoint, cfg.traces_endpoint, cfg.metrics_endpoint, cfg.logs_endpoint,
                cfg.profiles_endpoint)):
        raise _fail("component-missing-required-field", "at least one endpoint must be specified")


OTLPHTTPExporterConfig = table_config("otlp_http", {
    "sending_queue": (SendingQueueConfig, None),
    "retry_on_failure": (BackOffConfig, None),
    "traces_endpoint": (Str, ""),
    "metrics_endpoint": (Str, ""),
    "logs_endpoint": (Str, ""),
    "profiles_endpoint": (Str, ""),
    "encoding": (Str, "proto"),
}, _check_otlp_http, base=HTTPClientConfig,
   doc='`otlphttp` / `otlp_http` exporter: a base endpoint or per-signal endpoints.')


def _request_uri_ok(text: str) -> bool:
    """What Go's url.ParseRequestURI accepts: an absolute path, or anything after a `scheme:`."""
    return text.startswith("/") or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", text) is not None


ResourceToTelemetry = table_config("resource_to_telemetry_conversion", {
    "enabled": (Bool, False),
    "exclude_service_attributes": (Bool, False),
    "included": (StrList, None),
    "excluded": (StrList, None),
})


def _r2t_is_empty(cfg: Block) -> bool:
    return not (cfg.enabled or cfg.exclude_service_attributes or cfg.included or cfg.excluded)


RemoteWriteQueue = table_config("remote_write_queue", {
    "enabled": (Bool, True),
    "queue_size": (Int, 10000),
    "num_consumers": (Int, 5),
})


PRWWALConfig = table_config("wal", {
    "directory": (Str, ""),
    "buffer_size": (Int, 0),
    "truncate_frequency": (Duration, 0),
    "lag_record_frequency": (Duration, 0),
}, optional=True)


TargetInfo = table_config("target_info", {
    "enabled": (Bool, True),
})


_TRANSLATION = {"UnderscoreEscapingWithSuffixes", "UnderscoreEscapingWithoutSuffixes",
                "NoUTF8EscapingWithSuffixes", "NoTranslation"}
_RESERVED_RW_HEADERS = {"content-encoding", "content-type", "user-agent", "x-prometheus-remote-write-version"}


def _check_prometheus_remote_write(cfg: Any) -> None:
    rng, bad = "component-value-out-of-range", "component-invalid-value"
    r2t = cfg.resource_to_telemetry_conversion or ResourceToTelemetry.defaults()
    rcl = cfg.resource_constant_labels or ResourceToTelemetry.defaults()
    if rcl.enabled or rcl.exclude_service_attributes:
        raise _fail("component-conflicting-fields",
                    "enabled and exclude_service_attributes are not supported under resource_constant_labels")
    if not _r2t_is_empty(r2t) and not _r2t_is_empty(rcl):
        raise _fail("component-conflicting-fields",
                    "cannot configure both resource_to_telemetry_conversion and resource_constant_labels")
    if (r2t.enabled or r2t.exclude_service_attributes) and (r2t.included or r2t.excluded):
        raise _fail("component-conflicting-fields",
                    "cannot configure both legacy enabled/exclude_service_attributes and included/excluded")
    if cfg.max_batch_request_parallelism is not None and cfg.max_batch_request_parallelism < 1:
        raise _fail(rng, "max_batch_request_parallelism can't be set to below 1")
    queue = cfg.remote_write_queue or RemoteWriteQueue.defaults()
    if queue.queue_size < 0:
        raise _fail(rng, "remote write queue size can't be negative")
    if queue.enabled and queue.queue_size == 0:
        raise _fail(rng, "a 0 size queue will drop all the data")
    if queue.num_consumers < 0:
        raise _fail(rng, "remote write consumer number can't be negative")
    if cfg.max_batch_size_bytes < 0:
        raise _fail(rng, "max_batch_size_bytes must be greater than 0")
    client = cfg.http if cfg.http is not None else cfg
    if client.compression and client.compression != "snappy":
        raise _fail(bad, "compression type must be snappy")
    if cfg.protobuf_message not in ("prometheus.WriteRequest", "io.prometheus.write.v2.Request"):
        raise _fail(bad, f'unknown remote write protobuf message "{cfg.protobuf_message}"')
    if cfg.protobuf_message == "io.prometheus.write.v2.Request":
        raise _fail(bad, "remote write v2 needs a feature gate that otelcol-obsctl does not enable")
    if cfg.translation_strategy and cfg.translation_strategy not in _TRANSLATION:
        raise _fail(bad, f"invalid translation_strategy: {cfg.translation_strategy}")
    if cfg.translation_strategy in ("NoUTF8EscapingWithSuffixes", "NoTranslation"):
        raise _fail(bad, f"translation strategy {cfg.translation_strategy} requires Prometheus Remote Write 2.0")
    for name, value in (cfg.external_labels or {}).items():
        if not name or not value:
            raise _fail(bad, "external labels configuration contains an empty key or value", "build")
    for key in cfg.include_metadata_keys or ():
        if key.lower() in _RESERVED_RW_HEADERS:
            raise _fail(bad, f'include_metadata_keys entry "{key}" collides with a reserved remote write header')
    if "endpoint" not in client.fields_set:
        raise _fail("policy-explicit-endpoint",
                    "no endpoint set: the collector would send to its placeholder "
                    "http://some.url:9411/api/prom/push (obsctl policy)", "policy")
    if not client.endpoint:
        raise _fail("component-missing-required-field",
                    "invalid endpoint: an endpoint URL (…/api/v1/push) is required", "build")
    if not _request_uri_ok(client.endpoint):
        raise _fail(bad, f'invalid endpoint "{client.endpoint}": not an absolute URL or path', "build")
    if not re.match(r"^https?://[^/]", client.endpoint):
        raise _fail("policy-explicit-endpoint",
                    f'endpoint "{client.endpoint}" is not an http(s) URL (obsctl policy)', "policy")


PrometheusRemoteWriteConfig = table_config("prometheus_remote_write", {
    "timeout": (Duration, 5 * _SECOND),
    "retry_on_failure": (BackOffConfig, None),
    "namespace": (Str, ""),
    "remote_write_queue": (RemoteWriteQueue, None),
    "external_labels": (MapOf(Str), None),
    "http": (HTTPClientConfig, None),
    "max_batch_size_bytes": (Int, 3_000_000),
    "max_batch_request_parallelism": (Int, None),
    "resource_to_telemetry_conversion": (ResourceToTelemetry, None),
    "resource_constant_labels": (ResourceToTelemetry, None),
    "wal": (PRWWALConfig, None),
    "target_info": (TargetInfo, None),
    "disable_scope_info": (Bool, False),
    "add_metric_suffixes": (Bool, True),
    "translation_strategy": (Str, ""),
    "send_metadata": (Bool, False),
    "protobuf_message": (Str, "prometheus.WriteRequest"),
    "include_metadata_keys": (StrList, None),
    "convert_explicit_histograms_to_nhcb": (Bool, False),
    "keep_classic_histograms": (Bool, False),
}, _check_prometheus_remote_write, base=HTTPClientConfig,
    doc='`prometheusremotewrite` / `prometheus_remote_write` exporter (metrics only).')


def _check_debug(cfg: Any) -> None:
    level = cfg.verbosity.lower()
    if level not in ("none", "basic", "normal", "detailed"):
        raise _fail("component-invalid-value", f'unknown metrics level "{level}"')
    if level == "none":
        raise _fail("component-invalid-value", f'verbosity level "{cfg.verbosity}" is not supported')
    if cfg.use_internal_logger and cfg.output_paths is not None:
        raise _fail("component-conflicting-fields",
                    "output_paths is not supported when use_internal_logger is true")
    if not cfg.use_internal_logger and cfg.output_paths is not None and not cfg.output_paths:
        raise _fail("component-missing-required-field",
                    "output_paths must not be empty when use_internal_logger is false")


DebugExporterConfig = table_config("debug", {
    "verbosity": (Str, "basic"),
    "sampling_initial": (Int, 2),
    "sampling_thereafter": (Int, 1),
    "use_internal_logger": (Bool, True),
    "output_paths": (StrList, None),
    "sending_queue": (SendingQueueConfig, None),
}, _check_debug, doc='`debug` exporter: verbosity basic|normal|detailed.')


# --------------------------------------------------------------------------- extensions, connectors


HealthCheckPathConfig = table_config("health_check_path", {
    "enabled": (Bool, True),
    "path": (Str, ""),
    "include_attributes": (Bool, False),
})


HealthCheckHTTPConfig = table_config("http", {
    "status": (HealthCheckPathConfig, None),
    "config": (HealthCheckPathConfig, None),
}, base=HTTPServerFields)


ResponseBody = table_config("response_body", {
    "healthy": (Str, ""),
    "unhealthy": (Str, ""),
})


CheckCollectorPipeline = table_config("check_collector_pipeline", {
    "enabled": (Bool, False),
    "interval": (Str, ""),
    "exporter_failure_threshold": (Int, 0),
})


ComponentHealth = table_config("component_health", {
    "include_permanent_errors": (Bool, False),
    "include_recoverable_errors": (Bool, False),
    "recovery_duration": (Duration, 0),
})


def _check_health_check(cfg: Any) -> None:
    if cfg.http is not None or cfg.grpc is not None:
        raise _fail("component-invalid-value",
                    "v2 healthcheck configuration (http/grpc fields) needs the "
                    "extension.healthcheck.useComponentStatus feature gate, which otelcol-obsctl "
                    "does not enable")
    if cfg.use_v2:
        raise _fail("component-missing-required-field", "must specify at least one protocol")
    if not cfg.endpoint:
        raise _fail("component-missing-required-field", "http endpoint required")
    if not cfg.path.startswith("/"):
        raise _fail("component-invalid-value", "path must start with /")


HealthCheckConfig = table_config("health_check", {
    "endpoint": (Str, "localhost:13133"),
    "path": (Str, "/"),
    "response_body": (ResponseBody, None),
    "check_collector_pipeline": (CheckCollectorPipeline, None),
    "use_v2": (Bool, False),
    "grpc": (GRPCServerFields, None),
    "http": (HealthCheckHTTPConfig, None),
    "component_health": (ComponentHealth, None),
}, _check_health_check, base=HTTPServerFields, lenient=False,
    doc="`health_check` extension (legacy v1 form): an endpoint and a path starting with '/'.")


PprofConfig = table_config("pprof", {
    "endpoint": (Str, "localhost:1777"),
    "dialer": (DialerConfig, None),
    "block_profile_fraction": (Int, 0),
    "mutex_profile_fraction": (Int, 0),
    "save_to_file": (Str, ""),
}, doc='`pprof` extension.')


ZPagesExpvar = table_config("expvar", {
    "enabled": (Bool, False),
})


def _check_zpages(cfg: Any) -> None:
    if not cfg.endpoint:
        raise _fail("component-missing-required-field",
                    '"endpoint" is required when using the "zpages" extension')


ZPagesConfig = table_config("zpages", {
    "endpoint": (Str, "localhost:55679"),
    "expvar": (ZPagesExpvar, None),
}, _check_zpages, base=HTTPServerFields, doc='`zpages` extension: an endpoint is required.')


Dimension = table_config("dimension", {
    "name": (Str, ""),
    "default": (Str, None),
    "glob": (Str, ""),
})


ExponentialHistogram = table_config("exponential_histogram", {
    "max_size": (Int32, 160),
}, optional=True)


ExplicitHistogram = table_config("explicit_histogram", {
    "buckets": (ListOf(Duration), None),
}, optional=True)


SpanMetricsHistogram = table_config("span_metrics_histogram", {
    "disable": (Bool, False),
    "unit": (Int8OrText, "ms"),
    "exponential": (ExponentialHistogram, None),
    "explicit": (ExplicitHistogram, None),
    "dimensions": (ListOf(Dimension), None),
})


SpanMetricsExemplars = table_config("span_metrics_exemplars", {
    "enabled": (Bool, False),
    "max_per_data_point": (Int, 0),
})


SpanMetricsEvents = table_config("span_metrics_events", {
    "enabled": (Bool, False),
    "dimensions": (ListOf(Dimension), None),
})


_SPANMETRICS_BUILTIN = {"service.name", "span.kind", "status.code", "span.name"}


def _dimension_problem(dimensions: Sequence[Block] | None) -> str | None:
    names = set(_SPANMETRICS_BUILTIN)
    for dim in dimensions or ():
        if dim.name and dim.glob:
            return f"dimension entry must set only one of `name` or `glob`, got both: name={dim.name!r}"
        if not dim.name and not dim.glob:
            return "dimension entry must set one of `name` or `glob`"
        if dim.name:
            if dim.name in names:
                return f'duplicate dimension name "{dim.name}"'
            names.add(dim.name)
        elif dim.default is not None:
            return f"`default` is not supported on `glob` dimension {dim.glob!r}"
    return None


def _check_span_metrics(cfg: Any) -> None:
    histogram = cfg.histogram or SpanMetricsHistogram.defaults()
    for label, dims in (("dimensions", cfg.dimensions), ("calls dimensions", cfg.calls_dimensions),
                        ("histogram dimensions", histogram.dimensions)):
        found = _dimension_problem(dims)
        if found is not None:
            rule = "component-duplicate-entry" if "duplicate" in found else "component-invalid-value"
            raise _fail(rule, f"failed validating {label}: {found}")
    events = cfg.events or SpanMetricsEvents.defaults()
    if events.enabled:
        found = "no dimensions configured for events" if not events.dimensions else _dimension_problem(
            events.dimensions)
        if found is not None:
            raise _fail("component-invalid-value", f"failed validating event dimensions: {found}")
    if histogram.unit not in ("ms", "s") and not histogram.unit.startswith("#"):
        raise _fail("component-invalid-value", f'unknown unit "{histogram.unit}" (ms or s)')
    exp_on = histogram.exponential is not None and histogram.exponential.enabled
    explicit_on = histogram.explicit is not None and histogram.explicit.enabled
    if exp_on and explicit_on:
        raise _fail("component-conflicting-fields", "use either `explicit` or `exponential` buckets histogram")
    for field in ("metrics_flush_interval", "metrics_expiration", "series_expiration"):
        if getattr(cfg, field) < 0:
            raise _fail("component-value-out-of-range", f"invalid {field}: the duration should be positive")
    delta = cfg.aggregation_temporality == "AGGREGATION_TEMPORALITY_DELTA"
    cache = 1000 if cfg.metric_timestamp_cache_size is None else cfg.metric_timestamp_cache_size
    if delta and cache <= 0:
        raise _fail("component-value-out-of-range", f"invalid delta timestamp cache size: {cache}")
    if cfg.aggregation_cardinality_limit < 0:
        raise _fail("component-value-out-of-range", "invalid aggregation_cardinality_limit: should be positive")
    exemplars = cfg.exemplars or SpanMetricsExemplars.defaults()
    if exemplars.enabled and exemplars.max_per_data_point < 0:
        raise _fail("component-value-out-of-range", "invalid max_per_data_point: should be positive")


SpanMetricsConfig = table_config("span_metrics", {
    "dimensions": (ListOf(Dimension), None),
    "calls_dimensions": (ListOf(Dimension), None),
    "exclude_dimensions": (StrList, None),
    "dimensions_cache_size": (Int, 0),
    "resource_metrics_cache_size": (Int, 1000),
    "resource_metrics_key_attributes": (StrList, None),
    "aggregation_temporality": (Str, "AGGREGATION_TEMPORALITY_CUMULATIVE"),
    "histogram": (SpanMetricsHistogram, None),
    "metrics_flush_interval": (Duration, 60 * _SECOND),
    "metrics_expiration": (Duration, 0),
    "series_expiration": (Duration, 0),
    "metric_timestamp_cache_size": (Int, None),
    "namespace": (Str, "traces.span.metrics"),
    "exemplars": (SpanMetricsExemplars, None),
    "events": (SpanMetricsEvents, None),
    "include_instrumentation_scope": (StrList, None),
    "aggregation_cardinality_limit": (Int, 0),
    "add_resource_attributes": (Bool, False),
    "enable_metrics_sampling_method": (Bool, False),
}, _check_span_metrics,
    doc='`spanmetrics` / `span_metrics` connector (traces -> metrics).')


ForwardConfig = table_config("forward", {}, doc='`forward` connector: no settings.')


def _check_probabilistic_sampler(cfg: Any) -> None:
    if cfg.sampling_percentage < 0:
        raise _fail("component-value-out-of-range", f"sampling rate is negative: {cfg.sampling_percentage:f}%")
    if cfg.mode not in ("", "hash_seed", "equalizing", "proportional"):
        raise _fail("component-invalid-value", f"unknown sampler mode: {cfg.mode!r}")
    if cfg.attribute_source not in ("", "traceID", "record"):
        raise _fail("component-invalid-value", f"invalid attribute source: {cfg.attribute_source}")
    if cfg.sampling_precision == 0:
        raise _fail("component-value-out-of-range", "invalid sampling precision: 0")
    if cfg.sampling_precision > 14:
        raise _fail("component-value-out-of-range",
                    f"sampling precision is too great, should be <= 14: {cfg.sampling_precision}")


ProbabilisticSamplerConfig = table_config("probabilistic_sampler", {
    "sampling_percentage": (Float64, 0.0),
    "hash_seed": (UInt32, 0),
    "mode": (Str, ""),
    "fail_closed": (Bool, True),
    "sampling_precision": (Int, 4),
    "attribute_source": (Str, "traceID"),
    "from_attribute": (Str, ""),
    "sampling_priority": (Str, ""),
}, _check_probabilistic_sampler, doc="`probabilistic_sampler` processor: percentage >= 0, known mode, precision 1..14.")

_LoadBalancingStatic = table_config("static", {"hostnames": (StrList, None)})
_LoadBalancingDNS = table_config("dns", {"hostname": (Str, ""), "port": (Str, ""), "interval": (Duration, 0),
                                         "timeout": (Duration, 0), "quarantine": (MapOf(AnyValue), None)})
_LoadBalancingK8s = table_config("k8s", {"service": (Str, ""), "ports": (ListOf(Int), None),
                                         "timeout": (Duration, 0), "return_hostnames": (Bool, False)})


def _check_resolver(cfg: Any) -> None:
    chosen = [name for name in ("static", "dns", "k8s", "aws_cloud_map") if getattr(cfg, name) is not None]
    if not chosen:
        raise _fail("component-missing-required-field", "no resolvers specified for the exporter")
    if len(chosen) > 1:
        raise _fail("component-conflicting-fields", f"only one resolver may be specified, got {', '.join(chosen)}")


_LoadBalancingResolver = table_config("resolver", {
    "static": (_LoadBalancingStatic, None),
    "dns": (_LoadBalancingDNS, None),
    "k8s": (_LoadBalancingK8s, None),
    "aws_cloud_map": (MapOf(AnyValue), None),
}, _check_resolver)
# the otlp exporter's settings without an endpoint: the resolver supplies one per backend
_LoadBalancingOTLP = table_config("otlp", {"timeout": (Duration, 5 * _SECOND),
                                           "sending_queue": (SendingQueueConfig, None),
                                           "retry_on_failure": (BackOffConfig, None)}, base=GRPCClientConfig)
_LoadBalancingProtocol = table_config("protocol", {"otlp": (_LoadBalancingOTLP, None)})


def _check_loadbalancing(cfg: Any) -> None:
    if cfg.resolver is None:
        raise _fail("component-missing-required-field", "no resolvers specified for the exporter")
    if cfg.routing_key not in ("", "traceID", "service", "resource", "metric", "streamID", "attributes"):
        raise _fail("component-invalid-value", f"unsupported routing_key: {cfg.routing_key}")


LoadBalancingExporterConfig = table_config("loadbalancing", {
    "protocol": (_LoadBalancingProtocol, None),
    "resolver": (_LoadBalancingResolver, None),
    "routing_key": (Str, ""),
    "routing_attributes": (StrList, None),
    "timeout": (Duration, 0),
    "retry_on_failure": (BackOffConfig, None),
    "sending_queue": (SendingQueueConfig, None),
}, _check_loadbalancing, doc="`loadbalancing` exporter: exactly one resolver, a known routing_key.")


# --------------------------------------------------------------------------- the component table

_ALL = frozenset(Signal)
_SAME_SIGNAL = frozenset((s, s) for s in Signal)
_R, _P, _E, _C, _X = (ComponentKind.RECEIVER, ComponentKind.PROCESSOR, ComponentKind.EXPORTER,
                      ComponentKind.CONNECTOR, ComponentKind.EXTENSION)
_CORE, _CONTRIB = "go.opentelemetry.io/collector", "github.com/open-telemetry/opentelemetry-collector-contrib"


class Component(NamedTuple):
    """One row of the component table: what the pinned collector release ships, and how its config decodes."""

    kind: ComponentKind
    type_name: str  # canonical, as `otelcol-obsctl components` lists it
    module: str  # Go module of the builder manifest (collectors/builder-config.yaml)
    config: Table
    signals: frozenset[Signal] = _ALL
    connects: frozenset[tuple[Signal, Signal]] = frozenset()
    aliases: tuple[str, ...] = ()  # deprecated type names the release still accepts


COLLECTOR_VERSION = "v0.161.0"
"""The collector release this table describes; moving to the next one means revisiting the rows."""

COMPONENTS: tuple[Component, ...] = (
    Component(_R, "otlp", f"{_CORE}/receiver/otlpreceiver", OTLPReceiverConfig),
    Component(_P, "memory_limiter", f"{_CORE}/processor/memorylimiterprocessor", MemoryLimiterConfig),
    Component(_P, "batch", f"{_CORE}/processor/batchprocessor", BatchConfig),
    Component(_P, "resource", f"{_CONTRIB}/processor/resourceprocessor", ResourceProcessorConfig),
    Component(_P, "attributes", f"{_CONTRIB}/processor/attributesprocessor", AttributesProcessorConfig),
    Component(_P, "filter", f"{_CONTRIB}/processor/filterprocessor", FilterProcessorConfig),
    Component(_P, "transform", f"{_CONTRIB}/processor/transformprocessor", TransformProcessorConfig),
    Component(_P, "tail_sampling", f"{_CONTRIB}/processor/tailsamplingprocessor", TailSamplingConfig,
              frozenset({Signal.TRACES})),
    Component(_P, "probabilistic_sampler", f"{_CONTRIB}/processor/probabilisticsamplerprocessor",
              ProbabilisticSamplerConfig, frozenset({Signal.TRACES, Signal.LOGS})),
    Component(_E, "otlp_grpc", f"{_CORE}/exporter/otlpexporter", OTLPExporterConfig, aliases=("otlp",)),
    Component(_E, "otlp_http", f"{_CORE}/exporter/otlphttpexporter", OTLPHTTPExporterConfig, aliases=("otlphttp",)),
    Component(_E, "debug", f"{_CORE}/exporter/debugexporter", DebugExporterConfig),
    Component(_E, "prometheus_remote_write", f"{_CONTRIB}/exporter/prometheusremotewriteexporter",
              PrometheusRemoteWriteConfig, frozenset({Signal.METRICS}), aliases=("prometheusremotewrite",)),
    Component(_E, "load_balancing", f"{_CONTRIB}/exporter/loadbalancingexporter", LoadBalancingExporterConfig,
              aliases=("loadbalancing",)),
    Component(_X, "health_check", f"{_CONTRIB}/extension/healthcheckextension", HealthCheckConfig),
    Component(_X, "pprof", f"{_CONTRIB}/extension/pprofextension", PprofConfig),
    Component(_X, "zpages", f"{_CORE}/extension/zpagesextension", ZPagesConfig),
    Component(_C, "span_metrics", f"{_CONTRIB}/connector/spanmetricsconnector", SpanMetricsConfig,
              connects=frozenset({(Signal.TRACES, Signal.METRICS)}), aliases=("spanmetrics",)),
    Component(_C, "forward", f"{_CORE}/connector/forwardconnector", ForwardConfig, connects=_SAME_SIGNAL),
)

_SPECS: dict[tuple[ComponentKind, str], Component] = {(c.kind, c.type_name): c for c in COMPONENTS}

TYPE_ALIASES: Mapping[tuple[ComponentKind, str], str] = {
    (c.kind, alias): c.type_name for c in COMPONENTS for alias in c.aliases}
"""Deprecated type names the pinned collector still accepts, mapped to the canonical name."""

COMPONENT_MODELS: Mapping[tuple[ComponentKind, str], Table] = {
    key: spec.config for key, spec in _SPECS.items()
} | {alias: _SPECS[(alias[0], canonical)].config for alias, canonical in TYPE_ALIASES.items()}
"""The config table for each (kind, type), aliases included."""


def component_for_module(module: str) -> Component | None:
    """The table row of a builder-manifest Go module (`.../processor/batchprocessor`), if known."""
    return next((c for c in COMPONENTS if c.module == module), None)


def known_component_types() -> frozenset[tuple[ComponentKind, str]]:
    """(kind, canonical type) of every component compiled into otelcol-obsctl (the OCB manifest)."""
    return frozenset(_SPECS)


def _spec(kind: ComponentKind, type_name: str) -> Component | None:
    canonical = TYPE_ALIASES.get((kind, type_name), type_name)
    return _SPECS.get((kind, canonical))


def _valid_type_names(kind: ComponentKind) -> list[str]:
    names = [t for (k, t) in _SPECS if k == kind] + [t for (k, t) in TYPE_ALIASES if k == kind]
    return sorted(names)


# --------------------------------------------------------------------------- env expansion

_ENV_REF = re.compile(r"\$\$|\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_INT_RE = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_FLOAT_RE = re.compile(r"^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")


def _yaml_scalar(text: str) -> Any:
    # The collector re-parses a value that is exactly one reference as YAML; scalars suffice here.
    low = text.strip().lower()
    if low in ("", "null", "~"):
        return None if low else ""
    if low in ("true", "false"):
        return low == "true"
    if _INT_RE.match(text.strip()):
        return int(text.replace("_", ""))
    if _FLOAT_RE.match(text.strip()):
        return float(text)
    return text


def _expand(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env) for v in value]
    if not isinstance(value, str) or "$" not in value:
        return value

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        found = env.get(name)
        return found if found else (default or "")

    whole = _ENV_REF.fullmatch(value)
    if whole is not None and whole.group(0) != "$$":
        return _yaml_scalar(sub(whole))
    return _ENV_REF.sub(sub, value)


# --------------------------------------------------------------------------- validation


def _dotted(loc: Sequence[int | str]) -> str:
    """A location as the collector prints it: `policies[1].latency.threshold_ms`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _decode_problems(component: str, err: DecodeError) -> list[CollectorConfigProblem]:
    problems: list[CollectorConfigProblem] = []
    extras: dict[str, list[str]] = {}
    for error in err.errors:
        kind, loc = error.kind, error.loc
        if kind == "extra":
            extras.setdefault(_dotted(loc[:-1]), []).append(str(loc[-1]))
            continue
        where = _dotted(loc)
        if kind in ("invalid-value-type", "invalid-component-id"):
            problems.append(_problem(component, kind, f"'{where}' {error.detail}", "decode"))
        elif kind in RULES:
            detail = error.detail if not where else f"{where}: {error.detail}"
            problems.append(_problem(component, kind, detail, error.stage))
        elif kind == "mapping":
            problems.append(_problem(component, "invalid-value-type",
                                     f"'{where or '(body)'}' expected a mapping, got {_go_type_name(error.value)}",
                                     "decode"))
        elif kind == "list":
            problems.append(_problem(component, "invalid-value-type",
                                     f"'{where}' expected a list, got {_go_type_name(error.value)}", "decode"))
        else:  # missing
            problems.append(_problem(component, "invalid-value-type", f"'{where}' {error.detail}", "decode"))
    for parent, keys in sorted(extras.items()):
        label = parent or "(body)"
        problems.insert(0, _problem(component, "invalid-keys", f"'{label}' has invalid keys: {', '.join(sorted(keys))}",
                                    "decode"))
    return problems


class _Defined(NamedTuple):
    ids: dict[ComponentKind, dict[ComponentID, Any]]
    # Only ids whose type is known (unknown ones are reported once and then ignored).
    known: dict[ComponentKind, set[ComponentID]]


def _check_sections(config: Mapping[str, Any], problems: list[CollectorConfigProblem]) -> _Defined:
    ids: dict[ComponentKind, dict[ComponentID, Any]] = {kind: {} for kind in ComponentKind}
    known: dict[ComponentKind, set[ComponentID]] = {kind: set() for kind in ComponentKind}
    for kind in ComponentKind:
        section = config.get(kind.section)
        if section is None:
            continue
        if not isinstance(section, Mapping):
            problems.append(_problem(kind.section, "invalid-value-type",
                                     f"expected a mapping of component ids, got {_go_type_name(section)}", "decode"))
            continue
        for raw_id, body in section.items():
            try:
                cid = ComponentID.parse(str(raw_id))
            except ValueError as err:
                problems.append(_problem(kind.section, "invalid-component-id", str(err), "decode"))
                continue
            if cid in ids[kind]:
                problems.append(_problem(f"{kind.section}::{cid}", "invalid-component-id",
                                         f'duplicate id "{cid}" (after trimming spaces)', "decode"))
                continue
            ids[kind][cid] = body
            spec = _spec(kind, cid.type)
            if spec is not None:
                known[kind].add(cid)
            problems.extend(_body_problems(kind, cid, spec, body))
    return _Defined(ids, known)


def component_problems(kind: ComponentKind, raw_id: str, body: Any) -> list[CollectorConfigProblem]:
    """The problems of one component's entry (its id's type and its body) as `validate_collector_config` finds
    them. That is the only place a component's body is read: the rest of the verdict reads the component ids
    and the `service` section, so two configs alike but for valid bodies get the same verdict."""
    try:
        cid = ComponentID.parse(str(raw_id))
    except ValueError as err:
        return [_problem(kind.section, "invalid-component-id", str(err), "decode")]
    return _body_problems(kind, cid, _spec(kind, cid.type), body)


def _body_problems(kind: ComponentKind, cid: ComponentID, spec: Component | None,
                   body: Any) -> list[CollectorConfigProblem]:
    component = f"{kind.section}::{cid}"
    if spec is None:
        return [_problem(component, "unknown-component-type",
                         f'unknown type: "{cid.type}" for id: "{cid}" '
                         f"(valid values: {' '.join(_valid_type_names(kind))})", "decode")]
    if body is not None and not isinstance(body, Mapping):
        return [_problem(component, "invalid-value-type", f"expected a mapping, got {_go_type_name(body)}", "decode")]
    data = dict(body or {})
    key = _data_key(data)
    if key is not None and (spec.config, key) in _VALID_BODIES:
        return []
    try:
        spec.config.decode(data)
    except DecodeError as err:
        return _decode_problems(component, err)
    if key is not None:
        if len(_VALID_BODIES) >= _VALID_BODIES_MAX:
            _VALID_BODIES.clear()
        _VALID_BODIES.add((spec.config, key))
    return []


# Component bodies that decoded without a problem, by (the component's table, `_data_key` of the body). A body's
# decode reads nothing but the body and that table (a Table compares by identity), so the same body always
# passes again: a render checks the same bodies (the shared processors, a team's exporter) hundreds of times. A body
# with a problem is decoded every time (its problems name the component).
_VALID_BODIES: set[tuple[Table, Any]] = set()
_VALID_BODIES_MAX = 8192


def _data_key(value: Any) -> Any:
    """A hashable key equal for two values exactly when they are the same plain data (dict, list, str, int,
    float, bool, None, compared with their types and key order: 1, 1.0, True and -0.0, 0.0 differ), or None
    for anything else (not cached)."""
    kind = type(value)
    if kind is str:
        return value
    if kind is dict:
        items = []
        for k, v in value.items():
            kk, vk = _data_key(k), _data_key(v)
            if kk is None or vk is None:
                return None
            items.append((kk, vk))
        return (dict, tuple(items))
    if kind is list:
        out = []
        for v in value:
            vk = _data_key(v)
            if vk is None:
                return None
            out.append(vk)
        return (list, tuple(out))
    if kind is int or kind is bool:
        return (kind, value)
    if kind is float:
        return (float, repr(value))
    if value is None:
        return (None,)
    return None


TelemetryLogsSampling = table_config("sampling", {
    "enabled": (Bool, True),
    "tick": (Duration, 10 * _SECOND),
    "initial": (Int, 10),
    "thereafter": (Int, 100),
})


_ZAP_LEVELS = {"debug", "info", "warn", "error", "dpanic", "panic", "fatal"}
_TELEMETRY_LEVELS = {"none", "basic", "normal", "detailed"}


def _check_telemetry_logs(cfg: Any) -> None:
    if cfg.level and not cfg.level.startswith("#") and cfg.level.lower() not in _ZAP_LEVELS:
        raise _fail("invalid-value-type", f'level: unrecognized level: "{cfg.level}"')


TelemetryLogs = table_config("logs", {
    "level": (Int8OrText, "info"),
    "development": (Bool, False),
    "encoding": (Str, "console"),
    "disable_caller": (Bool, False),
    "disable_stacktrace": (Bool, False),
    "sampling": (TelemetryLogsSampling, None),
    "output_paths": (StrList, None),
    "error_output_paths": (StrList, None),
    "initial_fields": (MapOf(AnyValue), None),
    "processors": (ListOf(AnyValue), None),
    "disable_zap_resource": (Bool, False),
}, _check_telemetry_logs, doc="`service.telemetry.logs`: the collector's own logger.")


def _check_telemetry_level(cfg: Any) -> None:
    if cfg.level.lower() not in _TELEMETRY_LEVELS:
        raise _fail("invalid-value-type", f'level: unknown metrics level "{cfg.level}"')


TelemetryLevel = table_config("level", {"level": (Str, "basic")}, _check_telemetry_level, extra="allow",
                              doc="`service.telemetry.metrics/traces`: only `level` is checked.")


TelemetryConfig = table_config("telemetry", {
    "logs": (TelemetryLogs, None),
    "metrics": (TelemetryLevel, None),
    "traces": (TelemetryLevel, None),
    "resource": (MapOf(AnyValue), None),
}, doc="`service.telemetry`.")


_SERVICE_KEYS = {"extensions", "pipelines", "telemetry"}
_PIPELINE_KEYS = {"receivers", "processors", "exporters"}
_TOP_KEYS = {"receivers", "processors", "exporters", "connectors", "extensions", "service"}


def _id_list(value: Any, where: str, problems: list[CollectorConfigProblem], component: str) -> list[ComponentID]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [] if value == "" else value.split(",")
    if not isinstance(value, list):
        problems.append(_problem(component, "invalid-value-type",
                                 f"'{where}' expected a list of component ids, got {_go_type_name(value)}", "decode"))
        return []
    out: list[ComponentID] = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            problems.append(_problem(component, "invalid-value-type",
                                     f"'{where}[{index}]' expected a component id, got {_go_type_name(item)}",
                                     "decode"))
            continue
        try:
            out.append(ComponentID.parse(item))
        except ValueError as err:
            problems.append(_problem(component, "invalid-component-id", f"'{where}[{index}]' {err}", "decode"))
    return out


class _Pipeline(NamedTuple):
    id: _PipelineID
    signal: Signal
    receivers: list[ComponentID]
    processors: list[ComponentID]
    exporters: list[ComponentID]

    @property
    def component(self) -> str:
        return f"service::pipelines::{self.id}"


def _parse_pipelines(service: Mapping[str, Any], problems: list[CollectorConfigProblem]) -> list[_Pipeline]:
    raw = service.get("pipelines")
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.append(_problem("service::pipelines", "invalid-value-type",
                                 f"expected a mapping of pipeline ids, got {_go_type_name(raw)}", "decode"))
        return []
    pipelines: list[_Pipeline] = []
    for raw_id, raw_body in raw.items():
        text = str(raw_id)
        signal_text, sep, name = text.partition("/")
        component = f"service::pipelines::{text}"
        if sep and not name.strip():
            problems.append(_problem(component, "invalid-pipeline-id",
                                     f'in "{text}" id: the part after / should not be empty', "decode"))
            continue
        if signal_text == "profiles":
            problems.append(_problem(component, "invalid-pipeline-id",
                                     f'pipeline "{text}": profiling signal support is at alpha level, gated '
                                     'under the "service.profilesSupport" feature gate'))
            continue
        if signal_text not in {s.value for s in Signal}:
            problems.append(_problem(component, "invalid-pipeline-id",
                                     f'in "{text}" id: unknown pipeline signal: "{signal_text}" '
                                     "(traces, metrics or logs)", "decode"))
            continue
        if name and not all(_name_char_ok(ch) for ch in name.strip()):
            problems.append(_problem(component, "invalid-pipeline-id",
                                     f'in "{text}" id: invalid character(s) in name "{name}"', "decode"))
            continue
        body = {} if raw_body is None else raw_body
        if not isinstance(body, Mapping):
            problems.append(_problem(component, "invalid-value-type",
                                     f"expected a mapping with receivers/processors/exporters, got "
                                     f"{_go_type_name(body)}", "decode"))
            continue
        extra = sorted(set(body) - _PIPELINE_KEYS)
        if extra:
            problems.append(_problem(component, "invalid-keys",
                                     f"'service.pipelines[{text}]' has invalid keys: {', '.join(extra)}", "decode"))
        pipelines.append(_Pipeline(
            _PipelineID(signal_text, name.strip()),
            Signal(signal_text),
            _id_list(body.get("receivers"), f"service.pipelines[{text}].receivers", problems, component),
            _id_list(body.get("processors"), f"service.pipelines[{text}].processors", problems, component),
            _id_list(body.get("exporters"), f"service.pipelines[{text}].exporters", problems, component),
        ))
    return pipelines


def _check_pipeline_refs(p: _Pipeline, defined: _Defined, problems: list[CollectorConfigProblem]) -> None:
    ids = defined.ids
    if not p.receivers:
        problems.append(_problem(p.component, "pipeline-no-receivers", "must have at least one receiver"))
    if not p.exporters:
        problems.append(_problem(p.component, "pipeline-no-exporters", "must have at least one exporter"))
    seen: set[ComponentID] = set()
    for ref in p.processors:
        if ref in seen:
            problems.append(_problem(p.component, "pipeline-duplicate-processor",
                                     f'references processor "{ref}" multiple times'))
        seen.add(ref)
    rule = "pipeline-references-undefined-component"
    for role, refs, kinds in (("receiver", p.receivers, (_R, _C)), ("processor", p.processors, (_P,)),
                              ("exporter", p.exporters, (_E, _C))):
        for ref in refs:
            if not any(ref in ids[k] for k in kinds):
                problems.append(_problem(p.component, rule, f'references {role} "{ref}" which is not configured'))
                continue
            # A signal check needs a known, non-connector component.
            kind = next(k for k in kinds if ref in ids[k])
            if kind is _C or ref not in defined.known[kind]:
                continue
            spec = _spec(kind, ref.type)
            if spec is not None and p.signal not in spec.signals:
                problems.append(_problem(p.component, "pipeline-signal-unsupported",
                                         f'{role} "{ref}" does not support {p.signal} '
                                         f"(supports {', '.join(sorted(spec.signals))}): telemetry type is not "
                                         "supported", "build"))


def _check_connectors(pipelines: list[_Pipeline], defined: _Defined,
                      problems: list[CollectorConfigProblem]) -> dict[_PipelineID, set[_PipelineID]]:
    """Connector usage rules; return the pipeline graph edges the connectors create."""
    edges: dict[_PipelineID, set[_PipelineID]] = {p.id: set() for p in pipelines}
    for cid in sorted(defined.ids[_C]):
        component = f"connectors::{cid}"
        for kind in (_E, _R):
            if cid in defined.ids[kind]:
                problems.append(_problem(component, "connector-ambiguous-id",
                                         f'ambiguous ID: found both "{cid}" {kind.value} and "{cid}" connector; '
                                         f'rename one (e.g. "{cid}/connector")'))
        if cid not in defined.known[_C]:
            continue
        spec = _spec(_C, cid.type)
        assert spec is not None
        as_exporter = [p for p in pipelines if cid in p.exporters]
        as_receiver = [p for p in pipelines if cid in p.receivers]
        if not as_exporter and not as_receiver:
            continue
        for exp in as_exporter:
            if not any((exp.signal, rec.signal) in spec.connects for rec in as_receiver):
                names = [str(p.id) for p in as_exporter if p.signal == exp.signal]
                problems.append(_problem(component, "connector-not-used-as-receiver",
                                         f'connector "{cid}" used as exporter in [{" ".join(names)}] pipeline but '
                                         "not used in any supported receiver pipeline", "build"))
                break
        for rec in as_receiver:
            if not any((exp.signal, rec.signal) in spec.connects for exp in as_exporter):
                names = [str(p.id) for p in as_receiver if p.signal == rec.signal]
                problems.append(_problem(component, "connector-not-used-as-exporter",
                                         f'connector "{cid}" used as receiver in [{" ".join(names)}] pipeline but '
                                         "not used in any supported exporter pipeline", "build"))
                break
        for exp in as_exporter:
            for rec in as_receiver:
                if (exp.signal, rec.signal) in spec.connects:
                    edges[exp.id].add(rec.id)
    return edges


def _find_cycle(edges: Mapping[_PipelineID, set[_PipelineID]]) -> list[_PipelineID] | None:
    state: dict[_PipelineID, int] = {}
    stack: list[_PipelineID] = []

    def visit(node: _PipelineID) -> list[_PipelineID] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _check_policy(pipelines: list[_Pipeline], defined: _Defined, problems: list[CollectorConfigProblem]) -> None:
    for p in pipelines:
        types = [ref.type for ref in p.processors]
        ingests = any(ref in defined.ids[_R] for ref in p.receivers)
        if ingests and (not types or types[0] != "memory_limiter"):
            problems.append(_problem(p.component, "policy-memory-limiter-first",
                                     "the first processor must be memory_limiter (obsctl policy; "
                                     f"processors are [{', '.join(map(str, p.processors))}])", "policy"))
        elif "memory_limiter" in types[1:]:
            problems.append(_problem(p.component, "policy-memory-limiter-first",
                                     "memory_limiter may only be the first processor (obsctl policy)", "policy"))
        if not types or types[-1] != "batch":
            problems.append(_problem(p.component, "policy-batch-last",
                                     "the last processor must be batch (obsctl policy; processors are "
                                     f"[{', '.join(map(str, p.processors))}])", "policy"))
        elif "batch" in types[:-1]:
            problems.append(_problem(p.component, "policy-batch-last",
                                     "batch may only be the last processor (obsctl policy)", "policy"))


def validate_collector_config(
    config: Mapping[str, Any] | None, *, env: Mapping[str, str] | None = None, policy: bool = True
) -> list[CollectorConfigProblem]:
    """Check a parsed collector config; return every problem found (empty list: valid).

    `env`, when given, expands `${env:NAME}`, `${NAME}` and `${NAME:-default}` first, as the
    collector does; without it references stay literal strings. `policy=False` leaves out
    obsctl's policy rules (memory_limiter first, batch last).
    """
    problems: list[CollectorConfigProblem] = []
    if config is None or (isinstance(config, Mapping) and not config):
        return [_problem("config", "config-empty", "empty configuration file")]
    if not isinstance(config, Mapping):
        return [_problem("config", "invalid-value-type",
                         f"expected a mapping at the top level, got {_go_type_name(config)}", "decode")]
    if env is not None:
        config = _expand(dict(config), env)
    extra = sorted(str(k) for k in set(config) - _TOP_KEYS)
    if extra:
        problems.append(_problem("config", "invalid-keys", f"top level has invalid keys: {', '.join(extra)}",
                                 "decode"))
    defined = _check_sections(config, problems)

    service = config.get("service") or {}
    if not isinstance(service, Mapping):
        problems.append(_problem("service", "invalid-value-type",
                                 f"expected a mapping, got {_go_type_name(service)}", "decode"))
        service = {}
    extra = sorted(str(k) for k in set(service) - _SERVICE_KEYS)
    if extra:
        problems.append(_problem("service", "invalid-keys", f"'service' has invalid keys: {', '.join(extra)}",
                                 "decode"))
    telemetry = service.get("telemetry")
    if telemetry is not None:
        if not isinstance(telemetry, Mapping):
            problems.append(_problem("service::telemetry", "invalid-value-type",
                                     f"expected a mapping, got {_go_type_name(telemetry)}", "decode"))
        else:
            try:
                TelemetryConfig.decode(dict(telemetry))
            except DecodeError as err:
                problems.extend(_decode_problems("service::telemetry", err))
    extension_refs = _id_list(service.get("extensions"), "service.extensions", problems, "service::extensions")
    pipelines = _parse_pipelines(service, problems)
    if not any(defined.ids.values()):
        problems.append(_problem("config", "config-empty", "empty configuration file (no component defined)"))
        return problems
    if not defined.ids[_R]:
        problems.append(_problem("receivers", "config-no-receivers", "no receiver configuration specified in config"))
    if not defined.ids[_E]:
        problems.append(_problem("exporters", "config-no-exporters", "no exporter configuration specified in config"))
    for ref in extension_refs:
        if ref not in defined.ids[_X]:
            problems.append(_problem("service::extensions", "service-extension-not-configured",
                                     f'references extension "{ref}" which is not configured'))
    raw_pipelines = service.get("pipelines")
    if not raw_pipelines:
        problems.append(_problem("service::pipelines", "service-no-pipelines",
                                 "service must have at least one pipeline"))
    for p in pipelines:
        _check_pipeline_refs(p, defined, problems)
    edges = _check_connectors(pipelines, defined, problems)
    cycle = _find_cycle(edges)
    if cycle is not None:
        path = " -> ".join(f'pipeline "{node}"' for node in cycle)
        problems.append(_problem("service::pipelines", "pipeline-cycle",
                                 f"cycle detected through connectors: {path}", "build"))
    if policy:
        _check_policy(pipelines, defined, problems)
    else:
        problems = [p for p in problems if not p.policy]
    return problems
