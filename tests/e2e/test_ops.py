"""Operations: the Prometheus endpoint, /healthz and /readyz of a running bot (COMMONGROUND_METRICS_PORT)."""

from __future__ import annotations

import aiohttp
import pytest

from bot.metrics import route_of
from tests.harness import Harness
from tests.reliability.support import click, post_poll

pytestmark = pytest.mark.timeout(120)


def test_route_labels_carry_no_ids_or_tokens():
    token = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OTpBQkNE"
    assert route_of(f"/api/v10/interactions/1234567890123456789/{token}/callback") == (
        "/interactions/{id}/{token}/callback"
    )
    assert route_of(f"/api/v10/webhooks/1234567890123456789/{token}/messages/@original") == (
        "/webhooks/{id}/{token}/messages/@original"
    )
    assert route_of("/api/v10/channels/123456789012345678/messages/223456789012345678") == (
        "/channels/{id}/messages/{id}"
    )


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus's text format (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        if metric == (f"{name}{{{want}}}" if labels else name):
            return float(value)
    return 0.0


async def test_metrics_health_and_readiness(tmp_path):
    async with Harness(tmp_path, settings={"metrics_port": 0}) as h:
        ops = h.bot._ops
        assert ops is not None and ops.port
        base = f"http://127.0.0.1:{ops.port}"
        poll_id, message_id = await post_poll(h)
        votes = [await click(h.sandbox, h.channel.id, message_id, poll_id, 0, m.id) for m in h.members]
        assert all(v.acked for v in votes), [v.text for v in votes]
        h.sandbox.faults.rate_limit("/channels/{channel_id}/typing", count=1, retry_after=0.01)
        await h.bot.http.send_typing(h.channel.id)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 200, await resp.text()
            async with http.get(f"{base}/metrics") as resp:
                assert resp.status == 200
                text = await resp.text()
        assert sample(text, "commonground_votes_total", outcome="cast") == len(h.members)
        assert sample(text, "commonground_vote_ack_seconds_count") == len(h.members)
        assert sample(text, "commonground_vote_ack_seconds_bucket", le="3.0") == len(h.members)
        callbacks = sample(
            text,
            "commonground_rest_requests_total",
            method="POST",
            route="/interactions/{id}/{token}/callback",
            status="200",
        ) + sample(
            text,
            "commonground_rest_requests_total",
            method="POST",
            route="/interactions/{id}/{token}/callback",
            status="204",
        )
        assert callbacks == len(h.members)
        assert (
            sample(text, "commonground_rest_429_total", method="POST", route="/channels/{id}/typing", scope="user") == 1
        )
        assert sample(text, "commonground_servers", shard="0") == 1
        assert sample(text, "commonground_shards_ready") == 1
        assert 'commonground_gateway_latency_seconds{shard="0"}' in text
        assert sample(text, "commonground_jobs_late") == 0
        for v in votes:
            assert v.interaction.token not in text
        assert h.sandbox.token not in text
        await h.bot.close()
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientConnectionError):
                async with http.get(f"{base}/healthz"):
                    pass
