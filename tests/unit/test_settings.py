"""Settings decoding: the lenient conversions a YAML file and environment variables need, and errors
that name every bad field by its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from obsctl.config import SecretStr, Settings, load_settings
from obsctl.errors import ConfigError
from obsctl.model.artifact import Kind


def test_environment_strings_convert_to_the_field_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBSCTL_GRAFANA__ORG_ID", "3")
    monkeypatch.setenv("OBSCTL_SERVE__WATCH", "no")
    monkeypatch.setenv("OBSCTL_SERVE__MAX_DELETE_FRACTION", "0.25")
    monkeypatch.setenv("OBSCTL_PROMETHEUS__RULES_DIR", "/srv/rules")
    monkeypatch.setenv("OBSCTL_GRAFANA__TOKEN", "s3cret")
    settings = load_settings()
    assert settings.grafana.org_id == 3
    assert settings.serve.watch is False
    assert settings.serve.max_delete_fraction == 0.25
    assert settings.prometheus.rules_dir == Path("/srv/rules")
    assert settings.grafana.api_token() == "s3cret"
    assert "s3cret" not in repr(settings) and isinstance(settings.grafana.token, SecretStr)


def test_every_bad_field_is_named_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("grafana: {org_id: two, parallelism: 1.5}\n"
                    "serve: {max_delete_fraction: 2, leader_lease_seconds: 0}\n"
                    "alerting: {teams: {pay: {page: [{name: p}]}}}\n"
                    "catalog: nope\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value).splitlines() == [
        f"{path}: catalog: Input should be a valid dictionary or instance of CatalogSettings",
        f"{path}: grafana.org_id: Input should be a valid integer, unable to parse string as an integer",
        f"{path}: grafana.parallelism: Input should be a valid integer, got a number with a fractional part",
        f"{path}: alerting.teams.pay.page.0.type: Field required",
        f"{path}: serve.max_delete_fraction: Input should be less than or equal to 1",
        f"{path}: serve.leader_lease_seconds: Input should be greater than 0",
    ]


def test_block_checks_report_at_the_block(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("grafana: {drift_policy: sometimes}\nkubernetes: {labels: {'bad key!': x}}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value).splitlines() == [
        f"{path}: kubernetes: Value error, kubernetes.labels: 'bad key!' is not a Kubernetes label key"]


def test_settings_built_in_code_take_nested_mappings_and_values() -> None:
    settings = Settings(outputs=[Kind.PROMETHEUS_RULES, "ruler-group"], ruler={"url": "http://r"})
    assert settings.outputs == [Kind.PROMETHEUS_RULES, Kind.RULER_GROUP]
    assert settings.ruler.url == "http://r" and settings.ruler.tenant == "anonymous"
    assert Settings() == Settings() and Settings().catalog.globs is not Settings().catalog.globs
    with pytest.raises(ValueError, match="unknown output kind 'nope'"):
        Settings(outputs=["nope"])
