"""Load: L1 (votes across many servers), L2 (sequential changes), L3 (triple clicks), L5 (native polls
with lost gateway events). Fast variants run by default; the full figures are ``soak`` cases."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

import pytest

from bot.storage import guilds as guild_store
from tests.reliability.support import (
    DEADLINE,
    check_database,
    click,
    eventually,
    gather_limited,
    p99,
    post_poll,
    stored_votes,
    world,
)

LIVE_INTERVAL = 5.0


async def run_l1(
    tmp_path, summary, *, servers: int, members: int, case: str, concurrency: int = 50, timing: bool = True
) -> None:
    """``timing``: also hold the reply p99 to its 1 s bar (wall clock: only on a quiet machine). Every
    click must be answered within Discord's deadline either way, or it is not acknowledged."""
    async with world(tmp_path, servers=servers, members=members) as (h, extra):
        async with h.db.write() as conn:
            for s in extra:
                await guild_store.ensure(conn, s.guild.id, now=h.clock.now())
                await guild_store.update_settings(conn, s.guild.id, show_live_counts=True)
        polls = {}
        for s in extra:
            polls[s.guild.id] = await post_poll(h, s.channel)
        rng = random.Random(1)
        plan = [(s, m, rng.randrange(3)) for s in extra for m in s.members]
        rng.shuffle(plan)
        clicks = await gather_limited(
            (click(h.sandbox, s.channel.id, *reversed(polls[s.guild.id]), idx, m.id) for s, m, idx in plan),
            concurrency,
        )
        stored = await stored_votes(h.db)
        expected = {(polls[s.guild.id][0], m.id): idx for s, m, idx in plan}
        acked = [c for c in clicks if c.acked]
        lost = sum(1 for c in acked if stored.get((c.poll_id, c.user_id)) != c.idx)
        double = len(stored) - len(set(stored) & set(expected))
        lat = [c.latency for c in clicks]
        # Live tally edits: at most one per poll per 5 s (sandbox clock: request arrival).
        edits = defaultdict(list)
        message_of = {mid: pid for pid, mid in polls.values()}
        for rec in h.sandbox.requests:
            if rec.method == "PATCH" and rec.route == "/channels/{channel_id}/messages/{message_id}":
                mid = int(rec.path.rsplit("/", 1)[1])
                if mid in message_of:
                    edits[mid].append(rec.at)
        closest = min(
            (b - a for times in edits.values() for a, b in zip(sorted(times), sorted(times)[1:], strict=False)),
            default=LIVE_INTERVAL,
        )
        await check_database(h.db)
        summary(
            case,
            "load",
            sent=len(plan),
            acked=len(acked),
            stored=len(stored),
            lost=lost,
            double=double,
            p99=f"{p99(lat):.3f}s",
            edits=sum(map(len, edits.values())),
            in_flight=concurrency,
        )
        assert len(acked) == len(plan), [c.text for c in clicks if not c.acked][:3]
        assert all(c.ephemeral for c in clicks)
        assert stored == expected
        assert lost == 0 and double == 0
        assert max(lat) < DEADLINE, max(lat)
        if timing:
            assert p99(lat) <= 1.0, p99(lat)
        assert set(edits) == set(message_of)  # every poll showed live counts
        assert closest >= LIVE_INTERVAL - 0.05, closest


async def test_l1_votes_across_servers_fast(tmp_path, summary):
    await run_l1(tmp_path, summary, servers=10, members=30, case="L1 300 votes/10 servers", timing=False)


@pytest.mark.timing
async def test_l1_votes_across_servers_p99_under_1s(tmp_path, summary):
    await run_l1(tmp_path, summary, servers=10, members=30, case="L1 300 votes/10 servers, p99 bar")


@pytest.mark.soak
@pytest.mark.timeout(300)
async def test_l1_votes_across_servers_soak(tmp_path, summary):
    await run_l1(tmp_path, summary, servers=100, members=100, case="L1 10,000 votes/100 servers")


