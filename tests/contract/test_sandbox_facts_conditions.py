"""The sandbox applies Discord's rate limits, outages and clock as strictly as Discord (DISCORD-FACTS rows
L1, L2, L3, G4, I3). One test per row, named after it; each fails against a kinder sandbox (no global
limit, buckets never exhausted, no ban, an outage taken as a removal or answered normally, snowflakes on
the host's clock). Raw HTTP with aiohttp, so the headers and bodies are exactly what a client sees.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.sandbox import Sandbox
from bot.sandbox.ratelimits import GLOBAL_PER_SECOND, INVALID_LIMIT, INVALID_WINDOW

pytestmark = pytest.mark.timeout(60)
DISCORD_EPOCH_MS = 1420070400000


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    sandbox = Sandbox()
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.stop()


@pytest.fixture
async def http(sb) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {sb.token}"}) as session:
        yield session


async def get(http, sb, path):
    async with http.get(sb.api_base + path) as r:
        return r.status, dict(r.headers), await r.json()


async def post(http, sb, path, body):
    async with http.post(sb.api_base + path, json=body) as r:
        return r.status, dict(r.headers), await r.json()


async def test_l1_global_limit_is_50_per_second_and_interactions_are_exempt(sb, http):
    sb.limits.enable()
    g = sb.create_guild("g")
    started = time.monotonic()
    answers = await asyncio.gather(*(get(http, sb, f"/guilds/{g.id}") for _ in range(GLOBAL_PER_SECOND + 10)))
    assert time.monotonic() - started < 1.0, "too slow to test the one-second window on this machine"
    limited = [a for a in answers if a[0] == 429]
    assert sum(1 for a in answers if a[0] == 200) == GLOBAL_PER_SECOND
    assert len(limited) == 10
    _, headers, body = limited[0]
    assert body["global"] is True and 0 < body["retry_after"] <= 1.0 and body["message"]
    assert headers["X-RateLimit-Global"] == "true" and headers["X-RateLimit-Scope"] == "global"
    assert "Retry-After" in headers
    # Interaction endpoints do not count (I5): an unknown interaction is a 404, never a global 429.
    status, _, _ = await post(http, sb, "/interactions/1/nope/callback", {"type": 1})
    assert status == 404


async def test_l2_per_route_bucket_per_channel_with_headers(sb, http):
    sb.limits.enable()
    g = sb.create_guild("g")
    a, b = sb.create_channel(g.id, "a"), sb.create_channel(g.id, "b")
    first = [await post(http, sb, f"/channels/{a.id}/messages", {"content": f"m{i}"}) for i in range(6)]
    assert [s for s, _, _ in first] == [200] * 5 + [429]
    headers = first[0][1]
    assert headers["X-RateLimit-Limit"] == "5" and headers["X-RateLimit-Remaining"] == "4"
    assert float(headers["X-RateLimit-Reset-After"]) > 0 and headers["X-RateLimit-Bucket"]
    _, headers, body = first[5]
    assert body["global"] is False and 0 < body["retry_after"] <= 5.0
    assert headers["X-RateLimit-Scope"] == "user" and headers["X-RateLimit-Remaining"] == "0"
    assert (await post(http, sb, f"/channels/{b.id}/messages", {"content": "other channel"}))[0] == 200
    assert len(sb.messages(a.id)) == 5


async def test_l3_invalid_requests_lead_to_a_ban_that_refuses_everything(sb, http):
    assert (INVALID_LIMIT, INVALID_WINDOW) == (10_000, 600.0)  # Discord's figures are the default
    sb.limits.enable(invalid_limit=30)  # the same rule, reached sooner
    g = sb.create_guild("g")
    ch = sb.create_channel(g.id, "c")
    sb.faults.forbidden(f"GET /channels/{ch.id}", code=50001)
    async with aiohttp.ClientSession(headers={"Authorization": "Bot wrong"}) as stranger:
        for _ in range(10):
            assert (await get(stranger, sb, "/users/@me"))[0] == 401
    for _ in range(20):
        assert (await get(http, sb, f"/channels/{ch.id}"))[0] == 403
    assert sb.limits.banned and sb.limits.invalid_total == 30
    sb.faults.clear()
    status, _, body = await get(http, sb, f"/guilds/{g.id}")  # a valid request, refused all the same
    assert status == 429 and "blocked" in body["message"] and "invalid-request limit" in body["message"]


async def test_g4_an_outage_is_not_a_removal(sb, http):
    g = sb.create_guild("g")
    ch = sb.create_channel(g.id, "c")
    sb.start_outage(g.id)
    name, data = sb.gateway_events[-1]
    assert name == "GUILD_DELETE" and data == {"id": str(g.id), "unavailable": True}
    assert (await get(http, sb, f"/channels/{ch.id}"))[0] >= 500
    assert (await get(http, sb, f"/guilds/{g.id}"))[0] >= 500
    sb.end_outage(g.id)
    name, data = sb.gateway_events[-1]
    assert name == "GUILD_CREATE" and data["id"] == str(g.id)
    assert (await get(http, sb, f"/channels/{ch.id}"))[0] == 200


@pytest.mark.parametrize("offset", [-5.0, 2.0])
async def test_i3_snowflakes_carry_discords_clock_not_the_hosts(offset):
    sb = Sandbox(clock_offset=offset)
    await sb.start()
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bot {sb.token}"}) as http:
            await _stamped(sb, http, offset)
    finally:
        await sb.stop()


async def _stamped(sb, http, offset):
    g = sb.create_guild("g")
    ch = sb.create_channel(g.id, "c")
    status, _, msg = await post(http, sb, f"/channels/{ch.id}/messages", {"content": "when?"})
    stamped = ((int(msg["id"]) >> 22) + DISCORD_EPOCH_MS) / 1000
    assert status == 200 and stamped - time.time() == pytest.approx(offset, abs=0.5)
