"""deploy/compose.yaml: Debian's docker-compose (1.29) accepts it, and what it runs is coherent:
PostgreSQL, the migrations once before any cluster, clusters whose shard ranges name every shard once."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bot.config import load_settings
from bot.domain.shards import parse_shards

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
BINARY = shutil.which("docker-compose")

pytestmark = pytest.mark.skipif(
    BINARY is None, reason="docker-compose is not installed (.ci/run installs Debian's package)"
)


def compose_config(**env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "POSTGRES_PASSWORD")}
    base.update(env)
    return subprocess.run(
        [str(BINARY), "-f", str(COMPOSE), "config"], capture_output=True, text=True, env=base, timeout=60
    )


def test_docker_compose_accepts_the_file_and_it_runs_a_coherent_deployment():
    result = compose_config(DISCORD_TOKEN="token.for.test", POSTGRES_PASSWORD="pw")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    clusters = {name: s for name, s in services.items() if s.get("command") == ["commonground", "run"]}
    assert len(clusters) == 2
    assert services["migrate"]["command"] == ["commonground", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    counts, held = set(), []
    for name, service in clusters.items():
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        env = service["environment"]
        settings = load_settings(env=env)  # every value passes the bot's own validation
        assert settings.is_cluster and not settings.is_sqlite
        assert settings.metrics_port == 9100
        assert env["DATABASE_URL"] == services["migrate"]["environment"]["DATABASE_URL"]
        counts.add(settings.shard_count)
        held += parse_shards(env["COMMONGROUND_SHARDS"])
    assert len(counts) == 1, "every cluster uses the same shard count"
    assert sorted(held) == list(range(counts.pop())), "the ranges name every shard exactly once"
    assert "[postgres]" in (ROOT / "Dockerfile").read_text(), "the image carries the PostgreSQL driver"


def test_a_missing_token_is_named():
    result = compose_config(POSTGRES_PASSWORD="pw")
    assert result.returncode != 0
    assert "set DISCORD_TOKEN" in result.stderr
