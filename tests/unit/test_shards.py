"""Sharding maths: the formula, shard ranges, what a process owns, its share of the REST budget, IDENTIFY turns."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.app import IdentifyPacer
from bot.config import ConfigError, load_settings
from bot.domain.shards import ShardScope, ShardSpecError, format_shards, parse_shards, rest_share, shard_of


def test_formula_matches_discords_example():
    # discord-api-docs: split across three shards, each server lands on (guild_id >> 22) % 3.
    assert shard_of(81384788765712384, 17) == 7  # the id/count pair other libraries document
    assert shard_of((5 << 22) | 123, 3) == 2


@pytest.mark.parametrize(
    ("text", "ids"),
    [("0-7", tuple(range(8))), ("3", (3,)), ("0-1, 4-5", (0, 1, 4, 5)), ("2,2,1", (1, 2))],
)
def test_parse_shards(text, ids):
    assert parse_shards(text) == ids


@pytest.mark.parametrize("text", ["", "a", "7-0", "-1", "0-", "1,,2", "0-3-5"])
def test_bad_shard_ranges_are_refused(text):
    with pytest.raises(ShardSpecError):
        parse_shards(text)


@given(st.sets(st.integers(0, 300), min_size=1))
def test_format_is_the_inverse_of_parse(ids):
    assert parse_shards(format_shards(ids)) == tuple(sorted(ids))


@given(st.integers(0, 2**63 - 1), st.integers(2, 64), st.data())
def test_every_server_has_exactly_one_owner_among_clusters(guild_id, count, data):
    cut = data.draw(st.integers(1, count - 1))
    clusters = [ShardScope(count, tuple(range(cut))), ShardScope(count, tuple(range(cut, count)))]
    assert sum(c.owns(guild_id) for c in clusters) == 1
    assert sum(c.owns(None) for c in clusters) == 1


def test_global_work_belongs_to_the_cluster_holding_shard_zero():
    assert ShardScope(16, tuple(range(8))).owns(None)
    assert not ShardScope(16, tuple(range(8, 16))).owns(None)
    assert ShardScope().owns(None)


def test_scope_refuses_shards_that_do_not_exist():
    with pytest.raises(ShardSpecError, match="shard 16 does not exist"):
        ShardScope(16, (15, 16))
    with pytest.raises(ShardSpecError):
        ShardScope(None, (1,))


def test_only_narrows_to_the_held_shards():
    scope = ShardScope(8, (0, 1, 2, 3))
    assert scope.only([2]).held == (2,)
    assert scope.only([6]) == scope  # not ours: nothing narrower to do


def test_rest_share_is_in_proportion_to_shards():
    assert rest_share(45.0, ShardScope()) == 45.0
    assert rest_share(45.0, ShardScope(16, tuple(range(8)))) == pytest.approx(22.5)
    assert rest_share(45.0, ShardScope(16, (3,))) == pytest.approx(45.0 / 16)
    assert rest_share(45.0, ShardScope(16, tuple(range(8))), shared_proxy=True) is None
    shares = [rest_share(40.0, ShardScope(12, ids)) for ids in ((0, 1, 2), (3, 4, 5, 6, 7), (8, 9, 10, 11))]
    assert sum(shares) == pytest.approx(40.0)  # the clusters together never exceed the bot's budget


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"COMMONGROUND_SHARDS": "0-7"}, "needs COMMONGROUND_SHARD_COUNT"),
        ({"COMMONGROUND_SHARDS": "0-7", "COMMONGROUND_SHARD_COUNT": "4"}, "shard 4 does not exist"),
        ({"COMMONGROUND_SHARDS": "x", "COMMONGROUND_SHARD_COUNT": "4"}, "not a shard range"),
        ({"COMMONGROUND_SHARD_COUNT": "0"}, "COMMONGROUND_SHARD_COUNT='0' is out of range"),
        ({"COMMONGROUND_SHARD_COUNT": "many"}, "not a whole number"),
    ],
)
def test_bad_shard_settings_give_one_clear_line(env, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        load_settings(env=env)
    assert "\n" not in str(info.value)


def test_cluster_settings():
    s = load_settings(env={"COMMONGROUND_SHARDS": "8-15", "COMMONGROUND_SHARD_COUNT": "16"})
    assert s.shards == tuple(range(8, 16)) and s.shard_count == 16
    assert s.is_cluster and s.scope.describe() == "shards 8-15 of 16"
    assert not load_settings(env={"COMMONGROUND_SHARD_COUNT": "16"}).is_cluster
    assert load_settings(env={"COMMONGROUND_REST_PROXY": "true"}).rest_proxy
    # The sandbox (or any other base) is not taken for a shared proxy: only the host says so.
    assert not load_settings(env={"DISCORD_API_BASE": "http://127.0.0.1:8080/api/v10"}).rest_proxy
    with pytest.raises(ConfigError, match="COMMONGROUND_REST_PROXY"):
        load_settings(env={"COMMONGROUND_REST_PROXY": "maybe"})


def test_a_clusters_rest_share_follows_its_shards_and_the_proxy():
    s = load_settings(env={"COMMONGROUND_SHARDS": "0-3", "COMMONGROUND_SHARD_COUNT": "16"})
    assert s.rest_share == pytest.approx(40.0 / 4)
    assert load_settings(env={}).rest_share == 40.0
    proxied = load_settings(
        env={
            "COMMONGROUND_SHARDS": "0-3",
            "COMMONGROUND_SHARD_COUNT": "16",
            "COMMONGROUND_REST_BUDGET": "45",
            "DISCORD_API_BASE": "http://twilight-http-proxy:3000/api/v10",
            "COMMONGROUND_REST_PROXY": "true",
        }
    )
    assert proxied.rest_budget == 45.0 and proxied.rest_share is None
    for bad in ("0", "51", "fast"):
        with pytest.raises(ConfigError, match="COMMONGROUND_REST_BUDGET"):
            load_settings(env={"COMMONGROUND_REST_BUDGET": bad})


class _Gate:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.turns: list[tuple[int, float]] = []

    async def take_turn(self, bucket: int, hold: float) -> None:
        if self.fail:
            raise OSError("connection refused")
        self.turns.append((bucket, hold))


async def test_the_identify_pacer_takes_a_turn_per_bucket_across_processes() -> None:
    gate = _Gate(fail=False)
    pacer = IdentifyPacer(interval=0.01, max_concurrency=2, gate=gate)
    for shard in range(4):
        await pacer.wait(shard)
    assert [bucket for bucket, _hold in gate.turns] == [0, 1, 0, 1]
    assert {hold for _bucket, hold in gate.turns} == {pacer.spacing}


async def test_without_the_database_the_identify_pacer_paces_this_process_alone(caplog) -> None:
    pacer = IdentifyPacer(interval=0.01, gate=_Gate(fail=True))
    await asyncio.wait_for(pacer.wait(0), 5)  # no exception: the shard still connects
    assert "IDENTIFY without a turn across processes" in caplog.text
