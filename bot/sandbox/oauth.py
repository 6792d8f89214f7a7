"""OAuth2 in the sandbox: the authorization code grant with PKCE, as strict as Discord.

Sources (discord-api-docs): ``docs/topics/oauth2.mdx`` — the URLs (``/oauth2/authorize`` outside the
API, ``/api/oauth2/token`` and ``/api/oauth2/token/revoke``), "the token and token revocation URLs will
**only** accept a content type of ``application/x-www-form-urlencoded``", client authentication by
HTTP Basic or ``client_id``/``client_secret`` in the form body, the token response shape
(``access_token, token_type "Bearer", expires_in 604800, refresh_token, scope``), the ``refresh_token``
grant and the scopes (``identify`` allows ``/users/@me``, ``guilds`` allows ``/users/@me/guilds``).
``docs/resources/user.mdx`` — Get Current User Guilds returns partial guilds
``{id, name, icon, banner, owner, permissions (string), features}``, ``limit`` 1–200, ``before``/``after``.

PKCE follows RFC 7636 (Discord accepts ``code_challenge``/``code_challenge_method`` on the authorize
URL; believed, not on the docs page): only ``S256`` is accepted here, a verifier must be 43–128
characters of ``[A-Za-z0-9-._~]``, and a code issued with a challenge is refused without its
verifier. A code lives ``code_ttl`` seconds (RFC 6749 §4.1.2: "A maximum authorization code lifetime
of 10 minutes is RECOMMENDED"), is single-use, and a second use revokes the tokens it gave (§4.1.2:
"the authorization server SHOULD revoke ... all tokens previously issued based on that code").
The ``redirect_uri`` must be registered exactly and sent again, identical, to the token endpoint
(§4.1.3). Errors use RFC 6749's body ``{"error", "error_description"}``.

Nothing here is kinder than Discord: unknown scopes, a JSON body, a wrong secret, a reused, expired or
foreign code, and a Bearer token without the scope a route needs are all refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

if TYPE_CHECKING:
    from .server import Sandbox

# Every scope Discord lists on its OAuth2 page; any other name is refused ("invalid_scope").
KNOWN_SCOPES = frozenset(
    (
        *("activities.read", "activities.write", "applications.builds.read", "applications.builds.upload"),
        *("applications.commands", "applications.commands.update", "applications.commands.permissions.update"),
        *("applications.entitlements", "applications.store.update", "bot", "connections", "dm_channels.read"),
        *("email", "gdm.join", "guilds", "guilds.join", "guilds.members.read", "identify", "messages.read"),
        *("relationships.read", "role_connections.write", "rpc", "rpc.activities.write", "rpc.notifications.read"),
        *("rpc.voice.read", "rpc.voice.write", "voice", "webhook.incoming"),
    )
)
TOKEN_TTL = 604800  # seconds; Discord's example response
VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 §4.1
CHALLENGE_RE = re.compile(r"^[A-Za-z0-9\-_]{43}$")  # base64url(sha256) without padding
FORM = "application/x-www-form-urlencoded"
_API_PATH = re.compile(r"^/api(?:/v\d+)?(/.*)$")


def s256(verifier: str) -> str:
    """The S256 code challenge of a verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class Grant:
    code: str
    user_id: int
    redirect_uri: str
    scopes: tuple[str, ...]
    challenge: str | None
    expires: float
    used: bool = False
    tokens: list[str] = field(default_factory=list)


@dataclass
class Token:
    user_id: int
    scopes: tuple[str, ...]
    expires: float
    refresh: str
    code: str | None = None


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def response(self) -> web.Response:
        return web.json_response({"error": self.error, "error_description": self.description}, status=self.status)


