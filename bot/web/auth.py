"""Log in with Discord (authorization code + state + PKCE), log out, and who may do what where."""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.storage import web as web_store
from bot.web.discord_oauth import DiscordAuthError, can_manage, pkce_pair
from bot.web.server import REQUEST_SESSION, digest

if TYPE_CHECKING:
    import discord

    from bot.storage.web import Session
    from bot.web.server import WebServer

log = logging.getLogger(__name__)

SESSION_DAYS = 7
GUILDS_TTL = timedelta(seconds=60)  # how old the member's permissions may be for a page view
_SAFE_NEXT = re.compile(r"^/[A-Za-z0-9/_\-.]{0,190}$")


@dataclass(frozen=True)
class Access:
    """A logged-in member looking at a server the bot and the member share."""

    session: Session
    guild: discord.Guild
    entry: dict[str, Any]  # the partial guild from /users/@me/guilds
    manage: bool


def add_routes(server: WebServer, app: web.Application) -> None:
    h = _Auth(server)
    app.router.add_get("/login", h.login)
    app.router.add_get("/callback", h.callback)
    app.router.add_post("/logout", h.logout)
    app.router.add_post("/logout/everywhere", h.logout_everywhere)


class _Auth:
    def __init__(self, server: WebServer) -> None:
        self.server = server

    async def login(self, request: web.Request) -> web.StreamResponse:
        s = self.server
        next_path = request.query.get("next", "/")
        if not _SAFE_NEXT.match(next_path) or next_path.startswith("//"):
            next_path = "/"
        state = secrets.token_urlsafe(32)
        browser = secrets.token_urlsafe(32)
        verifier, challenge = pkce_pair()
        now = s.clock.now()
        async with s.db.write() as conn:
            await web_store.purge_expired(conn, now=now)
            await web_store.start_login(
                conn, state=digest(state), browser=digest(browser), verifier=verifier, next_path=next_path, now=now
            )
        response = web.HTTPFound(s.oauth.authorize_url(state=state, challenge=challenge))
        s.set_cookie(response, s.login_cookie, browser, max_age=600)
        return response

    async def callback(self, request: web.Request) -> web.StreamResponse:
        s = self.server
        state = request.query.get("state", "")
        browser = request.cookies.get(s.login_cookie, "")
        async with s.db.write() as conn:
            found = (
                await web_store.take_login(conn, state=digest(state), browser=digest(browser), now=s.clock.now())
                if state and browser
                else None
            )
        if found is None:
            raise web.HTTPBadRequest(
                text="This login link has expired or was already used. Start again from the log-in button."
            )
        verifier, next_path = found
        if "error" in request.query or "code" not in request.query:
            return s.render(request, "error.html", status=400, code=400, message="Discord did not authorize the login.")
        try:
            tokens = await s.oauth.exchange(request.query["code"], verifier)
            if set(tokens.scope.split()) < {"identify", "guilds"}:
                raise DiscordAuthError("scope")
            me = await s.oauth.me(tokens.access_token)
            guilds = await s.oauth.guilds(tokens.access_token)
        except DiscordAuthError:
            raise web.HTTPBadRequest(text="Discord refused the login; please try again.") from None
        secret = secrets.token_urlsafe(32)
        now = s.clock.now()
        async with s.db.write() as conn:
            await web_store.create_session(
                conn,
                id=digest(secret),
                user_id=int(me["id"]),
                user_name=str(me.get("global_name") or me.get("username") or "")[:100],
                csrf=secrets.token_urlsafe(32),
                created_at=now,
                expires_at=now + timedelta(days=SESSION_DAYS),
                access_token=tokens.access_token,
                refresh_token=tokens.refresh_token,
                token_expires_at=now + timedelta(seconds=tokens.expires_in),
                guilds=guilds,
                guilds_at=now,
            )
        response = web.HTTPFound(next_path)
        s.set_cookie(response, s.session_cookie, secret, max_age=SESSION_DAYS * 86400)
        s.clear_cookie(response, s.login_cookie)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        s = self.server
        session: Session = request[REQUEST_SESSION]
        async with s.db.write() as conn:
            await web_store.delete_session(conn, session.id)
        response = web.HTTPFound("/")
        s.clear_cookie(response, s.session_cookie)
        return response

    async def logout_everywhere(self, request: web.Request) -> web.StreamResponse:
        """End every session of this member, on every device, and revoke the Discord tokens."""
        s = self.server
        session: Session = request[REQUEST_SESSION]
        async with s.db.write() as conn:
            tokens = await web_store.delete_user_sessions(conn, session.user_id)
        for token in tokens:
            await s.oauth.revoke(token)
        response = web.HTTPFound("/")
        s.clear_cookie(response, s.session_cookie)
        return response


# -- access -------------------------------------------------------------------------------------------


def require_session(request: web.Request) -> Session:
    session: Session | None = request.get(REQUEST_SESSION)
    if session is None:
        if request.method == "GET":
            raise web.HTTPFound(f"/login?next={request.path}")
        raise web.HTTPForbidden(text="Your session has ended: log in again, then retry.")
    return session


async def fresh_guilds(server: WebServer, request: web.Request, *, force: bool) -> list[dict[str, Any]]:
    """The member's guilds as Discord says now (re-read when stale, or always when ``force``)."""
    session = require_session(request)
    now = server.clock.now()
    if not force and now - session.guilds_at < GUILDS_TTL:
        return session.guilds
    access_token = session.access_token
    values: dict[str, Any] = {}
    try:
        if session.token_expires_at <= now:
            if not session.refresh_token:
                raise DiscordAuthError("expired")
            tokens = await server.oauth.refresh(session.refresh_token)
            access_token = tokens.access_token
            values.update(
                access_token=tokens.access_token,
                refresh_token=tokens.refresh_token,
                token_expires_at=now + timedelta(seconds=tokens.expires_in),
            )
        guilds = await server.oauth.guilds(access_token)
    except DiscordAuthError:
        async with server.db.write() as conn:
            await web_store.delete_session(conn, session.id)
        raise web.HTTPUnauthorized(
            text="Discord no longer accepts this login (it was revoked or expired): please log in again."
        ) from None
    values.update(guilds=guilds, guilds_at=now)
    async with server.db.write() as conn:
        await web_store.update_session(conn, session.id, **values)
    return guilds


async def access(server: WebServer, request: web.Request, *, manage: bool) -> Access:
    """The member's access to the server in the URL.

    404 unless the bot is in the server and Discord lists the member in it; 403 when ``manage`` and the
    member lacks Manage Server. A change (any method but GET) always re-reads Discord first."""
    session = require_session(request)
    try:
        guild_id = int(request.match_info["guild_id"])
    except (KeyError, ValueError):
        raise web.HTTPNotFound() from None
    guild = server.bot.get_guild(guild_id)
    if guild is None:
        raise web.HTTPNotFound()
    guilds = await fresh_guilds(server, request, force=request.method != "GET")
    entry = next((g for g in guilds if g["id"] == str(guild_id)), None)
    if entry is None:
        raise web.HTTPNotFound()
    allowed = can_manage(entry)
    if manage and not allowed:
        raise web.HTTPForbidden(text="You need the Manage Server permission in this server to see or change this.")
    return Access(session, guild, entry, allowed)
