"""Synthetic catalogs with services that cannot render, for tests of how a render fails."""

from __future__ import annotations

from dataclasses import replace

from bench.common import synthetic_catalog
from obsctl.model.entities import Catalog, EventsSLI, Service


def with_unrenderable(n: int, seed: int, broken: tuple[int, ...]) -> tuple[Catalog, list[Service]]:
    """`synthetic_catalog(n, seed)` with an unparsable SLO query in the services at `broken`; and its services."""
    catalog = synthetic_catalog(n, seed)
    services = list(catalog.services)
    for i in broken:
        slo = services[i].slos[2]
        bad = replace(slo, sli=EventsSLI(total_query="rate(x[{{window}}])", error_query="rate(x{[{{window}}])"))
        services[i] = replace(services[i], slos=(*services[i].slos[:2], bad))
    return Catalog(tuple(services), catalog.teams), services
