"""Whole traces through the generated collector tiers, run by the real collector (otelcol-obsctl).

checkout (OTel SDK) --> agent A --\\                          /--> sampler 1 --\\
                                    >--> team gateway (loadbalancing, by trace ID)     >--> OTLP sink (this test)
ledger   (OTel SDK) --> agent B --/                          \\--> sampler 2 --/

Every trace has a checkout server span and a child ledger span. In some traces only the ledger span
fails: the error is seen by the sampler that owns the trace, which keeps the whole trace, checkout's
span included. In others checkout's span is slower than checkout's latency objective: its agent marks
it, and the sampler keeps the whole trace. All-OK traces are kept at the tier's baseline share, whole.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent import futures
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsctl.render import collectors
from obsctl.render.options import RenderOptions
from obsctl.sources.directory import read_directory, read_template_tree
from obsctl.spec.load import load_catalog
from obsctl.spec.templates import parse_templates
from tests.support.binaries import free_port
from tests.support.otelcol import otelcol_binary, run_collector

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ERROR_TRACES = 20
SLOW_TRACES = 10  # checkout's server span slower than its 250 ms latency objective, no error anywhere
OK_TRACES = 400


class _Sink:
    """An OTLP/gRPC trace receiver: spans by trace ID, and which peers (samplers) sent them."""

    def __init__(self) -> None:
        self.spans: dict[str, list[tuple[str, str, int]]] = defaultdict(list)  # trace -> (service, span, status)
        self.peers: set[str] = set()
        self.lock = threading.Lock()
        self.last = time.monotonic()

    def export(self, request: Any, context: Any) -> Any:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        with self.lock:
            self.peers.add(context.peer().rsplit(":", 1)[0] + ":" + context.peer().rsplit(":", 1)[1])
            for rs in request.resource_spans:
                service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self.spans[span.trace_id.hex()].append((service, span.name, span.status.code))
            self.last = time.monotonic()
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def sink() -> Iterator[tuple[_Sink, int]]:
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    state = _Sink()

    class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            return state.export(request, context)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield state, port
    finally:
        server.stop(grace=None)


def _write(path: Path, config: dict[str, Any]) -> Path:
    config["extensions"]["health_check"]["endpoint"] = f"127.0.0.1:{free_port()}"
    path.write_text(yaml.safe_dump(config))
    return path


def _send(agent_a: str, agent_b: str) -> tuple[set[str], set[str], set[str]]:
    """One checkout->ledger trace per iteration; returns (error, slow, ok trace ids)."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.trace import SpanKind, Status, StatusCode

    rnd = random.Random(15)  # fixed trace IDs: the baseline share below is reproducible

    class Seeded(IdGenerator):
        def generate_span_id(self) -> int:
            return rnd.getrandbits(64) or 1

        def generate_trace_id(self) -> int:
            return rnd.getrandbits(128) or 1

    providers = []
    for name, endpoint in (("checkout", agent_a), ("ledger", agent_b)):
        provider = TracerProvider(resource=Resource.create({"service.name": name}), id_generator=Seeded())
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"),
                                                       schedule_delay_millis=200))
        providers.append(provider)
    checkout, ledger = (p.get_tracer("e2e") for p in providers)
    errors, slow, oks = set(), set(), set()
    try:
        for i in range(ERROR_TRACES + SLOW_TRACES + OK_TRACES):
            failed, slow_one = i < ERROR_TRACES, ERROR_TRACES <= i < ERROR_TRACES + SLOW_TRACES
            start = time.time_ns()
            # checkout serves the request; a slow one lasts 300 ms (timestamps given, no sleeping)
            parent = checkout.start_span("POST /checkout", kind=SpanKind.SERVER, start_time=start)
            ctx = trace.set_span_in_context(parent)
            with ledger.start_as_current_span("post entry", context=ctx) as child:
                if failed:
                    child.set_status(Status(StatusCode.ERROR))
            parent.end(end_time=start + (300_000_000 if slow_one else 20_000_000))
            (errors if failed else slow if slow_one else oks).add(format(parent.get_span_context().trace_id, "032x"))
    finally:
        for provider in providers:
            provider.shutdown()
    return errors, slow, oks


