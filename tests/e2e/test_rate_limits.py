"""The real discord.py client against the sandbox with Discord's rate limits on: it paces itself from
the ``X-RateLimit-*`` headers (no 429 from a burst it sends alone), and when another process of the
same bot spent the allowance behind its back it gets a real 429 (per-route, then global), sleeps
``retry_after`` and sends again, delivering every message exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest

from bot.sandbox import Conditions, Sandbox

pytestmark = pytest.mark.timeout(90)


class Client(discord.Client):
    def __init__(self) -> None:
        super().__init__(intents=discord.Intents(guilds=True), guild_ready_timeout=0.05)
        self.ready_event = asyncio.Event()

    async def on_ready(self) -> None:
        self.ready_event.set()


@pytest.fixture
async def env() -> AsyncIterator[tuple[Sandbox, Client, aiohttp.ClientSession]]:
    # Create Message's window shortened from 5 s to 1 s so the test runs in seconds; limits, headers and
    # the global second are Discord's.
    sb = Sandbox(conditions=Conditions(rate_limits=True, latency=(0.010, 0.005), window_scale=0.2, seed=3))
    await sb.start()
    old_base, old_gw = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    sb.configure_discord()
    client = Client()
    task = asyncio.create_task(client.start(sb.token))
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bot {sb.token}"}) as other:
            sb.create_guild("Busy")
            await asyncio.wait_for(client.ready_event.wait(), 10)
            yield sb, client, other
    finally:
        await client.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 5)
        await sb.stop()
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gw


def contents(sb: Sandbox, channel_id: int) -> list[str]:
    return [m["content"] for m in sb.messages(channel_id)]


async def test_discord_py_paces_from_headers_and_recovers_from_429s_without_losing_a_request(env) -> None:
    sb, client, other = env
    g = next(iter(sb.guilds.values()))
    a = sb.create_channel(g.id, "a")
    b = sb.create_channel(g.id, "b")
    await sb.wait_for(lambda: client.get_channel(b.id))

    # A burst three times the bucket in two channels: discord.py waits out each window from the headers.
    started = time.monotonic()
    burst = [client.get_channel(ch.id).send(f"{ch.name}{i}") for i in range(15) for ch in (a, b)]
    await asyncio.wait_for(asyncio.gather(*burst), 30)
    assert sorted(contents(sb, a.id)) == sorted(f"a{i}" for i in range(15))
    assert sorted(contents(sb, b.id)) == sorted(f"b{i}" for i in range(15))
    assert sb.limits.route_429s == 0 and sb.limits.global_429s == 0  # paced, never refused
    assert time.monotonic() - started >= 2 * 1.0  # 15 per channel at 5 a window: three windows, two waits

    # Another process of the bot spends channel a's bucket behind the client's back: a real 429.
    await asyncio.sleep(1.05)  # fresh windows
    for i in range(5):
        async with other.post(f"{sb.api_base}/channels/{a.id}/messages", json={"content": f"other{i}"}) as r:
            assert r.status == 200
    started = time.monotonic()
    await asyncio.wait_for(client.get_channel(a.id).send("after a 429"), 15)
    refusals = [r for r in sb.requests if r.status == 429]
    assert sb.limits.route_429s == 1 and refusals[-1].path == f"/channels/{a.id}/messages"
    assert refusals[-1].response["global"] is False and refusals[-1].fault == "ratelimit:user"
    assert time.monotonic() - started >= refusals[-1].response["retry_after"] - 0.05  # it slept retry_after
    assert contents(sb, a.id).count("after a 429") == 1

    # ...and the global second: 50 reads elsewhere, then the client's send is refused, waited, retried.
    await asyncio.sleep(1.05)
    channels = [sb.create_channel(g.id, f"read{i}") for i in range(50)]
    reads = [other.get(f"{sb.api_base}/channels/{c.id}") for c in channels]
    for response in await asyncio.gather(*reads):
        response.release()
    await asyncio.wait_for(client.get_channel(b.id).send("after a global 429"), 15)
    refused_send = [r for r in sb.requests if r.status == 429 and r.path == f"/channels/{b.id}/messages"]
    assert refused_send and refused_send[-1].response["global"] is True  # the client's own send was refused
    assert contents(sb, b.id).count("after a global 429") == 1
    assert sb.limits.route_429s == 1 and not sb.limits.banned
