"""Kubernetes manifests an operator accepts and runs: pinned CRD schemas, operator naming, the image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from obsctl.model import conventions as cv
from obsctl.model.artifact import Artifact, Kind
from obsctl.model.entities import Catalog
from obsctl.render import collectors
from obsctl.render.options import DEFAULT_COLLECTOR_IMAGE, KubernetesOptions, RenderOptions
from obsctl.sources.directory import read_directory, read_template_tree
from obsctl.spec.load import load_catalog
from obsctl.spec.templates import Templates, parse_templates
from tests.support.crds import crd_errors

ROOT = Path(__file__).resolve().parents[2]
CONTRIB = ROOT / "tests" / "data" / "otelcol" / "otelcol-contrib-0.159.0-manifest.yaml"
ALL = frozenset(Kind)

# Component type -> the module that provides it (collector core or contrib), by kind.
MODULES = {
    ("receivers", "otlp"): "receiver/otlpreceiver",
    ("processors", "memory_limiter"): "processor/memorylimiterprocessor",
    ("processors", "batch"): "processor/batchprocessor",
    ("processors", "resource"): "processor/resourceprocessor",
    ("processors", "attributes"): "processor/attributesprocessor",
    ("processors", "filter"): "processor/filterprocessor",
    ("processors", "transform"): "processor/transformprocessor",
    ("processors", "tail_sampling"): "processor/tailsamplingprocessor",
    ("processors", "probabilistic_sampler"): "processor/probabilisticsamplerprocessor",
    ("exporters", "otlp"): "exporter/otlpexporter",
    ("exporters", "otlphttp"): "exporter/otlphttpexporter",
    ("exporters", "debug"): "exporter/debugexporter",
    ("exporters", "prometheusremotewrite"): "exporter/prometheusremotewriteexporter",
    ("exporters", "loadbalancing"): "exporter/loadbalancingexporter",
    ("extensions", "health_check"): "extension/healthcheckextension",
    ("extensions", "pprof"): "extension/pprofextension",
    ("extensions", "zpages"): "extension/zpagesextension",
    ("connectors", "spanmetrics"): "connector/spanmetricsconnector",
    ("connectors", "forward"): "connector/forwardconnector",
}


@pytest.fixture(scope="module")
def templates() -> Templates:
    return parse_templates(read_template_tree(ROOT))


@pytest.fixture(scope="module")
def catalog(templates: Templates) -> Catalog:
    return load_catalog(read_directory(ROOT / "examples" / "catalog"), templates).catalog


def _doc(art: Artifact) -> dict[str, Any]:
    data = yaml.safe_load(art.body)
    assert isinstance(data, dict)
    return data


def _collector_crs(catalog: Catalog, templates: Templates, options: RenderOptions) -> dict[str, dict[str, Any]]:
    return {a.key: _doc(a) for a in collectors.render(catalog, templates, options)
            if a.kind is Kind.COLLECTOR_CRD and not a.key.startswith("snippet/")}


def test_collector_manifests_validate_against_the_operator_crd(catalog: Catalog, templates: Templates) -> None:
    options = RenderOptions(outputs=ALL, kubernetes=KubernetesOptions(labels=(("release", "obs"),),
                                                                      annotations=(("team.example/x", "y"),)))
    crs = _collector_crs(catalog, templates, options)
    assert len(crs) == len(catalog.services) + 2 * len(catalog.teams_in_use())
    for key, cr in crs.items():
        assert crd_errors(cr) == [], key
        assert cr["spec"]["image"] == DEFAULT_COLLECTOR_IMAGE
        assert cr["metadata"]["labels"]["release"] == "obs"
        assert cr["metadata"]["annotations"]["team.example/x"] == "y"
    modes = {key.split("/")[0]: cr["spec"]["mode"] for key, cr in crs.items()}
    assert modes == {"agent": "sidecar", "gateway": "deployment", "sampler": "deployment"}
    image = _collector_crs(catalog, templates, RenderOptions(
        outputs=ALL, kubernetes=KubernetesOptions(collector_image="registry.local/otelcol:1")))
    assert {cr["spec"]["image"] for cr in image.values()} == {"registry.local/otelcol:1"}


def test_a_manifest_the_crd_rejects_is_caught() -> None:
    """The schema check can fail: a wrong mode and a missing config are rejected."""
    bad = {"apiVersion": "opentelemetry.io/v1beta1", "kind": "OpenTelemetryCollector",
           "metadata": {"name": "Bad_Name", "namespace": "default"}, "spec": {"mode": "everywhere"}}
    errors = crd_errors(bad)
    assert any("mode" in e for e in errors) and any("config" in e for e in errors)
    assert any("metadata.name" in e for e in errors)


def test_endpoints_follow_the_operator_service_names(catalog: Catalog, templates: Templates) -> None:
    """Agents reach `<gateway>-collector`; gateways resolve `<sampler>-collector-headless` (operator naming)."""
    crs = _collector_crs(catalog, templates, RenderOptions(outputs=ALL))
    for svc in catalog.services:
        agent = crs[f"agent/{cv.service_key(svc.ref)}"]
        gateway = crs[f"gateway/{cv.team_key(svc.team)}"]
        host = agent["spec"]["config"]["exporters"]["otlp/gateway"]["endpoint"].rsplit(":", 1)[0]
        assert host == f"{gateway['metadata']['name']}-collector.{gateway['metadata']['namespace']}.svc"
        assert agent["metadata"]["namespace"] == svc.namespace
    for team in catalog.teams_in_use():
        gateway = crs[f"gateway/{cv.team_key(team)}"]
        sampler = crs[f"sampler/{cv.team_key(team)}"]
        dns = gateway["spec"]["config"]["exporters"]["loadbalancing/sampler"]["resolver"]["dns"]
        assert dns["hostname"] == f"{sampler['metadata']['name']}-collector-headless.{team.namespace}.svc"
        listen = sampler["spec"]["config"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
        assert listen.endswith(":" + dns["port"])
        # The operator appends at most "-collector-headless" (19) to a name; a Service name is a DNS label.
        assert len(sampler["metadata"]["name"] + cv.OTEL_HEADLESS_SUFFIX) <= 63


def test_sidecar_snippet_names_the_agent_manifest(catalog: Catalog, templates: Templates) -> None:
    arts = {a.key: a for a in collectors.render(catalog, templates, RenderOptions(outputs=ALL))}
    for svc in catalog.services:
        key = cv.service_key(svc.ref)
        snippet = _doc(arts[f"snippet/{key}"])
        agent = _doc(arts[f"agent/{key}"])
        annotations = snippet["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {"sidecar.opentelemetry.io/inject": agent["metadata"]["name"]}
        assert arts[f"snippet/{key}"].path == f"kubernetes/snippets/{svc.namespace}/{svc.name}.yaml"


def _components(config: dict[str, Any]) -> set[tuple[str, str]]:
    return {(section, str(cid).split("/", 1)[0]) for section in MODULES_SECTIONS for cid in config.get(section) or {}}


MODULES_SECTIONS = ("receivers", "processors", "exporters", "extensions", "connectors")


def test_default_image_has_every_component_obsctl_renders(catalog: Catalog, templates: Templates) -> None:
    """Against the pinned distribution's own component list (tests/data/otelcol, see its README)."""
    assert DEFAULT_COLLECTOR_IMAGE == "otel/opentelemetry-collector-contrib:0.159.0"
    manifest = yaml.safe_load(CONTRIB.read_text())
    assert manifest["dist"]["name"] == "otelcol-contrib" and manifest["dist"]["version"] == "0.159.0"
    shipped = {(section, "/".join(e["gomod"].split()[0].split("/")[-2:]))
               for section in MODULES_SECTIONS for e in manifest.get(section) or ()}
    # Every knob that adds a component: agent head sampling on, static and DNS resolvers.
    options = [RenderOptions(outputs=ALL), RenderOptions(outputs=ALL, collector=(
        ("agent_sampling_percent", "50"), ("sampler_static_hostnames", "a:4317")))]
    used: set[tuple[str, str]] = set()
    for opts in options:
        for cr in _collector_crs(catalog, templates, opts).values():
            used |= _components(cr["spec"]["config"])
    assert ("exporters", "loadbalancing") in used and ("processors", "tail_sampling") in used
    assert ("processors", "probabilistic_sampler") in used
    missing = sorted(c for c in used if (c[0], MODULES[c]) not in shipped)
    assert missing == []
    # And the check can fail: a distribution without the load-balancing exporter is caught.
    without = shipped - {("exporters", "exporter/loadbalancingexporter")}
    assert [c for c in sorted(used) if (c[0], MODULES[c]) not in without] == [("exporters", "loadbalancing")]


