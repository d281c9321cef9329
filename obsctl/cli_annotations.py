"""`obsctl validate -o annotations`: the Backstage annotations to add to each catalog entity."""

from __future__ import annotations

from typing import TextIO

from obsctl.config import Settings
from obsctl.model import conventions as cv
from obsctl.model.yamltext import dump
from obsctl.spec.load import LoadResult


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
