"""The website under test: the sandbox (with its OAuth2), the real bot serving the site, a FakeClock."""

from __future__ import annotations

import socket
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import discord

from bot.app import EXTENSIONS
from bot.sandbox import Sandbox
from bot.storage import web as web_store
from tests.harness import Harness

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def site(tmp_path: Path, *, extensions=EXTENSIONS, members: int = 3, **kwargs: Any):
    """A Harness whose bot serves the website on 127.0.0.1; yields ``(harness, base_url)``."""
    sb = Sandbox()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sb.oauth.register_redirect(f"{base}/callback")
    settings = {
        "web": f"127.0.0.1:{port}",
        "web_url": base,
        "oauth_client_id": sb.oauth.client_id,
        "oauth_client_secret": sb.oauth.client_secret,
    }
    try:
        async with Harness(
            tmp_path, sandbox=sb, settings=settings, extensions=extensions, members=members, **kwargs
        ) as h:
            h.base = base
            h.elsewhere = sb.create_guild("Elsewhere")  # a server the members do not share
            h.elsewhere_mod_role = sb.create_role(
                h.elsewhere.id, "Mods", permissions=discord.Permissions(manage_guild=True).value
            )
            yield h, base
    finally:
        await sb.stop()  # after the bot has closed, so it never tries to reconnect


def client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(h, http: aiohttp.ClientSession, user_id: int, *, next_path: str = "/") -> str:
    """Log in through the sandbox's consent page as ``user_id``; returns the callback URL used."""
    resp = await http.get(f"{h.base}/login", params={"next": next_path}, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    authorize = urlsplit(resp.headers["Location"])
    params = dict(p.split("=", 1) for p in authorize.query.split("&"))
    from urllib.parse import unquote_plus

    params = {k: unquote_plus(v) for k, v in params.items()}
    consent = await http.post(
        f"{h.sandbox.base_url}/oauth2/authorize",
        data={**params, "user_id": str(user_id), "decision": "authorize"},
        allow_redirects=False,
    )
    assert consent.status == 302
    callback = consent.headers["Location"]
    done = await http.get(callback, allow_redirects=False)
    assert done.status == 302, await done.text()
    assert done.headers["Location"] == next_path
    return callback


async def csrf_of(http: aiohttp.ClientSession, url: str) -> str:
    text = await (await http.get(url)).text()
    marker = 'name="csrf" value="'
    start = text.index(marker) + len(marker)
    return text[start : text.index('"', start)]


async def snapshot(h) -> dict[str, Any]:
    """Every row the site could change (schedules, jobs, packs, suggestions, web tables), for "0 rows changed"."""
    from sqlalchemy import select

    from bot.storage.tables import jobs, packs, schedules, suggestions, votes

    async with h.db.read() as conn:
        out: dict[str, Any] = dict(await web_store.count_rows(conn))
        for table in (schedules, jobs, packs, suggestions, votes):
            out[table.name] = [tuple(r) for r in await conn.execute(select(table))]
        out["audit"] = [tuple(r) for r in await conn.execute(select(web_store.web_audit))]
        out["public"] = [tuple(r) for r in await conn.execute(select(web_store.web_public))]
    return out