def test_prometheus_rules_carry_namespace_and_settings_labels(catalog: Catalog, templates: Templates) -> None:
    """The kube-prometheus-stack recipe: `release` label, rules in the monitoring namespace."""
    from obsctl.render import rules

    k8s = KubernetesOptions(rules_namespace="monitoring",
                            labels=(("release", "kube-prometheus-stack"), (cv.K8S_MANAGED_BY, "someone-else")),
                            annotations=(("argocd.argoproj.io/sync-wave", "1"),))
    arts = [a for a in rules.render(catalog, templates, RenderOptions(outputs=frozenset({Kind.PROMETHEUS_RULE_CRD}),
                                                                      kubernetes=k8s))]
    assert arts
    for art in arts:
        doc = _doc(art)
        assert crd_errors(doc) == [], art.key
        meta = doc["metadata"]
        assert meta["namespace"] == "monitoring"
        assert meta["labels"]["release"] == "kube-prometheus-stack"
        assert meta["labels"][cv.K8S_MANAGED_BY] == "obsctl"  # obsctl's ownership mark is never overwritten
        assert meta["annotations"]["argocd.argoproj.io/sync-wave"] == "1"
        for group in doc["spec"]["groups"]:
            for rule in group["rules"]:
                # enforcedNamespaceLabel rewrites `namespace`; obsctl's series never use it.
                assert "namespace" not in (rule.get("labels") or {})
                assert 'namespace="' not in rule["expr"].replace('catalog_namespace="', "")
    default = rules.render(catalog, templates, RenderOptions(outputs=frozenset({Kind.PROMETHEUS_RULE_CRD})))
    assert {_doc(a)["metadata"]["namespace"] for a in default} == {s.namespace for s in catalog.services}


