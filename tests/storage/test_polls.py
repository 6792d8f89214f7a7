"""Polls in a real SQLite file: creation, the vote rules, group commit, close, native sync, search."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from bot.domain import rotation
from bot.domain.clock import FakeClock
from bot.domain.errors import NotFound, UserError
from bot.domain.packs import Dilemma, Option
from bot.scheduler import Scheduler
from bot.services.polls import PollService, close_key
from bot.storage import guilds as guild_store
from bot.storage import jobs as job_store
from bot.storage import polls as store
from bot.storage import vote_writer
from bot.storage.database import Database, scalar
from bot.storage.tables import leaning_weekly, vote_events, votes
from bot.storage.vote_writer import Mode, Outcome, VoteRequest, VoteWriter, process_batch

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)  # a Wednesday
G1, G2 = 111, 222
MSG = 9_000_000_000_000_001
DILEMMA = Dilemma("Who comes first?", (Option("Me", -1.0), Option("Both", 0.0), Option("Us", 1.0)))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def service(db: Database, clock: FakeClock) -> PollService:
    bot = SimpleNamespace(db=db, clock=clock, scheduler=Scheduler(db, clock))
    return PollService(bot)


async def make_poll(service: PollService, guild_id: int = G1, *, message_id: int | None = MSG, theme="balance") -> int:
    async with service.db.write() as conn:
        poll_id = await service.create(
            conn,
            guild_id=guild_id,
            channel_id=5,
            dilemma=DILEMMA,
            closes_at=service.clock.now() + timedelta(hours=24),
            theme=theme,
        )
    if message_id is not None:
        await service.attach_message(poll_id, message_id)
    return poll_id


def click(poll_id: int, user: int, idx: int | None, *, guild=G1, message=MSG, mode=Mode.CLICK, roles=(), joined=None):
    return VoteRequest(
        poll_id, guild, user, idx, mode=mode, message_id=message, role_ids=frozenset(roles), joined_at=joined
    )


async def vote(service: PollService, request: VoteRequest):
    return await asyncio.wait_for(service.writer.vote(request), 5)


async def rows(db: Database, poll_id: int) -> dict[int, int]:
    async with db.read() as conn:
        result = await conn.execute(select(votes.c.user_id, votes.c.option_idx).where(votes.c.poll_id == poll_id))
        return dict(result.all())


async def events(db: Database, poll_id: int) -> list[tuple[int, str, int | None]]:
    async with db.read() as conn:
        result = await conn.execute(
            select(vote_events.c.user_id, vote_events.c.kind, vote_events.c.option_idx)
            .where(vote_events.c.poll_id == poll_id)
            .order_by(vote_events.c.id)
        )
        return [tuple(r) for r in result]


async def test_create_inserts_poll_options_and_arms_close(service: PollService, db: Database):
    poll_id = await make_poll(service, message_id=None)
    async with db.read() as conn:
        poll = await store.get(conn, poll_id)
        job = await job_store.get(conn, close_key(poll_id))
    assert poll is not None and poll.status == "open" and poll.message_id is None and poll.guild_id == G1
    assert [(o.idx, o.label, o.position) for o in poll.options] == [(0, "Me", -1.0), (1, "Both", 0.0), (2, "Us", 1.0)]
    assert job is not None and job.kind == "poll-close" and job.due_at == NOW + timedelta(hours=24)
    assert job.payload == {"poll_id": poll_id}


async def test_create_is_part_of_the_callers_transaction(service: PollService, db: Database):
    async def create_then_fail() -> None:
        async with db.write() as conn:
            await service.create(conn, guild_id=G1, channel_id=5, dilemma=DILEMMA, closes_at=NOW + timedelta(hours=1))
            raise RuntimeError("the debate post failed")

    with pytest.raises(RuntimeError):
        await create_then_fail()
    async with db.read() as conn:
        assert await scalar(conn, "SELECT count(*) FROM polls") == 0
        assert await job_store.count(conn) == 0


@pytest.mark.parametrize(
    ("dilemma", "message"),
    [
        (Dilemma("Q", (Option("only", 0.0),)), "2–5 options"),
        (Dilemma("Q", tuple(Option(str(i), 0.0) for i in range(6))), "2–5 options"),
        (Dilemma("Q", (Option("x" * 56, 0.0), Option("b", 0.0))), "limit is 55"),
        (Dilemma("Q", (Option("a", -1.5), Option("b", 0.0))), "between -1 and \\+1"),
        (Dilemma("", (Option("a", -1), Option("b", 1))), "needs a question"),
        (Dilemma("Q" * 301, (Option("a", -1), Option("b", 1))), "limit is 300"),
        (Dilemma("Q", (Option("Same", -1), Option("same", 1))), "repeats"),
    ],
)
async def test_create_refuses_bad_dilemmas(service: PollService, db: Database, dilemma, message):
    with pytest.raises(UserError, match=message):
        async with db.write() as conn:
            await service.create(conn, guild_id=G1, channel_id=5, dilemma=dilemma, closes_at=NOW + timedelta(hours=1))


async def test_cast_change_same_withdraw(service: PollService, db: Database):
    poll_id = await make_poll(service)
    first = await vote(service, click(poll_id, 1, 0))
    assert (first.outcome, first.option_idx, first.label) == (Outcome.CAST, 0, "Me")
    assert first.closes_at == NOW + timedelta(hours=24)
    changed = await vote(service, click(poll_id, 1, 2))
    assert (changed.outcome, changed.option_idx, changed.previous_idx) == (Outcome.CHANGED, 2, 0)
    same = await vote(service, click(poll_id, 1, 2))
    assert same.outcome == Outcome.SAME
    assert await rows(db, poll_id) == {1: 2}
    gone = await vote(service, click(poll_id, 1, None, message=None, mode=Mode.WITHDRAW))
    assert gone.outcome == Outcome.WITHDRAWN and gone.label == "Us"
    again = await vote(service, click(poll_id, 1, None, message=None, mode=Mode.WITHDRAW))
    assert again.outcome == Outcome.NO_VOTE
    assert await rows(db, poll_id) == {}
    assert await events(db, poll_id) == [(1, "cast", 0), (1, "change", 2), (1, "withdraw", None)]


async def test_forged_clicks_write_nothing(service: PollService, db: Database, clock: FakeClock):
    mine = await make_poll(service)
    other = await make_poll(service, G2, message_id=MSG + 1)
    closed = await make_poll(service, message_id=MSG + 2)
    async with db.write() as conn:
        await store.close(conn, closed, now=NOW)
    forged = [
        click(other, 1, 0, message=MSG),  # another server's poll, named from this server's message
        click(other, 1, 0, message=MSG + 1),  # another server's poll, from its message, but this guild
        click(mine, 1, 0, message=MSG + 99),  # not this poll's message
        click(mine, 1, 3),  # option out of range
        click(mine, 1, 24),
        click(closed, 1, 0, message=MSG + 2),
        click(987654, 1, 0),  # no such poll
        click(2**70, 1, 0),  # digits no row id can hold
        click(mine, 1, None, guild=G2, message=None, mode=Mode.WITHDRAW),
    ]
    results = await asyncio.wait_for(asyncio.gather(*(service.writer.vote(r) for r in forged)), 5)
    assert [r.outcome for r in results] == [Outcome.UNAVAILABLE] * len(forged)
    async with db.read() as conn:
        assert await scalar(conn, "SELECT count(*) FROM votes") == 0
        assert await scalar(conn, "SELECT count(*) FROM vote_events") == 0


async def test_no_vote_at_or_after_the_deadline(service: PollService, db: Database, clock: FakeClock):
    poll_id = await make_poll(service)
    clock.advance(timedelta(hours=24))  # the close job has not run yet: the deadline alone refuses
    assert (await vote(service, click(poll_id, 1, 0))).outcome == Outcome.UNAVAILABLE
    assert await rows(db, poll_id) == {}


async def test_who_may_vote(service: PollService, db: Database):
    poll_id = await make_poll(service)
    async with db.write() as conn:
        await guild_store.update_settings(conn, G1, vote_role_id=77, vote_min_days=7)
    no_role = await vote(service, click(poll_id, 1, 0, roles=[5], joined=NOW - timedelta(days=30)))
    assert (no_role.outcome, no_role.role_id) == (Outcome.NO_ROLE, 77)
    new = await vote(service, click(poll_id, 1, 0, roles=[77], joined=NOW - timedelta(days=2)))
    assert (new.outcome, new.min_days, new.eligible_at) == (Outcome.TOO_NEW, 7, NOW + timedelta(days=5))
    unknown_join = await vote(service, click(poll_id, 1, 0, roles=[77], joined=None))
    assert unknown_join.outcome == Outcome.TOO_NEW
    ok = await vote(service, click(poll_id, 1, 0, roles=[77], joined=NOW - timedelta(days=7)))
    assert ok.outcome == Outcome.CAST
    assert await rows(db, poll_id) == {1: 0}


async def test_close_stores_finals_weekly_aggregates_and_is_idempotent(service: PollService, db: Database):
    poll_id = await make_poll(service, message_id=None, theme="rights")
    for user, idx in [(1, 0), (2, 2), (3, 2), (4, 1)]:
        await vote(service, click(poll_id, user, idx, message=None))
    async with db.write() as conn:
        closed = await store.close(conn, poll_id, now=NOW)
    assert closed is not None and closed.counts == {0: 1, 1: 1, 2: 2}
    assert (closed.moments.n, closed.moments.total, closed.moments.total_sq) == (4, 1.0, 3.0)
    async with db.write() as conn:
        assert await store.close(conn, poll_id, now=NOW) is None
    async with db.read() as conn:
        poll = await store.get(conn, poll_id)
        weekly = (await conn.execute(select(leaning_weekly).order_by(leaning_weekly.c.theme))).all()
    assert poll.status == "closed" and poll.closed_at == NOW
    assert (poll.final_voters, poll.final_total, poll.final_total_sq) == (4, 1.0, 3.0)
    assert [o.final_count for o in poll.options] == [1, 1, 2]
    monday = date(2026, 3, 2)
    assert [tuple(r) for r in weekly] == [(G1, "", monday, 1, 4, 1.0, 3.0), (G1, "rights", monday, 1, 4, 1.0, 3.0)]
    assert (await vote(service, click(poll_id, 9, 0, message=None))).outcome == Outcome.UNAVAILABLE


async def test_service_close_without_a_message_is_idempotent_and_result_shows(service: PollService, db: Database):
    poll_id = await make_poll(service, message_id=None)
    with pytest.raises(UserError, match="still open"):
        await service.result(poll_id)
    await vote(service, click(poll_id, 1, 1, message=None))
    await service.close(poll_id, reason="moderator")
    await service.close(poll_id)
    async with db.read() as conn:
        assert await job_store.get(conn, close_key(poll_id)) is None
        assert await scalar(conn, "SELECT polls FROM leaning_weekly WHERE theme = ''") == 1
    embed, file = await service.result(poll_id)
    assert "1 voter" in embed.fields[0].name and "Both" in embed.fields[0].value and "100%" in embed.fields[0].value
    assert file is not None and file.filename == f"poll-{poll_id}.png"
    with pytest.raises(NotFound):
        await service.result(poll_id, guild_id=G2)
    with pytest.raises(NotFound):
        await service.result(424242)


async def test_group_commit_1000_concurrent_voters(db: Database, service: PollService):
    poll_id = await make_poll(service)
    writer = VoteWriter(db, service.clock)
    requests = []
    last: dict[int, int] = {}
    for user in range(1, 1001):
        for idx in (user % 3, (user + 1) % 3):  # two clicks each, the second a change
            requests.append(click(poll_id, user, idx))
            last[user] = idx
    futures = [writer.submit(r) for r in requests]
    results = await asyncio.wait_for(asyncio.gather(*futures), 30)
    assert all(f.done() for f in futures)
    assert sum(r.outcome == Outcome.CAST for r in results) == 1000
    assert sum(r.outcome == Outcome.CHANGED for r in results) == 1000
    assert await rows(db, poll_id) == last
    assert writer.batches < len(requests) / 100  # grouped, not one commit per vote
    async with db.read() as conn:
        assert await store.tally(conn, poll_id) == {i: sum(1 for v in last.values() if v == i) for i in range(3)}
    assert (await db.self_check()).integrity == "ok"
    await writer.stop()


async def test_both_backends_agree(db: Database, service: PollService, monkeypatch):
    """The engine's fast path (SQLite: one call in aiosqlite's thread; PostgreSQL: two statements on
    asyncpg) decides and writes exactly what the portable Core statements do."""
    poll_id = await make_poll(service)
    other = await make_poll(service, G2, message_id=MSG + 1)

    async def votes_before() -> None:  # votes the batch then changes, withdraws and repeats
        before = [click(poll_id, u, u % 3) for u in range(3, 6)] + [click(other, 1, 0, guild=G2, message=MSG + 1)]
        await asyncio.wait_for(asyncio.gather(*(service.writer.submit(r) for r in before)), 5)

    await votes_before()
    reqs = [click(poll_id, u % 7, u % 3) for u in range(40)]
    reqs += [click(poll_id, 3, None, message=None, mode=Mode.WITHDRAW), click(poll_id, 3, 1)]
    reqs += [click(poll_id, 4, None, message=None, mode=Mode.WITHDRAW), click(poll_id, 9, 2, message=MSG + 1)]
    reqs += [click(other, 1, 2, guild=G2, message=MSG + 1), click(other, 2, 1, guild=G1, message=MSG + 1)]
    reqs += [click(other, 1, 1, guild=G2, message=MSG + 1), click(other, 1, 1, guild=G2, message=MSG + 1)]
    reqs += [click(poll_id + other + 1, 1, 0), click(2**40, 1, 0), click(poll_id, 8, 7)]
    used: list[str] = []
    pick = vote_writer._backend

    async def spy(conn):
        backend = await pick(conn)
        used.append(type(backend).__name__)
        return backend

    monkeypatch.setattr(vote_writer, "_backend", spy)
    async with db.write() as conn:
        fast = await process_batch(conn, reqs, now=NOW)
    fast_rows, fast_events = await rows(db, poll_id), await events(db, poll_id)
    other_rows, other_events = await rows(db, other), await events(db, other)
    outcomes = {r.outcome for r in fast}
    assert outcomes == {Outcome.CAST, Outcome.CHANGED, Outcome.SAME, Outcome.WITHDRAWN, Outcome.UNAVAILABLE}
    assert [r.outcome for r in fast[-3:]] == [Outcome.UNAVAILABLE] * 3  # no such poll, a forged id, no such option
    async with db.write() as conn:
        await conn.exec_driver_sql("DELETE FROM votes")
        await conn.exec_driver_sql("DELETE FROM vote_events")
    await votes_before()

    async def core(conn):
        used.append("_CoreBackend")
        return vote_writer._CoreBackend(conn)

    monkeypatch.setattr(vote_writer, "_backend", core)
    fast_path = "_SqliteBackend" if db.is_sqlite else "_PostgresBackend"
    assert used[0] == fast_path  # the fast path really ran (then the writer re-stored `before` with it)
    used.clear()
    async with db.write() as conn:
        slow = await process_batch(conn, reqs, now=NOW)
    assert used == ["_CoreBackend"]  # then the portable one
    assert slow == fast
    assert await rows(db, poll_id) == fast_rows
    assert await events(db, poll_id) == fast_events
    assert (await rows(db, other), await events(db, other)) == (other_rows, other_events)
    async with db.read() as conn:  # the raw path writes timestamps Core reads back
        stamps = (await conn.execute(select(vote_events.c.at).limit(1))).scalar()
    assert stamps == NOW


async def test_a_group_is_stored_in_the_callers_transaction(db: Database, service: PollService):
    """The fast paths write on the driver's own connection: still inside the caller's transaction, so a
    group is rolled back with it (on PostgreSQL the BEGIN must have gone out before the group's statements)."""
    poll_id = await make_poll(service)

    async def store_then_fail() -> None:
        async with db.write() as conn:
            results = await process_batch(conn, [click(poll_id, 1, 0), click(poll_id, 2, 1)], now=NOW)
            assert [r.outcome for r in results] == [Outcome.CAST, Outcome.CAST]
            raise RuntimeError("the caller fails after the group")

    with pytest.raises(RuntimeError, match="after the group"):
        await store_then_fail()
    assert await rows(db, poll_id) == {}
    assert await events(db, poll_id) == []


async def test_forged_poll_ids_past_the_id_column_find_nothing(db: Database, service: PollService):
    """polls.id is a 32-bit INTEGER on PostgreSQL, which refuses a larger parameter outright: a forged
    custom_id or a typed poll number past it must find nothing, not fail the statement (and with it a
    whole group of other members' votes)."""
    poll_id = await make_poll(service)
    for user, forged in enumerate((2**31, 2**40, 2**63 - 1), 2):
        results = await asyncio.wait_for(
            asyncio.gather(service.writer.vote(click(forged, 1, 0)), service.writer.vote(click(poll_id, user, 1))), 5
        )
        assert [r.outcome for r in results] == [Outcome.UNAVAILABLE, Outcome.CAST]  # one group, the other vote stored
        async with db.read() as conn:
            assert await store.get(conn, forged) is None
            assert await store.search(conn, G1, str(forged), status=None, limit=5) == []
    assert await rows(db, poll_id) == {2: 1, 3: 1, 4: 1}


async def test_failed_commit_resolves_every_future_with_an_error(db: Database, service: PollService, monkeypatch):
    poll_id = await make_poll(service)

    def broken(*args):  # fails inside the group's transaction, after its load, on every engine's path
        raise OSError("disk full")

    monkeypatch.setattr(vote_writer, "_decide", broken)
    futures = [service.writer.submit(click(poll_id, u, 0)) for u in range(10)]
    outcomes = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 5)
    assert all(isinstance(o, vote_writer.VoteStoreError) for o in outcomes)
    assert await rows(db, poll_id) == {}


