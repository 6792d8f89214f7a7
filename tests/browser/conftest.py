"""Headless Chromium from Debian's packages, driven by Playwright for Python.

The Playwright browser download cannot work here, so the browser is Debian's ``chromium`` at
``CHROMIUM`` (``.ci/run`` installs it). Outside CI a missing browser skips these tests with the
reason; in CI (``COMMONGROUND_BROWSER_REQUIRED=1``) it fails them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import pytest_asyncio

CHROMIUM = os.environ.get("COMMONGROUND_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REQUIRED = os.environ.get("COMMONGROUND_BROWSER_REQUIRED") == "1"


def _missing() -> str | None:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        return f"no Chromium at {CHROMIUM} (install Debian's chromium: apt-get install -y chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    return None


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    """One Chromium per test module (and test process): launching it and Playwright's driver costs about
    2 s of CPU. Each test opens its own pages and contexts, so no cookie or page is shared between tests;
    the tests run in the module's event loop (``pytestmark`` in each module) to use it."""
    reason = _missing()
    if reason is not None:
        if REQUIRED:
            pytest.fail(f"browser tests are required in CI but cannot run: {reason}")
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()
