"""The layer rule of docs/ARCHITECTURE.md: the domain imports no discord, no database, and never sleeps."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = sorted((ROOT / "bot" / "domain").glob("*.py"))
FORBIDDEN_IMPORTS = (
    "discord",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "sqlite3",
    "alembic",
    "aiohttp",
    "bot.storage",
    "bot.cogs",
    "bot.ui",
    "bot.sandbox",
    "matplotlib",
)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_domain_has_modules():
    assert len(DOMAIN) >= 5


@pytest.mark.parametrize("path", DOMAIN, ids=lambda p: p.name)
def test_domain_imports(path: Path):
    bad = [n for n in _imports(path) if any(n == f or n.startswith(f + ".") for f in FORBIDDEN_IMPORTS)]
    assert not bad, f"{path.name} imports {bad}: the domain layer stays pure (docs/ARCHITECTURE.md, Layers)"


@pytest.mark.parametrize("path", DOMAIN, ids=lambda p: p.name)
def test_domain_never_sleeps(path: Path):
    source = path.read_text(encoding="utf-8")
    assert "asyncio.sleep" not in source
    assert "time.sleep" not in source


def test_storage_is_the_only_sql():
    """No module outside bot/storage imports the database toolkit."""
    offenders = []
    for path in (ROOT / "bot").rglob("*.py"):
        rel = path.relative_to(ROOT / "bot")
        # config.py only parses the DATABASE_URL with the toolkit's own URL parser.
        if rel.parts[0] == "storage" or str(rel) == "config.py":
            continue
        if any(n.startswith(("sqlalchemy", "aiosqlite", "sqlite3", "alembic")) for n in _imports(path)):
            offenders.append(str(rel))
    assert not offenders, f"SQL outside bot/storage: {offenders}"
