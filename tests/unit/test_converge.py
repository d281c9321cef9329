"""One converge path: the selection scopes writes and prunes, unknown selections are usage errors, and an
entity with a spec error keeps its artifacts on every path (render, plan, apply, the converge function)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from obsctl.cli import main
from obsctl.errors import PruneRefused
from obsctl.model.artifact import Artifact, Kind, desired_state
from obsctl.reconcile.converge import Policy, converge
from obsctl.sinks.files import FilesSink

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "examples" / "catalog"
SETTINGS = ROOT / "examples" / "obsctl.yaml"
AM = "alertmanager/alertmanager.yml"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(SETTINGS), *argv], out, err)
    return code, out.getvalue(), err.getvalue()


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "catalog"
    shutil.copytree(CATALOG, path)
    return path


@pytest.fixture
def rendered(tmp_path: Path, catalog: Path) -> Path:
    out = tmp_path / "out"
    code, _, err = run("render", str(catalog), "--out", str(out))
    assert code == 0, err
    assert AM in tree(out)
    return out


def break_checkout(catalog: Path) -> None:
    """An annotation typo: checkout is skipped with a spec error (its file still parses)."""
    path = catalog / "checkout.yaml"
    path.write_text(path.read_text().replace('obsctl.dev/availability: "99.9"', 'obsctl.dev/availability: "99.9x"'))


# ----------------------------------------------------------------------------- the selection scopes prunes


def test_render_only_some_renderers_leaves_the_others_files_in_place(rendered: Path, catalog: Path) -> None:
    before = {p: p.read_bytes() for p in rendered.rglob("*") if p.is_file() and not p.name.startswith(".")}
    code, out, err = run("render", str(catalog), "--out", str(rendered), "--only", "rules,dashboards,collectors")
    assert code == 0, err
    assert "0 deleted" in out
    after = {p: p.read_bytes() for p in rendered.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert after == before
    assert (rendered / AM).is_file()


def test_render_only_writes_only_the_selection_and_keeps_ownership_of_the_rest(
        tmp_path: Path, catalog: Path, rendered: Path) -> None:
    (rendered / AM).unlink()  # gone by hand: only a run selecting alertmanager may put it back
    assert run("render", str(catalog), "--out", str(rendered), "--only", "rules")[0] == 0
    assert not (rendered / AM).exists()
    assert run("render", str(catalog), "--out", str(rendered), "--only", "alertmanager")[0] == 0
    assert (rendered / AM).is_file()
    # the unselected kinds stay owned: a later full run with a shrunk catalog still prunes them
    (catalog / "ledger.yaml").unlink()
    assert run("render", str(catalog), "--out", str(rendered))[0] == 0
    assert not any("ledger" in p for p in tree(rendered))


def test_plan_only_dashboards_plans_no_deletes_of_other_kinds(rendered: Path, catalog: Path) -> None:
    for extra in ((), ("--allow-mass-delete",)):
        code, out, err = run("plan", str(catalog), "--out", str(rendered), "--only", "dashboards", "-o", "json",
                             *extra)
        assert code == 0, err
        data = json.loads(out)
        assert data["summary"]["delete"] == 0
        assert data["changes"] == []


def test_plan_only_a_kind_name_selects_that_kind(rendered: Path, catalog: Path) -> None:
    (rendered / AM).write_text("edited by hand\n")
    code, out, _ = run("plan", str(catalog), "--out", str(rendered), "--only", "alertmanager-config", "-o", "json")
    assert code == 0
    assert [c["id"] for c in json.loads(out)["changes"]] == ["alertmanager-config/alertmanager"]


@pytest.mark.parametrize("command", ["render", "plan", "apply"])
def test_an_unknown_only_value_is_a_usage_error_listing_the_valid_ones(
        command: str, tmp_path: Path, catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = [] if command == "apply" else ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_:
        run(command, str(catalog), *extra, "--only", "rules,bogus")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "'bogus'" in err
    for valid in ("rules", "alertmanager", "dashboards", "collectors", "prometheus-rules"):
        assert valid in err
    assert not (tmp_path / "out").exists()


def _apply_config(tmp_path: Path) -> Path:
    config = tmp_path / "apply.yaml"
    text = SETTINGS.read_text()
    text = text.replace("prometheus:\n", f"prometheus:\n  rules_dir: {tmp_path / 'rules'}\n  promtool: 'true'\n")
    text = text.replace("alerting:\n", f"alerting:\n  config_dir: {tmp_path / 'am'}\n  amtool: 'true'\n")
    config.write_text(text)
    return config


def test_apply_only_rules_keeps_the_live_alertmanager_config(tmp_path: Path, catalog: Path) -> None:
    config = _apply_config(tmp_path)
    live = tmp_path / "am" / "alertmanager.yml"
    out, err = io.StringIO(), io.StringIO()
    assert main(["--config", str(config), "apply", str(catalog)], out, err) == 0, err.getvalue()
    assert live.is_file()
    body = live.read_bytes()
    out, err = io.StringIO(), io.StringIO()
    assert main(["--config", str(config), "apply", str(catalog), "--only", "rules", "--allow-mass-delete"],
                out, err) == 0, err.getvalue()
    assert live.read_bytes() == body
    assert "alertmanager: 0 created, 0 updated, 0 deleted, 0 unchanged, 0 failed" in out.getvalue()


# ----------------------------------------------------------------------------- spec errors keep artifacts


def test_render_keeps_the_files_of_an_entity_with_a_spec_error(rendered: Path, catalog: Path) -> None:
    checkout = {p for p in tree(rendered) if "checkout" in p}
    assert checkout
    break_checkout(catalog)
    (catalog / "ledger.yaml").unlink()  # a service that really left is still pruned
    code, _, err = run("render", str(catalog), "--out", str(rendered))
    assert code == 1  # the spec error is reported
    assert "component:default/checkout" in err
    files = tree(rendered)
    assert checkout <= files
    assert not any("ledger" in p for p in files)


def test_plan_plans_no_delete_for_an_entity_with_a_spec_error(rendered: Path, catalog: Path) -> None:
    break_checkout(catalog)
    code, out, _ = run("plan", str(catalog), "--out", str(rendered), "-o", "json")
    assert code == 1
    deletes = [c["id"] for c in json.loads(out)["changes"] if c["action"] == "delete"]
    assert not [d for d in deletes if "checkout" in d]


def test_a_file_that_is_not_yaml_prunes_nothing(rendered: Path, catalog: Path) -> None:
    (catalog / "ledger.yaml").write_text("apiVersion: [unclosed\n")  # which entities it held is unknown
    before = tree(rendered)
    code, out, _ = run("render", str(catalog), "--out", str(rendered))
    assert code == 1
    assert "0 deleted" in out
    assert tree(rendered) == before


# ----------------------------------------------------------------------------- the converge function


def art(kind: Kind, key: str, owner: str = "component:default/a") -> Artifact:
    return Artifact(kind, key, f"{kind.value}/{key}.txt", f"{key}\n".encode(), owner)


def test_converge_scopes_prunes_to_the_selection_and_protects_owners(tmp_path: Path) -> None:
    sink = FilesSink(tmp_path)
    arts = [art(Kind.PROMETHEUS_RULES, "a"), art(Kind.PROMETHEUS_RULES, "b", "component:default/b"),
            art(Kind.ALERTMANAGER_CONFIG, "am", "obsctl"), art(Kind.GRAFANA_DASHBOARD, "d")]
    assert converge(desired_state(arts), [sink], Policy()).failed == []
    # nothing desired: only rules are selected, and b's entity has a spec error
    policy = Policy(selection=frozenset({Kind.PROMETHEUS_RULES}), protected=frozenset({"default/b"}),
                    allow_mass_delete=True)
    report = converge({}, [sink], policy)
    assert [(c.action.value, c.id) for c in report.runs[0].plan.writes] == [("delete", "prometheus-rules/a")]
    assert set(sink.list_owned()) == {"prometheus-rules/b", "alertmanager-config/am", "grafana-dashboard/d"}


def test_converge_strict_mass_delete_refuses_before_any_write(tmp_path: Path) -> None:
    first = FilesSink(tmp_path / "x", {Kind.PROMETHEUS_RULES})
    second = FilesSink(tmp_path / "y", {Kind.GRAFANA_DASHBOARD})
    arts = [art(Kind.PROMETHEUS_RULES, k) for k in "abc"] + [art(Kind.GRAFANA_DASHBOARD, k) for k in "abc"]
    converge(desired_state(arts), [first, second], Policy())
    shrunk = desired_state([art(Kind.PROMETHEUS_RULES, "a"), art(Kind.PROMETHEUS_RULES, "new")])
    with pytest.raises(PruneRefused):
        converge(shrunk, [first, second], Policy(strict_mass_delete=True))
    assert "prometheus-rules/new" not in first.list_owned()
    lenient = converge(shrunk, [first, second], Policy())
    assert lenient.prune_refused and "prometheus-rules/new" in first.list_owned()
    assert len(second.list_owned()) == 3  # refused: applied without its deletes


def test_sinks_declare_where_they_write_without_credentials(tmp_path: Path) -> None:
    from obsctl.sinks.grafana import GrafanaSink
    from obsctl.sinks.ruler import RulerSink

    assert FilesSink(tmp_path / "x").location == str((tmp_path / "x").resolve())
    ruler = RulerSink("http://user:secret@127.0.0.1:9009/", "t1")
    assert ruler.location == "http://127.0.0.1:9009"
    ruler.close()
    grafana = GrafanaSink("https://admin:pw@grafana.example:3000/sub/", "token")
    assert grafana.location == "https://grafana.example:3000/sub"
    assert grafana.contract.deep_every_seconds == 600.0 and grafana.contract.parallelism == 8


@pytest.mark.parametrize(("old", "new"), [("  name: checkout\n", '  name: ""\n'),
                                          ("  name: checkout\n", "  name: Checkout!\n"),
                                          ("  name: checkout\n", "  name: checkout\n  namespace: Shop\n")],
                         ids=["empty-name", "invalid-name", "invalid-namespace"])
def test_an_edit_that_makes_a_name_invalid_deletes_nothing(rendered: Path, catalog: Path, old: str, new: str) -> None:
    """Which entity a document with an invalid name was is unknown (it may be one already rendered): the read is
    incomplete, so nothing is pruned and the Alertmanager config keeps the routes it hides."""
    path = catalog / "checkout.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    before = {p: (rendered / p).read_bytes() for p in tree(rendered)}
    code, out, err = run("render", str(catalog), "--out", str(rendered))
    assert code == 1
    assert "metadata.name" in err or "metadata.namespace" in err, err
    assert "nothing obsctl owns is deleted until it is fixed" in err
    assert "0 deleted" in out
    assert {p: (rendered / p).read_bytes() for p in tree(rendered)} == before  # the config's checkout route too
