"""obsctl's collector-config model: one parametrised test per validation rule, plus the model's API.

Rule numbers follow the collector's config structure rules as the team's collector notes list them
(#1 structure, #2 required sections, #3 ids and types, #4 extensions, #5 pipelines, #6 connectors,
#7 each component's own Validate) and its component table. The collector's own agreement with these
verdicts is proven in tests/collector/test_differential.py.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsctl.model import otelcol
from obsctl.model.otelcol import (
    COLLECTOR_VERSION,
    COMPONENT_MODELS,
    RULES,
    TYPE_ALIASES,
    BatchConfig,
    CollectorConfigProblem,
    ComponentID,
    ComponentKind,
    MemoryLimiterConfig,
    component_for_module,
    component_problems,
    known_component_types,
    ottl_lexical_problem,
    ottl_path_roots,
    parse_go_duration,
    validate_collector_config,
)

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "collectors" / "builder-config.yaml"
CORPUS = REPO / "tests" / "collector" / "corpus"


def base() -> dict[str, Any]:
    """A config that passes every rule, obsctl policy included."""
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:4317"}}}},
        "processors": {
            "memory_limiter": {"check_interval": "1s", "limit_mib": 256},
            "batch": {},
        },
        "exporters": {"otlp/tempo": {"endpoint": "tempo:4317"}, "debug": {}},
        "extensions": {"health_check": {"endpoint": "127.0.0.1:13133"}},
        "service": {
            "extensions": ["health_check"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter", "batch"],
                    "exporters": ["otlp/tempo"],
                },
            },
        },
    }


def edit(config: dict[str, Any], path: str, value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    """Copy `config` with the value at dotted `path` replaced (or deleted). Keys may contain '/'."""
    out = copy.deepcopy(config)
    *parents, last = path.split(".")
    node: Any = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if delete:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


def with_processor(name: str, body: Any, *, pipeline: str = "traces") -> dict[str, Any]:
    """base() with processor `name` defined and placed between memory_limiter and batch."""
    config = edit(base(), f"processors.{name}", body)
    processors = config["service"]["pipelines"].setdefault(pipeline, {
        "receivers": ["otlp"], "processors": ["memory_limiter", "batch"], "exporters": ["debug"],
    })["processors"]
    processors.insert(1, name)
    return config


def with_exporter(name: str, body: Any, *, pipeline: str = "traces") -> dict[str, Any]:
    """base() with exporter `name` defined and used by `pipeline`."""
    config = edit(base(), f"exporters.{name}", body)
    config["service"]["pipelines"][pipeline] = {
        "receivers": ["otlp"], "processors": ["memory_limiter", "batch"], "exporters": [name],
    }
    return config


def pipelines(**specs: tuple[list[str], list[str], list[str]]) -> dict[str, Any]:
    """service.pipelines from name=(receivers, processors, exporters); '__' in a name means '/'."""
    return {
        name.replace("__", "/"): {"receivers": r, "processors": p, "exporters": e}
        for name, (r, p, e) in specs.items()
    }


ML_B = ["memory_limiter", "batch"]


def ts_policy(*policies: dict[str, Any]) -> dict[str, Any]:
    return with_processor("tail_sampling", {"policies": list(policies)})


# (rule, config, component named by the problem, fragment of the message)
CASES: list[tuple[str, Any, str, str]] = [
    # B.2 #2: a file without any component is rejected as empty.
    ("config-empty", {}, "config", "empty configuration file"),
    ("config-empty", None, "config", "empty configuration file"),
    ("config-empty", {"service": {"pipelines": {}}}, "config", "empty configuration file"),
    # B.2 #2: at least one receiver and one exporter must be configured.
    ("config-no-receivers", edit(base(), "receivers", delete=True), "receivers", "no receiver configuration"),
    ("config-no-exporters", edit(base(), "exporters", {}), "exporters", "no exporter configuration"),
    # B.2 #1: strict decode, unknown keys are errors at every level.
    ("invalid-keys", edit(base(), "processor", {}), "config", "invalid keys: processor"),
    ("invalid-keys", edit(base(), "processors.memory_limiter.spike_limit_mb", 32),
     "processors::memory_limiter", "has invalid keys: spike_limit_mb"),
    ("invalid-keys", edit(base(), "service.pipeline", {}), "service", "'service' has invalid keys: pipeline"),
    ("invalid-keys", edit(base(), "service.pipelines.traces.exporter", ["debug"]),
     "service::pipelines::traces", "invalid keys: exporter"),
    ("invalid-keys", edit(base(), "receivers.otlp.protocols.grpc.bogus", 1),
     "receivers::otlp", "'protocols.grpc' has invalid keys: bogus"),
    ("invalid-keys", edit(base(), "service.telemetry", {"logs": {"lvl": "info"}}),
     "service::telemetry", "'logs' has invalid keys: lvl"),
    # B.2 #1/#7: values must decode into the field's Go type.
    ("invalid-value-type", edit(base(), "processors.batch.send_batch_size", "100"),
     "processors::batch", "'send_batch_size' expected type 'uint32', got unconvertible type 'string'"),
    ("invalid-value-type", edit(base(), "processors.memory_limiter.check_interval", "1sec"),
     "processors::memory_limiter", "unknown unit"),
    ("invalid-value-type", edit(base(), "processors.memory_limiter.limit_mib", -1),
     "processors::memory_limiter", "overflows uint32"),
    ("invalid-value-type", edit(base(), "receivers.otlp.protocols", ["grpc"]),
     "receivers::otlp", "'protocols' expected a mapping"),
    ("invalid-value-type", edit(base(), "processors", ["batch"]), "processors", "expected a mapping"),
    # B.2 #3: ids are type[/name]; empty names, bad type characters and symbols are rejected.
    ("invalid-component-id", edit(base(), "exporters.otlp/", {"endpoint": "a:1"}), "exporters",
     'in "otlp/" id: the part after / should not be empty'),
    ("invalid-component-id", edit(base(), "processors.1batch", {}), "processors", "invalid character(s) in type"),
    ("invalid-component-id", edit(base(), "processors.batch/a b", {}), "processors",
     'invalid character(s) in name "a b"'),
    ("invalid-component-id", edit(base(), "service.pipelines.traces.exporters", ["otlp/"]),
     "service::pipelines::traces", "the part after / should not be empty"),
    # B.2 #3: the type must be compiled into otelcol-obsctl.
    ("unknown-component-type", with_processor("k8sattributes", {}), "processors::k8sattributes",
     'unknown type: "k8sattributes"'),
    ("unknown-component-type", with_exporter("loki", {"endpoint": "http://loki:3100"}, pipeline="logs"),
     "exporters::loki", 'unknown type: "loki"'),
    # B.2 #4: service.extensions entries must be defined.
    ("service-extension-not-configured", edit(base(), "service.extensions", ["health_check", "pprof"]),
     "service::extensions", 'references extension "pprof" which is not configured'),
    # B.2 #5: pipeline ids are traces|metrics|logs[/name]; profiles is gated off.
    ("invalid-pipeline-id", edit(base(), "service.pipelines.trace", base()["service"]["pipelines"]["traces"]),
     "service::pipelines::trace", 'unknown pipeline signal: "trace"'),
    ("invalid-pipeline-id", edit(base(), "service.pipelines.profiles", base()["service"]["pipelines"]["traces"]),
     "service::pipelines::profiles", "profilesSupport"),
    # B.2 #5: at least one pipeline.
    ("service-no-pipelines", edit(base(), "service.pipelines", {}), "service::pipelines",
     "service must have at least one pipeline"),
    # B.2 #5: every pipeline has a receiver and an exporter.
    ("pipeline-no-receivers", edit(base(), "service.pipelines.traces.receivers", []),
     "service::pipelines::traces", "must have at least one receiver"),
    ("pipeline-no-exporters", edit(base(), "service.pipelines.traces.exporters", delete=True),
     "service::pipelines::traces", "must have at least one exporter"),
    # B.2 #5: a processor at most once per pipeline.
    ("pipeline-duplicate-processor", edit(base(), "service.pipelines.traces.processors",
                                          ["memory_limiter", "batch", "batch"]),
     "service::pipelines::traces", 'references processor "batch" multiple times'),
    # B.2 #5: references must be defined (receivers/exporters may also be connectors).
    ("pipeline-references-undefined-component", edit(base(), "processors.batch", delete=True),
     "service::pipelines::traces", 'references processor "batch" which is not configured'),
    ("pipeline-references-undefined-component", edit(base(), "service.pipelines.traces.exporters", ["otlp"]),
     "service::pipelines::traces", 'references exporter "otlp" which is not configured'),
    ("pipeline-references-undefined-component", edit(base(), "service.pipelines.traces.receivers", ["otlp/2"]),
     "service::pipelines::traces", 'references receiver "otlp/2" which is not configured'),
    # B.2 #5/#7: building the pipeline fails for a signal the component does not support.
    ("pipeline-signal-unsupported",
     with_exporter("prometheusremotewrite", {"endpoint": "http://mimir/api/v1/push"}),
     "service::pipelines::traces", 'exporter "prometheusremotewrite" does not support traces'),
    ("pipeline-signal-unsupported", ts_policy({"name": "a", "type": "always_sample"}) | {
        "service": {"pipelines": pipelines(logs=(["otlp"], ["memory_limiter", "tail_sampling", "batch"],
                                                 ["debug"]))}},
     "service::pipelines::logs", 'processor "tail_sampling" does not support logs'),
    # B.2 #6: an id may not be both a connector and an exporter (or receiver).
    ("connector-ambiguous-id", edit(edit(base(), "connectors.forward", {}), "exporters.forward", {}),
     "connectors::forward", "ambiguous ID"),
    # B.2 #6: a connector needs a supported exporter-side and receiver-side pipeline.
    ("connector-not-used-as-receiver", edit(edit(base(), "connectors.spanmetrics", {}),
                                            "service.pipelines.traces.exporters", ["debug", "spanmetrics"]),
     "connectors::spanmetrics", "used as exporter in [traces] pipeline but not used in any supported receiver"),
    ("connector-not-used-as-exporter", edit(edit(base(), "connectors.forward", {}), "service.pipelines",
                                            pipelines(traces=(["otlp"], ML_B, ["debug"]),
                                                      traces__2=(["forward"], ["batch"], ["debug"]))),
     "connectors::forward", "used as receiver in [traces/2] pipeline but not used in any supported exporter"),
    ("connector-not-used-as-receiver", edit(edit(base(), "connectors.spanmetrics", {}), "service.pipelines",
                                            pipelines(traces=(["otlp"], ML_B, ["spanmetrics"]),
                                                      logs=(["spanmetrics"], ["batch"], ["debug"]))),
     "connectors::spanmetrics", "not used in any supported receiver pipeline"),
    # B.2 #6: connectors must not chain pipelines into a cycle.
    ("pipeline-cycle", edit(edit(base(), "connectors", {"forward/ab": {}, "forward/ba": {}}), "service.pipelines",
                            pipelines(traces__a=(["otlp", "forward/ba"], ML_B, ["forward/ab"]),
                                      traces__b=(["forward/ab"], ["batch"], ["forward/ba"]))),
     "service::pipelines", 'cycle detected through connectors: pipeline "traces/a" -> pipeline "traces/b"'),
    # B.2 #7 + table, memory_limiter: limit_mib or limit_percentage is required.
    ("component-missing-required-field", edit(base(), "processors.memory_limiter.limit_mib", delete=True),
     "processors::memory_limiter", "'limit_mib' or 'limit_percentage' must be greater than zero"),
    # B.2 #7 + table, otlp receiver: at least one protocol.
    ("component-missing-required-field", edit(base(), "receivers.otlp.protocols", {}),
     "receivers::otlp", "must specify at least one protocol"),
    ("component-missing-required-field", edit(base(), "receivers.otlp.protocols.grpc", {"enabled": False}),
     "receivers::otlp", "must specify at least one protocol"),
    # B.2 #7 + table, otlp exporter: endpoint required.
    ("component-missing-required-field", edit(base(), "exporters.otlp/tempo", {"tls": {"insecure": True}}),
     "exporters::otlp/tempo", 'requires a non-empty "endpoint"'),
    # B.2 #7 + table, otlphttp exporter: one endpoint required.
    ("component-missing-required-field", with_exporter("otlphttp", {"encoding": "json"}),
     "exporters::otlphttp", "at least one endpoint must be specified"),
    # B.2 #7 + table, resource/attributes: the action list is required.
    ("component-missing-required-field", with_processor("resource", {}), "processors::resource",
     'missing required field "attributes"'),
    ("component-missing-required-field", with_processor("attributes", {"actions": []}), "processors::attributes",
     'missing required field "actions"'),
    ("component-missing-required-field", with_processor("resource", {"attributes": [{"action": "insert",
                                                                                      "value": 1}]}),
     "processors::resource", 'missing required field "key"'),
    # B.2 table, tail_sampling: every policy needs a non-empty name.
    ("component-missing-required-field", ts_policy({"type": "always_sample"}), "processors::tail_sampling",
     "policy name cannot be empty"),
    ("component-missing-required-field", ts_policy({"name": "e", "type": "status_code"}),
     "processors::tail_sampling", "expected at least one status code"),
    # B.2 table, health_check: an endpoint.
    ("component-missing-required-field", edit(base(), "extensions.health_check.endpoint", ""),
     "extensions::health_check", "http endpoint required"),
    # B.2 #7 + table, memory_limiter ranges: check_interval > 0, spike < limit, percentages <= 100.
    ("component-value-out-of-range", edit(base(), "processors.memory_limiter.check_interval", "0s"),
     "processors::memory_limiter", "'check_interval' must be greater than zero"),
    ("component-value-out-of-range", edit(base(), "processors.memory_limiter.spike_limit_mib", 256),
     "processors::memory_limiter", "'spike_limit_mib' must be smaller than 'limit_mib'"),
    ("component-value-out-of-range", edit(base(), "processors.memory_limiter",
                                          {"check_interval": "1s", "limit_percentage": 120}),
     "processors::memory_limiter", "less than or equal to hundred"),
    ("component-value-out-of-range", edit(base(), "processors.memory_limiter",
                                          {"check_interval": "1s", "limit_percentage": 50,
                                           "spike_limit_percentage": 50}),
     "processors::memory_limiter", "'spike_limit_percentage' must be smaller than 'limit_percentage'"),
    # B.2 table, batch: send_batch_max_size >= send_batch_size when set.
    ("component-value-out-of-range", edit(base(), "processors.batch",
                                          {"send_batch_size": 1000, "send_batch_max_size": 500}),
     "processors::batch", "send_batch_max_size must be greater or equal to send_batch_size"),
    ("component-value-out-of-range", edit(base(), "processors.batch.timeout", "-1s"),
     "processors::batch", "timeout must be greater or equal to 0"),
    # B.2 table, otlp exporter: sending_queue and retry_on_failure ranges.
    ("component-value-out-of-range", edit(base(), "exporters.otlp/tempo.sending_queue", {"num_consumers": 0}),
     "exporters::otlp/tempo", "`num_consumers` must be positive"),
    ("component-value-out-of-range", edit(base(), "exporters.otlp/tempo.retry_on_failure",
                                          {"randomization_factor": 2}),
     "exporters::otlp/tempo", "randomization_factor"),
    # B.2 table, resource/attributes: a valid action.
    ("component-invalid-value", with_processor("resource", {"attributes": [
        {"key": "a", "value": "b", "action": "replace"}]}), "processors::resource", 'unsupported action "replace"'),
    ("component-invalid-value", with_processor("attributes", {"actions": [
        {"key": "a", "action": "convert", "converted_type": "bool"}]}), "processors::attributes",
     'invalid converted_type "bool"'),
    # B.2 table, tail_sampling: a known policy type, valid status codes, valid regexes.
    ("component-invalid-value", ts_policy({"name": "p", "type": "error_status"}), "processors::tail_sampling",
     "unknown sampling policy type error_status"),
    ("component-invalid-value", ts_policy({"name": "p", "type": "status_code",
                                           "status_code": {"status_codes": ["FAILED"]}}),
     "processors::tail_sampling", 'unknown status code "FAILED"'),
    ("component-invalid-value", ts_policy({"name": "c", "type": "composite", "composite": {
        "composite_sub_policy": [{"name": "x", "type": "status_code", "status_code": {"status_codes": ["BAD"]}}]}}),
     "processors::tail_sampling", 'failed to create policy evaluator for "c"'),
    ("component-invalid-value", ts_policy({"name": "s", "type": "string_attribute", "string_attribute": {
        "key": "k", "values": ["(unclosed"], "enabled_regex_matching": True}}), "processors::tail_sampling",
     "invalid regex"),
    ("component-invalid-value", edit(with_processor("tail_sampling", {"policies": []}),
                                     "processors.tail_sampling.sampling_strategy", "eager"),
     "processors::tail_sampling", 'invalid sampling_strategy "eager"'),
    # B.2 table, otlp exporter: endpoint is host:port.
    ("component-invalid-value", edit(base(), "exporters.otlp/tempo.endpoint", "tempo"),
     "exporters::otlp/tempo", "missing port in address"),
    # B.2 table, prometheusremotewrite: the endpoint must parse as a request URI.
    ("component-invalid-value", with_exporter("prometheusremotewrite",
                                              {"endpoint": "mimir/api/v1/push"}, pipeline="metrics"),
     "exporters::prometheusremotewrite", 'invalid endpoint "mimir/api/v1/push"'),
    # B.2 table, debug: verbosity basic|normal|detailed.
    ("component-invalid-value", edit(base(), "exporters.debug.verbosity", "verbose"),
     "exporters::debug", 'unknown metrics level "verbose"'),
    # B.2 table, health_check: the path starts with '/'.
    ("component-invalid-value", edit(base(), "extensions.health_check.path", "healthz"),
     "extensions::health_check", "path must start with /"),
    # B.2 table, transform/filter: contexts valid for the signal, statements that lex.
    ("component-invalid-value", with_processor("transform", {"trace_statements": [
        {"context": "metric", "statements": ['set(name, "x")']}]}), "processors::transform",
     'unknown context "metric"'),
    ("component-invalid-value", with_processor("filter", {"traces": {"span": ['name == "a" !']}}),
     "processors::filter", "unable to parse OTTL"),
    ("component-invalid-value", with_processor("filter", {"error_mode": "loud"}), "processors::filter",
     'unknown error mode "loud"'),
    # B.2 table, attributes: one value source per action.
    ("component-conflicting-fields", with_processor("attributes", {"actions": [
        {"key": "a", "value": "b", "from_attribute": "c", "action": "insert"}]}), "processors::attributes",
     "multiple value sources"),
    ("component-conflicting-fields", edit(base(), "exporters.otlp/tempo.tls", {"ca_file": "/a", "ca_pem": "x"}),
     "exporters::otlp/tempo", "set either ca_file or ca_pem"),
    ("component-conflicting-fields", edit(edit(base(), "connectors.spanmetrics", {"histogram": {
        "explicit": {}, "exponential": {}}}), "service.pipelines",
        pipelines(traces=(["otlp"], ML_B, ["spanmetrics"]), metrics=(["spanmetrics"], ["batch"], ["debug"]))),
     "connectors::spanmetrics", "use either `explicit` or `exponential`"),
    # B.2 table, tail_sampling: unique policy names.
    ("component-duplicate-entry", ts_policy({"name": "keep", "type": "always_sample"},
                                            {"name": "keep", "type": "always_sample"}),
     "processors::tail_sampling", 'duplicate policy name "keep"'),
    ("component-duplicate-entry", edit(base(), "processors.batch.metadata_keys", ["Tenant", "tenant"]),
     "processors::batch", 'duplicate entry in metadata_keys: "tenant"'),
    ("component-duplicate-entry", edit(base(), "exporters.otlp/tempo.headers",
                                       [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]),
     "exporters::otlp/tempo", "duplicate keys in map-style list: [a]"),
    # obsctl policy: memory_limiter first in every pipeline that ingests from a receiver.
    ("policy-memory-limiter-first", edit(base(), "service.pipelines.traces.processors", ["batch"]),
     "service::pipelines::traces", "the first processor must be memory_limiter"),
    ("policy-memory-limiter-first",
     edit(edit(base(), "processors.memory_limiter/2", {"check_interval": "1s", "limit_mib": 64}),
          "service.pipelines.traces.processors", ["memory_limiter", "memory_limiter/2", "batch"]),
     "service::pipelines::traces", "memory_limiter may only be the first processor"),
    # obsctl policy: batch last in every pipeline.
    ("policy-batch-last", edit(base(), "service.pipelines.traces.processors", ["batch", "memory_limiter"]),
     "service::pipelines::traces", "the last processor must be batch"),
    # obsctl policy: prometheusremotewrite names its endpoint as an http(s) URL.
    ("policy-explicit-endpoint", with_exporter("prometheusremotewrite", {}, pipeline="metrics"),
     "exporters::prometheusremotewrite", "placeholder"),
]


def _case_id(case: tuple[str, Any, str, str]) -> str:
    return f"{case[0]}:{case[2]}"


@pytest.mark.parametrize(("rule", "config", "component", "fragment"), CASES, ids=[_case_id(c) for c in CASES])
def test_rule_rejects_config_and_names_component_and_rule(
    rule: str, config: Any, component: str, fragment: str
) -> None:
    problems = validate_collector_config(config)
    hits = [p for p in problems if p.rule == rule]
    assert hits, f"expected {rule}, got {[p.message for p in problems]}"
    hit = next((p for p in hits if p.component == component), hits[0])
    assert hit.component == component
    assert fragment in hit.message
    assert component in hit.message and f"rule {rule}" in hit.message
    assert hit.policy is RULES[rule].policy


def test_every_rule_has_a_case() -> None:
    assert {case[0] for case in CASES} == set(RULES)


def test_base_config_is_valid() -> None:
    assert validate_collector_config(base()) == []


@pytest.mark.parametrize("path", sorted((CORPUS / "good").glob("*.yaml")), ids=lambda p: p.stem)
def test_good_corpus_has_no_collector_problems(path: Path) -> None:
    problems = validate_collector_config(yaml.safe_load(path.read_text()))
    assert [p.message for p in problems if not p.policy] == []
    if path.stem.startswith("policy-only"):
        assert problems and all(p.policy for p in problems)


@pytest.mark.parametrize("path", sorted((CORPUS / "bad").glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_corpus_reports_its_declared_rule(path: Path) -> None:
    declared = re.match(r"#\s*rule:\s*([a-z0-9-]+)", path.read_text().splitlines()[0])
    assert declared is not None
    rules = {p.rule for p in validate_collector_config(yaml.safe_load(path.read_text()))}
    assert declared.group(1) in rules


def _every_config() -> list[Any]:
    return ([base()] + [copy.deepcopy(case[1]) for case in CASES]
            + [yaml.safe_load(p.read_text()) for p in sorted(CORPUS.glob("*/*.yaml"))])


def test_remembered_valid_bodies_change_no_verdict() -> None:
    """A component body found valid is not decoded again: every verdict with the memory full of the others'
    bodies is the verdict of a cold check, including bodies equal to a valid one under `==` (True == 1)."""
    configs = _every_config()
    cold = []
    for config in configs:
        otelcol._VALID_BODIES.clear()
        cold.append(validate_collector_config(copy.deepcopy(config)))
    otelcol._VALID_BODIES.clear()
    for config in configs:
        validate_collector_config(copy.deepcopy(config))
    assert otelcol._VALID_BODIES
    assert [validate_collector_config(copy.deepcopy(c)) for c in configs] == cold
    for valid, same_under_eq in ((1, True), (0, False), (0.0, False)):
        assert validate_collector_config(edit(base(), "processors.batch", {"send_batch_size": valid})) == []
        problems = validate_collector_config(edit(base(), "processors.batch", {"send_batch_size": same_under_eq}))
        assert [p.component for p in problems] == ["processors::batch"], (valid, same_under_eq)


def test_a_remembered_body_is_not_decoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    otelcol._VALID_BODIES.clear()
    assert validate_collector_config(base()) == []
    decoded: list[Any] = []
    real = otelcol.Table.decode
    monkeypatch.setattr(otelcol.Table, "decode", lambda self, data: decoded.append(data) or real(self, data))
    assert validate_collector_config(edit(base(), "exporters.otlp/tempo.endpoint", "tempo-2:4317")) == []
    assert decoded == [{"endpoint": "tempo-2:4317"}]  # only the changed body, then telemetry (absent: none)


@pytest.mark.parametrize(("raw_id", "body"), [("otlp/tempo", {"endpoint": "no-port"}), ("otlp/tempo", {"endpoint": 1}),
                                           ("nosuch", {}), ("otlp/", {}), ("otlp/tempo", ["x"]),
                                           ("otlp/tempo", {"endpoint": "tempo:4317"})])
def test_component_problems_are_the_checks_problems_of_that_component(raw_id: str, body: Any) -> None:
    config = base()
    config["exporters"][raw_id] = body
    config["service"]["pipelines"]["traces"]["exporters"] = [raw_id]
    mine = component_problems(ComponentKind.EXPORTER, raw_id, body)
    assert mine == [p for p in validate_collector_config(config) if p.component.startswith("exporters")]
    assert bool(mine) is (body != {"endpoint": "tempo:4317"})


def test_policy_problems_are_marked_and_can_be_left_out() -> None:
    config = edit(base(), "service.pipelines.traces.processors", ["batch", "memory_limiter"])
    problems = validate_collector_config(config)
    assert {p.rule for p in problems} == {"policy-memory-limiter-first", "policy-batch-last"}
    assert all(p.policy and p.stage == "policy" for p in problems)
    assert validate_collector_config(config, policy=False) == []


def test_connector_fed_pipelines_need_no_memory_limiter() -> None:
    config = edit(edit(base(), "connectors.spanmetrics", {}), "service.pipelines", pipelines(
        traces=(["otlp"], ML_B, ["spanmetrics"]), metrics=(["spanmetrics"], ["batch"], ["debug"])))
    assert validate_collector_config(config) == []


def test_tail_sampling_policy_problems_are_startup_stage() -> None:
    # The collector builds tail_sampling policies in Start(), so `otelcol validate` accepts these.
    problems = validate_collector_config(ts_policy({"name": "a", "type": "nope"}))
    assert [p.stage for p in problems] == ["startup"]


def test_problems_are_frozen_values() -> None:
    problem = validate_collector_config({})[0]
    assert isinstance(problem, CollectorConfigProblem)
    with pytest.raises(AttributeError):
        problem.rule = "x"  # type: ignore[misc]


def test_deprecated_type_aliases_are_accepted_like_the_canonical_names() -> None:
    # otelcol-obsctl lists otlp_grpc/otlp_http/prometheus_remote_write/span_metrics and still
    # accepts the old names as deprecated aliases.
    config = base()
    config["exporters"] = {"otlp_grpc/tempo": {"endpoint": "tempo:4317"}, "otlp": {"endpoint": "t:4317"},
                           "otlp_http": {"endpoint": "http://l"}, "otlphttp": {"endpoint": "http://l"},
                           "prometheus_remote_write": {"endpoint": "http://m/api/v1/push"}}
    config["service"]["pipelines"]["traces"]["exporters"] = ["otlp_grpc/tempo", "otlp", "otlp_http", "otlphttp"]
    config["service"]["pipelines"]["metrics"] = {"receivers": ["otlp"], "processors": ML_B,
                                                 "exporters": ["prometheus_remote_write"]}
    assert validate_collector_config(config) == []
    for (kind, alias), canonical in TYPE_ALIASES.items():
        assert COMPONENT_MODELS[(kind, alias)] is COMPONENT_MODELS[(kind, canonical)]


def test_http_blocks_ignore_unknown_keys_like_the_collector_but_optional_sections_do_not() -> None:
    # confighttp's squashed client/server configs decode with unknown keys ignored; configoptional
    # sections (sending_queue, tls on a server, cors, ...) decode strictly again.
    lenient = with_exporter("otlphttp", {"endpoint": "http://x", "bogus": 1, "tls": {"bogus": 2}})
    assert validate_collector_config(lenient) == []
    strict = with_exporter("otlphttp", {"endpoint": "http://x", "sending_queue": {"bogus": 1}})
    assert [p.rule for p in validate_collector_config(strict)] == ["invalid-keys"]
    grpc = edit(base(), "exporters.otlp/tempo.bogus", 1)
    assert [p.rule for p in validate_collector_config(grpc)] == ["invalid-keys"]


def test_disabled_optional_section_is_decoded_but_not_validated() -> None:
    off = edit(base(), "exporters.otlp/tempo.sending_queue", {"enabled": False, "num_consumers": 0})
    assert validate_collector_config(off) == []
    bad_key = edit(base(), "exporters.otlp/tempo.sending_queue", {"enabled": False, "bogus": 1})
    assert [p.rule for p in validate_collector_config(bad_key)] == ["invalid-keys"]


def test_problems_name_the_path_inside_the_component_in_table_order() -> None:
    # Nested blocks are field tables like the components: a problem deep in one names its path,
    # and problems come in the order of the table's rows, not of the YAML keys.
    config = edit(base(), "receivers.otlp.protocols.grpc", {"tls": {"min_version": "1.9"},
                                                            "max_recv_msg_size_mib": "4", "endpoint": 7})
    messages = [p.message for p in validate_collector_config(config)]
    assert messages == [
        "receivers::otlp: 'protocols.grpc.endpoint' expected type 'string', got unconvertible type 'int' "
        "(rule invalid-value-type)",
        'receivers::otlp: protocols.grpc.tls: tls: invalid TLS min_version: unsupported TLS version: "1.9" '
        "(rule component-invalid-value)",
        "receivers::otlp: 'protocols.grpc.max_recv_msg_size_mib' expected type 'int', got unconvertible type "
        "'string' (rule invalid-value-type)",
    ]
    # A key named like tail_sampling's extension settings is an ordinary key elsewhere.
    labels = with_exporter("prometheusremotewrite", {"endpoint": "http://m/api/v1/push",
                                                     "external_labels": {"extensions": {"a": 1}}}, pipeline="metrics")
    assert [p.message for p in validate_collector_config(labels)] == [
        "exporters::prometheusremotewrite: 'external_labels.extensions' expected type 'string', got unconvertible "
        "type 'map' (rule invalid-value-type)"]
    policy = ts_policy({"name": "p", "type": "always_sample", "my_extension": "x"})
    assert [p.message for p in validate_collector_config(policy)] == [
        "processors::tail_sampling: 'policies[0].my_extension' expected a mapping, got string "
        "(rule invalid-value-type)"]


def test_env_references_expand_before_validation() -> None:
    config = edit(base(), "processors.memory_limiter.limit_mib", "${env:LIMIT}")
    assert [p.rule for p in validate_collector_config(config)] == ["invalid-value-type"]
    assert validate_collector_config(config, env={"LIMIT": "512"}) == []
    defaulted = edit(base(), "exporters.otlp/tempo.endpoint", "${TEMPO:-tempo:4317}")
    assert validate_collector_config(defaulted, env={}) == []


@pytest.mark.parametrize(("text", "expected"), [
    ("otlp", ComponentID("otlp")),
    ("otlp/tempo-eu.1", ComponentID("otlp", "tempo-eu.1")),
    (" batch / x ", ComponentID("batch", "x")),
])
def test_component_id_parse(text: str, expected: ComponentID) -> None:
    assert ComponentID.parse(text) == expected
    assert str(expected) == text.replace(" ", "")


@pytest.mark.parametrize("text", ["otlp/", "/x", "1otlp", "ot-lp", "otlp/a b", "otlp/a\tb", "otlp/a+b", "a" * 64])
def test_component_id_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="id"):
        ComponentID.parse(text)


@pytest.mark.parametrize(("text", "ns"), [
    ("0", 0), ("1s", 10**9), ("1m30s", 90 * 10**9), ("250ms", 250 * 10**6), ("1.5h", 5400 * 10**9),
    ("-2s", -2 * 10**9), ("3us", 3000), ("1µs", 1000), ("7ns", 7),
])
def test_parse_go_duration(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize("text", ["", "5", "1sec", "s", "1d", "--1s"])
def test_parse_go_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="time: "):
        parse_go_duration(text)


def test_ottl_helpers() -> None:
    assert ottl_lexical_problem('set(span.attributes["a"], "b") where span.name != "x"') is None
    assert ottl_lexical_problem("") is not None
    assert ottl_lexical_problem('set(name, "x"') is not None
    assert ottl_lexical_problem("name == 'x'") is not None  # OTTL strings are double-quoted
    assert ottl_path_roots('set(span.attributes["a"], Concat([resource.attributes["b"], "c"], "-"))') == [
        "span", "resource"]
    assert ottl_path_roots('delete_key(attributes, "x")') == ["attributes"]


def test_models_are_typed_and_keep_go_semantics() -> None:
    limiter = MemoryLimiterConfig.decode({"check_interval": "1.5s", "limit_mib": 100.9})
    assert limiter.check_interval == 1_500_000_000  # nanoseconds
    assert limiter.limit_mib == 100  # a float decodes into an integer field, truncated (mapstructure)
    batch = BatchConfig.decode({"metadata_keys": "a,b"})
    assert batch.metadata_keys == ["a", "b"]  # a string decodes into a list by splitting on ','
    assert batch.send_batch_size == 8192


def test_known_component_types_equal_the_manifest() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    found = set()
    for section in ("receivers", "processors", "exporters", "extensions", "connectors"):
        for entry in manifest.get(section) or ():
            module, version = entry["gomod"].split()
            assert version == COLLECTOR_VERSION, entry
            row = component_for_module(module)
            assert row is not None, f"add a row for {module} to obsctl.model.otelcol.COMPONENTS"
            assert section == f"{row.kind.value}s"
            found.add((row.kind, row.type_name))
    assert known_component_types() == found
    assert f"# builder: go.opentelemetry.io/collector/cmd/builder {COLLECTOR_VERSION}" in MANIFEST.read_text()
