"""Real-world conditions met by `commonground run` (the real process against the sandbox): a restart
during a Discord outage of a server (G4), a channel id from another server, SIGTERM under load."""

from __future__ import annotations

from tests.reliability.support import check_database, eventually, world
from tests.reliability.test_kill import BotProcess


async def stored_name(h, guild_id: int) -> str | None:
    async with h.db.read() as conn:
        return (await conn.exec_driver_sql("SELECT name FROM guilds WHERE id = ?", (guild_id,))).scalar()


async def test_a_restart_during_an_outage_keeps_the_server_name(tmp_path, summary):
    async with world(tmp_path, servers=2, members=1) as (h, servers):
        down, up = servers

        async def known():
            return await stored_name(h, down.guild.id) == "server-0"

        await eventually(known, timeout=10)
        await h.stop_bot()
        sb = h.sandbox
        sb.start_outage(down.guild.id)
        log = tmp_path / "bot.log"
        bot = BotProcess(h, log, log_level="INFO")
        await bot.start()
        try:

            async def reconciled():
                return "servers reconciled" in log.read_text()

            await eventually(reconciled, timeout=30)
            during = await stored_name(h, down.guild.id)
            sb.end_outage(down.guild.id)
            await eventually(reconciled, timeout=30)
            ix = await sb.slash(down.guild.id, down.channel.id, down.members[0].id, "about", {})
            await ix.response(timeout=10)  # the server is back and served
        finally:
            await bot.stop()
        after = await stored_name(h, down.guild.id)
        async with h.db.read() as conn:
            removed = dict((await conn.exec_driver_sql("SELECT id, removed_at FROM guilds")).all())
        await check_database(h.db)
        summary("G4 restart during an outage", "fault", name_during=repr(during), name_after=repr(after))
        assert during == "server-0" and after == "server-0"
        assert await stored_name(h, up.guild.id) == "server-1"
        assert removed[down.guild.id] is None, "a server in an outage was taken as left"


async def test_schedule_setup_with_another_servers_channel_is_refused_clearly(tmp_path, summary):
    async with world(tmp_path, servers=2, members=1) as (h, servers):
        sb = h.sandbox
        shared, foreign = servers  # the bot is in both; then removed from the second
        await h.stop_bot()
        sb.remove_guild(foreign.guild.id)
        log = tmp_path / "bot.log"
        bot = BotProcess(h, log, log_level="INFO")
        await bot.start()
        replies = []
        try:
            for other in (shared, foreign):
                ix = await h.slash(
                    h.mod, "schedule setup", {"channel": other.channel.id, "time": "09:00", "timezone": "UTC"}
                )
                replies.append(await ix.response(timeout=10))
        finally:
            await bot.stop()
        async with h.db.read() as conn:
            schedules = (await conn.exec_driver_sql("SELECT count(*) FROM schedules")).scalar_one()
        text = log.read_text()
        summary("setup: another server's channel", "bad-input", tried=2, refused=len(replies), schedules=schedules)
        for reply in replies:
            assert reply["data"]["flags"] & 64, reply  # ephemeral
            assert "isn't one of this server's channels" in reply["data"]["content"], reply
        assert schedules == 0
        assert "Traceback" not in text and "ERROR" not in text, text[-3000:]
        assert sb.messages(shared.channel.id) == []
