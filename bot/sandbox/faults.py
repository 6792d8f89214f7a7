"""Fault injection for the sandbox's REST API (429s, 5xx, 403/404, latency)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FaultRule:
    """One injected fault. ``remaining`` counts down; ``None`` means forever."""

    kind: str  # "rate_limit" | "server_error" | "forbidden" | "not_found" | "slow_answer"
    route_substring: str | None
    remaining: int | None
    params: dict[str, Any] = field(default_factory=dict)
    fired: int = 0

    def matches(self, method: str, path: str, route: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        sub = self.route_substring
        if sub is None:
            return True
        return sub in path or sub in route or sub in f"{method} {route}" or sub in f"{method} {path}"


class Faults:
    """Configure faults; the sandbox consults :meth:`pick` for every REST request.

    ``route_substring`` is matched against the request path (``/channels/123/messages``), the route
    template (``/channels/{channel_id}/messages``) and both prefixed with the method (``POST /channels/...``).
    """

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self.latency_seconds: float = 0.0
        self._random: tuple[float, random.Random, float, float, str | None, int] | None = None
        self._streak: dict[str, int] = {}

    def rate_limit(
        self,
        route_substring: str | None = None,
        count: int = 1,
        retry_after: float = 0.05,
        global_: bool = False,
        scope: str = "user",
    ) -> FaultRule:
        """Answer the next ``count`` matching requests with 429 (Discord's body and X-RateLimit-* headers).

        ``scope="shared"``: a per-resource limit other users also spend (``X-RateLimit-Scope: shared``,
        "The resource is being rate limited."); Discord does not count those as invalid requests."""
        if scope not in ("user", "shared"):
            raise ValueError(f"scope is 'user' or 'shared' (global_=True for global), not {scope!r}")
        return self._add("rate_limit", route_substring, count, retry_after=retry_after, global_=global_, scope=scope)

    def server_error(
        self, route_substring: str | None, count: int = 1, status: int = 502, after_effect: bool = True
    ) -> FaultRule:
        """Answer ``status`` to the next ``count`` matching requests.

        ``after_effect=True`` performs the action first (e.g. the message IS created) and then answers
        the error, like a gateway timeout behind Discord's edge.
        """
        return self._add("server_error", route_substring, count, status=status, after_effect=after_effect)

    def forbidden(self, route_substring: str | None, code: int = 50013, count: int | None = None) -> FaultRule:
        """403 with ``code`` (default 50013 Missing Permissions); forever unless ``count`` is given."""
        return self._add("forbidden", route_substring, count, code=code)

    def not_found(self, route_substring: str | None, code: int = 10003, count: int | None = None) -> FaultRule:
        """404 with ``code`` (default 10003 Unknown Channel); forever unless ``count`` is given."""
        return self._add("not_found", route_substring, count, code=code)

    def slow_answer(self, route_substring: str | None, seconds: float, count: int = 1) -> FaultRule:
        """Perform the next ``count`` matching requests at once, then hold their answers ``seconds``:
        Discord has created the message while the client still waits (kill the client meanwhile). The
        sandbox's ``stop()`` drops an answer still held."""
        return self._add("slow_answer", route_substring, count, seconds=seconds)

    def latency(self, seconds: float) -> None:
        """Delay every REST answer by ``seconds``."""
        self.latency_seconds = seconds

    def random_429(
        self,
        fraction: float,
        seed: int = 0,
        *,
        retry_after: float = 0.05,
        global_fraction: float = 0.25,
        route_substring: str | None = None,
        max_streak: int = 3,
    ) -> None:
        """429 a seeded ``fraction`` of REST calls, ``global_fraction`` of those global.

        At most ``max_streak`` consecutive 429s for the same method+path, so discord.py's five tries
        always suffice (Discord does not 429 the same call forever either). ``fraction=0`` turns it off.
        """
        if fraction <= 0:
            self._random = None
            return
        self._random = (fraction, random.Random(seed), retry_after, global_fraction, route_substring, max_streak)

    def clear(self) -> None:
        """Remove every fault (rules, latency, random 429s)."""
        self.rules.clear()
        self.latency_seconds = 0.0
        self._random = None
        self._streak.clear()

    def _add(self, kind: str, sub: str | None, count: int | None, **params: Any) -> FaultRule:
        rule = FaultRule(kind, sub, count, params)
        self.rules.append(rule)
        return rule

    def pick(self, method: str, path: str, route: str) -> FaultRule | None:
        for rule in self.rules:
            if rule.matches(method, path, route):
                if rule.remaining is not None:
                    rule.remaining -= 1
                rule.fired += 1
                return rule
        if self._random is not None:
            fraction, rng, retry_after, global_fraction, sub, max_streak = self._random
            key = f"{method} {path}"
            in_scope = sub is None or sub in path or sub in route
            if in_scope and rng.random() < fraction and self._streak.get(key, 0) < max_streak:
                self._streak[key] = self._streak.get(key, 0) + 1
                params = {"retry_after": retry_after, "global_": rng.random() < global_fraction}
                return FaultRule("rate_limit", None, 0, params, 1)
            self._streak.pop(key, None)
        return None
