"""The floor for the bot's CPU per click: a bare discord.py bot that answers every button click without storing.

    DISCORD_TOKEN=... DISCORD_API_BASE=... DISCORD_GATEWAY_URL=... \\
        .venv/bin/python -m benchmarks.bare_bot --shards 0-3 --shard-count 8

Started by ``benchmarks/cluster.py`` in place of a `commonground run` cluster, on the same shards and with
what Common Ground's process has that is not Common Ground: an ``AutoShardedClient`` with the same intents
(guilds, guild polls), the same event loop (uvloop) and the same garbage-collector tuning after log-in. A
click is parsed and dispatched by discord.py (``on_interaction``) and answered with an ephemeral message
like the bot's vote answer, so the difference to a cluster is what Common Ground adds per click: the
custom_id lookup, the vote's storage and group commit, the answer's text.
"""

from __future__ import annotations

import argparse
import logging
import os

import discord
import yarl

from bot.domain.shards import parse_shards
from bot.runtime import run, tune_gc

log = logging.getLogger("bare_bot")


class BareBot(discord.AutoShardedClient):
    def __init__(self, shards: tuple[int, ...], count: int) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_polls = True
        super().__init__(
            intents=intents,
            shard_ids=list(shards),
            shard_count=count,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.answered = 0

    async def on_ready(self) -> None:
        log.info("bare bot: every shard ready as %s (%d servers)", self.user, len(self.guilds))

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        custom_id = (interaction.data or {}).get("custom_id", "")
        if interaction.type is not discord.InteractionType.component or not custom_id.startswith("poll:vote:"):
            return
        idx = custom_id.rsplit(":", 1)[1]
        await interaction.response.send_message(
            f"You chose *option {idx}*. You can change your vote until the poll closes.", ephemeral=True
        )
        self.answered += 1


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", required=True, help="e.g. 0-3")
    parser.add_argument("--shard-count", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("discord").setLevel(logging.WARNING)
    # The same two settings `commonground run` applies (bot.app.apply_endpoints).
    discord.http.Route.BASE = os.environ["DISCORD_API_BASE"]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["DISCORD_GATEWAY_URL"])
    client = BareBot(parse_shards(args.shards), args.shard_count)
    async with client:
        await client.login(os.environ["DISCORD_TOKEN"])
        tune_gc()
        await client.connect()


if __name__ == "__main__":
    run(main())
