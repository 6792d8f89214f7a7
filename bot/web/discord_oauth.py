"""The website's client of Discord's OAuth2: the authorize URL, the code exchange, the member's guilds.

Discord's OAuth2 page (discord-api-docs ``docs/topics/oauth2.mdx``): the authorize URL is
``https://discord.com/oauth2/authorize`` (outside ``/api``), the token URL ``/api/oauth2/token`` takes
only form-encoded bodies, and ``/users/@me/guilds`` (scope ``guilds``) lists partial guilds with the
member's ``permissions`` as a string. The authorize origin is derived from ``DISCORD_API_BASE``, so the
same code talks to Discord or to the sandbox.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

SCOPES = "identify guilds"
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5


class DiscordAuthError(Exception):
    """Discord refused a token or a request made with it; the session cannot continue."""


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    expires_in: int
    scope: str


def pkce_pair() -> tuple[str, str]:
    """``(verifier, S256 challenge)`` as RFC 7636 defines them."""
    verifier = secrets.token_urlsafe(64)[:96]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def can_manage(guild: dict[str, Any]) -> bool:
    """Owner, Administrator or Manage Server, from a partial guild of ``/users/@me/guilds``."""
    try:
        permissions = int(guild.get("permissions", "0"))
    except (TypeError, ValueError):
        permissions = 0
    return bool(guild.get("owner")) or bool(permissions & (ADMINISTRATOR | MANAGE_GUILD))


class DiscordOAuth:
    def __init__(self, *, api_base: str, client_id: str, client_secret: str, redirect_uri: str) -> None:
        self.api_base = api_base.rstrip("/")
        parts = urlsplit(self.api_base)
        self.authorize_origin = f"{parts.scheme}://{parts.netloc}"
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.http: aiohttp.ClientSession | None = None

    def authorize_url(self, *, state: str, challenge: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "scope": SCOPES,
            "state": state,
            "redirect_uri": self.redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "prompt": "none",
        }
        return f"{self.authorize_origin}/oauth2/authorize?{urlencode(query)}"

    def _basic(self) -> dict[str, str]:
        pair = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}

    async def _token(self, form: dict[str, str]) -> Tokens:
        assert self.http is not None
        async with self.http.post(f"{self.api_base}/oauth2/token", data=form, headers=self._basic()) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200 or "access_token" not in body:
                raise DiscordAuthError(str(body.get("error", resp.status)))
        return Tokens(body["access_token"], body.get("refresh_token"), int(body.get("expires_in", 0)), body["scope"])

    async def exchange(self, code: str, verifier: str) -> Tokens:
        return await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": verifier,
            }
        )

    async def refresh(self, refresh_token: str) -> Tokens:
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def revoke(self, token: str) -> None:
        assert self.http is not None
        try:
            revoke = f"{self.api_base}/oauth2/token/revoke"
            async with self.http.post(revoke, data={"token": token}, headers=self._basic()):
                pass
        except aiohttp.ClientError:
            pass  # logging out here does not depend on Discord answering

    async def _get(self, path: str, access_token: str) -> Any:
        assert self.http is not None
        headers = {"Authorization": f"Bearer {access_token}"}
        async with self.http.get(f"{self.api_base}{path}", headers=headers) as resp:
            if resp.status == 401:
                raise DiscordAuthError("401")
            resp.raise_for_status()
            return await resp.json()

    async def me(self, access_token: str) -> dict[str, Any]:
        return await self._get("/users/@me", access_token)

    async def guilds(self, access_token: str) -> list[dict[str, Any]]:
        """The member's guilds, trimmed to what the site uses (id, name, owner, permissions)."""
        found = await self._get("/users/@me/guilds", access_token)
        return [
            {
                "id": str(g["id"]),
                "name": str(g.get("name", "")),
                "owner": bool(g.get("owner")),
                "permissions": str(g.get("permissions", "0")),
            }
            for g in found
        ]
