"""Operations: Prometheus metrics, ``/healthz`` and ``/readyz`` on ``COMMONGROUND_METRICS_PORT``.

Each process serves its own figures (scrape every cluster); the registry is per bot, not global, so
several bots in one process (tests) keep theirs apart. Route labels are templates (ids and tokens
replaced), so a label never carries an interaction token and their number stays small.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter as Tally
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.storage import jobs as job_store

if TYPE_CHECKING:
    from bot.app import CommonGround

log = logging.getLogger(__name__)

# A job due this long ago and still not done counts as late.
LATE_AFTER = timedelta(minutes=1)
REFRESH_EVERY = 15.0
_SNOWFLAKE = re.compile(r"^\d{15,21}$")
_TOKEN_AFTER = {"interactions", "webhooks"}  # /interactions/{id}/{token}, /webhooks/{app}/{token}


def route_of(path: str) -> str:
    """``/api/v10/channels/123/messages/456`` → ``/channels/{id}/messages/{id}``; interaction and
    webhook tokens become ``{token}``."""
    parts = path.split("/")
    try:
        start = next(i for i, p in enumerate(parts) if re.fullmatch(r"v\d+", p)) + 1
    except StopIteration:
        start = 1
    out: list[str] = []
    segments = parts[start:]
    for i, seg in enumerate(segments):
        if i >= 2 and segments[i - 2] in _TOKEN_AFTER and _SNOWFLAKE.match(segments[i - 1]):
            out.append("{token}")
        elif _SNOWFLAKE.match(seg):
            out.append("{id}")
        else:
            out.append(seg)
    return "/" + "/".join(out)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.votes = Counter("commonground_votes", "Button votes answered, by outcome", ["outcome"], registry=r)
        self.vote_ack = Histogram(
            "commonground_vote_ack_seconds",
            "From Discord creating a vote interaction to our first answer (or defer)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0),
            registry=r,
        )
        self.jobs_due = Gauge("commonground_jobs_due", "Jobs of this process's shards due now", registry=r)
        self.jobs_late = Gauge(
            "commonground_jobs_late", "Jobs of this process's shards due more than a minute ago", registry=r
        )
        self.rest = Counter(
            "commonground_rest_requests",
            "REST requests to Discord, by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.rest_429 = Counter(
            "commonground_rest_429",
            "429 answers from Discord, by route and scope",
            ["method", "route", "scope"],
            registry=r,
        )
        self.gateway_latency = Gauge(
            "commonground_gateway_latency_seconds", "Heartbeat latency per shard", ["shard"], registry=r
        )
        self.servers = Gauge("commonground_servers", "Servers per shard", ["shard"], registry=r)
        self.shards_ready = Gauge("commonground_shards_ready", "Shards of this process connected", registry=r)
        self.rest_share = Gauge(
            "commonground_rest_share_per_second",
            "This process's share of the bot's REST budget (-1: a shared REST proxy holds it)",
            registry=r,
        )

    def vote_answered(self, outcome: str, seconds: float) -> None:
        self.votes.labels(outcome).inc()
        self.vote_ack.observe(max(seconds, 0.0))

    def trace_config(self) -> aiohttp.TraceConfig:
        """An aiohttp trace for discord.py's HTTP client: every REST answer counted by route."""
        trace = aiohttp.TraceConfig()

        async def on_end(_session, _ctx, params: aiohttp.TraceRequestEndParams) -> None:
            route = route_of(params.url.path)
            status = params.response.status
            self.rest.labels(params.method, route, str(status)).inc()
            if status == 429:
                scope = params.response.headers.get(
                    "X-RateLimit-Scope", "global" if params.response.headers.get("X-RateLimit-Global") else "user"
                )
                self.rest_429.labels(params.method, route, scope).inc()

        trace.on_request_end.append(on_end)
        return trace

    async def refresh(self, bot: CommonGround) -> None:
        """The figures read at scrape time: jobs due and late, per-shard latency and servers."""
        now = bot.clock.now()
        async with bot.db.read() as conn:
            self.jobs_due.set(await job_store.count_due(conn, now, bot.scope))
            self.jobs_late.set(await job_store.count_due(conn, now - LATE_AFTER, bot.scope))
        for shard_id, latency in bot.latencies:
            if latency == latency and latency != float("inf"):  # NaN / inf before the first heartbeat
                self.gateway_latency.labels(str(shard_id)).set(latency)
        per_shard = Tally(g.shard_id for g in bot.guilds)
        for shard_id in bot.scope.held if bot.shard_count else per_shard:
            self.servers.labels(str(shard_id)).set(per_shard.get(shard_id, 0))
        self.shards_ready.set(sum(1 for s in bot.shards.values() if not s.is_closed()))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def is_ready(bot: CommonGround) -> tuple[bool, str]:
    """Ready = every shard of this process connected, READY received, and the database answering."""
    if not bot.is_ready():
        return False, "waiting for every shard's READY"
    closed = [sid for sid, s in bot.shards.items() if s.is_closed()]
    if closed:
        return False, f"shards {closed} disconnected"
    return True, "ready"


class OpsServer:
    """``/metrics``, ``/healthz`` (the process and its event loop answer) and ``/readyz``."""

    def __init__(self, bot: CommonGround, metrics: Metrics, host: str, port: int) -> None:
        self.bot, self.metrics, self.host, self.port = bot, metrics, host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if server is not None and self.port == 0:
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("metrics and health checks on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _request: web.Request) -> web.Response:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.metrics.refresh(self.bot), 5)
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready, why = is_ready(self.bot)
        if ready:
            try:
                started = time.monotonic()
                async with self.bot.db.read() as conn:
                    await conn.exec_driver_sql("SELECT 1")
                why = f"ready (database answered in {1000 * (time.monotonic() - started):.0f} ms)"
            except Exception as exc:  # the database is the one thing a ready bot cannot do without
                ready, why = False, f"database unreachable: {type(exc).__name__}"
        return web.Response(status=200 if ready else 503, text=why + "\n")


def attach(bot: Any) -> Metrics:
    """Give ``bot`` its metrics (before it logs in: the REST trace is read when the HTTP client starts)."""
    metrics = Metrics()
    bot.metrics = metrics
    bot.http.http_trace = metrics.trace_config()
    return metrics
