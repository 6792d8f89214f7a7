"""The canary: login -> READY -> /about -> the callback the sandbox recorded. If this fails, nothing else can pass."""

from __future__ import annotations

from tests.harness import Harness


async def test_about_round_trip(tmp_path):
    async with Harness(tmp_path, extensions=("bot.cogs.meta",)) as h:
        assert h.bot.is_ready()
        assert {g.id for g in h.bot.guilds} == {h.guild.id}
        reply = await h.reply(h.members[0], "about")
        assert reply["type"] == 4
        data = reply["data"]
        assert data["flags"] & 64, "the about card is ephemeral"
        embed = data["embeds"][0]
        assert embed["title"] == "Common Ground"
        assert "Individualism and Collectivism" in embed["description"]
        assert data["allowed_mentions"]["parse"] == []


async def test_help_lists_every_command(tmp_path):
    async with Harness(tmp_path) as h:
        reply = await h.reply(h.members[0], "help")
        text = "\n".join(f["value"] for f in reply["data"]["embeds"][0]["fields"])
        for command in h.bot.tree.walk_commands():
            if not hasattr(command, "commands"):
                assert f"/{command.qualified_name}`" in text
