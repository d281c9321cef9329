"""The Backstage source against a REAL Backstage catalog backend (tests/support/backstage.py), and
`obsctl serve` reconciling from it end to end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from obsctl.sources.backstage import BackstageSource
from tests.support.backstage import BackstageCatalog
from tests.support.serve import ServeProcess

pytestmark = pytest.mark.integration

SEED_SERVICES = {"backstage:component:default/checkout", "backstage:component:default/search-api"}


def component_yaml(name: str, owner: str = "team-payments", availability: str = "99.9") -> str:
    return (f"apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n  annotations:\n"
            f"    obsctl.dev/availability: \"{availability}\"\nspec:\n  type: service\n  lifecycle: production\n"
            f"  owner: {owner}\n")


class Recording(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return super().handle_request(request)


@pytest.fixture(scope="module")
def backstage() -> Iterator[BackstageCatalog]:
    with BackstageCatalog() as bs:
        yield bs


def wait(predicate: object, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def test_source_reads_pages_and_refetches_only_changes(backstage: BackstageCatalog) -> None:
    rec = Recording()
    src = BackstageSource(backstage.base_url, backstage.token, page_size=1, transport=rec)
    first = src.fetch()
    paths = {f.path for f in first.files}
    assert paths >= SEED_SERVICES and "backstage:group:default/team-payments" in paths
    assert not any(p.startswith("backstage:location:") for p in paths)  # filtered by kind
    pages = [r for r in rec.requests if r.url.path.endswith("/entities/by-query")]
    assert len(pages) >= len(paths)  # one entity per page: limit was resent with every cursor
    assert all(r.url.params.get("limit") == "1" and "metadata.etag" in r.url.params.get("fields", "")
               for r in pages)
    assert all("obsctl-test" not in str(r.url) for r in rec.requests)  # the token rides in a header only
    fetched = src.bodies_fetched
    assert fetched == len(paths)
    assert src.fetch().files == first.files and src.bodies_fetched == fetched  # nothing changed, nothing re-read

    backstage.write_entity_file("checkout.yaml", (backstage.catalog_dir / "checkout.yaml").read_text()
                                .replace('obsctl.dev/availability: "99.9"', 'obsctl.dev/availability: "99.5"'))
    backstage.refresh("component:default/checkout")
    wait(lambda: b'"99.5"' in next(f.data for f in src.fetch().files if f.path.endswith("/checkout"))
         or b"'99.5'" in next(f.data for f in src.fetch().files if f.path.endswith("/checkout")),
         what="edited checkout visible")
    assert src.bodies_fetched - fetched < len(paths)  # only what changed was downloaded again


def test_vanished_and_orphaned_entities_drop_out(backstage: BackstageCatalog, tmp_path: Path) -> None:
    src = BackstageSource(backstage.base_url, backstage.token)
    extra = backstage.work_dir / "extra.yaml"
    extra.write_text(component_yaml("extra-svc"))
    location = backstage.register_location(extra)
    wait(lambda: "backstage:component:default/extra-svc" in {f.path for f in src.fetch().files},
         what="registered location visible")
    backstage.delete_location(location)
    wait(lambda: "backstage:component:default/extra-svc" not in {f.path for f in src.fetch().files},
         what="deleted location gone")
    backstage.write_entity_file("orphan-me.yaml", component_yaml("orphan-me"))
    wait(lambda: "backstage:component:default/orphan-me" in {f.path for f in src.fetch().files}, what="orphan-me")
    backstage.remove_entity_file("orphan-me.yaml")  # orphaned within seconds, deleted ~30 s later
    wait(lambda: "backstage:component:default/orphan-me" not in {f.path for f in src.fetch().files},
         timeout=45, what="orphan dropped")


def test_serve_reconciles_from_backstage(backstage: BackstageCatalog, tmp_path: Path) -> None:
    settings = {"serve": {"sources": ["backstage"], "deletion_grace_seconds": 3},
                "backstage": {"url": backstage.base_url, "token": backstage.token, "poll_seconds": 0.5}}
    with ServeProcess(tmp_path, settings, copy_catalog=False) as srv:
        out = srv.out_dir
        assert (out / "prometheus/rules/default/checkout.rules.yml").is_file()
        assert (out / "prometheus/rules/default/search-api.rules.yml").is_file()
        extra = backstage.work_dir / "served.yaml"
        extra.write_text(component_yaml("served-svc"))
        t0 = time.monotonic()
        location = backstage.register_location(extra)
        srv.wait_for((out / "prometheus/rules/default/served-svc.rules.yml").is_file, timeout=30,
                     what="served-svc artifacts")
        print(f"Backstage registration -> artifacts: {time.monotonic() - t0:.2f}s")
        backstage.delete_location(location)
        gone_at = time.monotonic()
        srv.wait_for(lambda: not (out / "prometheus/rules/default/served-svc.rules.yml").exists(), timeout=30,
                     what="served-svc artifacts removed")
        assert time.monotonic() - gone_at >= 3  # not before the deletion grace (3 s here) ran out
        assert (out / "prometheus/rules/default/checkout.rules.yml").is_file()
        assert backstage.token not in srv.log_path.read_text()
        assert backstage.token not in srv.stdout_path.read_text()
