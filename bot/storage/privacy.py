"""A member's data (export and deletion) and a server's purge after the bot is removed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage import web as web_store
from bot.storage.tables import guilds, jobs, poll_options, polls, suggestions, vote_events, votes


@dataclass(frozen=True)
class Forgotten:
    votes: int
    events: int
    suggestions: int

    @property
    def total(self) -> int:
        return self.votes + self.events + self.suggestions


async def forget_member(conn: AsyncConnection, user_id: int) -> Forgotten:
    """Delete every row that names ``user_id``, in every server.

    Closed polls keep their totals: those live in ``poll_options.final_count`` and ``polls.final_*``,
    which name nobody. Open polls simply lose this member's vote, as if they had withdrawn it.
    """
    n_votes = (await conn.execute(delete(votes).where(votes.c.user_id == user_id))).rowcount
    n_events = (await conn.execute(delete(vote_events).where(vote_events.c.user_id == user_id))).rowcount
    n_suggestions = (await conn.execute(delete(suggestions).where(suggestions.c.user_id == user_id))).rowcount
    # The website: their sessions end, and the audit log keeps the change but no longer names them.
    await web_store.forget_user(conn, user_id)
    return Forgotten(n_votes, n_events, n_suggestions)


async def export_member(conn: AsyncConnection, user_id: int) -> dict[str, Any]:
    """Everything stored about ``user_id``, as plain JSON-ready data."""
    current = await conn.execute(
        select(
            votes.c.guild_id,
            votes.c.poll_id,
            polls.c.question,
            polls.c.status,
            poll_options.c.label,
            poll_options.c.position,
            votes.c.voted_at,
        )
        .join(polls, polls.c.id == votes.c.poll_id)
        .join(poll_options, (poll_options.c.poll_id == votes.c.poll_id) & (poll_options.c.idx == votes.c.option_idx))
        .where(votes.c.user_id == user_id)
        .order_by(votes.c.voted_at)
    )
    history = await conn.execute(
        select(
            vote_events.c.guild_id,
            vote_events.c.poll_id,
            vote_events.c.kind,
            vote_events.c.option_idx,
            vote_events.c.at,
        )
        .where(vote_events.c.user_id == user_id)
        .order_by(vote_events.c.at, vote_events.c.id)
    )
    suggested = await conn.execute(
        select(suggestions.c.guild_id, suggestions.c.body, suggestions.c.status, suggestions.c.created_at).where(
            suggestions.c.user_id == user_id
        )
    )
    return {
        "user_id": str(user_id),
        "votes": [
            {
                "server_id": str(r.guild_id),
                "poll_id": r.poll_id,
                "question": r.question,
                "poll_status": r.status,
                "choice": r.label,
                "position": r.position,
                "voted_at": r.voted_at.isoformat(),
            }
            for r in current
        ],
        "vote_history": [
            {
                "server_id": str(r.guild_id),
                "poll_id": r.poll_id,
                "event": r.kind,
                "option_index": r.option_idx,
                "at": r.at.isoformat(),
            }
            for r in history
        ],
        "suggestions": [
            {"server_id": str(r.guild_id), "status": r.status, "body": r.body, "at": r.created_at.isoformat()}
            for r in suggested
        ],
        "website": await web_store.export_user(conn, user_id),
    }


async def purge_guild(conn: AsyncConnection, guild_id: int) -> bool:
    """Delete a server and everything under it (foreign keys cascade), and its pending jobs."""
    await conn.execute(delete(jobs).where(jobs.c.guild_id == guild_id))
    return (await conn.execute(delete(guilds).where(guilds.c.id == guild_id))).rowcount > 0


async def removed_before(conn: AsyncConnection, cutoff: datetime) -> list[int]:
    rows = await conn.execute(
        select(guilds.c.id).where(guilds.c.removed_at.is_not(None), guilds.c.removed_at <= cutoff)
    )
    return [r.id for r in rows]