async def test_native_sync_and_events(db: Database, service: PollService):
    async with db.write() as conn:
        poll_id = await service.create(
            conn, guild_id=G1, channel_id=5, dilemma=DILEMMA, closes_at=NOW + timedelta(hours=2), style="native"
        )
    await service.attach_message(poll_id, MSG)
    added = await service.native_vote(message_id=MSG, guild_id=G1, user_id=1, answer_id=1, add=True)
    assert added.outcome == Outcome.CAST
    await service.native_vote(message_id=MSG, guild_id=G1, user_id=2, answer_id=3, add=True)
    removed_other = await service.native_vote(message_id=MSG, guild_id=G1, user_id=2, answer_id=1, add=False)
    assert removed_other.outcome == Outcome.NO_VOTE  # removing an answer you don't hold changes nothing
    assert await service.native_vote(message_id=MSG + 5, guild_id=G1, user_id=2, answer_id=1, add=True) is None
    assert await rows(db, poll_id) == {1: 0, 2: 2}
    async with db.write() as conn:
        changed = await store.sync_voters(conn, poll_id, {2: 1, 3: 0}, now=NOW)
    assert changed == 3  # 1 withdrawn, 2 changed, 3 cast
    assert await rows(db, poll_id) == {2: 1, 3: 0}
    async with db.write() as conn:
        assert await store.sync_voters(conn, poll_id, {2: 1, 3: 0}, now=NOW) == 0  # idempotent