def test_validate_prints_backstage_annotations_and_link_warnings(tmp_path: Path) -> None:
    import io

    from obsctl.cli import main
    from tests.support.alerting import UNDELIVERED

    out = io.StringIO()
    config = tmp_path / "receivers.yaml"  # every team needs a destination for its pages, or validate fails
    config.write_text(yaml.safe_dump({"alerting": UNDELIVERED}))
    assert main(["--config", str(config), "validate", str(ROOT / "examples" / "catalog"), "-o", "annotations"],
                out=out) == 0
    docs = [d for d in yaml.safe_load_all(out.getvalue()) if d]
    assert len(docs) == 5
    checkout = next(d["metadata"]["annotations"] for d in docs
                    if "service:checkout" in d["metadata"]["annotations"]["grafana/dashboard-selector"])
    assert checkout == {
        "grafana/dashboard-selector": "tags @> 'service:checkout' && tags @> 'namespace:default' && tags @> 'obsctl'",
        "prometheus.io/alert": "SLOErrorBudgetBurn,SLOErrorBudgetExhausted,SLONoData",
        "prometheus.io/labels": "service=checkout,catalog_namespace=default"}  # no overview without grafana's URL
    config = tmp_path / "obsctl.yaml"
    config.write_text(yaml.safe_dump({"grafana": {"public_url": "https://grafana.test"}, "alerting": UNDELIVERED}))
    text = io.StringIO()
    main(["--config", str(config), "validate", str(ROOT / "examples" / "catalog")], out=text)
    warnings = [ln for ln in text.getvalue().splitlines() if ln.startswith("warning: ")]
    assert [w.split(" is not set")[0] for w in warnings] == [
        "warning: prometheus.public_url", "warning: backstage.public_url",
        "warning: collector.metrics_remote_write_url", "warning: collector.traces_endpoint",
        "warning: collector.logs_endpoint"]
    annotated = io.StringIO()
    main(["--config", str(config), "validate", str(ROOT / "examples" / "catalog"), "-o", "annotations"], out=annotated)
    overview = "grafana/overview-dashboard: https://grafana.test/d/obsctl-svc-default-checkout?kiosk"
    assert overview in annotated.getvalue()


