"""Discord's rate limits as the sandbox applies them when switched on (``sb.limits.enable()``).

From discord-api-docs, topics/Rate_Limits.md:
- the global limit, 50 requests per second per bot; interaction endpoints are not counted (L1, I5);
- per-route buckets keyed by route and top-level resource (channel, guild, webhook), reported in
  ``X-RateLimit-Limit/Remaining/Reset/Reset-After/Bucket``; past one, a 429 with ``retry_after`` (seconds),
  ``global`` and ``X-RateLimit-Scope: user`` (or ``global``) (L2);
- the invalid-request limit: 10,000 responses of 401, 403 or 429 (not shared-scope 429s) in 10 minutes and
  the host is banned for a while; the sandbox then refuses everything and says so (L3).
Per-route limits are not published; the figures below are the ones Discord reports in those headers for
the routes the bot uses (5 per 5 s on a channel's messages), and a default for the rest.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field

GLOBAL_PER_SECOND = 50
INVALID_LIMIT = 10_000
INVALID_WINDOW = 600.0
EXEMPT = ("/interactions/", "/webhooks/")

# (method or "*", route template) -> (limit, window seconds). Major parameters make separate buckets.
ROUTE_LIMITS: dict[tuple[str, str], tuple[int, float]] = {
    ("POST", "/channels/{channel_id}/messages"): (5, 5.0),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}"): (5, 5.0),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}"): (5, 1.0),
    ("POST", "/channels/{channel_id}/messages/{message_id}/threads"): (10, 10.0),
    ("GET", "/channels/{channel_id}/messages/{message_id}"): (50, 1.0),
}
DEFAULT_LIMIT = (50, 1.0)
MAJOR = ("channel_id", "guild_id", "webhook_id")


@dataclass
class Bucket:
    limit: int
    window: float
    reset_at: float = 0.0
    used: int = 0
    name: str = ""


@dataclass
class Verdict:
    """What the limiter says about one request: ``status`` 429 (with ``scope``) or None, and headers."""

    status: int | None = None
    scope: str = "user"
    retry_after: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    banned: bool = False


class RateLimits:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = False
        self.global_per_second = GLOBAL_PER_SECOND
        self.invalid_limit = INVALID_LIMIT
        self.invalid_window = INVALID_WINDOW
        self._clock = clock
        self._recent: collections.deque[float] = collections.deque()  # non-exempt request times, last 1 s
        self._buckets: dict[tuple[str, ...], Bucket] = {}
        self._invalid: collections.deque[float] = collections.deque()
        self.banned_at: float | None = None
        self.global_429 = 0
        self.route_429 = 0
        self.invalid_total = 0

    def enable(self, *, global_per_second: int = GLOBAL_PER_SECOND, invalid_limit: int = INVALID_LIMIT) -> RateLimits:
        """Apply Discord's limits from now on (the figures may be lowered for a short test)."""
        self.enabled = True
        self.global_per_second = global_per_second
        self.invalid_limit = invalid_limit
        return self

    @property
    def banned(self) -> bool:
        return self.banned_at is not None

    @property
    def invalid_in_window(self) -> int:
        self._trim_invalid(self._clock())
        return len(self._invalid)

    def _trim_invalid(self, now: float) -> None:
        while self._invalid and self._invalid[0] <= now - self.invalid_window:
            self._invalid.popleft()

    def check(self, method: str, path: str, route: str, params: dict[str, str]) -> Verdict:
        """Called before a request is handled."""
        if not self.enabled:
            return Verdict()
        if self.banned:
            return Verdict(status=429, scope="global", retry_after=3600.0, banned=True)
        now = self._clock()
        if not path.startswith(EXEMPT):
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.global_per_second:
                self.global_429 += 1
                return Verdict(status=429, scope="global", retry_after=max(0.001, self._recent[0] + 1.0 - now))
            self._recent.append(now)
        limit, window = ROUTE_LIMITS.get((method, route), DEFAULT_LIMIT)
        name = f"{method} {route}"
        key = (name, *(params.get(m, "") for m in MAJOR))
        bucket = self._buckets.get(key)
        if bucket is None or now >= bucket.reset_at:
            bucket = self._buckets[key] = Bucket(
                limit, window, now + window, 0, format(abs(hash(name)) % (1 << 48), "x")
            )
        if bucket.used >= bucket.limit:
            self.route_429 += 1
            return Verdict(
                status=429, scope="user", retry_after=bucket.reset_at - now, headers=self._headers(bucket, now)
            )
        bucket.used += 1
        return Verdict(headers=self._headers(bucket, now))

    def _headers(self, bucket: Bucket, now: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(bucket.limit),
            "X-RateLimit-Remaining": str(max(0, bucket.limit - bucket.used)),
            "X-RateLimit-Reset": f"{time.time() + bucket.reset_at - now:.3f}",
            "X-RateLimit-Reset-After": f"{bucket.reset_at - now:.3f}",
            "X-RateLimit-Bucket": bucket.name,
        }

    def record(self, status: int, scope: str | None) -> None:
        """Called with every response: 401, 403 and 429 (not shared-scope) count toward the ban (L3)."""
        if not self.enabled or self.banned:
            return
        if status in (401, 403) or (status == 429 and scope != "shared"):
            now = self._clock()
            self._invalid.append(now)
            self.invalid_total += 1
            self._trim_invalid(now)
            if len(self._invalid) >= self.invalid_limit:
                self.banned_at = now