async def test_search_latest_and_autocomplete(db: Database, service: PollService, clock: FakeClock):
    a = await make_poll(service)
    clock.advance(timedelta(minutes=1))
    async with db.write() as conn:
        b = await service.create(
            conn,
            guild_id=G1,
            channel_id=5,
            dilemma=Dilemma("100% or 5_0? '; DROP TABLE votes; --", DILEMMA.options),
            closes_at=clock.now() + timedelta(hours=1),
        )
    other = await make_poll(service, G2, message_id=None)
    assert await service.latest_poll_id(G1) == b
    assert await service.latest_poll_id(G1, closed_only=True) is None
    async with db.write() as conn:
        await store.close(conn, a, now=clock.now())
    assert await service.latest_poll_id(G1, closed_only=True) == a
    assert [pid for _, pid in await service.autocomplete(G1, "", status=None)] == [b, a]
    assert [pid for _, pid in await service.autocomplete(G1, "", status="open")] == [b]
    assert [pid for _, pid in await service.autocomplete(G1, "100%", status=None)] == [b]
    assert [pid for _, pid in await service.autocomplete(G1, "5_0", status=None)] == [b]
    assert [pid for _, pid in await service.autocomplete(G1, "0%", status=None)] == [b]
    assert [pid for _, pid in await service.autocomplete(G1, str(other), status=None)] == []
    labels = await service.autocomplete(G1, "", status=None)
    assert all(len(label) <= 100 for label, _ in labels)
    async with db.read() as conn:
        assert await scalar(conn, "SELECT count(*) FROM polls") == 3


