"""Debates (the outbox of posts), rotation state, and the read-side queries of /debate."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain.rotation import RotationState
from bot.domain.shards import ShardScope
from bot.storage.dialect import insert as insert_for
from bot.storage.scope import owned
from bot.storage.tables import debates, poll_options, polls, rotations, votes


@dataclass(frozen=True)
class Debate:
    id: int
    guild_id: int
    kind: str
    slot_date: str | None
    due_at: datetime
    prompt_key: str
    paragraph: int
    excerpt: str
    question: str
    theme: str
    channel_id: int
    message_id: int | None
    thread_id: int | None
    event_id: int | None
    nonce: str
    status: str
    error: str | None
    created_at: datetime
    posted_at: datetime | None
    send_started_at: datetime | None = None
    dilemma_id: str | None = None  # which of the prompt's dilemmas (None: posted before there were several)


_FIELDS = tuple(Debate.__dataclass_fields__)


def _row(row: Any) -> Debate:
    return Debate(*(getattr(row, f) for f in _FIELDS))


async def get(conn: AsyncConnection, debate_id: int) -> Debate | None:
    row = (await conn.execute(select(debates).where(debates.c.id == debate_id))).first()
    return _row(row) if row else None


async def get_slot(conn: AsyncConnection, guild_id: int, slot_date: str) -> Debate | None:
    row = (
        await conn.execute(
            select(debates).where(
                debates.c.guild_id == guild_id, debates.c.kind == "scheduled", debates.c.slot_date == slot_date
            )
        )
    ).first()
    return _row(row) if row else None


async def insert(
    conn: AsyncConnection,
    *,
    guild_id: int,
    kind: str,
    slot_date: str | None,
    due_at: datetime,
    prompt_key: str,
    paragraph: int,
    excerpt: str,
    question: str,
    theme: str,
    channel_id: int,
    nonce: str,
    now: datetime,
    dilemma_id: str | None = None,
) -> tuple[Debate, bool]:
    """Insert a debate; for a scheduled slot that already has one, return that one instead.

    Returns ``(debate, created)``. The unique (guild, kind, slot_date) key is what makes a second post
    for one local day impossible, whatever the scheduler does.
    """
    stmt = (
        insert_for(conn)(debates)
        .values(
            guild_id=guild_id,
            kind=kind,
            slot_date=slot_date,
            due_at=due_at,
            prompt_key=prompt_key,
            dilemma_id=dilemma_id,
            paragraph=paragraph,
            excerpt=excerpt,
            question=question,
            theme=theme,
            channel_id=channel_id,
            nonce=nonce,
            status="pending",
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[debates.c.guild_id, debates.c.kind, debates.c.slot_date])
        .returning(debates.c.id)
    )
    new_id = (await conn.execute(stmt)).scalar()
    if new_id is not None:
        found = await get(conn, new_id)
        assert found is not None
        return found, True
    assert slot_date is not None
    existing = await get_slot(conn, guild_id, slot_date)
    assert existing is not None
    return existing, False


async def mark_posted(
    conn: AsyncConnection,
    debate_id: int,
    *,
    message_id: int,
    at: datetime,
    channel_id: int | None = None,
    note: str | None = None,
) -> None:
    """Posted; ``note`` keeps what went wrong around the post (not pinned, no thread) for /schedule status."""
    values: dict[str, Any] = {
        "message_id": message_id,
        "status": "posted",
        "posted_at": at,
        "error": note and note[:500],
    }
    if channel_id is not None:
        values["channel_id"] = channel_id
    await conn.execute(update(debates).where(debates.c.id == debate_id).values(**values))


async def mark_send_started(conn: AsyncConnection, debate_id: int, *, at: datetime) -> None:
    """Record that a send of this debate begins (committed before the request leaves)."""
    await conn.execute(
        update(debates).where(debates.c.id == debate_id, debates.c.send_started_at.is_(None)).values(send_started_at=at)
    )


async def interrupted(
    conn: AsyncConnection, *, kind: str, guild_id: int | None = None, scope: ShardScope | None = None
) -> list[Debate]:
    """Debates of ``kind`` still pending whose send began: the post may be on Discord already."""
    query = select(debates).where(
        debates.c.kind == kind,
        debates.c.status == "pending",
        debates.c.send_started_at.is_not(None),
        owned(debates.c.guild_id, scope),
    )
    if guild_id is not None:
        query = query.where(debates.c.guild_id == guild_id)
    return [_row(r) for r in await conn.execute(query.order_by(debates.c.id))]


async def set_extras(
    conn: AsyncConnection, debate_id: int, *, thread_id: int | None = None, event_id: int | None = None
) -> None:
    values = {k: v for k, v in (("thread_id", thread_id), ("event_id", event_id)) if v is not None}
    if values:
        await conn.execute(update(debates).where(debates.c.id == debate_id).values(**values))


async def mark_status(conn: AsyncConnection, debate_id: int, status: str, *, error: str | None = None) -> None:
    await conn.execute(
        update(debates)
        .where(debates.c.id == debate_id, debates.c.status != "posted")
        .values(status=status, error=None if error is None else error[:500])
    )


async def cancel_planned(conn: AsyncConnection, guild_id: int, debate_id: int, *, note: str) -> bool:
    """Mark a planned debate of this server skipped, only if it is still pending; False if it was not."""
    result = await conn.execute(
        update(debates)
        .where(
            debates.c.id == debate_id,
            debates.c.guild_id == guild_id,
            debates.c.kind == "planned",
            debates.c.status == "pending",
        )
        .values(status="skipped", error=note)
    )
    return result.rowcount == 1


async def latest_posted(conn: AsyncConnection, guild_id: int) -> Debate | None:
    row = (
        await conn.execute(
            select(debates)
            .where(debates.c.guild_id == guild_id, debates.c.status == "posted")
            .order_by(debates.c.posted_at.desc(), debates.c.id.desc())
            .limit(1)
        )
    ).first()
    return _row(row) if row else None


async def posted_since(conn: AsyncConnection, guild_id: int, since: datetime) -> list[Debate]:
    rows = await conn.execute(
        select(debates)
        .where(debates.c.guild_id == guild_id, debates.c.status == "posted", debates.c.posted_at >= since)
        .order_by(debates.c.posted_at.desc(), debates.c.id.desc())
    )
    return [_row(r) for r in rows]


async def history(conn: AsyncConnection, guild_id: int, *, offset: int, limit: int) -> tuple[list[Debate], int]:
    """A page of posted debates, newest first, and how many there are in all."""
    where = (debates.c.guild_id == guild_id, debates.c.status == "posted")
    total = (await conn.execute(select(func.count()).select_from(debates).where(*where))).scalar_one()
    rows = await conn.execute(
        select(debates)
        .where(*where)
        .order_by(debates.c.posted_at.desc(), debates.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [_row(r) for r in rows], total


async def pending_planned(conn: AsyncConnection, guild_id: int) -> list[Debate]:
    rows = await conn.execute(
        select(debates)
        .where(debates.c.guild_id == guild_id, debates.c.kind == "planned", debates.c.status == "pending")
        .order_by(debates.c.due_at)
    )
    return [_row(r) for r in rows]


# -- the poll of a debate (read only: the polls feature owns those tables) -------------------------


async def poll_id_for(conn: AsyncConnection, debate_id: int) -> int | None:
    return (
        await conn.execute(select(polls.c.id).where(polls.c.debate_id == debate_id).order_by(polls.c.id).limit(1))
    ).scalar()


@dataclass(frozen=True)
class ResultLine:
    """The headline of a debate's poll: its status, how many voted, and the leading option."""

    poll_id: int
    status: str
    voters: int
    leader: str | None
    leader_votes: int