async def run_l2(tmp_path, summary, *, members: int, changes: int, case: str) -> None:
    async with world(tmp_path) as (h, _):
        crowd = [h.sandbox.add_member(h.guild.id, f"l2-{i}") for i in range(members)]
        poll_id, message_id = await post_poll(h)
        rng = random.Random(2)
        last: dict[int, int] = {}
        sent = acked = 0
        lat: list[float] = []

        async def member(m):
            nonlocal sent, acked
            prev = None
            for _ in range(changes):
                idx = rng.choice([i for i in range(3) if i != prev])
                c = await click(h.sandbox, h.channel.id, message_id, poll_id, idx, m.id)
                sent += 1
                lat.append(c.latency)
                if c.acked:
                    acked += 1
                prev = last[m.id] = idx

        await gather_limited((member(m) for m in crowd), 50)
        stored = await stored_votes(h.db)
        await check_database(h.db)
        lost = sum(1 for u, idx in last.items() if stored.get((poll_id, u)) != idx)
        double = len(stored) - len(last)
        async with h.db.read() as conn:
            events = (
                await conn.exec_driver_sql("SELECT count(*) FROM vote_events WHERE poll_id = ?", (poll_id,))
            ).scalar_one()
        summary(
            case, "load", sent=sent, acked=acked, stored=len(stored), lost=lost, double=double, p99=f"{p99(lat):.3f}s"
        )
        assert acked == sent == members * changes
        assert {u: i for (_p, u), i in stored.items()} == last
        assert events == members * changes  # one cast, then every change, each recorded once
        assert lost == 0 and double == 0


async def test_l2_sequential_changes_fast(tmp_path, summary):
    await run_l2(tmp_path, summary, members=200, changes=5, case="L2 200 members x 5 changes")


@pytest.mark.soak
@pytest.mark.timeout(300)
async def test_l2_sequential_changes_soak(tmp_path, summary):
    await run_l2(tmp_path, summary, members=2000, changes=5, case="L2 2,000 members x 5 changes")


async def run_l3(tmp_path, summary, *, members: int, case: str) -> None:
    async with world(tmp_path) as (h, _):
        crowd = [h.sandbox.add_member(h.guild.id, f"l3-{i}") for i in range(members)]
        poll_id, message_id = await post_poll(h)

        async def triple(m):
            # Three clicks within 50 ms: sent back to back, not waiting for the answers.
            ixs = [await h.sandbox.click(h.channel.id, message_id, f"poll:vote:{poll_id}:1", m.id) for _ in range(3)]
            return [await ix.response(timeout=10) for ix in ixs], ixs

        results = await gather_limited((triple(m) for m in crowd), 100)
        stored = await stored_votes(h.db)
        await check_database(h.db)
        answers = [first for firsts, _ in results for first in firsts]
        rejected = sum(len(ix.rejected_callbacks) for _, ixs in results for ix in ixs)
        multi = sum(1 for _, ixs in results for ix in ixs if len(ix.callbacks) != 1)
        texts = []
        for _firsts, ixs in results:
            for ix in ixs:
                if ix.callbacks[0]["type"] == 5:  # deferred under load: the answer is the follow-up
                    followups = await h.sandbox.wait_for(lambda ix=ix: ix.followups, timeout=10)
                    texts.append(followups[0].get("content", ""))
                else:
                    texts.append((ix.callbacks[0].get("data") or {}).get("content", ""))
        casts = sum(1 for text in texts if text.startswith("You chose"))
        summary(
            case,
            "load",
            sent=3 * members,
            answered=len(answers),
            stored=len(stored),
            lost=members - len(stored),
            double=casts - members,
        )
        assert len(stored) == members and set(stored.values()) == {1}
        assert rejected == 0 and multi == 0
        assert casts == members  # the other two clicks say "You already chose"


