"""The website: an aiohttp application in the bot's own process, over the same services as the cogs.

Security, in one place (``_security`` and ``_csrf`` middlewares, ``Access``):

* Sessions are server-side rows (``web_sessions``): the cookie holds 32 random bytes, the row is keyed
  by their SHA-256. Chosen over signed cookies because "log out everywhere" and a forget-me must end
  sessions at once, and the Discord access token (needed to re-check Manage Server) must never sit in
  the browser. Cookies are HttpOnly, SameSite=Lax (the OAuth2 callback is a cross-site navigation) and
  Secure with the ``__Host-`` prefix whenever the public URL is https.
* Every POST carries the session's CSRF token (compared in constant time) and, when the browser sends
  one, an Origin equal to the public URL's; a logged-out POST is refused.
* A content security policy allows only this origin's styles, scripts and images, no inline script,
  no framing, forms posting only here.
* A member manages a server only while Discord says they have Manage Server (or are owner or
  administrator) there: ``/users/@me/guilds`` is re-read when older than ``GUILDS_TTL`` and before
  every change.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import jinja2
from aiohttp import web

from bot.storage import web as web_store
from bot.web.discord_oauth import DiscordOAuth

if TYPE_CHECKING:
    from bot.app import CommonGround
    from bot.storage.web import Session

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SESSION_KEY = web.AppKey("server", object)
REQUEST_SESSION: web.RequestKey[Any] = web.RequestKey("cg_session", object)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def csp(authorize_origin: str) -> str:
    return "; ".join(
        (
            "default-src 'none'",
            "style-src 'self'",
            "script-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            f"form-action 'self' {authorize_origin}",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        )
    )


class WebServer:
    """Builds the application and serves it; ``start()``/``stop()`` from the bot's web cog."""

    def __init__(self, bot: CommonGround, *, extra_static: Path | None = None) -> None:
        settings = bot.settings
        assert settings.web_url is not None and settings.oauth_client_id and settings.oauth_client_secret
        self.bot = bot
        self.settings = settings
        self.base_url = settings.web_url
        self.secure = self.base_url.startswith("https://")
        prefix = "__Host-" if self.secure else ""
        self.session_cookie = f"{prefix}cg_session"
        self.login_cookie = f"{prefix}cg_login"
        self.oauth = DiscordOAuth(
            api_base=settings.api_base,
            client_id=settings.oauth_client_id,
            client_secret=settings.oauth_client_secret,
            redirect_uri=f"{self.base_url}/callback",
        )
        self.csp = csp(self.oauth.authorize_origin)
        self.extra_static = extra_static
        self.templates = make_templates()
        self.http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.app = self.build()

    @property
    def clock(self):
        return self.bot.clock

    @property
    def db(self):
        return self.bot.db

    # -- the application ------------------------------------------------------------------------------

    def build(self) -> web.Application:
        from bot.web import auth, pages

        app = web.Application(middlewares=[self._security, self._errors, self._session, self._csrf])
        app[SESSION_KEY] = self
        auth.add_routes(self, app)
        pages.add_routes(self, app)
        app.router.add_static("/static/", HERE / "static", follow_symlinks=False)
        if self.extra_static is not None:
            app.router.add_static("/_test/", self.extra_static, follow_symlinks=False)
        return app

    async def start(self) -> None:
        address = self.settings.web_address
        assert address is not None
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self.oauth.http = self.http
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, address[0], address[1])
        await site.start()
        server = site._server
        self.port = server.sockets[0].getsockname()[1] if server is not None else address[1]  # type: ignore[union-attr]
        log.info("website on %s:%s, public URL %s", address[0], self.port, self.base_url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.http is not None:
            await self.http.close()
            self.http = None

    # -- rendering --------------------------------------------------------------------------------------

    def render(
        self, request: web.Request, name: str, status: int = 200, *, public: bool = False, **context: Any
    ) -> web.Response:
        """A template; ``public`` pages are rendered as for a visitor (not even the viewer's own name)."""
        session: Session | None = None if public else request.get(REQUEST_SESSION)
        text = self.templates.get_template(name).render(
            session=session, csrf=session.csrf if session else "", path=request.path, **context
        )
        return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")

    # -- middlewares ------------------------------------------------------------------------------------

    @web.middleware
    async def _security(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        headers = response.headers
        headers["Content-Security-Policy"] = self.csp
        headers["X-Content-Type-Options"] = "nosniff"
        # Never to another site (the callback URL carries the OAuth2 code); "no-referrer" would make
        # Chromium send "Origin: null" with our own forms.
        headers["Referrer-Policy"] = "same-origin"
        headers["X-Frame-Options"] = "DENY"
        headers.setdefault("Cache-Control", "no-store")
        if self.secure:
            headers["Strict-Transport-Security"] = "max-age=31536000"
        if isinstance(response, web.HTTPException):
            raise response
        return response

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400 or exc.content_type == "text/html":
                raise
            messages = {
                400: "The request could not be read.",
                401: "Please log in again.",
                403: "You are not allowed to do that here.",
                404: "There is nothing here.",
                405: "That method is not allowed here.",
                413: "That upload is too large.",
            }
            message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else messages.get(exc.status)
            return self.render(request, "error.html", status=exc.status, code=exc.status, message=message or exc.reason)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception:
            log.exception("web request %s %s failed", request.method, request.path)
            return self.render(
                request, "error.html", status=500, code=500, message="Something went wrong on our side; it was logged."
            )

    @web.middleware
    async def _session(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        request[REQUEST_SESSION] = None
        value = request.cookies.get(self.session_cookie)
        if value and len(value) < 100:
            async with self.db.read() as conn:
                request[REQUEST_SESSION] = await web_store.get_session(conn, digest(value), now=self.clock.now())
        return await handler(request)

    @web.middleware
    async def _csrf(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("Origin")
            if origin is not None and origin != _origin(self.base_url):
                raise web.HTTPForbidden(text="This form came from another site.")
            session: Session | None = request.get(REQUEST_SESSION)
            if session is None:
                raise web.HTTPForbidden(text="Your session has ended: log in again, then retry.")
            form = await request.post()
            token = form.get("csrf")
            if not isinstance(token, str) or not secrets.compare_digest(token, session.csrf):
                raise web.HTTPForbidden(text="This form has expired or was not sent by this site: reload and retry.")
        return await handler(request)

    # -- cookies ----------------------------------------------------------------------------------------

    def set_cookie(self, response: web.StreamResponse, name: str, value: str, *, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", secure=self.secure, httponly=True, samesite="Lax")

    def clear_cookie(self, response: web.StreamResponse, name: str) -> None:
        response.del_cookie(name, path="/", secure=self.secure, httponly=True, samesite="Lax")


def make_templates() -> jinja2.Environment:
    """The site's templates: autoescaped, and an undefined name is an error, never an empty string."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