async def result_lines(conn: AsyncConnection, debate_ids: list[int]) -> dict[int, ResultLine]:
    """For each debate id with a poll: its result line (final counts if closed, live counts if open)."""
    if not debate_ids:
        return {}
    poll_rows = (
        await conn.execute(
            select(polls.c.id, polls.c.debate_id, polls.c.status, polls.c.final_voters).where(
                polls.c.debate_id.in_(debate_ids)
            )
        )
    ).all()
    if not poll_rows:
        return {}
    poll_ids = [r.id for r in poll_rows]
    labels = {
        (r.poll_id, r.idx): (r.label, r.final_count)
        for r in await conn.execute(
            select(poll_options.c.poll_id, poll_options.c.idx, poll_options.c.label, poll_options.c.final_count).where(
                poll_options.c.poll_id.in_(poll_ids)
            )
        )
    }
    live: dict[tuple[int, int], int] = {
        (r.poll_id, r.option_idx): r.n
        for r in await conn.execute(
            select(votes.c.poll_id, votes.c.option_idx, func.count().label("n"))
            .where(votes.c.poll_id.in_(poll_ids))
            .group_by(votes.c.poll_id, votes.c.option_idx)
        )
    }
    out: dict[int, ResultLine] = {}
    for p in poll_rows:
        counts: dict[int, int] = {}
        for (pid, idx), (_label, final) in labels.items():
            if pid != p.id:
                continue
            counts[idx] = final if (p.status != "open" and final is not None) else live.get((pid, idx), 0)
        voters = p.final_voters if (p.status != "open" and p.final_voters is not None) else sum(counts.values())
        leader, leader_votes = None, 0
        if counts and max(counts.values()) > 0:
            idx = max(counts, key=lambda i: (counts[i], -i))
            leader, leader_votes = labels[(p.id, idx)][0], counts[idx]
        if p.debate_id not in out:
            out[p.debate_id] = ResultLine(p.id, p.status, voters, leader, leader_votes)
    return out


# -- rotation state ---------------------------------------------------------------------------------


async def dilemmas_used(conn: AsyncConnection, guild_id: int, prompt_key: str) -> list[str]:
    """The dilemma ids this server's debates of ``prompt_key`` used, oldest first (skipped and
    failed debates, which nobody saw, are left out)."""
    rows = await conn.execute(
        select(debates.c.dilemma_id)
        .where(
            debates.c.guild_id == guild_id,
            debates.c.prompt_key == prompt_key,
            debates.c.dilemma_id.is_not(None),
            debates.c.status.in_(("pending", "posted")),
        )
        .order_by(debates.c.created_at, debates.c.id)
    )
    return [r.dilemma_id for r in rows]


async def rotation(conn: AsyncConnection, guild_id: int) -> RotationState:
    row = (await conn.execute(select(rotations).where(rotations.c.guild_id == guild_id))).first()
    if row is None:
        return RotationState()
    return RotationState(row.cycle, tuple(json.loads(row.used)))


async def save_rotation(conn: AsyncConnection, guild_id: int, state: RotationState) -> None:
    values = {"cycle": state.cycle, "used": json.dumps(list(state.used))}
    stmt = insert_for(conn)(rotations).values(guild_id=guild_id, **values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=[rotations.c.guild_id], set_=values))
