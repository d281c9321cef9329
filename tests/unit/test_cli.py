"""The command line: validate's tier table and exit codes, plan's diff without writing."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from obsctl.cli import main

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "examples" / "catalog"


CONFIG = ROOT / "examples" / "obsctl.yaml"


def run(*argv: str, config: Path | None = CONFIG) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(([*("--config", str(config))] if config else []) + list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_validate_prints_the_workbook_tier_table() -> None:
    code, out, _ = run("validate", str(CATALOG))
    assert code == 0
    assert "5 services valid, 0 skipped; 0 errors" in out
    row = next(line for line in out.splitlines()
               if "checkout" in line and "availability" in line and "page-fast" in line)
    # 99.9 % over 30 days, 14.4x over 1h/5m: fires after 51.8 s of full outage having spent 2 % of the budget.
    assert row.split() == ["component:default/checkout", "availability", "99.9%/30d", "page-fast", "(page)", "14.4x",
                           "1h/5m", "2.0%", "51.8s", "4.9m"]


def test_validate_without_receivers_names_every_team_and_severity_that_would_page_nobody() -> None:
    code, out, _ = run("validate", str(CATALOG), config=None)
    assert code == 1
    errors = [line for line in out.splitlines() if ": error: " in line]
    assert {line.split(" routing.")[1].split(":")[0] for line in errors} == {
        "team-payments.page", "team-payments.ticket", "team-search.page", "team-search.ticket"}
    assert "0 services valid, 5 skipped" in out


def test_validate_json_and_exit_code_on_errors(tmp_path: Path) -> None:
    shutil.copytree(CATALOG, tmp_path / "cat")
    (tmp_path / "cat" / "broken.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: broken\n  annotations:\n"
        "    obsctl.dev/availability: '100'\nspec: {type: service, lifecycle: production, owner: team-payments}\n")
    code, out, _ = run("validate", str(tmp_path / "cat"), "-o", "json")
    assert code == 1
    data = json.loads(out)
    assert data["skipped"] == ["component:default/broken"]
    (problem,) = [p for p in data["problems"] if p["severity"] == "error"]
    assert problem["line"] == 6 and problem["field"] == "metadata.annotations.obsctl.dev/availability"
    assert len(data["services"]) == 5
    fast = [t for t in data["tiers"] if t["service"] == "component:default/checkout" and t["tier"] == "page-fast"]
    assert fast[0]["detection_seconds"] == 51.8


def test_plan_shows_changes_and_writes_nothing(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, out, _ = run("plan", str(CATALOG), "--out", str(out_dir), "-o", "json", "--exit-code")
    data = json.loads(out)
    assert not out_dir.exists()
    assert data["summary"]["update"] == 0 and data["summary"]["delete"] == 0
    assert code == (2 if data["summary"]["create"] else 0)
    code, _, _ = run("render", str(CATALOG), "--out", str(out_dir))
    assert code == 0
    code, out, _ = run("plan", str(CATALOG), "--out", str(out_dir), "--exit-code")
    assert code == 0 and "0 to create, 0 to update, 0 to delete" in out


def test_missing_catalog_path_is_an_error_not_an_empty_catalog(tmp_path: Path) -> None:
    code, _, err = run("render", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert code == 1
    assert "does not exist" in err
