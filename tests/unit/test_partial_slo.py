"""A spec whose one SLO has an error loads without that SLO (issue 13), but what the service already has
stays as it is (issue 11): rewriting its artifacts without the SLO would delete that SLO's alerts because of
a typo. A new service with a bad SLO still gets its good ones."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from obsctl.cli import main
from obsctl.model.artifact import Kind
from obsctl.reconcile.apply import RetryPolicy
from obsctl.reconcile.loop import LoopConfig, Reconciler
from obsctl.sinks.files import FilesSink
from tests.unit.test_loop import MemRecorder, MemSource, load, render

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "examples" / "obsctl.yaml"
RULES = Path("prometheus/rules/default")

LATENCY_SLO = """
  - name: "lookups-fast"
    objective: {objective}
    sli:
      events:
        error_query: sum(rate(inventory_slow_total[{{{{.window}}}}]))
        total_query: sum(rate(inventory_requests_total[{{{{.window}}}}]))
    alerting:
      name: InventorySlow
"""


def run(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(SETTINGS), *argv], out, err)
    return code, err.getvalue()


def sloth_with_two_slos(catalog: Path, objective: str) -> None:
    path = catalog / "sloth-inventory.yml"
    base = (ROOT / "examples" / "catalog" / "sloth-inventory.yml").read_text()
    path.write_text(base.rstrip("\n") + "\n" + LATENCY_SLO.format(objective=objective))


def test_render_keeps_a_service_whose_slo_broke_as_it_is(tmp_path: Path) -> None:
    catalog, out = tmp_path / "catalog", tmp_path / "out"
    shutil.copytree(ROOT / "examples" / "catalog", catalog)
    sloth_with_two_slos(catalog, "99")
    code, err = run("render", str(catalog), "--out", str(out))
    assert code == 0, err
    rules = out / RULES / "inventory.rules.yml"
    good = rules.read_bytes()
    assert b"InventorySlow" in good and b"InventoryHighErrorRate" in good

    sloth_with_two_slos(catalog, "199")  # a typo in the second SLO
    (catalog / "ledger.yaml").unlink()  # a service that really left is still pruned
    code, err = run("render", str(catalog), "--out", str(out))
    assert code == 1
    assert "slos[1].objective" in err
    assert rules.read_bytes() == good  # InventorySlow still pages
    assert not (out / RULES / "ledger.rules.yml").exists()


def test_a_new_service_with_a_bad_slo_gets_its_good_ones(tmp_path: Path) -> None:
    catalog, out = tmp_path / "catalog", tmp_path / "out"
    shutil.copytree(ROOT / "examples" / "catalog", catalog)
    sloth_with_two_slos(catalog, "199")
    code, err = run("render", str(catalog), "--out", str(out))
    assert code == 1, err
    body = (out / RULES / "inventory.rules.yml").read_bytes()
    assert b"InventoryHighErrorRate" in body and b"InventorySlow" not in body


SLOTH = """version: prometheus/v1
service: {name}
labels: {{owner: team-a}}
slos:
  - name: errors
    objective: 99.9
    sli:
      events:
        error_query: 'sum(rate(e_total[{{{{.window}}}}]))'
        total_query: 'sum(rate(t_total[{{{{.window}}}}]))'
    alerting: {{name: Errors}}
  - name: slow
    objective: {objective}
    sli:
      events:
        error_query: 'sum(rate(s_total[{{{{.window}}}}]))'
        total_query: 'sum(rate(t_total[{{{{.window}}}}]))'
    alerting: {{name: Slow}}
"""


def sloth(name: str, objective: str) -> bytes:
    return SLOTH.format(name=name, objective=objective).encode()


def test_serve_renders_the_last_good_definition_and_after_a_restart_touches_nothing(tmp_path: Path) -> None:
    src = MemSource({"a": sloth("a", "99"), "b": sloth("b", "99")})
    rec = MemRecorder()
    config = LoopConfig(retry=RetryPolicy(attempts=1, base_delay=0.0, max_delay=0.0))
    sink = FilesSink(tmp_path / "out", frozenset({Kind.PROMETHEUS_RULES, Kind.GRAFANA_DASHBOARD}))
    r = Reconciler(src, load, render, [sink], config=config, recorder=rec)
    r.run_once()
    good = (tmp_path / "out/rules/a.yml").read_text()
    assert good == "errors: 0.999\nslow: 0.99\n"

    src.docs["a"] = sloth("a", "199")  # the second SLO breaks
    src.docs["b"] = sloth("b", "98")  # another service changes in the same round
    report = r.run_once()
    assert any("component:default/a" in c and "last good" in c for c in report.carried)
    assert (tmp_path / "out/rules/a.yml").read_text() == good
    assert (tmp_path / "out/rules/b.yml").read_text() == "errors: 0.999\nslow: 0.98\n"

    # a new process: no model in memory; a's file stays exactly as it is
    r2 = Reconciler(src, load, render, [FilesSink(tmp_path / "out", frozenset({Kind.PROMETHEUS_RULES,
                                                                              Kind.GRAFANA_DASHBOARD}))],
                    config=config, recorder=rec)
    for _ in range(2):  # and stays so round after round
        report = r2.run_once()
        assert report.sinks[0].summary["delete"] == 0
        assert (tmp_path / "out/rules/a.yml").read_text() == good

    src.docs["a"] = sloth("a", "99.5")  # fixed: the change lands
    r2.run_once()
    assert (tmp_path / "out/rules/a.yml").read_text() == "errors: 0.999\nslow: 0.995\n"


def test_serve_keeps_the_last_good_definition_of_an_slo_whose_label_takes_obsctls_identity(tmp_path: Path) -> None:
    """`slo: errors` on SLO slow would group and mute slow's alerts with errors' (spec.slos.identity_labels): the
    SLO is refused and serve renders the service's last good definition, while another service changes."""
    src = MemSource({"a": sloth("a", "99"), "b": sloth("b", "99")})
    config = LoopConfig(retry=RetryPolicy(attempts=1, base_delay=0.0, max_delay=0.0))
    sink = FilesSink(tmp_path / "out", frozenset({Kind.PROMETHEUS_RULES, Kind.GRAFANA_DASHBOARD}))
    r = Reconciler(src, load, render, [sink], config=config, recorder=MemRecorder())
    r.run_once()
    good = (tmp_path / "out/rules/a.yml").read_text()
    src.docs["a"] = sloth("a", "99").replace(b"alerting: {name: Slow}", b"labels: {slo: errors}\n    "
                                                                        b"alerting: {name: Slow}")
    src.docs["b"] = sloth("b", "98")
    report = r.run_once()
    assert any("component:default/a" in c and "last good" in c for c in report.carried)
    assert (tmp_path / "out/rules/a.yml").read_text() == good
    assert (tmp_path / "out/rules/b.yml").read_text() == "errors: 0.999\nslow: 0.98\n"
