"""The sandbox takes a guild outage as Discord does (DISCORD-FACTS row G4): GUILD_DELETE with
``unavailable: true`` (not a removal), 5xx on the guild's routes meanwhile, then GUILD_CREATE; READY lists
it without its GUILD_CREATE. Fails against a kinder sandbox (an outage answered normally, or sent as a
removal). The rate-limit and clock rows (L1-L3, I3) are in test_sandbox_facts_ratelimits.py.
Raw HTTP with aiohttp, so the statuses are exactly what a client sees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.sandbox import Sandbox

pytestmark = pytest.mark.timeout(60)


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
