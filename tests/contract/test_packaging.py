"""pyproject.toml tells the truth: every third-party module the package imports is a declared
dependency, and every package-data pattern names files that exist."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"bot", "__future__"}


def declared(*extras: str) -> set[str]:
    project = PYPROJECT["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def test_every_imported_third_party_module_is_declared():
    distributions = packages_distributions()
    missing = {}
    for module in sorted(imported_top_level_modules()):
        names = {canonicalize_name(d) for d in distributions.get(module, [module])}
        if not names & declared():
            missing[module] = sorted(names)
    assert missing == {}, f"imported but not in [project] dependencies: {missing}"


def test_aiosqlite_has_an_upper_bound():
    # storage/polls.py calls aiosqlite's private Connection._execute / ._conn on the vote fast path.
    [spec] = [Requirement(r) for r in PYPROJECT["project"]["dependencies"] if r.startswith("aiosqlite")]
    assert any(s.operator in ("<", "<=", "==", "~=") for s in spec.specifier), spec


@pytest.mark.parametrize(("package", "patterns"), sorted(PYPROJECT["tool"]["setuptools"]["package-data"].items()))
def test_package_data_patterns_name_files_that_exist(package, patterns):
    folder = ROOT / PYPROJECT["tool"]["setuptools"].get("package-dir", {}).get(package, package.replace(".", "/"))
    for pattern in patterns:
        assert list(folder.glob(pattern)), f"{package}: {pattern} matches nothing in {folder.relative_to(ROOT)}"


def test_every_package_folder_is_listed():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "bot").rglob("__init__.py")}
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert "bot.prompts" in listed