class OAuth:
    """The OAuth2 side of a :class:`Sandbox`: ``sb.oauth``.

    ``register_redirect(uri)`` is the developer portal's redirect list; ``client_id``/``client_secret``
    are the application's. ``now`` (a zero-argument callable, seconds; default the sandbox's clock)
    measures code and token lifetimes. ``log`` records every OAuth request
    ``(method, path, status)``.
    """

    def __init__(self, sb: Sandbox, *, code_ttl: float = 600.0, token_ttl: float = TOKEN_TTL) -> None:
        self.sb = sb
        self.client_id = str(sb.application_id)
        self.client_secret = secrets.token_urlsafe(24)
        self.redirect_uris: set[str] = set()
        self.code_ttl = code_ttl
        self.token_ttl = token_ttl
        # Seconds, on the sandbox's clock (the tests' FakeClock when they hand it one).
        self.now: Callable[[], float] = lambda: sb.clock.now().timestamp()
        self.grants: dict[str, Grant] = {}
        self.tokens: dict[str, Token] = {}
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> access token
        self.log: list[tuple[str, str, int]] = []

    def register_redirect(self, uri: str) -> None:
        self.redirect_uris.add(uri)

    # -- mounting -----------------------------------------------------------------------------------

    def install(self, app: web.Application) -> None:
        """Answer the OAuth2 paths before the sandbox's bot API middleware sees them."""
        app.middlewares.insert(0, self._middleware)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        route = self._route(request)
        if route is None:
            return await handler(request)
        try:
            response = await route(request)
        except OAuthError as exc:
            response = exc.response()
        except _ApiError as exc:
            response = web.json_response(exc.body, status=exc.status)
        self.log.append((request.method, request.path, response.status))
        self.sb._bump()
        return response

    def _route(self, request: web.Request) -> Callable[[web.Request], Awaitable[web.StreamResponse]] | None:
        path, method = request.path, request.method
        if path == "/oauth2/authorize":
            return {"GET": self.authorize_page, "POST": self.authorize_decision}.get(method)
        found = _API_PATH.match(path)
        if found is None:
            return None
        rel = found.group(1)
        if rel == "/oauth2/token" and method == "POST":
            return self.token
        if rel == "/oauth2/token/revoke" and method == "POST":
            return self.revoke
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and method == "GET" and rel in ("/users/@me", "/users/@me/guilds"):
            return self.me if rel == "/users/@me" else self.my_guilds
        if rel == "/users/@me/guilds" and method == "GET" and auth == f"Bot {self.sb.token}":
            return self.bot_guilds
        if auth.startswith("Bearer "):
            return self.bearer_refused
        return None

    # -- the authorize page ----------------------------------------------------------------------------

    def _authorize_params(self, query: Any) -> tuple[str, tuple[str, ...], str | None, str | None]:
        """Validate an authorize request; errors that must not redirect raise OAuthError (a page)."""
        if query.get("client_id") != self.client_id:
            raise OAuthError(400, "invalid_client", "Unknown application (client_id).")
        redirect_uri = query.get("redirect_uri", "")
        if redirect_uri not in self.redirect_uris:
            # Discord shows "Invalid OAuth2 redirect_uri" and never redirects to an unregistered URI.
            raise OAuthError(400, "invalid_request", "Invalid OAuth2 redirect_uri")
        if query.get("response_type") != "code":
            raise OAuthError(400, "unsupported_response_type", "response_type must be code.")
        scopes = tuple(query.get("scope", "").split())
        if not scopes or any(s not in KNOWN_SCOPES for s in scopes):
            raise OAuthError(400, "invalid_scope", "Invalid scope.")
        challenge = query.get("code_challenge")
        method = query.get("code_challenge_method")
        if (challenge is not None or method is not None) and (
            method != "S256" or challenge is None or not CHALLENGE_RE.match(challenge)
        ):
            raise OAuthError(400, "invalid_request", "code_challenge must be an S256 challenge.")
        return redirect_uri, scopes, challenge, query.get("state")

    def _choosable_users(self) -> list[dict[str, Any]]:
        return [u for u in self.sb.users.values() if not u.get("bot")]

    async def authorize_page(self, request: web.Request) -> web.StreamResponse:
        """A page to choose which sandbox user authorizes (Discord: the logged-in user consents)."""
        try:
            self._authorize_params(request.query)
        except OAuthError as exc:
            return _page("Authorization failed", f"<p role='alert'>{html.escape(exc.description)}</p>", 400)
        hidden = "".join(
            f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>" for k, v in request.query.items()
        )
        choices = "".join(
            f"<li><label><input type='radio' name='user_id' value='{u['id']}' required> "
            f"{html.escape(u['username'])} <small>({u['id']})</small></label></li>"
            for u in self._choosable_users()
        )
        scopes = html.escape(request.query.get("scope", ""))
        body = (
            f"<p>An application wants these permissions: <strong>{scopes}</strong>.</p>"
            f"<form method='post' action='/oauth2/authorize'>{hidden}"
            f"<fieldset><legend>Log in as</legend><ul>{choices}</ul></fieldset>"
            "<button type='submit' name='decision' value='authorize'>Authorize</button> "
            "<button type='submit' name='decision' value='cancel' formnovalidate>Cancel</button></form>"
        )
        return _page("Sandbox: authorize an application", body)

    async def authorize_decision(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        try:
            redirect_uri, scopes, challenge, state = self._authorize_params(form)
        except OAuthError as exc:
            return _page("Authorization failed", f"<p role='alert'>{html.escape(exc.description)}</p>", 400)
        back: dict[str, str] = {}
        if form.get("decision") != "authorize":
            back = {"error": "access_denied", "error_description": "The resource owner denied the request"}
        else:
            try:
                user_id = int(str(form.get("user_id", "")))
            except ValueError:
                user_id = 0
            if user_id not in self.sb.users or self.sb.users[user_id].get("bot"):
                return _page("Authorization failed", "<p role='alert'>Choose a user.</p>", 400)
            back = {"code": self.issue_code(user_id, redirect_uri, scopes, challenge)}
        if state is not None:
            back["state"] = str(state)
        sep = "&" if "?" in redirect_uri else "?"
        raise web.HTTPFound(redirect_uri + sep + urlencode(back))

    def issue_code(self, user_id: int, redirect_uri: str, scopes: tuple[str, ...], challenge: str | None) -> str:
        """What the consent screen does: a new single-use code for this user (tests may call it directly)."""
        code = secrets.token_urlsafe(22)
        self.grants[code] = Grant(code, user_id, redirect_uri, scopes, challenge, self.now() + self.code_ttl)
        return code

    # -- the token endpoint ------------------------------------------------------------------------------

    async def _client_form(self, request: web.Request) -> dict[str, str]:
        if request.content_type != FORM:
            raise OAuthError(400, "invalid_request", f"The token endpoint only accepts {FORM}.")
        form = {k: str(v) for k, v in (await request.post()).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise OAuthError(401, "invalid_client", "Invalid client credentials.") from None
        if client_id != self.client_id or secret is None or not secrets.compare_digest(secret, self.client_secret):
            raise OAuthError(401, "invalid_client", "Invalid client credentials.")
        return form

    async def token(self, request: web.Request) -> web.StreamResponse:
        form = await self._client_form(request)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return web.json_response(self._exchange(form))
        if grant_type == "refresh_token":
            return web.json_response(self._refresh(form))
        raise OAuthError(400, "unsupported_grant_type", 'Unsupported "grant_type".')

    def _exchange(self, form: dict[str, str]) -> dict[str, Any]:
        grant = self.grants.get(form.get("code", ""))
        if grant is None or grant.expires <= self.now():
            raise OAuthError(400, "invalid_grant", 'Invalid "code" in request.')
        if grant.used:
            for token in grant.tokens:  # RFC 6749 §4.1.2: a replayed code revokes what it gave
                self._revoke_access(token)
            raise OAuthError(400, "invalid_grant", 'Invalid "code" in request.')
        if form.get("redirect_uri") != grant.redirect_uri:
            raise OAuthError(400, "invalid_grant", 'Invalid "redirect_uri" in request.')
        if grant.challenge is not None:
            verifier = form.get("code_verifier", "")
            if not VERIFIER_RE.match(verifier) or not secrets.compare_digest(s256(verifier), grant.challenge):
                raise OAuthError(400, "invalid_grant", 'Invalid "code_verifier" in request.')
        elif "code_verifier" in form:
            raise OAuthError(400, "invalid_grant", 'Invalid "code_verifier" in request.')
        grant.used = True
        body = self._new_token(grant.user_id, grant.scopes, grant.code)
        grant.tokens.append(body["access_token"])
        return body

    def _refresh(self, form: dict[str, str]) -> dict[str, Any]:
        access = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
        old = self.tokens.pop(access, None) if access else None
        if old is None:
            raise OAuthError(400, "invalid_grant", 'Invalid "refresh_token" in request.')
        return self._new_token(old.user_id, old.scopes, old.code)

    def _new_token(self, user_id: int, scopes: tuple[str, ...], code: str | None) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(22), secrets.token_urlsafe(22)
        self.tokens[access] = Token(user_id, scopes, self.now() + self.token_ttl, refresh, code)
        self.refresh_tokens[refresh] = access
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.token_ttl),
            "refresh_token": refresh,
            "scope": " ".join(scopes),
        }

    def _revoke_access(self, access: str) -> None:
        token = self.tokens.pop(access, None)
        if token is not None:
            self.refresh_tokens.pop(token.refresh, None)

    async def revoke(self, request: web.Request) -> web.StreamResponse:
        """RFC 7009: revoking an access or refresh token ends both; an unknown token is still 200."""
        form = await self._client_form(request)
        value = form.get("token", "")
        if value in self.refresh_tokens:
            value = self.refresh_tokens[value]
        self._revoke_access(value)
        return web.json_response({})

    # -- the user's API ----------------------------------------------------------------------------------

    def _bearer(self, request: web.Request, scope: str) -> Token:
        value = request.headers.get("Authorization", "")[len("Bearer ") :]
        token = self.tokens.get(value)
        if token is None or token.expires <= self.now():
            raise _ApiError(401, {"message": "401: Unauthorized", "code": 0})
        if scope not in token.scopes:
            raise _ApiError(401, {"message": "401: Unauthorized", "code": 0})
        return token

    async def bearer_refused(self, request: web.Request) -> web.StreamResponse:
        """A user's Bearer token on a route that only bots may use (or one we do not serve)."""
        raise _ApiError(401, {"message": "401: Unauthorized", "code": 0})

    async def me(self, request: web.Request) -> web.StreamResponse:
        token = self._bearer(request, "identify")
        user = dict(self.sb.users[token.user_id])
        return web.json_response(user)  # no "email": the email scope is not granted here

    def _partial_guilds(self, user_id: int, *, with_counts: bool) -> list[dict[str, Any]]:
        out = []
        for guild in sorted(self.sb.guilds.values(), key=lambda g: g.id):
            if user_id not in guild.members or (user_id == self.sb.bot_user_id and not guild.bot_present):
                continue
            entry = {
                "id": str(guild.id),
                "name": guild.name,
                "icon": None,
                "banner": None,
                "owner": guild.owner_id == user_id,
                # The member's permissions in the guild (roles, not channel overwrites), as a string.
                "permissions": str(self.sb.permissions_for(guild.id, user_id)),
                "features": [],
            }
            if with_counts:
                entry["approximate_member_count"] = len(guild.members)
                entry["approximate_presence_count"] = 0
            out.append(entry)
        return out

    def _page_of(self, request: web.Request, guilds: list[dict[str, Any]]) -> list[dict[str, Any]]:
        query = request.query
        errors: dict[str, Any] = {}
        limit = 200
        if "limit" in query:
            try:
                limit = int(query["limit"])
            except ValueError:
                limit = -1
            if not 1 <= limit <= 200:
                errors["limit"] = {"_errors": [{"code": "NUMBER_TYPE_MAX", "message": "Int value must be 1-200."}]}
        bounds: dict[str, int] = {}
        for key in ("before", "after"):
            if key in query:
                try:
                    bounds[key] = int(query[key])
                except ValueError:
                    errors[key] = {"_errors": [{"code": "NUMBER_TYPE_COERCE", "message": "Value is not snowflake."}]}
        if errors:
            raise _ApiError(400, {"message": "Invalid Form Body", "code": 50035, "errors": errors})
        if "before" in bounds:
            guilds = [g for g in guilds if int(g["id"]) < bounds["before"]][-limit:]
        if "after" in bounds:
            guilds = [g for g in guilds if int(g["id"]) > bounds["after"]]
        return guilds[:limit]

    async def my_guilds(self, request: web.Request) -> web.StreamResponse:
        token = self._bearer(request, "guilds")
        with_counts = request.query.get("with_counts", "").lower() in ("true", "1")
        return web.json_response(self._page_of(request, self._partial_guilds(token.user_id, with_counts=with_counts)))

    async def bot_guilds(self, request: web.Request) -> web.StreamResponse:
        guilds = self._partial_guilds(self.sb.bot_user_id, with_counts=False)
        return web.json_response(self._page_of(request, guilds))


class _ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message"))
        self.status, self.body = status, body


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head><body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    return web.Response(text=text, status=status, content_type="text/html")
