"""Our collector-config model and the real collector must give the same verdict on every corpus file.

tests/collector/corpus/{good,bad}/*.yaml: each bad file breaks one rule, named on its first line
(`# rule: <id>`, with `# also: <ids>` for problems that follow from it). The collector's verdict is
`otelcol-obsctl validate --config=FILE`; where validate passes but our model rejects, the collector
is started, because some checks (tail_sampling policies) only run at start-up. obsctl's policy
rules are left out of the comparison: the collector does not enforce them.
"""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsctl.model.otelcol import RULES, known_component_types, validate_collector_config
from tests.support.binaries import free_port, http_get
from tests.support.otelcol import collector_exits_with_error, run_collector

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).parent / "corpus"
GOOD = sorted((CORPUS / "good").glob("*.yaml"))
BAD = sorted((CORPUS / "bad").glob("*.yaml"))


def _declared(path: Path) -> tuple[str, set[str]]:
    lines = path.read_text().splitlines()
    match = re.match(r"#\s*rule:\s*([a-z0-9-]+)", lines[0])
    assert match, f"{path.name}: first line must be '# rule: <id>'"
    also: set[str] = set()
    for line in lines[1:3]:
        extra = re.match(r"#\s*also:\s*(.+)", line)
        if extra:
            also |= {item.strip() for item in extra.group(1).split(",")}
    return match.group(1), also


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _collector_rejects(otelcol: Path, path: Path, *, try_start: bool) -> tuple[bool, str]:
    proc = subprocess.run(
        [str(otelcol), "validate", f"--config={path}"], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        return True, "validate: " + proc.stderr.strip()[-1500:]
    if try_start:
        failed, log = collector_exits_with_error(path, binary=otelcol)
        return failed, "start-up:" + log
    return False, "validate: ok"


def test_corpus_is_big_enough() -> None:
    assert len(GOOD) >= 5
    assert len(BAD) >= 12


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_corpus_file_names_a_known_rule(path: Path) -> None:
    rule, also = _declared(path)
    assert rule in RULES and not RULES[rule].policy
    assert also <= set(RULES)


@pytest.mark.parametrize("path", GOOD + BAD, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_model_and_collector_agree(path: Path, otelcol: Path) -> None:
    problems = [p for p in validate_collector_config(_load(path)) if not p.policy]
    ours = bool(problems)
    theirs, evidence = _collector_rejects(otelcol, path, try_start=ours)
    assert ours == theirs, (
        f"{path.name}: model {'rejects' if ours else 'accepts'} "
        f"({[p.message for p in problems]}), collector {'rejects' if theirs else 'accepts'}: {evidence}"
    )
    if path.parent.name == "good":
        assert not ours
    else:
        rule, also = _declared(path)
        found = {p.rule for p in problems}
        assert rule in found, f"{path.name}: expected {rule}, got {[p.message for p in problems]}"
        assert found <= {rule} | also, f"{path.name} should break only {rule}: {[p.message for p in problems]}"


def _with_health_check(config: dict[str, Any], port: int) -> dict[str, Any]:
    config = copy.deepcopy(config)
    extensions = config.setdefault("extensions", {}) or {}
    config["extensions"] = extensions
    health = extensions.setdefault("health_check", {}) or {}
    extensions["health_check"] = {**health, "endpoint": f"127.0.0.1:{port}"}
    service_exts = config["service"].setdefault("extensions", []) or []
    if "health_check" not in service_exts:
        service_exts.append("health_check")
    config["service"]["extensions"] = service_exts
    return config


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_good_corpus_file_starts_and_reports_healthy(path: Path, otelcol: Path, tmp_path: Path) -> None:
    # A good config must not only validate: the collector must come up with it.
    config = _with_health_check(_load(path), free_port())
    runnable = tmp_path / path.name
    runnable.write_text(yaml.safe_dump(config, sort_keys=False))
    with run_collector(runnable, binary=otelcol, log_dir=tmp_path) as collector:
        status, _ = http_get(collector.health_url)
        assert status == 200
        assert collector.proc.poll() is None
    assert collector.proc.returncode is not None  # stopped by the context manager


def test_known_component_types_match_the_binary(otelcol: Path) -> None:
    proc = subprocess.run([str(otelcol), "components"], capture_output=True, text=True, timeout=60, check=True)
    listed = yaml.safe_load(proc.stdout)
    kinds = {"receivers": "receiver", "processors": "processor", "exporters": "exporter",
             "connectors": "connector", "extensions": "extension"}
    from_binary = {(kinds[section], item["name"]) for section in kinds for item in listed.get(section) or ()}
    assert {(kind.value, name) for kind, name in known_component_types()} == from_binary


# --------------------------------------------------------------------------- mutation sample
# Single-change variants of the good corpus (delete a key, retype or empty a value, add an unknown
# key, duplicate a list entry). The full set (~2200 variants) agreed completely when the model was
# written; a fixed, evenly spread sample keeps that honest on every run.

_SAMPLE_EVERY = 15


def _walk(node: Any, prefix: tuple[Any, ...] = ()) -> Any:
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield (*prefix, key), value
        yield from _walk(value, (*prefix, key))


def _variants(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, bool):
        return [("str", "yes")]
    if isinstance(value, int):
        return [("neg", -value - 1), ("zero", 0), ("str", str(value))]
    if isinstance(value, str):
        return [("empty", ""), ("int", 7), ("junk", value + "x!")]
    if isinstance(value, dict):
        return [("list", [1])]
    if isinstance(value, list):
        return [("emptylist", [])] + ([("dup", [*value, value[0]])] if value else [])
    return []


def _mutations() -> list[tuple[str, Path, tuple[Any, ...], str, Any]]:
    out: list[tuple[str, Path, tuple[Any, ...], str, Any]] = []
    for path in GOOD:
        for where, value in _walk(_load(path)):
            if where[0] == "service" and len(where) < 3:
                continue
            label = "/".join(map(str, where))
            out.append((f"{path.stem}:{label}:del", path, where, "del", None))
            if isinstance(value, dict):
                out.append((f"{path.stem}:{label}:bogus-key", path, (*where, "bogus_key"), "set", 1))
            out += [(f"{path.stem}:{label}:{name}", path, where, "set", new) for name, new in _variants(value)]
    return out[::_SAMPLE_EVERY]


_MUTATIONS = _mutations()


@pytest.mark.slow
@pytest.mark.parametrize(("path", "where", "op", "value"), [m[1:] for m in _MUTATIONS], ids=[m[0] for m in _MUTATIONS])
def test_mutated_good_config_verdicts_agree(
    path: Path, where: tuple[Any, ...], op: str, value: Any, otelcol: Path, tmp_path: Path
) -> None:
    config = _load(path)
    node = config
    for key in where[:-1]:
        node = node[key]
    if op == "del":
        del node[where[-1]]
    else:
        node[where[-1]] = value
    mutated = tmp_path / path.name
    mutated.write_text(yaml.safe_dump(config, sort_keys=False))
    problems = [p for p in validate_collector_config(config) if not p.policy]
    theirs, evidence = _collector_rejects(otelcol, mutated, try_start=bool(problems))
    assert bool(problems) == theirs, f"model: {[p.message for p in problems]}; collector: {evidence}"