# Every click answered within Discord's 3 s, on the wall clock: with the suite's other worker competing
# for the 2 cores this fails for reasons that are not the code's, so it runs in the serial timing step.
@pytest.mark.timing
async def test_l3_triple_clicks_fast(tmp_path, summary):
    await run_l3(tmp_path, summary, members=200, case="L3 200 members x 3 clicks")


@pytest.mark.soak
@pytest.mark.timeout(300)
async def test_l3_triple_clicks_soak(tmp_path, summary):
    await run_l3(tmp_path, summary, members=1000, case="L3 1,000 members x 3 clicks")


async def run_l5(tmp_path, summary, *, polls: int, voters: int, case: str) -> None:
    async with world(tmp_path) as (h, _):
        sb = h.sandbox
        crowd = [sb.add_member(h.guild.id, f"l5-{i}") for i in range(voters)]
        posted = [await post_poll(h, style="native") for _ in range(polls)]
        service = h.bot.polls
        rng = random.Random(5)
        truth: dict[tuple[int, int], int] = {}
        seen: dict[tuple[int, int], int] = {}  # what the delivered events alone would store
        dropped = events = 0

        def vote(poll_id, message_id, user, answer, keep):
            nonlocal dropped, events
            key = (poll_id, user)
            prev = truth.get(key)
            if prev == answer:
                return
            for _ in range(2 if prev is not None else 1):
                events += 1
                dropped += not keep
            if keep:
                seen[key] = answer
            truth[key] = answer
            sb.poll_vote(h.channel.id, message_id, user, answer + 1, dispatch=keep)

        for poll_id, message_id in posted:
            # The first event of each poll primes the bot's message -> poll cache, so later events are
            # queued in the order they arrive.
            vote(poll_id, message_id, crowd[0].id, 0, True)
            await eventually(lambda pid=poll_id: _has(h, pid, crowd[0].id))
            for m in crowd[1:]:
                vote(poll_id, message_id, m.id, rng.randrange(3), rng.random() >= 0.2)
                if rng.random() < 0.15:  # a change of mind, whose events may be lost too
                    vote(poll_id, message_id, m.id, rng.randrange(3), rng.random() >= 0.2)
        expected_seen = dict(seen)

        async def delivered_applied():
            return await stored_votes(h.db) == expected_seen

        await eventually(delivered_applied)
        assert dropped > 0 and expected_seen != truth  # the lost events made a difference to recover

        done = asyncio.Event()
        original = service.reconcile

        async def reconcile_and_signal(*args, **kwargs):
            try:
                await original(*args, **kwargs)
            finally:
                done.set()

        service.reconcile = reconcile_and_signal
        await sb.invalidate_session()  # a new READY: on_ready fires again and reconciliation runs
        await asyncio.wait_for(done.wait(), 60)
        stored = await stored_votes(h.db)
        want = {}
        for poll_id, message_id in posted:
            for answer, users in sb.poll_voters(message_id).items():
                for u in users:
                    want[(poll_id, u)] = answer - 1
        assert want == truth
        await check_database(h.db)
        lost = len(set(want.items()) - set(stored.items()))
        double = len(set(stored.items()) - set(want.items()))
        summary(
            case,
            "load",
            voters=len(want),
            events=events,
            dropped=dropped,
            stored=len(stored),
            lost=lost,
            double=double,
        )
        assert stored == want


async def _has(h, poll_id: int, user_id: int) -> bool:
    return (poll_id, user_id) in await stored_votes(h.db)


async def test_l5_native_polls_lost_events_fast(tmp_path, summary):
    await run_l5(tmp_path, summary, polls=5, voters=40, case="L5 5 native polls x 40, 20% lost")


@pytest.mark.soak
@pytest.mark.timeout(300)
async def test_l5_native_polls_lost_events_soak(tmp_path, summary):
    await run_l5(tmp_path, summary, polls=50, voters=100, case="L5 50 native polls x 100, 20% lost")