async def test_debate_polls_vary_their_option_order_in_seeded_pairs(service: PollService):
    orders = []
    for _ in range(6):
        async with service.db.write() as conn:
            poll_id = await service.create(
                conn,
                guild_id=G1,
                channel_id=5,
                dilemma=DILEMMA,
                closes_at=service.clock.now() + timedelta(hours=24),
                vary_order=True,
            )
            orders.append((await store.get(conn, poll_id)).option_order)
    assert orders == [(2, 1, 0) if rotation.reversed_for(G1, i) else (0, 1, 2) for i in range(6)]
    for pair in range(3):
        assert {orders[2 * pair], orders[2 * pair + 1]} == {(0, 1, 2), (2, 1, 0)}
    # An ad-hoc poll keeps its typed order and does not count towards the pairs.
    adhoc = await make_poll(service, message_id=None)
    async with service.db.read() as conn:
        row = await store.get(conn, adhoc)
        assert row.option_order is None and [o.idx for o in row.shown] == [0, 1, 2]
        assert await store.varied_count(conn, G1) == 6
        assert await store.varied_count(conn, G2) == 0


async def test_shown_axis_and_answer_mapping_of_a_stored_order(db: Database):
    async with db.write() as conn:
        await guild_store.ensure(conn, G1, now=NOW)
        options = [("Both", 0.0), ("Us", 1.0), ("Me", -1.0)]
        poll_id = await store.insert_poll(
            conn,
            guild_id=G1,
            channel_id=5,
            question="Q?",
            options=options,
            opened_at=NOW,
            closes_at=NOW + timedelta(hours=1),
            option_order=[1, 0, 2],
        )
        with pytest.raises(ValueError, match="not an order of 3 options"):
            await store.insert_poll(
                conn,
                guild_id=G1,
                channel_id=5,
                question="Q?",
                options=options,
                opened_at=NOW,
                closes_at=NOW + timedelta(hours=1),
                option_order=[0, 0, 2],
            )
    async with db.read() as conn:
        poll = await store.get(conn, poll_id)
    assert [o.label for o in poll.shown] == ["Us", "Both", "Me"]
    assert [o.label for o in poll.by_axis] == ["Me", "Both", "Us"]
    assert [poll.idx_of_answer(a) for a in (0, 1, 2, 3, 4)] == [-1, 1, 0, 2, -1]


