"""A backend whose reload failed stays stale, visible in the round report and /metrics, and is reloaded
every round until a reload succeeds (the pending mark lives beside the files, so a restart keeps it)."""

from __future__ import annotations

from pathlib import Path

from obsctl.errors import PermanentError
from obsctl.reconcile.loop import LoopConfig, Reconciler
from obsctl.service.metrics import ServiceMetrics
from obsctl.sinks.files import RELOAD_PENDING, FilesSink
from tests.unit.test_loop import FIVE, NO_RETRY, MemSource, load, render


class Backend:
    """A reload endpoint that refuses until told otherwise, counting calls."""

    def __init__(self) -> None:
        self.up = False
        self.calls = 0

    def reload(self) -> None:
        self.calls += 1
        if not self.up:
            raise PermanentError("Prometheus reload (http://127.0.0.1:9/-/reload): HTTP 403: Lifecycle API is "
                                 "not enabled.")


def _stale_gauge(metrics: ServiceMetrics, sink: str) -> float | None:
    return metrics.registry.get_sample_value("obsctl_backend_stale", {"sink": sink})


def test_a_failed_reload_is_retried_every_round_and_reported_until_it_succeeds(tmp_path: Path) -> None:
    backend = Backend()
    metrics = ServiceMetrics()

    def reconciler() -> Reconciler:
        sink = FilesSink(tmp_path / "out", name="prometheus-rules", after_write=backend.reload)
        return Reconciler(MemSource(dict(FIVE)), load, render, [sink], config=LoopConfig(retry=NO_RETRY),
                          on_round=lambda rep: metrics.observe_round(rep, []))

    r = reconciler()
    first = r.run_once()
    [sr] = first.sinks
    assert sr.summary["create"] > 0 and "403" in sr.stale and sr.failed == 1
    assert first.as_dict()["sinks"][0]["stale"] == sr.stale
    assert _stale_gauge(metrics, "prometheus-rules") == 1.0
    assert backend.calls == 1

    # nothing to write, yet the round reloads again (and again fails)
    second = r.run_once()
    assert second.sinks[0].summary["create"] == 0 and second.sinks[0].stale and backend.calls == 2

    # a restarted obsctl knows from the mark beside the files
    assert (tmp_path / "out" / RELOAD_PENDING).exists()
    r = reconciler()
    backend.up = True
    third = r.run_once()
    assert third.sinks[0].summary["update"] == 0 and backend.calls == 3
    assert third.sinks[0].stale == "" and third.sinks[0].failed == 0
    assert not (tmp_path / "out" / RELOAD_PENDING).exists()
    assert _stale_gauge(metrics, "prometheus-rules") == 0.0

    r.run_once()  # converged: no write, no reload
    assert backend.calls == 3
