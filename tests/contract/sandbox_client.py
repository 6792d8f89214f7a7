"""A bare discord.py client connected to a sandbox, for the contract tests of the sandbox's facts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import discord

from bot.sandbox import Sandbox


@contextlib.asynccontextmanager
async def connected(sb: Sandbox, client: discord.Client, ready: asyncio.Event) -> AsyncIterator[None]:
    """Point discord.py at the started ``sb`` (its world already built, so READY carries it), log
    ``client`` in and wait for ``ready``; after, close the client, stop ``sb`` and restore discord.py."""
    old_base, old_gw = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    sb.configure_discord()
    task: asyncio.Task[None] | None = None
    try:
        task = asyncio.create_task(client.start(sb.token))
        await asyncio.wait_for(ready.wait(), 10)
        yield
    finally:
        await client.close()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)
        await sb.stop()
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gw
