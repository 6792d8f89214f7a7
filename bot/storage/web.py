"""The website's rows: sessions, logins in flight, the moderators' audit log and public-page switches."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.dialect import insert as insert_for
from bot.storage.tables import web_audit, web_logins, web_public, web_sessions

AUDIT_DAYS = 90
LOGIN_TTL = timedelta(minutes=10)


@dataclass(frozen=True)
class Session:
    id: str
    user_id: int
    user_name: str
    csrf: str
    created_at: datetime
    expires_at: datetime
    access_token: str
    refresh_token: str | None
    token_expires_at: datetime
    guilds: list[dict[str, Any]]
    guilds_at: datetime


def _session(row: Any) -> Session:
    return Session(
        row.id,
        row.user_id,
        row.user_name,
        row.csrf,
        row.created_at,
        row.expires_at,
        row.access_token,
        row.refresh_token,
        row.token_expires_at,
        json.loads(row.guilds),
        row.guilds_at,
    )


async def create_session(conn: AsyncConnection, **values: Any) -> None:
    values["guilds"] = json.dumps(values["guilds"])
    await conn.execute(web_sessions.insert().values(**values))


async def get_session(conn: AsyncConnection, session_id: str, *, now: datetime) -> Session | None:
    row = (
        await conn.execute(select(web_sessions).where(web_sessions.c.id == session_id, web_sessions.c.expires_at > now))
    ).first()
    return _session(row) if row is not None else None


async def update_session(conn: AsyncConnection, session_id: str, **values: Any) -> None:
    if "guilds" in values:
        values["guilds"] = json.dumps(values["guilds"])
    await conn.execute(update(web_sessions).where(web_sessions.c.id == session_id).values(**values))


async def delete_session(conn: AsyncConnection, session_id: str) -> int:
    return (await conn.execute(delete(web_sessions).where(web_sessions.c.id == session_id))).rowcount


async def delete_user_sessions(conn: AsyncConnection, user_id: int) -> list[str]:
    """Every session of a user (log out everywhere); returns their access tokens, to revoke them."""
    tokens = [r.access_token for r in await conn.execute(select(web_sessions).where(web_sessions.c.user_id == user_id))]
    await conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user_id))
    return tokens


async def purge_expired(conn: AsyncConnection, *, now: datetime) -> None:
    await conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now))
    await conn.execute(delete(web_logins).where(web_logins.c.created_at <= now - LOGIN_TTL))


# -- logins in flight ---------------------------------------------------------------------------------


async def start_login(
    conn: AsyncConnection, *, state: str, browser: str, verifier: str, next_path: str, now: datetime
) -> None:
    await conn.execute(
        web_logins.insert().values(state=state, browser=browser, verifier=verifier, next_path=next_path, created_at=now)
    )


async def take_login(conn: AsyncConnection, *, state: str, browser: str, now: datetime) -> tuple[str, str] | None:
    """Use up a login: ``(verifier, next path)`` if the state is known, fresh and from this browser.

    The row is deleted whatever the outcome, so a state can never be used twice."""
    row = (await conn.execute(select(web_logins).where(web_logins.c.state == state))).first()
    if row is None:
        return None
    await conn.execute(delete(web_logins).where(web_logins.c.state == state))
    if row.browser != browser or row.created_at <= now - LOGIN_TTL:
        return None
    return row.verifier, row.next_path


# -- the audit log ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    user_id: int | None
    user_name: str
    action: str
    detail: str


async def audit(
    conn: AsyncConnection, guild_id: int, *, user_id: int, user_name: str, action: str, detail: str, now: datetime
) -> None:
    """Record a moderator's change, in the same transaction as the change; older rows are purged."""
    await conn.execute(
        web_audit.insert().values(
            guild_id=guild_id, user_id=user_id, user_name=user_name[:100], action=action, detail=detail, at=now
        )
    )
    await purge_audit(conn, now=now)


async def purge_audit(conn: AsyncConnection, *, now: datetime) -> int:
    """Delete audit rows older than 90 days (in every server)."""
    cutoff = now - timedelta(days=AUDIT_DAYS)
    return (await conn.execute(delete(web_audit).where(web_audit.c.at < cutoff))).rowcount


async def audit_log(conn: AsyncConnection, guild_id: int, *, limit: int = 200) -> list[AuditEntry]:
    rows = await conn.execute(
        select(web_audit)
        .where(web_audit.c.guild_id == guild_id)
        .order_by(web_audit.c.at.desc(), web_audit.c.id.desc())
        .limit(limit)
    )
    return [AuditEntry(r.at, r.user_id, r.user_name, r.action, r.detail) for r in rows]


async def forget_user(conn: AsyncConnection, user_id: int) -> int:
    """A member's forget-me: their sessions, logins and name in the audit log (the change stays)."""
    await conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user_id))
    result = await conn.execute(
        update(web_audit).where(web_audit.c.user_id == user_id).values(user_id=None, user_name="(forgotten)")
    )
    return result.rowcount


async def export_user(conn: AsyncConnection, user_id: int) -> dict[str, Any]:
    """What the website keeps about a member: their sessions (no secrets) and their audit entries."""
    sessions = await conn.execute(
        select(web_sessions.c.created_at, web_sessions.c.expires_at).where(web_sessions.c.user_id == user_id)
    )
    entries = await conn.execute(
        select(web_audit.c.guild_id, web_audit.c.action, web_audit.c.detail, web_audit.c.at).where(
            web_audit.c.user_id == user_id
        )
    )
    return {
        "sessions": [
            {"created_at": r.created_at.isoformat(), "expires_at": r.expires_at.isoformat()} for r in sessions
        ],
        "audit_log": [
            {"server_id": str(r.guild_id), "action": r.action, "detail": r.detail, "at": r.at.isoformat()}
            for r in entries
        ],
    }


# -- public pages -------------------------------------------------------------------------------------


async def is_published(conn: AsyncConnection, guild_id: int) -> bool:
    row = (await conn.execute(select(web_public.c.published).where(web_public.c.guild_id == guild_id))).first()
    return bool(row and row.published)


async def set_published(conn: AsyncConnection, guild_id: int, published: bool, *, now: datetime) -> None:
    stmt = insert_for(conn)(web_public).values(guild_id=guild_id, published=published, changed_at=now)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[web_public.c.guild_id], set_={"published": published, "changed_at": now}
        )
    )


async def count_rows(conn: AsyncConnection) -> dict[str, int]:
    """Row counts of the web tables (tests compare them before and after a refused request)."""
    out = {}
    for table in (web_sessions, web_logins, web_audit, web_public):
        out[table.name] = int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
    return out