async def test_a_vote_group_goes_before_the_jobs_queued_for_the_writer_but_never_starves_them(db, service):
    """Issue 11's busy hour: sixteen jobs' transactions queued for the one writer held votes up to 1.3 s.
    The vote writer's group now goes ahead of the ordinary writers waiting (after the one in progress);
    the ordinary writers still get every other turn, so a stream of votes cannot starve them."""
    poll_id = await make_poll(service)
    writer = VoteWriter(db, service.clock)
    order: list[str] = []
    holding, release = asyncio.Event(), asyncio.Event()

    async def job_write(name: str) -> None:
        async with db.write():
            order.append(name)
            if name == "job0":
                holding.set()
                await release.wait()

    first = asyncio.create_task(job_write("job0"))
    await asyncio.wait_for(holding.wait(), 5)
    queued = [asyncio.create_task(job_write(f"job{i}")) for i in range(1, 6)]
    await asyncio.sleep(0)  # the five jobs wait for the writer, in order
    # A group's turn is recorded as it starts its transaction (the writer notes its wait there), as a job's
    # is: a future's callbacks run only after the lock has passed on, on SQLite and PostgreSQL alike.
    writer._waited = lambda _seconds: order.append("vote2" if "vote" in order else "vote")
    vote = writer.submit(click(poll_id, 1, 0))
    await asyncio.sleep(0.05)
    second = writer.submit(click(poll_id, 2, 1))  # another group, queued while the first waits
    release.set()
    await asyncio.wait_for(asyncio.gather(first, *queued, vote, second), 10)
    await writer.stop()
    assert order.index("vote") < order.index("job1"), order  # before every job queued ahead of it
    assert order.index("job1") < order.index("vote2"), order  # but a job gets the turn after a vote group
    assert sorted(order) == sorted(["job0", "job1", "job2", "job3", "job4", "job5", "vote", "vote2"])


async def test_the_write_lock_passes_on_a_turn_given_to_a_cancelled_waiter(db):
    """Cancelling a writer that waits (a shutdown, a timeout) neither loses the lock nor skips a waiter."""
    lock = db.write_lock
    await lock.acquire()
    cancelled = asyncio.create_task(lock.acquire(urgent=True))
    waiting = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    lock.release()  # the turn goes to the urgent waiter ...
    cancelled.cancel()  # ... which is cancelled before it runs: the turn passes on
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await asyncio.wait_for(waiting, 5)
    assert lock.locked()
    lock.release()
    assert not lock.locked()
    async with db.write() as conn:  # and the database still writes
        await conn.exec_driver_sql("SELECT 1")
