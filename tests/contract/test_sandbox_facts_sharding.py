"""DISCORD-FACTS G1-G3 (sharding) held by the sandbox, spoken to with a raw websocket client.

Each test fails against a sandbox kinder than Discord: one that lets a shard hold more than 2,500
servers (G1), sends a server's events to a shard that does not own it or lists every server in every
READY (G2), or accepts IDENTIFYs faster than one per 5 s per ``max_concurrency`` bucket (G3).
Sources: discord-api-docs, Gateway: "Sharding", "Sharding Formula", "Max Concurrency", "Identifying",
"Get Gateway Bot", "Session Start Limit Object"; close codes 4010 / 4011.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.sandbox import Sandbox
from bot.sandbox.gateway import MAX_GUILDS_PER_SHARD, shard_of

pytestmark = pytest.mark.timeout(60)

GUILDS_INTENT = 1


def guild_id_on(shard: int, num_shards: int, k: int = 0) -> int:
    """A snowflake whose shard is ``shard`` of ``num_shards`` (the k-th such id)."""
    return ((num_shards * (1_000_000 + k) + shard) << 22) | 7


class Raw:
    """A minimal gateway client: HELLO, IDENTIFY, then read dispatches."""

    def __init__(self, sb: Sandbox, session: aiohttp.ClientSession) -> None:
        self.sb = sb
        self.session = session
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.ops: list[int] = []
        self.close_code: int | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def identify(self, shard: list[int] | None) -> None:
        self.ws = await self.session.ws_connect(self.sb.gateway_url)
        hello = await asyncio.wait_for(self.ws.receive_json(), 5)
        assert hello["op"] == 10
        d: dict[str, Any] = {"token": self.sb.token, "intents": GUILDS_INTENT, "properties": {}}
        if shard is not None:
            d["shard"] = shard
        await self.ws.send_str(json.dumps({"op": 2, "d": d}))
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                frame = json.loads(msg.data)
                self.ops.append(frame["op"])
                if frame["op"] == 0:
                    self.events.append((frame["t"], frame["d"]))
                self._changed.set()
        self.close_code = self.ws.close_code
        self._changed.set()

    async def wait(self, predicate, timeout: float = 10.0) -> Any:
        async def loop() -> Any:
            while not (value := predicate()):
                self._changed.clear()
                await self._changed.wait()
            return value

        return await asyncio.wait_for(loop(), timeout)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [d for t, d in self.events if t == name]

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def gateway_bot(sb: Sandbox, http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get(f"{sb.api_base}/gateway/bot", headers={"Authorization": f"Bot {sb.token}"}) as resp:
        assert resp.status == 200
        return await resp.json()


# -- G1 -------------------------------------------------------------------------------------------


async def test_g1_a_shard_holding_more_than_2500_servers_is_closed_with_4011(http) -> None:
    async with Sandbox(identify_interval=0) as sb:
        for k in range(MAX_GUILDS_PER_SHARD + 1):
            sb.create_guild(f"g{k}", guild_id=guild_id_on(0, 1, k))
        unsharded = Raw(sb, http)
        await unsharded.identify(None)  # no shard: one connection for every server
        await unsharded.wait(lambda: unsharded.close_code is not None)
        assert unsharded.close_code == 4011
        assert not unsharded.named("READY")

        # Exactly 2,500 on a shard is allowed: two shards split the 2,501 (their ids alternate).
        halves = [Raw(sb, http), Raw(sb, http)]
        for i, raw in enumerate(halves):
            await raw.identify([i, 2])
        for raw in halves:
            await raw.wait(lambda raw=raw: raw.named("READY"))
            assert raw.close_code is None
            await raw.close()
        await unsharded.close()


async def test_g1_exactly_2500_servers_on_one_connection_are_allowed(http) -> None:
    async with Sandbox() as sb:
        for k in range(MAX_GUILDS_PER_SHARD):
            sb.create_guild(f"g{k}", guild_id=guild_id_on(0, 1, k))
        raw = Raw(sb, http)
        await raw.identify([0, 1])
        ready = (await raw.wait(lambda: raw.named("READY")))[0]
        assert len(ready["guilds"]) == MAX_GUILDS_PER_SHARD
        await raw.close()


# -- G2 -------------------------------------------------------------------------------------------


async def test_g2_ready_lists_only_the_shards_servers_and_events_go_to_the_owning_shard(http) -> None:
    async with Sandbox(identify_interval=0) as sb:
        guilds = [sb.create_guild(f"g{k}", guild_id=guild_id_on(k % 3, 3, k)) for k in range(9)]
        clients = [Raw(sb, http) for _ in range(3)]
        for shard_id, raw in enumerate(clients):
            await raw.identify([shard_id, 3])
        for shard_id, raw in enumerate(clients):
            ready = (await raw.wait(lambda raw=raw: raw.named("READY")))[0]
            assert ready["shard"] == [shard_id, 3]
            listed = {int(g["id"]) for g in ready["guilds"]}
            assert listed == {g.id for g in guilds if shard_of(g.id, 3) == shard_id}
            assert len(listed) == 3
            await raw.wait(lambda raw=raw: len(raw.named("GUILD_CREATE")) == 3)

        # A live event of one server reaches its own shard only.
        target = guilds[4]
        owner = shard_of(target.id, 3)
        assert owner == (target.id >> 22) % 3
        channel = sb.create_channel(target.id, "debates")
        await clients[owner].wait(
            lambda: any(int(d["id"]) == channel.id for d in clients[owner].named("CHANNEL_CREATE"))
        )
        # A server created later on shard 2 arrives as GUILD_CREATE there, nowhere else.
        late = sb.create_guild("late", guild_id=guild_id_on(2, 3, 99))
        await clients[2].wait(lambda: any(int(d["id"]) == late.id for d in clients[2].named("GUILD_CREATE")))
        await sb._flush()
        for shard_id, raw in enumerate(clients):
            if shard_id != owner:
                assert not any(int(d["id"]) == channel.id for d in raw.named("CHANNEL_CREATE"))
            if shard_id != 2:
                assert not any(int(d["id"]) == late.id for d in raw.named("GUILD_CREATE"))
        for raw in clients:
            await raw.close()


async def test_g2_an_invalid_shard_is_closed_with_4010(http) -> None:
    async with Sandbox(identify_interval=0) as sb:
        for shard in ([2, 2], [-1, 2], [0, 0], [0]):
            raw = Raw(sb, http)
            await raw.identify(shard)
            await raw.wait(lambda raw=raw: raw.close_code is not None)
            assert raw.close_code == 4010, shard
            await raw.close()


async def test_g2_gateway_bot_recommends_shards_and_reports_the_session_start_limit(http) -> None:
    async with Sandbox(identify_interval=0, max_concurrency=4, session_start_total=1000) as sb:
        body = await gateway_bot(sb, http)
        assert body["url"] == sb.gateway_url
        assert body["shards"] == 1
        assert body["session_start_limit"] == {
            "total": 1000,
            "remaining": 1000,
            "reset_after": body["session_start_limit"]["reset_after"],
            "max_concurrency": 4,
        }
        assert body["session_start_limit"]["reset_after"] > 0
        for k in range(2_001):
            sb.create_guild(f"g{k}", guild_id=guild_id_on(k % 3, 3, k))
        body = await gateway_bot(sb, http)
        assert body["shards"] == 3  # never a count that would leave a shard above 2,500
        raw = Raw(sb, http)
        await raw.identify([0, 3])
        await raw.wait(lambda: raw.named("READY"))
        assert (await gateway_bot(sb, http))["session_start_limit"]["remaining"] == 999
        await raw.close()


# -- G3 -------------------------------------------------------------------------------------------


async def test_g3_identify_paced_per_max_concurrency_bucket(http) -> None:
    interval = 0.5  # Discord's 5 s, scaled down
    async with Sandbox(identify_interval=interval, max_concurrency=2) as sb:
        first = [Raw(sb, http), Raw(sb, http)]
        # Shards 0 and 1 are in buckets 0 and 1: both may identify at once.
        for shard_id, raw in enumerate(first):
            await raw.identify([shard_id, 4])
        for raw in first:
            await raw.wait(lambda raw=raw: raw.named("READY"))
        # Shard 2 is in bucket 0 again: too soon, answered with op 9 Invalid Session, no READY.
        early = Raw(sb, http)
        await early.identify([2, 4])
        await early.wait(lambda: 9 in early.ops)
        assert not early.named("READY")
        assert sb.rejected_identifies[-1] == ([2, 4], "rate")
        await early.close()
        # After the interval the same bucket accepts the next IDENTIFY.
        await asyncio.sleep(interval)
        later = Raw(sb, http)
        await later.identify([2, 4])
        await later.wait(lambda: later.named("READY"))
        times = [t for t, shard in sb.identify_log if shard[0] % 2 == 0]
        assert len(times) == 2 and times[1] - times[0] >= interval
        for raw in (*first, later):
            await raw.close()


async def test_g3_identifies_spend_the_session_start_limit(http) -> None:
    async with Sandbox(identify_interval=0, session_start_total=2) as sb:
        for _ in range(2):
            raw = Raw(sb, http)
            await raw.identify([0, 1])
            await raw.wait(lambda raw=raw: raw.named("READY"))
            await raw.close()
        assert (await gateway_bot(sb, http))["session_start_limit"]["remaining"] == 0
        spent = Raw(sb, http)
        await spent.identify([0, 1])
        await spent.wait(lambda: 9 in spent.ops)
        assert not spent.named("READY")
        await spent.close()
