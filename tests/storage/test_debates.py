"""Debates: one row per server and local day, the nonce kept across retries, rotation state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from bot.domain.rotation import RotationState
from bot.storage import debates as store
from bot.storage import guilds

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


def values(**over):
    v = {
        "guild_id": 1,
        "kind": "scheduled",
        "slot_date": "2026-03-02",
        "due_at": NOW,
        "prompt_key": "pack/p1",
        "paragraph": 1,
        "excerpt": "Individualism emphasizes the value of self-reliance and personal responsibility.",
        "question": "Q?",
        "theme": "self-reliance",
        "channel_id": 10,
        "nonce": "nonce-1",
        "now": NOW,
    }
    v.update(over)
    return v


@pytest.fixture
async def guild(db):
    async with db.write() as conn:
        await guilds.ensure(conn, 1, now=NOW)
        await guilds.ensure(conn, 2, now=NOW)


async def test_one_debate_per_slot_and_the_first_nonce_wins(db, guild):
    async with db.write() as conn:
        first, created = await store.insert(conn, **values())
        assert created and first.status == "pending" and first.nonce == "nonce-1"
        again, created = await store.insert(conn, **values(nonce="nonce-2", prompt_key="pack/p2"))
        assert not created and again.id == first.id and again.nonce == "nonce-1" and again.prompt_key == "pack/p1"
        other_day, created = await store.insert(conn, **values(slot_date="2026-03-03", nonce="nonce-3"))
        assert created and other_day.id != first.id
        _other_server, created = await store.insert(conn, **values(guild_id=2, nonce="nonce-4"))
        assert created


async def test_manual_debates_have_no_slot_and_do_not_collide(db, guild):
    async with db.write() as conn:
        a, _ = await store.insert(conn, **values(kind="manual", slot_date=None, nonce="a"))
        b, _ = await store.insert(conn, **values(kind="manual", slot_date=None, nonce="b"))
        assert a.id != b.id


async def test_a_nonce_is_never_reused(db, guild):
    async with db.write() as conn:
        await store.insert(conn, **values())
    with pytest.raises(IntegrityError):
        async with db.write() as conn:
            await store.insert(conn, **values(slot_date="2026-03-04"))


async def test_posted_history_latest_and_status(db, guild):
    async with db.write() as conn:
        ids = []
        for day in range(3):
            d, _ = await store.insert(conn, **values(slot_date=f"2026-03-0{day + 2}", nonce=f"n{day}"))
            ids.append(d.id)
        await store.mark_posted(conn, ids[0], message_id=100, at=NOW)
        await store.mark_posted(conn, ids[1], message_id=101, at=NOW + timedelta(days=1))
        await store.mark_status(conn, ids[2], "failed", error="missing Send Messages in #general")
        await store.mark_status(conn, ids[0], "failed")  # a posted debate stays posted
    async with db.read() as conn:
        latest = await store.latest_posted(conn, 1)
        rows, total = await store.history(conn, 1, offset=0, limit=1)
        failed = await store.get(conn, ids[2])
        first = await store.get(conn, ids[0])
        since = await store.posted_since(conn, 1, NOW + timedelta(hours=1))
        lines = await store.result_lines(conn, ids)
    assert latest.id == ids[1] and latest.message_id == 101
    assert total == 2 and [r.id for r in rows] == [ids[1]]
    assert failed.status == "failed" and failed.error.startswith("missing Send Messages")
    assert first.status == "posted"
    assert [d.id for d in since] == [ids[1]]
    assert lines == {}


async def test_rotation_state_round_trips(db, guild):
    async with db.write() as conn:
        assert await store.rotation(conn, 1) == RotationState()
        await store.save_rotation(conn, 1, RotationState(2, ("a/b", "c/d")))
        await store.save_rotation(conn, 1, RotationState(3, ("e/f",)))
        assert await store.rotation(conn, 1) == RotationState(3, ("e/f",))
        assert await store.rotation(conn, 2) == RotationState()


async def test_only_a_pending_planned_debate_of_the_server_can_be_cancelled(db, guild):
    async with db.write() as conn:
        later, _ = await store.insert(
            conn, **values(kind="planned", slot_date=None, nonce="p1", due_at=NOW + timedelta(days=2))
        )
        soon, _ = await store.insert(
            conn, **values(kind="planned", slot_date=None, nonce="p2", due_at=NOW + timedelta(days=1))
        )
        daily, _ = await store.insert(conn, **values(nonce="d1"))
        assert [d.id for d in await store.pending_planned(conn, 1)] == [soon.id, later.id]
        assert not await store.cancel_planned(conn, 2, later.id, note="x")  # another server's
        assert not await store.cancel_planned(conn, 1, daily.id, note="x")  # not a planned debate
        assert await store.cancel_planned(conn, 1, later.id, note="cancelled by a moderator")
        assert not await store.cancel_planned(conn, 1, later.id, note="x")  # no longer pending
        await store.mark_status(conn, soon.id, "posted")
        assert not await store.cancel_planned(conn, 1, soon.id, note="x")
        cancelled = await store.get(conn, later.id)
        assert (cancelled.status, cancelled.error) == ("skipped", "cancelled by a moderator")
        assert (await store.get(conn, daily.id)).status == "pending"
        assert await store.pending_planned(conn, 1) == []


async def test_a_debate_records_its_dilemma_and_the_used_ones_come_back_oldest_first(db, guild):
    async with db.write() as conn:
        for day, (key, dilemma, status) in enumerate(
            [
                ("pack/p1", "d-one", "posted"),
                ("pack/p2", "other", "posted"),  # another prompt
                ("pack/p1", "d-two", "posted"),
                ("pack/p1", "d-three", "skipped"),  # nobody saw it
                ("pack/p1", None, "posted"),  # posted before dilemmas had ids
                ("pack/p1", "d-one", "pending"),
            ]
        ):
            debate, _ = await store.insert(
                conn,
                **values(
                    slot_date=f"2026-03-{day + 2:02d}",
                    nonce=f"n{day}",
                    prompt_key=key,
                    dilemma_id=dilemma,
                    now=NOW + timedelta(days=day),
                ),
            )
            assert debate.dilemma_id == dilemma
            await store.mark_status(conn, debate.id, status)
        await store.insert(conn, **values(guild_id=2, nonce="x", dilemma_id="d-two"))  # another server
    async with db.read() as conn:
        assert await store.dilemmas_used(conn, 1, "pack/p1") == ["d-one", "d-two", "d-one"]
        assert await store.dilemmas_used(conn, 1, "pack/p2") == ["other"]
        assert await store.dilemmas_used(conn, 2, "pack/p1") == ["d-two"]


async def test_prompt_skips_and_the_sensitive_setting_are_per_server(db, guild):
    from bot.storage import packs as pack_store

    async with db.write() as conn:
        assert await pack_store.skip_prompt(conn, 1, "pack/p1", now=NOW)
        assert not await pack_store.skip_prompt(conn, 1, "pack/p1", now=NOW)  # already skipped
        assert await pack_store.skip_prompt(conn, 1, "pack/it's %_ odd", now=NOW)  # stored verbatim
        assert await pack_store.skip_prompt(conn, 2, "pack/p2", now=NOW)
        await guilds.update_settings(conn, 1, sensitive_prompts=True)
    async with db.read() as conn:
        assert await pack_store.skipped_prompts(conn, 1) == {"pack/p1", "pack/it's %_ odd"}
        assert await pack_store.skipped_prompts(conn, 2) == {"pack/p2"}
        assert (await guilds.get(conn, 1)).sensitive_prompts is True
        assert (await guilds.get(conn, 2)).sensitive_prompts is False
    async with db.write() as conn:
        assert await pack_store.unskip_prompt(conn, 1, "pack/p1")
        assert not await pack_store.unskip_prompt(conn, 1, "pack/p1")
        assert not await pack_store.unskip_prompt(conn, 1, "pack/p2")  # another server's skip
    async with db.read() as conn:
        assert await pack_store.skipped_prompts(conn, 1) == {"pack/it's %_ odd"}
        assert await pack_store.skipped_prompts(conn, 2) == {"pack/p2"}
