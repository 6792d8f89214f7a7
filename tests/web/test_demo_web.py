"""`commonground demo --web`: the site comes up over the demo's history, says where and as whom to log
in, and writes screenshots of the main pages (when Debian's Chromium is installed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)
CHROMIUM = Path("/usr/bin/chromium")


def test_demo_web_prints_the_url_and_the_user_and_writes_screenshots(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "bot", "demo", "--days", "1", "--out", str(out), "--web", "--web-screenshots-only"],
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    assert "=== the website ===" in text
    assert "open http://127.0.0.1:" in text and "log in as “moderator”" in text
    assert "Public page: http://127.0.0.1:" in text
    if not CHROMIUM.exists():
        assert "screenshots skipped" in text
        return
    shots = sorted(p.name for p in (out / "web").glob("*.png"))
    assert shots[0] == "01-start.png" and "10-public.png" in shots and "09-compass-member.png" in shots
    assert len(shots) == 11
    assert all((out / "web" / name).stat().st_size > 5_000 for name in shots)
