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


def _guarded(tree: ast.AST) -> set[int]:
    """Ids of the import nodes inside a ``try`` that handles ImportError (an optional feature)."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in {"ImportError", "ModuleNotFoundError"} for h in node.handlers
        ):
            ids.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return ids


def imported_top_level_modules(*, optional: bool = False) -> set[str]:
    """Third-party modules bot/ imports: unconditionally, or (``optional``) only behind an ImportError guard."""
    found: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        guarded = _guarded(tree)
        for node in ast.walk(tree):
            if (id(node) in guarded) != optional:
                continue
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


def _undeclared(modules: set[str], names_declared: set[str]) -> dict[str, list[str]]:
    distributions = packages_distributions()
    missing = {}
    for module in sorted(modules):
        names = {canonicalize_name(d) for d in distributions.get(module, [module])}
        if not names & names_declared:
            missing[module] = sorted(names)
    return missing


def test_every_imported_third_party_module_is_declared():
    missing = _undeclared(imported_top_level_modules(), declared())
    assert missing == {}, f"imported but not in [project] dependencies: {missing}"


def test_optional_imports_are_declared_in_an_extra():
    optional = imported_top_level_modules(optional=True)
    assert "playwright" in optional  # the demo's screenshots: a guarded import, so this test checks something
    extras = tuple(PYPROJECT["project"]["optional-dependencies"])
    missing = _undeclared(optional, declared(*extras))
    assert missing == {}, f"optional imports in no extra of pyproject.toml: {missing}"


@pytest.mark.parametrize("package", ["aiosqlite", "SQLAlchemy"])
def test_the_internals_the_sqlite_adapter_uses_are_bounded(package):
    # storage/sqlite_driver.py calls aiosqlite's private Connection._execute / ._conn, and subclasses
    # SQLAlchemy 2.1's aiosqlite adapter.
    [spec] = [Requirement(r) for r in PYPROJECT["project"]["dependencies"] if r.startswith(package)]
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
