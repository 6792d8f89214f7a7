"""Security and privacy: anonymous polls (no message, embed or log line shows who chose what),
``/privacy forget-me`` through the real command (no row names the member afterwards, in any table),
and the vote state machine of ``tests/storage/test_votes_state.py`` extended with forget and purge."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import ClassVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule, run_state_machine_as_test

from bot.storage import packs as pack_store
from bot.storage import privacy as privacy_store
from tests.reliability.support import (
    EPHEMERAL,
    capture_logs,
    check_database,
    click,
    dump,
    post_poll,
    world,
)
from tests.storage.test_votes_state import GUILDS, USERS, PollMachine


def names_of(member) -> set[str]:
    user = member.user
    return {str(member.id), user["username"], *(v for v in (user.get("global_name"),) if v)}


async def test_anonymous_polls_show_nobody_s_choice(tmp_path, summary):
    with capture_logs("DEBUG") as logs:
        async with world(tmp_path, members=6) as (h, _):
            sb = h.sandbox
            _native_id, native_message = await post_poll(h, style="native", hours=2)
            poll_id, message_id = await post_poll(h, hours=2)
            for i, m in enumerate(h.members):
                assert (await click(sb, h.channel.id, message_id, poll_id, i % 3, m.id)).acked
                sb.poll_vote(h.channel.id, native_message, m.id, i % 3 + 1)
            await h.reply(h.members[0], "about")
            await h.advance(timedelta(hours=3))  # both close; results are posted
            public = [
                m for ch in sb.channels.values() for m in ch.messages.values() if not (m.get("flags") or 0) & EPHEMERAL
            ]
            identities = set().union(*(names_of(m) for m in h.members))
            shown = [json.dumps(m) for m in public]
            leaks_public = sorted({i for text in shown for i in identities if i in text})
            leaks_logs = sorted({line for line in logs.lines for i in identities if i in line})
            await check_database(h.db)
    summary(
        "anonymous polls",
        "security",
        public_messages=len(public),
        log_lines=len(logs.lines),
        leaks=len(leaks_public) + len(leaks_logs),
    )
    assert public and logs.lines
    assert leaks_public == []
    assert leaks_logs == []


async def test_forget_me_leaves_no_row_naming_the_member(tmp_path, summary):
    async with world(tmp_path, servers=1, members=3) as (h, (other,)):
        sb = h.sandbox
        me = h.members[0]
        sb.add_member(other.guild.id, "same person", user_id=me.id)
        closed_id, closed_message = await post_poll(h, hours=1)
        open_id, open_message = await post_poll(h, hours=48)
        their_id, their_message = await post_poll(h, other.channel, hours=48)
        for pid, mid, ch in ((closed_id, closed_message, h.channel), (open_id, open_message, h.channel)):
            assert (await click(sb, ch.id, mid, pid, 0, me.id)).acked
            assert (await click(sb, ch.id, mid, pid, 1, me.id)).acked  # a change: a second event row
            assert (await click(sb, ch.id, mid, pid, 2, h.members[1].id)).acked
        assert (await click(sb, other.channel.id, their_message, their_id, 0, me.id)).acked
        async with h.db.write() as conn:
            await pack_store.add_suggestion(
                conn, h.guild.id, user_id=me.id, body={"question": "Mine?"}, review_channel_id=None, now=h.clock.now()
            )
        await h.advance(timedelta(hours=2))  # the first poll closes with both votes counted
        before = await dump(h.db)
        assert any(me.id in row for rows in before.values() for row in rows)

        ix = await h.slash(me, "privacy forget-me")
        first = await ix.response(timeout=3)
        assert first["data"]["flags"] & EPHEMERAL
        confirm = next(
            c for row in ix.original["components"] for c in row["components"] if c.get("label", "").startswith("Delete")
        )
        done = await sb.click(h.channel.id, int(ix.original["id"]), confirm["custom_id"], me.id)
        answer = await done.response(timeout=3)
        after = await dump(h.db)
        naming = {
            table: [row for row in rows if any(v in (me.id, str(me.id)) for v in row)] for table, rows in after.items()
        }
        naming = {t: rows for t, rows in naming.items() if rows}
        async with h.db.read() as conn:
            finals = (
                await conn.exec_driver_sql(
                    "SELECT idx, final_count FROM poll_options WHERE poll_id = ? ORDER BY idx", (closed_id,)
                )
            ).all()
            others = (await conn.exec_driver_sql("SELECT count(*) FROM votes")).scalar_one()
        await check_database(h.db, closed_recount=False)  # closed polls keep totals of forgotten members
        summary(
            "/privacy forget-me",
            "security",
            rows_before=sum(1 for rows in before.values() for r in rows if me.id in r),
            rows_after=sum(map(len, naming.values())),
        )
        assert answer["type"] == 7 and "Deleted 3 vote(s)" in answer["data"]["content"]
        assert naming == {}
        assert finals == [(0, 0), (1, 1), (2, 1)]  # the closed poll keeps the forgotten member's vote in its totals
        assert others == 2  # member 1's votes stay


# -- the state machine, extended ------------------------------------------------------------------


class ForgetPurgeMachine(PollMachine):
    """Adds /privacy forget-me and the purge of a server 30 days after removal to the storage machine."""

    RUNS: ClassVar[Counter[str]] = Counter()  # examples run and forget/purge steps taken, for the test's figures

    @rule(user=USERS)
    def forget(self, user: int) -> None:
        self._forget(user)

    @precondition(lambda self: self.votes)
    @rule(data=st.data())
    def forget_a_voter(self, data) -> None:
        """Forget a member who holds a vote (members drawn at random seldom do)."""
        self._forget(data.draw(st.sampled_from(sorted({user for _poll, user in self.votes})), label="voter"))

    def _forget(self, user: int) -> None:
        async def go():
            async with self.db.write() as conn:
                return await privacy_store.forget_member(conn, user)

        forgotten = self.run(go())
        mine = [k for k in self.votes if k[1] == user]
        assert forgotten.votes == len(mine)
        self.RUNS["forget"] += 1
        self.RUNS["forgotten votes"] += forgotten.votes
        for key in mine:
            del self.votes[key]

    @precondition(lambda self: self.polls)
    @rule(guild=st.sampled_from(GUILDS))
    def purge(self, guild: int) -> None:
        async def go():
            async with self.db.write() as conn:
                await privacy_store.purge_guild(conn, guild)
                left = (
                    await conn.exec_driver_sql(
                        "SELECT (SELECT count(*) FROM polls WHERE guild_id = :g) + "
                        "(SELECT count(*) FROM votes WHERE guild_id = :g) + "
                        "(SELECT count(*) FROM vote_events WHERE guild_id = :g)",
                        {"g": guild},
                    )
                ).scalar_one()
            return left

        assert self.run(go()) == 0
        gone = {pid for pid, p in self.polls.items() if p["guild"] == guild}
        self.RUNS["purge"] += 1
        self.RUNS["purged polls"] += len(gone)
        for pid in gone:
            del self.polls[pid]
            self.finals.pop(pid, None)
        self.votes = {k: v for k, v in self.votes.items() if k[0] not in gone}

    def teardown(self) -> None:
        async def integrity():
            async with self.db.read() as conn:
                return (await conn.exec_driver_sql("PRAGMA integrity_check")).scalar_one()

        try:
            assert self.run(integrity()) == "ok"
            self.RUNS["examples"] += 1
        finally:
            super().teardown()


# Derandomized: the figures asserted below (forget met a voter, purge met a poll) must not depend on
# the luck of 8 examples; the vote state machine (tests/storage) still explores at random.
FORGET_PURGE = settings(
    max_examples=8,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


def test_forget_purge_state_machine(summary):
    """The machine's runs, with figures that can fail: every example ended with integrity_check ok,
    and forget and purge each ran and removed something."""
    ForgetPurgeMachine.RUNS.clear()
    run_state_machine_as_test(ForgetPurgeMachine, settings=FORGET_PURGE)
    runs = ForgetPurgeMachine.RUNS
    summary("state machine (+forget, purge)", "security", steps=FORGET_PURGE.stateful_step_count, **runs)
    assert runs["examples"] >= FORGET_PURGE.max_examples, runs
    assert runs["forget"] > 0 and runs["forgotten votes"] > 0, runs
    assert runs["purge"] > 0 and runs["purged polls"] > 0, runs
