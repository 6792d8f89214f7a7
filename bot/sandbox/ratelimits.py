"""Discord's REST rate limits as the sandbox applies them: per-route buckets, the global 50 requests/s,
and the invalid-request ban. Switched on by :class:`~bot.sandbox.conditions.Conditions`.

Source for the shape of everything here: discord-api-docs, developers/topics/rate-limits.mdx ("Rate
Limits"):

- per-route limits, shared between similar routes under one ``X-RateLimit-Bucket`` hash, counted per
  top-level resource (``channel_id``, ``guild_id``, ``webhook_id`` + ``webhook_token``); the hash does not
  include the resource;
- every answer carries ``X-RateLimit-Limit``, ``-Remaining``, ``-Reset`` (epoch seconds), ``-Reset-After``
  (seconds, decimals) and ``-Bucket``; a 429 adds ``X-RateLimit-Scope`` (``user``, ``global`` or
  ``shared``), ``Retry-After`` (whole seconds) and, when global, ``X-RateLimit-Global: true``; its JSON body
  is ``message``, ``retry_after`` (float seconds), ``global`` and an optional ``code``;
- "All bots can make up to 50 requests per second", and interaction endpoints (the callback and the
  interaction webhooks, developers/interactions/receiving-and-responding.mdx "Endpoints") "are not
  bound to the bot's Global Rate Limit";
- "Invalid Request Limit aka Cloudflare bans": 10,000 requests answered 401, 403 or 429 per 10 minutes
  and the IP is restricted; "429 errors returned with X-RateLimit-Scope: shared are not counted".

Discord publishes no per-route figures ("should not be hard coded"): :data:`ROUTE_BUCKETS` holds the ones
observed in public (each row names where), and "believed" where only the shape is known.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from .conditions import Clocks, Conditions

log = logging.getLogger(__name__)

GLOBAL_EXEMPT_PREFIXES = ("/interactions/", "/webhooks/")


@dataclass(frozen=True)
class Bucket:
    """A per-route limit: ``limit`` requests per ``per`` seconds for each top-level resource.

    Routes naming the same ``name`` report the same ``X-RateLimit-Bucket``; ``counter`` (default: the
    name) says whether they also spend the same allowance."""

    name: str
    limit: int
    per: float
    source: str
    counter: str | None = None

    @property
    def hash(self) -> str:
        return hashlib.sha1(self.name.encode()).hexdigest()[:32]

    @property
    def counter_key(self) -> str:
        return self.counter or self.name


_MSG = "discord-api-docs #5646 (429 headers on Create Message: limit 5, reset-after 5.588); javacord wiki"
_SAME_HASH = "#1442, #8073: Create Message and Edit Message report one bucket hash but spend separate limits"
_BELIEVED = "believed (no public figure; the common 5 per 5 s per resource)"

# One table: "METHOD /route/template" -> bucket. Anything not listed gets DEFAULT_BUCKET per route.
ROUTE_BUCKETS: dict[str, Bucket] = {
    "POST /channels/{channel_id}/messages": Bucket("messages", 5, 5.0, _MSG),
    "PATCH /channels/{channel_id}/messages/{message_id}": Bucket("messages", 5, 5.0, _SAME_HASH, "messages-edit"),
    "DELETE /channels/{channel_id}/messages/{message_id}": Bucket(
        "messages-delete", 5, 1.0, "javacord wiki (Delete Messages 5/1 s per channel); #2761"
    ),
    "GET /channels/{channel_id}/messages": Bucket(
        "messages-read", 5, 1.0, "#8161 (429 shows limit 5 on Get Channel Messages); window believed"
    ),
    "GET /channels/{channel_id}/messages/{message_id}": Bucket(
        "messages-read", 5, 1.0, "#8161 (limit 5 on message reads); window believed"
    ),
    # Reactions: not served by the sandbox yet; the row keeps the figure with the others.
    "PUT /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me": Bucket(
        "reactions", 1, 0.25, "javacord wiki (Add/Remove Reactions 1/0.25 s per channel)"
    ),
    "PUT /channels/{channel_id}/messages/pins/{message_id}": Bucket("pins", 5, 5.0, "#971 (per channel); " + _BELIEVED),
    "DELETE /channels/{channel_id}/messages/pins/{message_id}": Bucket("pins", 5, 5.0, "#971; " + _BELIEVED),
    "PUT /channels/{channel_id}/pins/{message_id}": Bucket("pins", 5, 5.0, "#971; " + _BELIEVED),
    "DELETE /channels/{channel_id}/pins/{message_id}": Bucket("pins", 5, 5.0, "#971; " + _BELIEVED),
    "GET /channels/{channel_id}/pins": Bucket(
        "pins-read", 1, 5.0, "#1124 (Get Pinned Messages headers: limit 1, reset-after 5)"
    ),
    "GET /channels/{channel_id}/messages/pins": Bucket("pins-read", 1, 5.0, "#1124 (the old route's figure)"),
    "POST /channels/{channel_id}/messages/{message_id}/threads": Bucket("threads", 5, 5.0, _BELIEVED),
    "POST /channels/{channel_id}/threads": Bucket("threads", 5, 5.0, _BELIEVED),
    # Name/topic changes have a 2 per 10 min sub-limit (#2190): not modelled, the bot renames nothing.
    "PATCH /channels/{channel_id}": Bucket(
        "channel-edit", 10, 15.0, "#2190, #2761 (10 per 15 s; name/topic 2 per 10 min not modelled)"
    ),
    "GET /channels/{channel_id}/polls/{message_id}/answers/{answer_id}": Bucket("poll-voters", 5, 5.0, _BELIEVED),
    "POST /channels/{channel_id}/polls/{message_id}/expire": Bucket("poll-expire", 5, 5.0, _BELIEVED),
    "POST /guilds/{guild_id}/scheduled-events": Bucket("scheduled-events", 5, 5.0, _BELIEVED),
    "PATCH /guilds/{guild_id}/scheduled-events/{event_id}": Bucket("scheduled-events", 5, 5.0, _BELIEVED),
    "DELETE /guilds/{guild_id}/scheduled-events/{event_id}": Bucket("scheduled-events", 5, 5.0, _BELIEVED),
    # Interaction endpoints: outside the global limit, but "interactions webhooks share the same rate limit
    # properties as normal webhooks": 5 per 2 s per webhook id + token (birdie0's webhook guide, quoted in
    # #6753, which saw 5/1 s; the stricter window is kept).
    "POST /interactions/{interaction_id}/{token}/callback": Bucket(
        "interaction-callback", 5, 2.0, "webhook figure, believed"
    ),
    "POST /webhooks/{app_id}/{token}": Bucket("webhook", 5, 2.0, "#6753; birdie0 webhook guide (5 per 2 s)"),
    "GET /webhooks/{app_id}/{token}/messages/{message_id}": Bucket("webhook", 5, 2.0, "#6753"),
    "PATCH /webhooks/{app_id}/{token}/messages/{message_id}": Bucket("webhook", 5, 2.0, "#6753"),
    "DELETE /webhooks/{app_id}/{token}/messages/{message_id}": Bucket("webhook", 5, 2.0, "#6753"),
}
DEFAULT_BUCKET = Bucket("default", 10, 10.0, "believed: most routes have some per-route limit")

BAN_BODY = (
    "<!DOCTYPE html>\n<html><head><title>Access denied | discord.com used Cloudflare to restrict access</title>"
    "</head><body><h1>Error 1015</h1><h2>You are being rate limited</h2><p>The owner of this website "
    "(discord.com) has banned you temporarily from accessing this website.</p></body></html>\n"
)


def bucket_for(method: str, route: str) -> Bucket:
    """The bucket of a request; unlisted routes each get their own ``DEFAULT_BUCKET``."""
    key = f"{method} {route}"
    found = ROUTE_BUCKETS.get(key)
    if found is not None:
        return found
    return Bucket(f"default {key}", DEFAULT_BUCKET.limit, DEFAULT_BUCKET.per, DEFAULT_BUCKET.source)


def top_level_resource(params: dict[str, str]) -> str:
    """The part of a path Discord counts a bucket per: channel, guild, or webhook id + token."""
    if "channel_id" in params:
        return f"channel:{params['channel_id']}"
    if "guild_id" in params:
        return f"guild:{params['guild_id']}"
    if "token" in params:
        owner = params.get("app_id") or params.get("interaction_id") or ""
        return f"webhook:{owner}:{params['token']}"
    return ""


@dataclass
class Refusal:
    """A 429 the sandbox answers instead of running the request."""

    status: int
    body: Any  # dict (JSON) or str (the ban page)
    headers: dict[str, str]
    scope: str  # "user" | "global" | "shared" | "ban"


class RateLimits:
    """The rate-limit state of one sandbox (real time: Discord counts on its own clock, never a test's).

    Figures for tests and soaks: ``global_429s``, ``route_429s``, ``shared_429s``, ``invalid_total``,
    :meth:`invalid_count` (within the window), ``banned`` / ``banned_at`` / ``ban_until``, ``refused``
    (requests answered with the ban page).
    """

    def __init__(self, conditions: Conditions, clocks: Clocks) -> None:
        self.conditions = conditions
        self.clocks = clocks
        self._global: collections.deque[float] = collections.deque()
        self._windows: dict[tuple[str, str], list[float]] = {}  # (counter, resource) -> [reset_at, remaining]
        self._invalid: collections.deque[float] = collections.deque()
        self.global_429s = 0
        self.route_429s = 0
        self.shared_429s = 0
        self.invalid_total = 0
        self.refused = 0
        self.banned_at: float | None = None
        self.ban_until: float | None = None

    # ------------------------------------------------------------------ the ban
    @property
    def banned(self) -> bool:
        if self.banned_at is None:
            return False
        if self.ban_until is not None and time.monotonic() >= self.ban_until:
            self.lift_ban()
            return False
        return True

    def lift_ban(self) -> None:
        """End a ban now (and forget the invalid requests that caused it)."""
        if self.banned_at is not None:
            log.warning("sandbox: the invalid-request ban is lifted; requests are served again")
        self.banned_at = self.ban_until = None
        self._invalid.clear()

    def ban_refusal(self) -> Refusal:
        """Cloudflare's answer to a banned host: 429 with an HTML page, no ``Via`` and no JSON body
        (discord.py reads that as a ban, not as a rate limit to wait out)."""
        self.refused += 1
        return Refusal(429, BAN_BODY, {"Content-Type": "text/html; charset=UTF-8"}, "ban")

    def invalid_count(self) -> int:
        """Invalid requests (401, 403, 429 not shared) within the current window."""
        self._trim_invalid(time.monotonic())
        return len(self._invalid)

    def note(self, status: int, scope: str | None) -> None:
        """Count an answer toward the invalid-request limit; ban the host when it is reached."""
        if not (status in (401, 403) or (status == 429 and scope not in ("shared", "ban"))):
            return
        self.invalid_total += 1
        limit = self.conditions.invalid_limit
        if limit is None:
            return
        now = time.monotonic()
        self._invalid.append(now)
        self._trim_invalid(now)
        if len(self._invalid) >= limit and self.banned_at is None:
            seconds = self.conditions.ban_seconds
            self.banned_at = now
            self.ban_until = None if seconds is None else now + seconds
            log.error(
                "sandbox: %d invalid requests (401/403/429) within %.0f s: the host is banned (Cloudflare "
                "error 1015); every request is refused %s",
                len(self._invalid),
                self.conditions.invalid_window,
                "until lift_ban()" if seconds is None else f"for {seconds:.0f} s",
            )

    def _trim_invalid(self, now: float) -> None:
        cutoff = now - self.conditions.invalid_window
        while self._invalid and self._invalid[0] <= cutoff:
            self._invalid.popleft()

    # ------------------------------------------------------------------ global and per-route limits
    def take(self, method: str, rel: str, route: str, params: dict[str, str]) -> tuple[Refusal | None, dict[str, str]]:
        """Spend one request: a global 429, a per-route 429, or the bucket headers of the answer."""
        now = time.monotonic()
        if not rel.startswith(GLOBAL_EXEMPT_PREFIXES):
            q = self._global
            while q and q[0] <= now - 1.0:
                q.popleft()
            if len(q) >= self.conditions.global_limit:
                self.global_429s += 1
                return self._global_refusal(q[0] + 1.0 - now), {}
            q.append(now)
        bucket = bucket_for(method, route)
        key = (bucket.counter_key, top_level_resource(params))
        window = self._windows.get(key)
        if window is None or now >= window[0]:
            if len(self._windows) > 50_000:
                self._windows = {k: w for k, w in self._windows.items() if w[0] > now}
            window = [now + bucket.per * self.conditions.window_scale, float(bucket.limit)]
            self._windows[key] = window
        reset_after = window[0] - now
        if window[1] <= 0:
            self.route_429s += 1
            return self._route_refusal(bucket, reset_after), {}
        window[1] -= 1
        return None, self._headers(bucket, int(window[1]), reset_after)

    def _headers(self, bucket: Bucket, remaining: int, reset_after: float) -> dict[str, str]:
        reset_after = math.ceil(reset_after * 1000) / 1000
        return {
            "X-RateLimit-Limit": str(bucket.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{self.clocks.wall() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket.hash,
        }

    def _route_refusal(self, bucket: Bucket, reset_after: float) -> Refusal:
        retry = math.ceil(reset_after * 1000) / 1000
        headers = {
            **self._headers(bucket, 0, retry),
            "Retry-After": str(max(1, math.ceil(retry))),
            "X-RateLimit-Scope": "user",
            "Via": "1.1 google",
        }
        body = {"message": "You are being rate limited.", "retry_after": retry, "global": False}
        return Refusal(429, body, headers, "user")

    def _global_refusal(self, reset_after: float) -> Refusal:
        retry = math.ceil(reset_after * 1000) / 1000
        headers = {
            "Retry-After": str(max(1, math.ceil(retry))),
            "X-RateLimit-Global": "true",
            "X-RateLimit-Scope": "global",
            "Via": "1.1 google",
        }
        body = {"message": "You are being rate limited.", "retry_after": retry, "global": True}
        return Refusal(429, body, headers, "global")
