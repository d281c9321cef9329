"""The CLI's skeleton: --version, --config on either side of the subcommand, help on every option,
settings from the environment, the template override, and a start that loads no backend stack."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from obsctl import __version__
from obsctl.cli import build_parser, main
from obsctl.config import env_settings, load_settings
from obsctl.errors import ConfigError, PermanentError
from obsctl.sources.directory import read_template_tree

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "examples" / "catalog"
SETTINGS = ROOT / "examples" / "obsctl.yaml"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"obsctl {__version__}"


def test_python_dash_m_runs_the_cli(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "obsctl", "validate", str(CATALOG), "--config", str(SETTINGS)],
                          capture_output=True, text=True, check=False, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    bad = subprocess.run([sys.executable, "-m", "obsctl", "render", "--only", "bogus", str(CATALOG)],
                         capture_output=True, text=True, check=False, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and "bogus" in bad.stderr


def _parsers(parser: argparse.ArgumentParser, name: str = "obsctl"
             ) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found += _parsers(sub, f"{name} {sub_name}")
    return found


def test_every_option_and_argument_has_help() -> None:
    missing = [f"{name}: {action.dest}" for name, parser in _parsers(build_parser()) for action in parser._actions
               if not isinstance(action, argparse._SubParsersAction) and not action.help]
    assert missing == []


def test_every_subcommand_takes_config_after_its_name() -> None:
    leaves = [(name, p) for name, p in _parsers(build_parser())
              if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)]
    assert {name for name, _ in leaves} >= {"obsctl validate", "obsctl render", "obsctl plan", "obsctl apply",
                                            "obsctl serve", "obsctl slo report", "obsctl slo replay"}
    for name, parser in leaves:
        assert "--config" in parser._option_string_actions, name


def test_config_after_the_subcommand_is_used(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("no_such_setting: 1\n")
    code, _, err = run("validate", str(CATALOG), "--config", str(bad))
    assert code == 1 and "no_such_setting" in err
    # the subcommand's --config wins over the global one
    code, _, err = run("--config", str(bad), "validate", str(CATALOG), "--config", str(SETTINGS))
    assert code == 0, err


def test_environment_settings_nest_and_parse_json_only_for_structured_fields() -> None:
    env = {"OBSCTL_GRAFANA__URL": "http://g", "OBSCTL_OUTPUTS": '["ruler-group"]', "OBSCTL_CACHE": "/x",
           "obsctl_environment": "[staging]", "OBSCTL_COLLECTOR": '{"k": "v"}', "PATH": "/bin"}
    assert env_settings(env) == {"grafana": {"url": "http://g"}, "outputs": ["ruler-group"],
                                 "environment": "[staging]", "collector": {"k": "v"}}
    with pytest.raises(ConfigError, match="OBSCTL_OUTPUTS: not valid JSON"):
        env_settings({"OBSCTL_OUTPUTS": "[ruler-group"})


def test_environment_wins_over_the_file_field_by_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("grafana: {url: http://file, org_id: 3}\n")
    monkeypatch.setenv("OBSCTL_GRAFANA__URL", "http://env")
    settings = load_settings(path)
    assert (settings.grafana.url, settings.grafana.org_id) == ("http://env", 3)
    monkeypatch.setenv("OBSCTL_GRAFANA__NO_SUCH", "1")
    with pytest.raises(ConfigError, match=r"grafana\.no_such"):
        load_settings(path)


def test_templates_come_from_the_package_and_a_directory_overrides_per_folder(tmp_path: Path) -> None:
    packaged = read_template_tree()
    assert "alert-rules/windows/30d.yaml" in packaged and "collectors/agent.yaml" in packaged
    own = tmp_path / "alert-rules" / "windows"
    own.mkdir(parents=True)
    (own / "30d.yaml").write_text("period: 30d\ntiers: []\n")
    mixed = read_template_tree(tmp_path)
    assert mixed["alert-rules/windows/30d.yaml"] == b"period: 30d\ntiers: []\n"
    assert "alert-rules/defaults.yaml" not in mixed  # the folder is replaced whole, not merged file by file
    assert mixed["dashboards/layout.yaml"] == packaged["dashboards/layout.yaml"]
    with pytest.raises(PermanentError, match="templates_dir"):
        read_template_tree(tmp_path / "typo")


def test_templates_dir_setting_reaches_the_loader(tmp_path: Path) -> None:
    (tmp_path / "alert-rules").mkdir()
    (tmp_path / "alert-rules" / "defaults.yaml").write_text("tiers: {}\n")
    settings = tmp_path / "s.yaml"
    settings.write_text(f"templates_dir: {tmp_path}\n")
    code, _, err = run("validate", str(CATALOG), "--config", str(settings))
    assert code == 1 and "alert-rules/sli.yaml" in err  # the override's alert-rules/ lacks sli.yaml


HEAVY = ("grafana_client", "fastapi", "uvicorn", "sqlalchemy", "alembic", "opentelemetry", "httpx", "niquests",
         "psycopg", "obsctl.service", "obsctl.store", "obsctl.sinks.grafana", "pydantic", "pydantic_settings")


@pytest.mark.parametrize("argv", [["validate", "--help"], ["validate", str(CATALOG)],
                                  ["render", str(CATALOG), "--out", "{tmp}/out", "--config", str(SETTINGS)]])
def test_validate_and_render_load_no_backend_stack(argv: list[str], tmp_path: Path) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    probe = ("import json, sys\nfrom obsctl.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print(json.dumps(sorted(sys.modules)), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=False,
                          cwd=tmp_path, timeout=120)
    modules = json.loads(proc.stderr.strip().splitlines()[-1])
    loaded = [m for m in modules if m.split(".")[0] in HEAVY or any(m.startswith(h + ".") or m == h for h in HEAVY)]
    assert loaded == []


def test_render_checks_collector_configs_with_the_configured_binary(tmp_path: Path) -> None:
    settings = tmp_path / "s.yaml"
    settings.write_text(SETTINGS.read_text() + f"otelcol_binary: {tmp_path / 'no-such-otelcol'}\n")
    out = tmp_path / "out"
    code, _, err = run("render", str(CATALOG), "--out", str(out), "--config", str(settings))
    assert code == 1 and "collector binary" in err and "not found" in err
    written = {p.relative_to(out).parts[0] for p in out.rglob("*") if p.is_file()}
    assert "otel" not in written and "prometheus" in written  # no unchecked collector config lands; the rest does


def test_defaults_do_not_point_into_the_installed_package(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OBSCTL_CATALOG__PATH", "OBSCTL_TEMPLATES_DIR", "OBSCTL_OUT_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.templates_dir is None  # the packaged templates, read through importlib.resources
    for path in (settings.catalog.path, settings.out_dir):
        assert not path.is_absolute(), path  # relative to the working directory, wherever obsctl is installed
