"""End to end: generated collector configs, run by the real collector, carry a synthetic service's
OpenTelemetry metrics into a real Prometheus under the names the generated SLO rules read.

service (OTel Python SDK) --OTLP/HTTP--> agent collector --OTLP/gRPC--> team gateway collector
  --remote write--> Prometheus, which evaluates obsctl's rules for the service.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from obsctl.model.artifact import Kind
from obsctl.render import collectors, rules
from obsctl.render.options import RenderOptions
from obsctl.sources.directory import read_directory, read_template_tree
from obsctl.spec.load import load_catalog
from obsctl.spec.templates import parse_templates
from tests.support.binaries import free_port, require_binary
from tests.support.otelcol import otelcol_binary, run_collector
from tests.support.prom import Prometheus

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, str]]:
    require_binary("prometheus")
    binary = otelcol_binary()
    tmp = tmp_path_factory.mktemp("otel-e2e")
    templates = parse_templates(read_template_tree(ROOT))
    catalog = load_catalog(read_directory(ROOT / "examples" / "catalog"), templates).catalog
    checkout = next(s for s in catalog.services if s.name == "checkout")
    with Prometheus(tmp / "prom", remote_write_receiver=True) as prom:
        rule_art = next(a for a in rules.render(catalog, templates, RenderOptions())
                        if a.kind is Kind.PROMETHEUS_RULES and a.key == "default/checkout")
        prom.write_rule_file("checkout.rules.yml", rule_art.body.decode(), reload=True)
        agent_grpc, agent_http, gw_grpc, gw_http = (free_port() for _ in range(4))
        options = RenderOptions(collector=(
            ("agent_grpc_endpoint", f"127.0.0.1:{agent_grpc}"), ("agent_http_endpoint", f"127.0.0.1:{agent_http}"),
            ("gateway_endpoint", f"127.0.0.1:{gw_grpc}"), ("gateway_grpc_listen", f"127.0.0.1:{gw_grpc}"),
            ("gateway_http_listen", f"127.0.0.1:{gw_http}"), ("telemetry_host", "127.0.0.1"),
            ("metrics_remote_write_url", f"{prom.url}/api/v1/write"),
            ("traces_endpoint", f"127.0.0.1:{free_port()}"), ("logs_endpoint", f"http://127.0.0.1:{free_port()}"),
            ("sampler_static_hostnames", f"127.0.0.1:{free_port()}"),
        ))
        agent_cfg = collectors.agent_config(checkout, templates, options)
        gateway_cfg = collectors.gateway_config(checkout.team, templates, options)
        for cfg in (agent_cfg, gateway_cfg):
            cfg["extensions"]["health_check"]["endpoint"] = f"127.0.0.1:{free_port()}"
        agent_path, gateway_path = tmp / "agent.yaml", tmp / "gateway.yaml"
        agent_path.write_text(yaml.safe_dump(agent_cfg))
        gateway_path.write_text(yaml.safe_dump(gateway_cfg))
        with run_collector(gateway_path, binary=binary, log_dir=tmp), \
                run_collector(agent_path, binary=binary, log_dir=tmp):
            yield prom, f"http://127.0.0.1:{agent_http}"


def _send_traffic(endpoint: str, seconds: float) -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    # The app says nothing about its team or tier: the agent stamps those from the catalog.
    resource = Resource.create({"service.name": "checkout"})
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"),
                                           export_interval_millis=500)
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    duration = meters.get_meter("synthetic").create_histogram(
        "http.server.request.duration", unit="s",
        explicit_bucket_boundaries_advisory=[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5])
    tracer = tracer_provider.get_tracer("synthetic")
    deadline = time.monotonic() + seconds
    i = 0
    try:
        while time.monotonic() < deadline:
            failed = i % 10 == 0  # 10 % server errors
            with tracer.start_as_current_span("GET /cart") as span:
                if failed:
                    span.set_status(Status(StatusCode.ERROR))
            duration.record(0.4 if i % 4 == 0 else 0.02,
                            {"http.response.status_code": 500 if failed else 200, "http.request.method": "GET"})
            i += 1
            time.sleep(0.01)
    finally:
        meters.shutdown()
        tracer_provider.shutdown()


def test_metrics_arrive_under_the_names_the_slo_rules_read(pipeline: tuple[Prometheus, str]) -> None:
    prom, endpoint = pipeline
    _send_traffic(endpoint, seconds=6)
    series = prom.wait_for(lambda: prom.query(
        'http_server_request_duration_seconds_count{service_name="checkout",http_response_status_code="500"}'),
        timeout=30)
    labels = series[0]["metric"]
    # Stamped by the agent from the catalog, turned into labels by the gateway's remote write.
    assert labels["team"] == "team-payments"
    assert labels["service_namespace"] == "default"
    assert labels["service_tier"] == "1"
    buckets = prom.query('http_server_request_duration_seconds_bucket{service_name="checkout",le="0.25"}')
    assert buckets, "the latency SLI reads le=\"0.25\"; the bucket must exist under that spelling"
    # The generated recording rules see the traffic: errors and totals for availability and latency.
    ratio = prom.wait_for(lambda: prom.query_value(
        'obsctl:slo_error_ratio:rate5m{service="checkout",slo="availability"} > 0'), timeout=30)
    assert 0.05 < ratio < 0.2  # 10 % sent as 500
    slow = prom.wait_for(lambda: prom.query_value(
        'obsctl:slo_error_ratio:rate5m{service="checkout",slo="latency"} > 0'), timeout=30)
    assert 0.15 < slow < 0.35  # 25 % sent at 400 ms, above the 250 ms objective


def test_every_generated_config_passes_otelcol_validate(tmp_path: Path) -> None:
    import dataclasses
    import subprocess

    binary = otelcol_binary()
    templates = parse_templates(read_template_tree(ROOT))
    catalog = load_catalog(read_directory(ROOT / "examples" / "catalog"), templates).catalog
    hostile = dataclasses.replace(catalog.services[0], environment='prod"\n  injected: {a: b}\n#')
    catalog = dataclasses.replace(catalog, services=(*catalog.services, hostile))
    arts = [a for a in collectors.render(catalog, templates, RenderOptions(environment="x: y"))
            if a.kind in (Kind.COLLECTOR_AGENT, Kind.COLLECTOR_GATEWAY)]
    assert len(arts) == len(catalog.services) + 2 * len(catalog.teams_in_use())  # a gateway and a sampler per team
    for art in arts:
        path = tmp_path / art.path.replace("/", "_")
        path.write_bytes(art.body)
        proc = subprocess.run([str(binary), "validate", f"--config={path}"], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, f"{art.path}: {proc.stderr[-2000:]}"
