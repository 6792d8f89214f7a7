"""/poll create channel: offers only channels a message can be posted in (channel_types)."""

from __future__ import annotations

import pytest

from tests.harness import Harness

TEXT, VOICE, CATEGORY, NEWS, FORUM = 0, 2, 4, 5, 15


async def test_poll_create_offers_only_channels_a_poll_can_be_posted_in(tmp_path):
    async with Harness(tmp_path) as h:
        synced = next(c for c in h.sandbox.commands(h.guild.id) or h.sandbox.commands() if c["name"] == "poll")
        create = next(o for o in synced["options"] if o["name"] == "create")
        option = next(o for o in create["options"] if o["name"] == "channel")
        assert set(option["channel_types"]) == {TEXT, NEWS, VOICE}
        for ctype in (CATEGORY, FORUM):
            channel = h.sandbox.create_channel(h.guild.id, f"type-{ctype}", type=ctype)
            # Discord's picker never offers it; a forged payload naming it is refused by the sandbox too.
            with pytest.raises(ValueError, match="not allowed"):
                await h.slash(h.mod, "poll create", {"channel": channel.id})
        news = h.sandbox.create_channel(h.guild.id, "announcements", type=NEWS)
        await h.sandbox.wait_for(lambda: h.bot.get_channel(news.id) is not None)
        ix = await h.slash(h.mod, "poll create", {"channel": news.id})
        assert (await ix.response())["type"] == 9
