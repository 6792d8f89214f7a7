"""Installed as a host installs it: build the wheel, install it into a fresh virtual environment outside
the checkout, and run the command from another directory, where nothing of the checkout is importable.

Marked ``install`` (it downloads or unpacks every dependency into a new environment, about a minute):
excluded from the default run, run by ``.ci/run`` as its own step (``python -m pytest -m install``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL_ONLY = (".git", ".venv", ".ci-venv", "build", "dist", "*.egg-info", "data", "__pycache__", ".*_cache")

pytestmark = [pytest.mark.install, pytest.mark.timeout(900)]


def run(argv: list[str], *, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    # No PYTHONPATH, no virtualenv of the checkout: only what the new environment holds.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "DATABASE_URL")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the new environment's ``bin`` folder, the wheel)."""
    tmp = tmp_path_factory.mktemp("install")
    # Built from a copy of the sources, as from a fresh clone: no build/ folder left by an earlier build.
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*LOCAL_ONLY))
    dist = tmp / "dist"
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)], cwd=tmp)
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = dist.glob("common_ground-*.whl")
    venv = tmp / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], cwd=tmp)
    assert made.returncode == 0, made.stderr
    pip = run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], cwd=tmp)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return venv / "bin", wheel


def test_the_wheel_holds_the_package_and_its_data_and_nothing_else(installed):
    _, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"bot/prompts/essay.txt", "bot/prompts/individualism-collectivism.yaml"} <= names
    assert "bot/storage/migrations/env.py" in names
    assert "bot/storage/migrations/versions/0001_initial_schema.py" in names
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"bot", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}, tops


def test_the_installed_package_is_the_one_imported(installed, tmp_path):
    bin_dir, _ = installed
    where = run([str(bin_dir / "python"), "-c", "import bot.prompts; print(bot.prompts.__file__)"], cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert "site-packages" in where.stdout and str(ROOT) not in where.stdout


def test_prompts_check_from_another_directory(installed, tmp_path):
    bin_dir, _ = installed
    result = run([str(bin_dir / "commonground"), "prompts", "check"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 pack file(s) valid" in result.stdout


def test_demo_from_another_directory(installed, tmp_path):
    bin_dir, _ = installed
    result = run([str(bin_dir / "commonground"), "demo", "--days", "3", "--out", "demo"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert list((tmp_path / "demo").glob("*.png")), sorted(p.name for p in (tmp_path / "demo").iterdir())