def test_grafana_operator_resources_validate_and_carry_the_same_dashboards(
        catalog: Catalog, templates: Templates) -> None:
    from obsctl.render import dashboards

    outputs = frozenset({Kind.GRAFANA_DASHBOARD, Kind.GRAFANA_FOLDER, Kind.GRAFANA_DASHBOARD_CRD,
                         Kind.GRAFANA_FOLDER_CRD})
    k8s = KubernetesOptions(grafana_namespace="grafana", grafana_instance_labels=(("dashboards", "main"),),
                            labels=(("release", "obs"),))
    arts = dashboards.render(catalog, templates, RenderOptions(outputs=outputs, kubernetes=k8s))
    boards = {a.key: a for a in arts if a.kind is Kind.GRAFANA_DASHBOARD}
    crs = {a.key: _doc(a) for a in arts if a.kind is Kind.GRAFANA_DASHBOARD_CRD}
    folders = {a.key: _doc(a) for a in arts if a.kind is Kind.GRAFANA_FOLDER_CRD}
    assert set(crs) == set(boards) and len(crs) == len(catalog.services) + len(catalog.teams_in_use()) + 1
    assert set(folders) == {a.key for a in arts if a.kind is Kind.GRAFANA_FOLDER}
    folder_names = {f["metadata"]["name"]: f for f in folders.values()}
    for uid, cr in crs.items():
        assert crd_errors(cr) == [], uid
        assert cr["kind"] == "GrafanaDashboard" and cr["metadata"]["namespace"] == "grafana"
        assert cr["spec"]["json"].encode() == boards[uid].body  # byte for byte what the API sink writes
        assert cr["spec"]["uid"] == uid and cr["spec"]["instanceSelector"] == {"matchLabels": {"dashboards": "main"}}
        assert cr["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "obsctl", "release": "obs"}
        # The operator's rule: one of folderRef/folderUID; the reference names a folder resource rendered here,
        # the same folder the file/API output puts the dashboard in.
        assert "folderUID" not in cr["spec"] and cr["spec"]["folderRef"] in folder_names
        assert f"/{folder_names[cr['spec']['folderRef']]['spec']['uid']}/" in boards[uid].path
    for uid, folder in folders.items():
        assert crd_errors(folder) == [], uid
        parent = folder["spec"].get("parentFolderRef")
        assert (parent is None) == (uid == cv.ROOT_FOLDER_UID)
        assert parent is None or folder_names[parent]["spec"]["uid"] == cv.ROOT_FOLDER_UID
    # Opt-in: the default outputs render none.
    assert not [a for a in dashboards.render(catalog, templates, RenderOptions())
                if a.kind in (Kind.GRAFANA_DASHBOARD_CRD, Kind.GRAFANA_FOLDER_CRD)]
    # Only the operator resources asked: the dashboards are still built (and checked) for them.
    only = dashboards.render(catalog, templates, RenderOptions(outputs=frozenset({Kind.GRAFANA_DASHBOARD_CRD})))
    assert {a.kind for a in only} == {Kind.GRAFANA_DASHBOARD_CRD} and len(only) == len(crs)
