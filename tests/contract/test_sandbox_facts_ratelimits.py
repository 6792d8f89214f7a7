"""The sandbox applies Discord's rate limits and clocks (DISCORD-FACTS rows L1, L2, L3, I3) as strictly as
Discord does, once a test switches them on with ``Conditions``. One test per row, named after it; each
fails against a kinder sandbox (no global limit, buckets that never run out or count per route instead of
per channel, no ban or a ban counting shared 429s, snowflakes on the host's clock or deadlines measured
on it). Latency with jitter is checked here too, since every other condition is measured through it.

Raw HTTP where the exact answer matters (headers, bodies, bursts discord.py would pace); a bare
discord.py client where its behaviour is the point (a ban is not retried, an interaction's time).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import discord
import pytest

from bot.domain.clock import FakeClock
from bot.sandbox import Conditions, Sandbox
from bot.sandbox.conditions import Clocks
from bot.sandbox.ratelimits import BAN_BODY, ROUTE_BUCKETS
from tests.contract.sandbox_client import connected

pytestmark = pytest.mark.timeout(60)


@contextlib.asynccontextmanager
async def running(**conditions) -> AsyncIterator[tuple[Sandbox, aiohttp.ClientSession]]:
    sb = Sandbox(conditions=Conditions(**conditions))
    await sb.start()
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bot {sb.token}"}) as http:
            yield sb, http
    finally:
        await sb.stop()


async def call(http: aiohttp.ClientSession, sb: Sandbox, method: str, path: str, **kw) -> tuple[int, dict, object]:
    async with http.request(method, sb.api_base + path, **kw) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, dict(r.headers), body


def button_row(custom_id: str = "x:y:1") -> list[dict]:
    return [{"type": 1, "components": [{"type": 2, "style": 1, "label": "Go", "custom_id": custom_id}]}]


# --------------------------------------------------------------------------------------------- L1


async def test_L1_global_limit_is_50_per_second_and_interaction_endpoints_are_exempt() -> None:
    async with running(rate_limits=True) as (sb, http):
        g = sb.create_guild("Global")
        chans = [sb.create_channel(g.id, f"c{i}") for i in range(80)]
        member = sb.add_member(g.id, "alice")
        status, _h, post = await call(
            http, sb, "POST", f"/channels/{chans[0].id}/messages", json={"content": "vote", "components": button_row()}
        )
        assert status == 200
        ix = await sb.click(chans[0].id, int(post["id"]), "x:y:1", member.id)
        await asyncio.sleep(1.05)  # a fresh second for the burst

        # 80 reads of 80 channels at once: every per-route bucket has room; only the global limit binds.
        answers = await asyncio.gather(*(call(http, sb, "GET", f"/channels/{c.id}") for c in chans))
        refused = [a for a in answers if a[0] == 429]
        assert refused, "80 requests at once met no global limit"
        for _status, headers, body in refused:
            assert body["global"] is True and body["message"] == "You are being rate limited."
            assert isinstance(body["retry_after"], float) and 0 < body["retry_after"] <= 1.0
            assert headers["X-RateLimit-Global"] == "true" and headers["X-RateLimit-Scope"] == "global"
            assert int(headers["Retry-After"]) >= body["retry_after"] and headers.get("Via")
        # Checked on Discord's side (request times as the sandbox took them): at most 50 accepted in any
        # second, and a refusal only when 50 were accepted in the second before it.
        reads = [r for r in sb.requests if r.method == "GET" and r.route == "/channels/{channel_id}"]
        accepted = [r.at for r in reads if r.status == 200]
        for r in reads:
            in_second = sum(1 for t in accepted if r.at - 1.0 < t <= r.at)
            assert in_second <= 50
            if r.status == 429:
                assert in_second == 50
        assert sb.limits.global_429s == len(refused)

        # While the bot is globally limited, interaction callbacks and follow-ups still go through.
        async with aiohttp.ClientSession() as anon:
            cb = f"{sb.api_base}/interactions/{ix.id}/{ix.token}/callback"
            async with anon.post(cb, json={"type": 6}) as r:
                assert r.status in (200, 204)
            hook = f"{sb.api_base}/webhooks/{sb.application_id}/{ix.token}?wait=true"
            async with anon.post(hook, json={"content": "counted", "flags": 64}) as r:
                assert r.status == 200
        # ...and after retry_after the bot's own requests are served again.
        await asyncio.sleep(max(b["retry_after"] for _s, _h, b in refused) + 0.05)
        assert (await call(http, sb, "GET", f"/channels/{chans[1].id}"))[0] == 200


# --------------------------------------------------------------------------------------------- L2


async def test_L2_per_route_buckets_per_channel_with_discords_headers_and_429() -> None:
    async with running(rate_limits=True, window_scale=0.4) as (sb, http):
        g = sb.create_guild("Buckets")
        a, b = sb.create_channel(g.id, "a"), sb.create_channel(g.id, "b")
        seen = []
        for i in range(5):
            status, headers, _ = await call(http, sb, "POST", f"/channels/{a.id}/messages", json={"content": f"{i}"})
            assert status == 200
            seen.append(headers)
        bucket = ROUTE_BUCKETS["POST /channels/{channel_id}/messages"]
        assert bucket.limit == 5 and bucket.per == 5.0  # Create Message: 5 per 5 s per channel
        assert [h["X-RateLimit-Limit"] for h in seen] == ["5"] * 5
        assert [h["X-RateLimit-Remaining"] for h in seen] == ["4", "3", "2", "1", "0"]
        assert len({h["X-RateLimit-Bucket"] for h in seen}) == 1
        for h in seen:
            after = float(h["X-RateLimit-Reset-After"])
            assert 0 < after <= 5.0 * 0.4
            date = email.utils.parsedate_to_datetime(h["Date"]).timestamp()
            assert abs(float(h["X-RateLimit-Reset"]) - (date + after)) < 1.5  # epoch seconds at the reset

        status, headers, body = await call(http, sb, "POST", f"/channels/{a.id}/messages", json={"content": "6th"})
        assert status == 429
        assert body["global"] is False and body["message"] == "You are being rate limited."
        assert isinstance(body["retry_after"], float) and 0 < body["retry_after"] <= 2.0
        assert headers["X-RateLimit-Scope"] == "user" and headers["X-RateLimit-Remaining"] == "0"
        assert headers["X-RateLimit-Bucket"] == seen[0]["X-RateLimit-Bucket"]
        assert int(headers["Retry-After"]) >= body["retry_after"] and "X-RateLimit-Global" not in headers
        assert [m["content"] for m in sb.messages(a.id)] == ["0", "1", "2", "3", "4"]  # the 6th did nothing

        # Counted per top-level resource: another channel has its own allowance under the same hash.
        status, other, _ = await call(http, sb, "POST", f"/channels/{b.id}/messages", json={"content": "b"})
        assert status == 200 and other["X-RateLimit-Remaining"] == "4"
        assert other["X-RateLimit-Bucket"] == seen[0]["X-RateLimit-Bucket"]
        # Edit Message reports Create Message's hash but spends its own allowance (#1442, #8073).
        mid = sb.messages(a.id)[0]["id"]
        status, edit, _ = await call(http, sb, "PATCH", f"/channels/{a.id}/messages/{mid}", json={"content": "e"})
        assert status == 200 and edit["X-RateLimit-Remaining"] == "4"
        assert edit["X-RateLimit-Bucket"] == seen[0]["X-RateLimit-Bucket"]

        await asyncio.sleep(body["retry_after"] + 0.05)
        status, again, _ = await call(http, sb, "POST", f"/channels/{a.id}/messages", json={"content": "later"})
        assert status == 200 and again["X-RateLimit-Remaining"] == "4"


async def test_L2_limits_off_by_default_and_injected_shared_429_has_discords_shape() -> None:
    async with running() as (sb, http):
        g = sb.create_guild("Off")
        ch = sb.create_channel(g.id, "a")
        for i in range(8):  # past 5: existing tests keep a sandbox that never runs out unless they ask
            assert (await call(http, sb, "POST", f"/channels/{ch.id}/messages", json={"content": f"{i}"}))[0] == 200
        sb.faults.rate_limit("POST /channels/{channel_id}/messages", retry_after=0.2, scope="shared")
        status, headers, body = await call(http, sb, "POST", f"/channels/{ch.id}/messages", json={"content": "x"})
        assert status == 429 and headers["X-RateLimit-Scope"] == "shared"
        assert body["message"] == "The resource is being rate limited." and body["global"] is False
        assert body["retry_after"] == 0.2 and headers["Retry-After"] == "1" and headers.get("Via")


# --------------------------------------------------------------------------------------------- L3


async def test_L3_invalid_requests_ban_the_host_and_it_says_so(caplog) -> None:
    assert (Conditions().invalid_limit, Conditions().invalid_window) == (10_000, 600.0)  # Discord's figure
    async with running(invalid_limit=20) as (sb, http):
        g = sb.create_guild("Ban")
        hidden = sb.create_channel(g.id, "hidden")
        sb.set_channel_permissions(hidden.id, deny_bot=discord.Permissions(view_channel=True).value)
        for _ in range(18):
            assert (await call(http, sb, "GET", f"/channels/{hidden.id}"))[0] == 403
        assert (await call(http, sb, "GET", "/channels/1"))[0] == 404  # not an invalid request
        sb.faults.rate_limit("/users/@me", scope="shared")
        assert (await call(http, sb, "GET", "/users/@me"))[0] == 429  # shared scope: not counted
        sb.faults.rate_limit("/users/@me")
        assert (await call(http, sb, "GET", "/users/@me"))[0] == 429  # a user-scope 429 is: 19
        assert sb.limits.invalid_count() == 19 and not sb.limits.banned
        async with aiohttp.ClientSession(headers={"Authorization": "Bot wrong"}) as bad:
            caplog.set_level(logging.ERROR, logger="bot.sandbox.ratelimits")
            assert (await call(bad, sb, "GET", "/users/@me"))[0] == 401  # the 20th
        assert sb.limits.banned
        assert any("banned" in r.getMessage() and "1015" in r.getMessage() for r in caplog.records)

        # Everything is refused now, valid requests and interaction endpoints alike, Cloudflare-style.
        for method, path in (("GET", "/users/@me"), ("POST", "/interactions/1/t/callback")):
            status, headers, body = await call(http, sb, method, path, json={"type": 1})
            assert status == 429 and headers["Content-Type"].startswith("text/html")
            assert body == BAN_BODY and "Via" not in headers
            assert sb.requests[-1].fault == "banned"
        # discord.py reads it as a ban, not a limit to wait out: login fails at once.
        client = discord.Client(intents=discord.Intents.none())
        old = discord.http.Route.BASE
        discord.http.Route.BASE = sb.api_base
        try:
            with pytest.raises(discord.HTTPException) as info:
                await asyncio.wait_for(client.login(sb.token), 5)
            assert info.value.status == 429
        finally:
            discord.http.Route.BASE = old
            await client.close()
        assert sb.limits.refused >= 3
        sb.lift_ban()
        assert (await call(http, sb, "GET", "/users/@me"))[0] == 200


async def test_L3_invalid_requests_count_in_a_sliding_window() -> None:
    async with (
        running(invalid_limit=10, invalid_window=0.5) as (sb, _http),
        aiohttp.ClientSession(headers={"Authorization": "Bot wrong"}) as bad,
    ):
        for _ in range(9):
            assert (await call(bad, sb, "GET", "/users/@me"))[0] == 401
        await asyncio.sleep(0.6)  # those nine fall out of the window
        for _ in range(9):
            assert (await call(bad, sb, "GET", "/users/@me"))[0] == 401
        assert not sb.limits.banned and sb.limits.invalid_total == 18
        assert (await call(bad, sb, "GET", "/users/@me"))[0] == 401
        assert sb.limits.banned  # ten within half a second


# --------------------------------------------------------------------------------------------- I3


class Client(discord.Client):
    def __init__(self) -> None:
        super().__init__(intents=discord.Intents(guilds=True), guild_ready_timeout=0.05)
        self.ready_event = asyncio.Event()
        self.received: asyncio.Queue[tuple[discord.Interaction, datetime]] = asyncio.Queue()

    async def on_ready(self) -> None:
        self.ready_event.set()

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        self.received.put_nowait((interaction, datetime.now(UTC)))


@contextlib.asynccontextmanager
async def with_client(sb: Sandbox) -> AsyncIterator[Client]:
    """A bare client logged in to ``sb`` (see sandbox_client.connected, which also stops ``sb`` after)."""
    client = Client()
    async with connected(sb, client, client.ready_event):
        yield client


@pytest.mark.parametrize("skew", [5.0, -5.0])
async def test_I3_snowflakes_and_timestamps_carry_discords_clock_and_deadlines_ignore_the_hosts(skew) -> None:
    clock = FakeClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    sb = Sandbox(clock=clock, interaction_deadline=0.6, conditions=Conditions(skew=skew))
    await sb.start()
    try:
        g = sb.create_guild("Skew")
        ch = sb.create_channel(g.id, "general")
        alice = sb.add_member(g.id, "alice")
        async with with_client(sb) as client:
            msg = await client.get_channel(ch.id).send("vote", view=_button_view())
            host_now = datetime.now(UTC)
            assert abs((msg.created_at - host_now).total_seconds() - skew) < 1.0  # snowflake: Discord's clock
            stored = sb.message(ch.id, msg.id)
            assert abs((datetime.fromisoformat(stored["timestamp"]) - host_now).total_seconds() - skew) < 1.0

            # An interaction: its snowflake is Discord's clock, whatever the host thinks of it.
            ix = await sb.click(ch.id, msg.id, "x:y:1", alice.id)
            interaction, received_at = await asyncio.wait_for(client.received.get(), 5)
            host_age = (received_at - interaction.created_at).total_seconds()
            assert abs(host_age + skew) < 1.0  # the host's reading is off by the skew (I3)
            # Discord counts the deadline on its own clock from the creation: a prompt answer is on time
            # even when the host's clock says it is 5 s old...
            await interaction.response.defer()
            assert ix.acknowledged and not ix.rejected_callbacks

            ix2 = await sb.click(ch.id, msg.id, "x:y:1", alice.id)
            late, _ = await asyncio.wait_for(client.received.get(), 5)
            # ...and a late one is refused even when the host's clock says it is fresh (or from the future).
            await asyncio.sleep(sb.interaction_deadline + 0.1)
            with pytest.raises(discord.NotFound):
                await late.response.defer()
            assert ix2.rejected_callbacks and ix2.rejected_callbacks[0][1]["code"] == 10062

            # Native poll expiry is stamped on Discord's clock too (the sandbox clock plus the skew).
            poll = discord.Poll(question="Which first?", duration=timedelta(hours=1))
            poll.add_answer(text="The individual").add_answer(text="The community")
            sent = await client.get_channel(ch.id).send(poll=poll)
            expiry = datetime.fromisoformat(sb.message(ch.id, sent.id)["poll"]["expiry"])
            assert expiry == clock.now() + timedelta(hours=1, seconds=skew)
            # The field reads `skew` off on the host's clock, but the poll lasts its hour all the same.
            clock.advance(timedelta(hours=1, seconds=-1))
            assert not sb.poll_ended(sent.id)
            clock.advance(timedelta(seconds=1))
            assert sb.poll_ended(sent.id)
    finally:
        await sb.stop()


def _button_view() -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label="Go", custom_id="x:y:1"))
    return view


# --------------------------------------------------------------------------------------------- latency


def test_latency_samples_are_jittered_around_the_mean_and_repeat_under_a_seed() -> None:
    a = Clocks(Conditions(latency=(0.080, 0.040), seed=7))
    b = Clocks(Conditions(latency=(0.080, 0.040), seed=7))
    first = [a.delay() for _ in range(500)]
    assert first == [b.delay() for _ in range(500)]  # deterministic under a seed
    assert first != [Clocks(Conditions(latency=(0.080, 0.040), seed=8)).delay() for _ in range(500)]
    assert min(first) >= 0.040 and max(first) <= 0.120
    assert max(first) - min(first) > 0.06 and abs(sum(first) / len(first) - 0.080) < 0.005
    assert Clocks(Conditions()).delay() == 0.0  # off by default
    with pytest.raises(ValueError):
        Conditions(latency=(-0.01, 0.0))


async def test_latency_delays_rest_both_ways_and_gateway_dispatches() -> None:
    sb = Sandbox(conditions=Conditions(latency=(0.100, 0.020), seed=1))
    await sb.start()
    try:
        g = sb.create_guild("Far")
        ch = sb.create_channel(g.id, "general")
        async with with_client(sb) as client:
            channel = client.get_channel(ch.id)
            started = time.monotonic()
            await channel.send("hello")
            elapsed = time.monotonic() - started
            assert elapsed >= 2 * 0.080  # there and back, each at least mean - jitter
            # A gateway dispatch arrives one trip after Discord sends it.
            waiter = asyncio.create_task(client.wait_for("guild_channel_create", timeout=5))
            await asyncio.sleep(0)
            sent = time.monotonic()
            sb.create_channel(g.id, "second")
            created = await waiter
            assert created.name == "second" and time.monotonic() - sent >= 0.080
    finally:
        await sb.stop()
