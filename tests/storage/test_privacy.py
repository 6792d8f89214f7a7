"""Forget-me leaves no row naming the member, in any table; closed polls keep their totals; purge."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, or_, select

from bot.storage import guilds as guild_store
from bot.storage import packs as pack_store
from bot.storage import privacy
from bot.storage.tables import metadata, poll_options, polls, suggestions, vote_events, votes

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
ALICE, BOB = 111_111_111_111_111_111, 222_222_222_222_222_222


async def _seed(db) -> dict[int, int]:
    """Two servers, a closed and an open poll in each, Alice and Bob voting everywhere."""
    poll_ids = {}
    async with db.write() as conn:
        for guild_id in (1, 2):
            await guild_store.ensure(conn, guild_id, now=NOW)
            for status in ("closed", "open"):
                result = await conn.execute(
                    polls.insert().values(
                        guild_id=guild_id,
                        channel_id=10,
                        message_id=20 + guild_id,
                        question="Q?",
                        status=status,
                        opened_at=NOW,
                        closes_at=NOW,
                        final_voters=2 if status == "closed" else None,
                    )
                )
                pid = result.inserted_primary_key[0]
                poll_ids[pid] = guild_id
                await conn.execute(
                    poll_options.insert(),
                    [
                        {
                            "poll_id": pid,
                            "idx": 0,
                            "label": "Me",
                            "position": -1.0,
                            "final_count": 1 if status == "closed" else None,
                        },
                        {
                            "poll_id": pid,
                            "idx": 1,
                            "label": "Us",
                            "position": 1.0,
                            "final_count": 1 if status == "closed" else None,
                        },
                    ],
                )
                for user, idx in ((ALICE, 0), (BOB, 1)):
                    await conn.execute(
                        votes.insert().values(
                            poll_id=pid, user_id=user, guild_id=guild_id, option_idx=idx, voted_at=NOW
                        )
                    )
                    await conn.execute(
                        vote_events.insert().values(
                            poll_id=pid, guild_id=guild_id, user_id=user, kind="cast", option_idx=idx, at=NOW
                        )
                    )
            await conn.execute(suggestions.insert().values(guild_id=guild_id, user_id=ALICE, body="{}", created_at=NOW))
    return poll_ids


async def _rows_naming(db, user_id: int) -> list[str]:
    """Every (table, column) that still holds ``user_id`` in any integer column."""
    found = []
    async with db.read() as conn:
        for table in metadata.sorted_tables:
            # Discord ids live in BigInteger columns; row ids and indexes are Integer and cannot hold them.
            columns = [c for c in table.columns if isinstance(c.type, BigInteger)]
            if not columns:
                continue
            hits = (await conn.execute(select(table).where(or_(*(c == user_id for c in columns))))).all()
            found += [f"{table.name}: {tuple(row)}" for row in hits]
    return found


async def test_forget_me_leaves_no_row_behind(db):
    await _seed(db)
    assert len(await _rows_naming(db, ALICE)) == 4 + 4 + 2
    async with db.write() as conn:
        forgotten = await privacy.forget_member(conn, ALICE)
    assert (forgotten.votes, forgotten.events, forgotten.suggestions) == (4, 4, 2)
    assert await _rows_naming(db, ALICE) == []
    # Bob is untouched, and closed polls keep their anonymous totals.
    assert len(await _rows_naming(db, BOB)) == 8
    async with db.read() as conn:
        totals = (await conn.execute(select(polls.c.final_voters).where(polls.c.status == "closed"))).scalars().all()
        counts = await conn.execute(select(poll_options.c.final_count).where(poll_options.c.final_count.is_not(None)))
    assert totals == [2, 2]
    assert sorted(counts.scalars().all()) == [1, 1, 1, 1]


async def test_export_me_lists_only_my_votes(db):
    await _seed(db)
    async with db.read() as conn:
        data = await privacy.export_member(conn, ALICE)
    assert len(data["votes"]) == 4
    assert {v["choice"] for v in data["votes"]} == {"Me"}
    assert len(data["vote_history"]) == 4
    assert str(BOB) not in str(data)


async def test_purge_removes_one_server_only(db):
    poll_ids = await _seed(db)
    async with db.write() as conn:
        assert await privacy.purge_guild(conn, 1)
    async with db.read() as conn:
        left = (await conn.execute(select(polls.c.guild_id))).scalars().all()
        vote_guilds = set((await conn.execute(select(votes.c.guild_id))).scalars().all())
        event_guilds = set((await conn.execute(select(vote_events.c.guild_id))).scalars().all())
    assert set(left) == {2}
    assert vote_guilds == {2}
    assert event_guilds == {2}
    assert len(poll_ids) == 4


async def test_a_decided_suggestion_no_longer_names_the_member(db):
    """Approved or rejected, a suggestion keeps its prompt, not who suggested it; a pending one keeps the
    member (moderators see who asked) until it is decided or the member asks to be forgotten."""
    async with db.write() as conn:
        await guild_store.ensure(conn, 1, now=NOW)
        ids = [
            await pack_store.add_suggestion(conn, 1, user_id=ALICE, body={"q": n}, review_channel_id=None, now=NOW)
            for n in range(3)
        ]
        assert await pack_store.decide(conn, ids[0], "approved", now=NOW)
        assert await pack_store.decide(conn, ids[1], "rejected", now=NOW)
        assert not await pack_store.decide(conn, ids[1], "approved", now=NOW)  # decided already
    async with db.read() as conn:
        held = dict((await conn.execute(select(suggestions.c.id, suggestions.c.user_id))).all())
        kept = [(await pack_store.get_suggestion(conn, i, 1)).body for i in ids]
    assert held == {ids[0]: None, ids[1]: None, ids[2]: ALICE}
    assert kept == [{"q": 0}, {"q": 1}, {"q": 2}]
    assert len(await _rows_naming(db, ALICE)) == 1
    async with db.write() as conn:
        forgotten = await privacy.forget_member(conn, ALICE)
    assert forgotten.suggestions == 1
    assert await _rows_naming(db, ALICE) == []
