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


def imported_top_level_modules(*, lazy: bool) -> set[str]:
    """Third-party modules imported under bot/: at module level (``lazy=False``), or only inside a
    function (``lazy=True``: an optional feature's import, which an extra may provide)."""
    eager: set[str] = set()
    inside: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        in_function = {id(n) for f in functions for n in ast.walk(f)}
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            (inside if id(node) in in_function else eager).update(n.split(".")[0] for n in names)
    found = (inside - eager) if lazy else eager
    return found - set(sys.stdlib_module_names) - {"bot", "__future__"}


def declared(*extras: str) -> set[str]:
    project = PYPROJECT["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return {canonicalize_name(Requirement(r).name) for r in requirements}


@pytest.mark.parametrize("lazy", [False, True], ids=["module level", "inside functions"])
def test_every_imported_third_party_module_is_declared(lazy):
    """Module-level imports need a [project] dependency; an import inside a function (an optional
    feature, e.g. the demo's browser screenshots) may come from an extra instead."""
    distributions = packages_distributions()
    allowed = declared(*PYPROJECT["project"]["optional-dependencies"]) if lazy else declared()
    missing = {}
    for module in sorted(imported_top_level_modules(lazy=lazy)):
        names = {canonicalize_name(d) for d in distributions.get(module, [module])}
        if not names & allowed:
            missing[module] = sorted(names)
    assert missing == {}, f"imported but not declared: {missing}"


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
