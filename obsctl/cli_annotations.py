"""`obsctl validate -o annotations`: the Backstage annotations to add to each catalog entity."""

from __future__ import annotations

from typing import TextIO

from obsctl.config import Settings
from obsctl.model import conventions as cv
from obsctl.model.yamltext import dump
from obsctl.spec.load import LoadResult


def link_warnings(settings: Settings) -> list[str]:
    """The links obsctl leaves out because a public URL setting is missing (never a placeholder instead)."""
    missing = [
        ("grafana.public_url", "alerts carry no dashboard_url annotation; no grafana/overview-dashboard annotation"),
        ("prometheus.public_url", "dashboards have no Alerting rules link"),
        ("backstage.public_url", "dashboards have no Catalog link to the entity page"),
    ]
    values = {"grafana.public_url": settings.grafana.public_url,
              "prometheus.public_url": settings.prometheus.public_url,
              "backstage.public_url": settings.backstage.public_url}
    out = [f"{name} is not set: {what}" for name, what in missing if not values[name]]
    collector_outputs = {k.value for k in settings.outputs} & {"collector-agent", "collector-gateway", "collector-crd"}
    for key in ("metrics_remote_write_url", "traces_endpoint", "logs_endpoint"):
        if collector_outputs and key not in settings.collector:
            out.append(f"collector.{key} is not set: the gateway and sampler configs export to the placeholder "
                       "in collectors/settings.yaml")
    return out


def write_annotations(result: LoadResult, settings: Settings, out: TextIO) -> None:
    """One YAML document per service: its entity ref and the `metadata.annotations` to merge in.

    Catalog problems come first, as comments (a service with errors gets no document).
    """
    catalog = result.catalog
    for problem in result.problems:
        out.write("# " + " ".join(str(problem).splitlines()) + "\n")
    grafana = settings.grafana.public_url
    if not grafana:
        out.write("# grafana.public_url is not set: no grafana/overview-dashboard annotation (it needs the URL)\n")
    for svc in sorted(catalog.services, key=lambda s: str(s.ref)):
        out.write(f"---\n# {svc.ref}: merge into the entity's metadata.annotations ({svc.origin.file})\n")
        out.write(dump({"metadata": {"annotations": cv.backstage_annotations(svc, grafana)}}, sort_keys=True))