def test_traces_arrive_whole_and_ok_traces_at_the_baseline_rate(tmp_path: Path, sink: tuple[_Sink, int]) -> None:
    state, sink_port = sink
    binary = otelcol_binary()
    templates = parse_templates(read_template_tree(ROOT))
    catalog = load_catalog(read_directory(ROOT / "examples" / "catalog"), templates).catalog
    by_name = {s.name: s for s in catalog.services}
    checkout, ledger = by_name["checkout"], by_name["ledger"]
    assert checkout.team == ledger.team and checkout.tier == ledger.tier == 1
    team = checkout.team
    gw, s1, s2 = free_port(), free_port(), free_port()
    base = (("gateway_endpoint", f"127.0.0.1:{gw}"), ("gateway_grpc_listen", f"127.0.0.1:{gw}"),
            ("gateway_http_listen", f"127.0.0.1:{free_port()}"), ("telemetry_host", "127.0.0.1"),
            ("sampler_static_hostnames", f"127.0.0.1:{s1},127.0.0.1:{s2}"), ("sampler_decision_wait", "2s"),
            ("traces_endpoint", f"127.0.0.1:{sink_port}"),
            ("metrics_remote_write_url", f"http://127.0.0.1:{free_port()}/api/v1/write"),
            ("logs_endpoint", f"http://127.0.0.1:{free_port()}"))
    configs: list[Path] = []
    for i, port in enumerate((s1, s2)):
        opts = RenderOptions(collector=(*base, ("sampler_grpc_listen", f"127.0.0.1:{port}")))
        configs.append(_write(tmp_path / f"sampler{i}.yaml", collectors.sampler_config(team, templates, opts)))
    configs.append(_write(tmp_path / "gateway.yaml", collectors.gateway_config(team, templates, RenderOptions(
        collector=base))))
    agents = []
    for svc in (checkout, ledger):
        http = free_port()
        opts = RenderOptions(collector=(*base, ("agent_grpc_endpoint", f"127.0.0.1:{free_port()}"),
                                        ("agent_http_endpoint", f"127.0.0.1:{http}")))
        agent = collectors.agent_config(svc, templates, opts)
        assert "tail_sampling" not in agent["processors"]
        configs.append(_write(tmp_path / f"agent-{svc.name}.yaml", agent))
        agents.append(f"http://127.0.0.1:{http}")
    baseline = next(p for p in yaml.safe_load(configs[0].read_text())["processors"]["tail_sampling"]["policies"]
                    if p["name"] == "baseline-tier-1")
    percent = baseline["and"]["and_sub_policy"][1]["probabilistic"]["sampling_percentage"]

    with ExitStack() as stack:
        for path in configs:  # samplers first, agents last: nothing sent before its next hop listens
            stack.enter_context(run_collector(path, binary=binary, log_dir=tmp_path))
        errors, slow, oks = _send(agents[0], agents[1])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with state.lock:
                done = errors | slow <= set(state.spans) and time.monotonic() - state.last > 4
            if done:
                break
            time.sleep(0.5)

    received = dict(state.spans)
    # Every error trace arrives whole: checkout's OK span too, though only ledger's span failed.
    for trace_id in errors:
        assert sorted(s for s, _, _ in received.get(trace_id, [])) == ["checkout", "ledger"], trace_id
    # Every trace with a checkout span slower than checkout's objective arrives whole: checkout's agent
    # marked the span, the sampler kept the trace, ledger's spans included.
    for trace_id in slow:
        assert sorted(s for s, _, _ in received.get(trace_id, [])) == ["checkout", "ledger"], trace_id
    # No trace arrives in pieces.
    assert all(sorted(s for s, _, _ in spans) == ["checkout", "ledger"] for spans in received.values())
    kept_ok = len(set(received) & oks)
    expected = OK_TRACES * percent / 100
    sd = (OK_TRACES * percent / 100 * (1 - percent / 100)) ** 0.5
    print(f"\nbaseline {percent}%: kept {kept_ok}/{OK_TRACES} all-OK traces (expected {expected:.0f} ± {sd:.1f}); "
          f"{len(errors)}/{len(errors)} error and {len(slow)}/{len(slow)} slow traces whole; "
          f"{len(state.peers)} sampler connections")
    assert abs(kept_ok - expected) <= 4 * sd
    assert set(received) <= errors | slow | oks
    assert len(state.peers) >= 2  # both samplers exported: the gateway spread traces over them
