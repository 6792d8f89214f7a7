"""Leaning queries on hand-built rows: the aggregate series equals a recomputation from the votes,
themes, finals, the groups matrix (no ids), a member's compass and changes of mind."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from bot.domain.leaning import Moments, combine, week_start
from bot.storage import guilds as guild_store
from bot.storage import leaning as store
from bot.storage.database import Database
from bot.storage.polls import add_to_weekly
from bot.storage.tables import poll_options, polls, vote_events, votes

T0 = datetime(2026, 1, 5, 18, tzinfo=UTC)  # a Monday
GUILD = 900_000_000_000_000_001
OTHER = 900_000_000_000_000_002
OPTIONS = (("Me first", -1.0), ("Both", 0.0), ("Us first", 1.0))


async def seed_poll(
    conn,
    guild_id: int,
    *,
    closed_at: datetime,
    ballots: Mapping[int, int],
    theme: str | None = "balance",
    options: Sequence[tuple[str, float]] = OPTIONS,
    question: str = "Which comes first?",
    prompt_key: str | None = "builtin/q",
    history: Sequence[tuple[int, str, int | None]] = (),
    status: str = "closed",
) -> int:
    """A poll with final votes ``{user_id: option_idx}``, as the polls feature leaves it at close.

    ``history`` adds vote events ``(user_id, kind, option_idx)`` before the final casts; each member's
    final vote is recorded as a last event unless ``history`` already ended there.
    """
    await guild_store.ensure(conn, guild_id, now=closed_at - timedelta(days=400))
    counts = [0] * len(options)
    for idx in ballots.values():
        counts[idx] += 1
    m = Moments.from_counts([(pos, counts[i]) for i, (_, pos) in enumerate(options)])
    closed = status == "closed"
    pid = (
        await conn.execute(
            insert(polls).values(
                guild_id=guild_id,
                channel_id=1,
                question=question,
                theme=theme,
                prompt_key=prompt_key,
                status=status,
                opened_at=closed_at - timedelta(hours=24),
                closes_at=closed_at,
                closed_at=closed_at if closed else None,
                final_voters=m.n if closed else None,
                final_total=m.total if closed else None,
                final_total_sq=m.total_sq if closed else None,
            )
        )
    ).inserted_primary_key[0]
    await conn.execute(
        insert(poll_options),
        [
            {"poll_id": pid, "idx": i, "label": label, "position": pos, "final_count": counts[i] if closed else None}
            for i, (label, pos) in enumerate(options)
        ],
    )
    if ballots:
        await conn.execute(
            insert(votes),
            [
                {"poll_id": pid, "user_id": u, "guild_id": guild_id, "option_idx": i, "voted_at": closed_at}
                for u, i in ballots.items()
            ],
        )
    at = closed_at - timedelta(hours=20)
    events = []
    last: dict[int, int | None] = {}
    for k, (user, kind, idx) in enumerate(history):
        events.append(_event(pid, guild_id, user, kind, idx, at + timedelta(minutes=k)))
        last[user] = idx
    for user, idx in ballots.items():
        if last.get(user, -1) != idx:
            events.append(
                _event(pid, guild_id, user, "change" if user in last else "cast", idx, at + timedelta(hours=1))
            )
    if events:
        await conn.execute(insert(vote_events), events)
    if closed:
        # What closing does to the weekly aggregates (the seeds skip the rest of close()).
        await add_to_weekly(conn, guild_id, theme, week_start(closed_at), m)
    return pid


def _event(pid, guild_id, user, kind, idx, at):
    return {"poll_id": pid, "guild_id": guild_id, "user_id": user, "kind": kind, "option_idx": idx, "at": at}


def assert_same_series(fast, slow) -> None:
    assert [p.period_start for p in fast] == [p.period_start for p in slow]
    for a, b in zip(fast, slow, strict=True):
        assert (a.leaning.n, a.polls, a.voters) == (b.leaning.n, b.polls, b.voters), a.period_start
        for x, y in (
            (a.leaning.mean, b.leaning.mean),
            (a.leaning.low, b.leaning.low),
            (a.leaning.high, b.leaning.high),
        ):
            assert (x is None) == (y is None)
            if x is not None:
                assert math.isclose(x, y, abs_tol=1e-9)


async def test_weekly_series_matches_votes_with_gaps_themes_and_other_servers(db):
    async with db.write() as conn:
        await seed_poll(conn, GUILD, closed_at=T0, ballots={1: 0, 2: 2, 3: 2}, theme="balance")
        await seed_poll(conn, GUILD, closed_at=T0 + timedelta(days=2), ballots={1: 1, 4: 2}, theme="rights")
        await seed_poll(conn, GUILD, closed_at=T0 + timedelta(weeks=3), ballots={2: 0}, theme="rights")
        await seed_poll(conn, GUILD, closed_at=T0 + timedelta(weeks=3, days=1), ballots={}, theme="rights")
        await seed_poll(conn, GUILD, closed_at=T0 + timedelta(weeks=4), ballots={9: 2}, status="open")
        await seed_poll(conn, OTHER, closed_at=T0, ballots={1: 0, 2: 0}, theme="balance")
    async with db.read() as conn:
        fast = await store.weekly_series(conn, GUILD)
        slow = await store.series_from_votes(conn, GUILD)
        rights = await store.weekly_series(conn, GUILD, theme="rights")
        assert_same_series(rights, await store.series_from_votes(conn, GUILD, theme="rights"))
        windowed = await store.weekly_series(conn, GUILD, since=(T0 + timedelta(days=10)).date())
    assert_same_series(fast, slow)
    assert [p.period_start for p in fast] == [date(2026, 1, 5) + timedelta(weeks=w) for w in range(4)]
    first = fast[0]
    assert (first.leaning.n, first.polls) == (5, 2)
    assert math.isclose(first.leaning.mean, (-1 + 1 + 1 + 0 + 1) / 5)
    assert fast[1].leaning.mean is None and fast[1].polls == 0  # a silent week is a gap, not zero
    assert fast[3].polls == 2 and fast[3].leaning.n == 1  # the poll nobody voted in was still held
    assert [p.leaning.n for p in rights] == [2, 0, 0, 1]
    assert [p.period_start for p in windowed] == [date(2026, 1, 26)]


async def test_series_on_an_empty_server(db):
    async with db.read() as conn:
        assert await store.weekly_series(conn, GUILD) == []
        assert await store.series_from_votes(conn, GUILD) == []
        assert await store.daily_series(conn, GUILD) == []
        assert (await store.period_leaning(conn, GUILD)).n == 0
        assert await store.theme_leanings(conn, GUILD) == {}
        assert (await store.vote_matrix(conn, GUILD)).matrix.shape == (0, 0)
        assert (await store.shift_data(conn, GUILD)).members == 0
        compass = await store.member_compass(conn, GUILD, 1)
        assert compass.member.n == 0 and compass.themes == []


async def test_daily_series_and_themes_combine_polls(db):
    async with db.write() as conn:
        a = await seed_poll(conn, GUILD, closed_at=T0, ballots={1: 0, 2: 0, 3: 0}, theme="balance")
        b = await seed_poll(conn, GUILD, closed_at=T0 + timedelta(hours=2), ballots={1: 2, 2: 2}, theme="balance")
        await seed_poll(conn, GUILD, closed_at=T0 + timedelta(days=2), ballots={1: 1}, theme="rights")
    async with db.read() as conn:
        days = await store.daily_series(conn, GUILD, since=T0.date())
        themes = await store.theme_leanings(conn, GUILD)
        finals = await store.poll_finals(conn, GUILD)
    assert [(p.period_start, p.polls, p.leaning.n) for p in days] == [
        (T0.date(), 2, 5),
        (T0.date() + timedelta(days=1), 0, 0),
        (T0.date() + timedelta(days=2), 1, 1),
    ]
    pooled = combine([Moments.from_counts({-1.0: 3}), Moments.from_counts({1.0: 2})])
    assert days[0].leaning == pooled
    assert themes["balance"] == pooled and themes["rights"].n == 1
    assert [f.poll_id for f in finals][:2] == [a, b]
    assert finals[0].options == (("Me first", -1.0, 3), ("Both", 0.0, 0), ("Us first", 1.0, 0))


async def test_vote_matrix_keeps_members_with_seven_votes_and_no_ids(db):
    heavy = [10**17 + i for i in range(12)]
    async with db.write() as conn:
        for k in range(8):
            ballots = {u: (0 if i < 6 else 2) for i, u in enumerate(heavy)}
            if k < 3:
                ballots[555] = 1  # three votes: excluded
            await seed_poll(conn, GUILD, closed_at=T0 + timedelta(days=k), ballots=ballots)
        await seed_poll(conn, GUILD, closed_at=T0, ballots={777: 0}, status="open")
        await seed_poll(conn, OTHER, closed_at=T0, ballots=dict.fromkeys(heavy, 1))
    async with db.read() as conn:
        vm = await store.vote_matrix(conn, GUILD)
    assert vm.matrix.shape == (12, 8) and vm.excluded == 1
    assert not np.isnan(vm.matrix).any()
    assert sorted(vm.matrix[:, 0].tolist()) == [-1.0] * 6 + [1.0] * 6
    assert not set(heavy) & set(np.unique(vm.matrix).tolist())  # rows carry positions only


async def test_member_compass_per_theme(db):
    async with db.write() as conn:
        await seed_poll(conn, GUILD, closed_at=T0, ballots={1: 0, 2: 2, 3: 2}, theme="rights")
        await seed_poll(conn, GUILD, closed_at=T0 + timedelta(days=1), ballots={1: 0, 2: 2}, theme="rights")
        await seed_poll(conn, GUILD, closed_at=T0 + timedelta(days=2), ballots={1: 1, 2: 1}, theme="balance")
        await seed_poll(conn, OTHER, closed_at=T0, ballots={1: 2}, theme="balance")
    async with db.read() as conn:
        me = await store.member_compass(conn, GUILD, 1)
        nobody = await store.member_compass(conn, GUILD, 4242)
    assert me.member.n == 3 and math.isclose(me.member.mean, -2 / 3)
    assert [t for t, _, _ in me.themes] == ["rights", "balance"]
    _theme, mine, server = me.themes[0]
    assert (mine.mean, mine.n) == (-1.0, 2)
    assert math.isclose(server.mean, 1 / 5) and server.n == 5
    assert me.server.n == 7
    assert nobody.member.n == 0 and nobody.themes == [] and nobody.server.n == 7


async def test_shift_counts_first_against_final_vote(db):
    async with db.write() as conn:
        moved = await seed_poll(
            conn,
            GUILD,
            closed_at=T0,
            ballots={1: 2, 2: 0, 3: 1},
            history=[
                (1, "cast", 0),
                (2, "cast", 0),
                (2, "change", 2),
                (2, "change", 0),
                (3, "cast", 0),
                (4, "cast", 1),
                (4, "withdraw", None),
            ],
        )
        await seed_poll(conn, GUILD, closed_at=T0 + timedelta(days=1), ballots={1: 0}, history=[(1, "cast", 2)])
        await seed_poll(conn, GUILD, closed_at=T0, ballots={5: 0}, history=[(5, "cast", 2)], status="open")
    async with db.read() as conn:
        shifts = await store.shift_data(conn, GUILD)
    per = shifts.per_poll[moved]
    assert (per.voters, per.changed, per.withdrew, per.toward_community) == (4, 2, 1, 2)  # 1: -1 -> +1, 3: -1 -> 0
    assert shifts.overall.changed == 3 and shifts.members == 4 and shifts.members_changed == 2


# --- property: aggregates equal a recomputation from the rows ----------------------------------------

poll_strategy = st.tuples(
    st.integers(0, 120),  # day offset
    st.sampled_from([None, "balance", "rights"]),
    st.dictionaries(st.integers(1, 30), st.integers(0, 2), max_size=12),
)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    path = tmp_path_factory.mktemp("prop") / "prop.db"

    async def make():
        database = await Database.open(f"sqlite+aiosqlite:///{path}")
        await database.close()

    asyncio.run(make())
    return path


_guilds = iter(range(10**15, 10**16))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(poll_strategy, max_size=10), st.sampled_from([None, "balance"]), st.integers(0, 100))
def test_property_aggregate_series_equals_recount(migrated, polls_spec, theme, since_days):
    guild = next(_guilds)

    async def run():
        database = await Database.open(f"sqlite+aiosqlite:///{migrated}", migrate=False)
        try:
            async with database.write() as conn:
                for day, poll_theme, ballots in polls_spec:
                    await seed_poll(
                        conn,
                        guild,
                        closed_at=T0 + timedelta(days=day, hours=day % 7),
                        ballots=ballots,
                        theme=poll_theme,
                    )
            since = (T0 + timedelta(days=since_days)).date()
            async with database.read() as conn:
                for window in (None, since):
                    fast = await store.weekly_series(conn, guild, theme=theme, since=window)
                    slow = await store.series_from_votes(conn, guild, theme=theme, since=window)
                    assert_same_series(fast, slow)
                    for p in fast:
                        assert p.leaning.mean is None or -1 <= p.leaning.low <= p.leaning.mean <= p.leaning.high <= 1
        finally:
            await database.close()

    asyncio.run(run())


async def test_placement_data_reads_final_votes_of_closed_polls_only(db: Database):
    closed = datetime(2026, 3, 1, 12, tzinfo=UTC)
    async with db.write() as conn:
        a = await seed_poll(conn, GUILD, closed_at=closed, ballots={1: 0, 2: 2}, question="First?")
        b = await seed_poll(conn, GUILD, closed_at=closed, ballots={1: 1}, question="Second?")
        await seed_poll(conn, GUILD, closed_at=closed, ballots={1: 2}, status="open")
        await seed_poll(conn, GUILD + 1, closed_at=closed, ballots={1: 0})  # another server
    async with db.read() as conn:
        data = await store.placement_data(conn, GUILD)
    assert sorted(data.votes) == [(a, 1, 0, -1.0), (a, 2, 2, 1.0), (b, 1, 1, 0.0)]
    assert data.labels[(a, 2)] == "Us first" and data.questions == {a: "First?", b: "Second?"}
