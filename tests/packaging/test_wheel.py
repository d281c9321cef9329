"""The package installs anywhere: a wheel built from this tree, installed into a fresh virtualenv
and run from an unrelated directory, renders the sample catalog byte for byte like the repo run
(the committed examples/_gen, which tests/golden keeps equal to the repo run).

Offline and quick: the wheel is built with the running environment's setuptools (no build
isolation), the fresh venv sees the dependencies of the running one through a `.pth` line (plain
path lines do not run the editable install's finder), and the wheel goes in with `--no-deps`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "examples" / "catalog"
SETTINGS = ROOT / "examples" / "obsctl.yaml"
GOLDEN = ROOT / "examples" / "_gen"

pytestmark = pytest.mark.slow


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (bin/ dir returned) with the wheel built from this tree and nothing else of obsctl."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"  # build from a copy: the build writes build/ and *.egg-info next to pyproject.toml
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src / "pyproject.toml")
    shutil.copytree(ROOT / "obsctl", src / "obsctl", symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = base / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(dist), str(src)], cwd=base)
    wheels = list(dist.glob("obsctl-*.whl"))
    assert len(wheels) == 1, wheels
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=base)
    py = venv / "bin" / "python"
    show = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = _run([str(py), "-c", show], cwd=base).stdout.strip()
    Path(purelib, "_obsctl_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
          str(wheels[0])], cwd=base)
    return venv / "bin"


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSCTL_", "PYTHON"))}
    env["HOME"] = str(tmp)
    return env


def test_installed_wheel_is_the_obsctl_imported(installed: Path, tmp_path: Path) -> None:
    where = _run([str(installed / "python"), "-c", "import obsctl; print(obsctl.__file__)"], cwd=tmp_path,
                 env=_env(tmp_path)).stdout.strip()
    assert where.startswith(str(installed.parent)), f"imported {where}, not the installed wheel"
    assert not where.startswith(str(ROOT))


def test_installed_wheel_renders_the_sample_catalog_like_the_repo(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    out = work / "gen"
    _run([str(installed / "obsctl"), "render", str(CATALOG), "--out", str(out), "--config", str(SETTINGS)],
         cwd=work, env=_env(tmp_path))
    rendered, golden = _tree(out), _tree(GOLDEN)
    assert sorted(rendered) == sorted(golden)
    for name, body in golden.items():
        assert rendered[name] == body, f"{name}: the installed wheel renders differently from the repo"


def test_installed_wheel_reports_its_version(installed: Path, tmp_path: Path) -> None:
    proc = _run([str(installed / "obsctl"), "--version"], cwd=tmp_path, env=_env(tmp_path))
    source = (ROOT / "obsctl" / "__init__.py").read_text()
    version = source.split('__version__ = "', 1)[1].split('"', 1)[0]
    assert proc.stdout.strip() == f"obsctl {version}"
