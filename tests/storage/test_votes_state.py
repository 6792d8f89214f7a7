"""A hypothesis state machine over polls in a real SQLite file.

Rules: create, vote (including forged clicks: wrong server, wrong message, option out of range),
change, withdraw, a concurrent burst, close, delete the message, reopen the database.
Invariants: tally = recount of rows = the model; one row per member per poll; no vote after close;
no row crosses servers; closed polls keep their final counts.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bot.domain.clock import FakeClock
from bot.domain.packs import Dilemma, Option
from bot.scheduler import Scheduler
from bot.services.polls import PollService
from bot.storage import polls as store
from bot.storage.database import Database
from bot.storage.vote_writer import Mode, Outcome, VoteRequest
from tests.sqlite_template import migrated_sqlite

NOW = datetime(2026, 5, 1, 9, tzinfo=UTC)
GUILDS = (10, 20)
USERS = st.integers(1, 6)
OPTIONS = 3
TIMEOUT = 10


class _Message:
    def __init__(self, edits: list[int], message_id: int) -> None:
        self.edits, self.id = edits, message_id

    async def edit(self, **kwargs) -> None:
        self.edits.append(self.id)


class _Channel:
    """Stands in for the channel: records result edits (the e2e tests cover the real ones)."""

    def __init__(self, edits: list[int]) -> None:
        self.edits = edits

    def get_partial_message(self, message_id: int) -> _Message:
        return _Message(self.edits, message_id)


class PollMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp())
        self.path = self.dir / "state.db"
        self.clock = FakeClock(NOW)
        self.polls: dict[int, dict] = {}  # id -> {"guild", "message", "status"}
        self.votes: dict[tuple[int, int], int] = {}
        self.finals: dict[int, dict[int, int]] = {}
        self.next_message = 5_000
        self.edits: list[int] = []
        self.run(self._open())

    def run(self, coro):
        return self.loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT))

    async def _open(self) -> None:
        if not self.path.exists():
            await migrated_sqlite(self.path)
        self.db = await Database.open(f"sqlite+aiosqlite:///{self.path}")
        bot = SimpleNamespace(
            db=self.db,
            clock=self.clock,
            scheduler=Scheduler(self.db, self.clock),
            get_partial_messageable=lambda channel_id, guild_id=None: _Channel(self.edits),
            get_channel=lambda channel_id: None,  # no gateway cache: permissions unknown, the bot tries
            guild_available=lambda guild_id: True,  # no outage: a deleted message is a moderator's doing
        )
        self.service = PollService(bot)

    async def _close_db(self) -> None:
        await self.service.writer.stop()
        await self.db.close()

    def teardown(self) -> None:
        try:
            self.run(self._close_db())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------------

    def pick(self, data) -> int | None:
        if not self.polls:
            return None
        return data.draw(st.sampled_from(sorted(self.polls)))

    def expected(self, poll_id: int, guild: int, message: int | None, user: int, idx: int | None, mode: str) -> str:
        poll = self.polls.get(poll_id)
        if (
            poll is None
            or poll["guild"] != guild
            or (message is not None and poll["message"] != message)
            or poll["status"] != "open"
            or (idx is not None and not 0 <= idx < OPTIONS)
        ):
            return Outcome.UNAVAILABLE
        prev = self.votes.get((poll_id, user))
        if mode == Mode.WITHDRAW:
            if prev is None:
                return Outcome.NO_VOTE
            del self.votes[(poll_id, user)]
            return Outcome.WITHDRAWN
        if prev == idx:
            return Outcome.SAME
        self.votes[(poll_id, user)] = idx
        return Outcome.CAST if prev is None else Outcome.CHANGED

    def request(self, poll_id, guild, message, user, idx, mode=Mode.CLICK) -> VoteRequest:
        return VoteRequest(poll_id, guild, user, idx, mode=mode, message_id=message, role_ids=frozenset())

    # -- rules -------------------------------------------------------------------------------------

    @rule(guild=st.sampled_from(GUILDS))
    def create(self, guild: int) -> None:
        dilemma = Dilemma("Q?", tuple(Option(f"o{i}", -1.0 + i) for i in range(OPTIONS)))

        async def go() -> int:
            async with self.db.write() as conn:
                poll_id = await self.service.create(
                    conn, guild_id=guild, channel_id=1, dilemma=dilemma, closes_at=NOW + timedelta(days=1)
                )
            self.next_message += 1
            await self.service.attach_message(poll_id, self.next_message)
            return poll_id

        poll_id = self.run(go())
        self.polls[poll_id] = {"guild": guild, "message": self.next_message, "status": "open"}

    @precondition(lambda self: self.polls)
    @rule(
        data=st.data(),
        user=USERS,
        idx=st.integers(0, OPTIONS),  # OPTIONS itself is out of range: a forged custom_id
        forge=st.sampled_from(["none", "none", "none", "guild", "message", "poll"]),
    )
    def vote(self, data, user: int, idx: int, forge: str) -> None:
        poll_id = self.pick(data)
        poll = self.polls[poll_id]
        guild, message = poll["guild"], poll["message"]
        if forge == "guild":
            guild = next(g for g in GUILDS if g != guild)
        elif forge == "message":
            message += 100_000
        elif forge == "poll":
            poll_id += 1_000
        want = self.expected(poll_id, guild, message, user, idx, Mode.CLICK)
        got = self.run(self.service.writer.vote(self.request(poll_id, guild, message, user, idx)))
        assert got.outcome == want, (got, want)

    @precondition(lambda self: self.polls)
    @rule(data=st.data(), user=USERS)
    def withdraw(self, data, user: int) -> None:
        poll_id = self.pick(data)
        guild = self.polls[poll_id]["guild"]
        want = self.expected(poll_id, guild, None, user, None, Mode.WITHDRAW)
        got = self.run(self.service.writer.vote(self.request(poll_id, guild, None, user, None, Mode.WITHDRAW)))
        assert got.outcome == want, (got, want)

    @precondition(lambda self: self.polls)
    @rule(data=st.data(), clicks=st.lists(st.tuples(USERS, st.integers(0, OPTIONS - 1)), min_size=2, max_size=30))
    def burst(self, data, clicks) -> None:
        """Many clicks submitted at once: they share transactions and apply in order."""
        poll_id = self.pick(data)
        poll = self.polls[poll_id]
        wants = [self.expected(poll_id, poll["guild"], poll["message"], u, i, Mode.CLICK) for u, i in clicks]
        reqs = [self.request(poll_id, poll["guild"], poll["message"], u, i) for u, i in clicks]

        async def submit_all():
            return await asyncio.gather(*(self.service.writer.submit(r) for r in reqs))

        got = self.run(submit_all())
        assert [g.outcome for g in got] == wants

    @precondition(lambda self: self.polls)
    @rule(data=st.data())
    def close(self, data) -> None:
        poll_id = self.pick(data)
        before = len(self.edits)
        self.run(self.service.close(poll_id))
        # The result is edited in once, and only when the poll had a live message to edit.
        assert len(self.edits) - before == (1 if self.polls[poll_id]["status"] == "open" else 0)
        if self.polls[poll_id]["status"] == "open":
            self.polls[poll_id]["status"] = "closed"
            self.finals[poll_id] = self.model_tally(poll_id)

    @precondition(lambda self: self.polls)
    @rule(data=st.data())
    def delete_message(self, data) -> None:
        poll_id = self.pick(data)
        self.run(self.service._mark_deleted(poll_id))
        if self.polls[poll_id]["status"] == "open":
            self.finals[poll_id] = self.model_tally(poll_id)
        self.polls[poll_id]["status"] = "deleted"

    @rule()
    def reopen(self) -> None:
        self.run(self._close_db())
        self.run(self._open())

    # -- invariants --------------------------------------------------------------------------------

    def model_tally(self, poll_id: int) -> dict[int, int]:
        counts: dict[int, int] = {}
        for (p, _u), idx in self.votes.items():
            if p == poll_id:
                counts[idx] = counts.get(idx, 0) + 1
        return counts

    @invariant()
    def rows_match_the_model(self) -> None:
        async def check():
            async with self.db.read() as conn:
                rows = (await conn.exec_driver_sql("SELECT poll_id, user_id, option_idx, guild_id FROM votes")).all()
                dupes = (
                    await conn.exec_driver_sql(
                        "SELECT count(*) FROM "
                        "(SELECT poll_id, user_id FROM votes GROUP BY 1, 2 HAVING count(*) > 1) AS dupes"
                    )
                ).scalar()
                crossing = (
                    await conn.exec_driver_sql(
                        "SELECT count(*) FROM votes v JOIN polls p ON p.id = v.poll_id WHERE v.guild_id != p.guild_id"
                    )
                ).scalar()
                tallies = {pid: await store.tally(conn, pid) for pid in self.polls}
                stored = {pid: await store.get(conn, pid) for pid in self.polls}
            return rows, dupes, crossing, tallies, stored

        rows, dupes, crossing, tallies, stored = self.run(check())
        assert {(p, u): i for p, u, i, _g in rows} == self.votes
        assert dupes == 0 and crossing == 0
        for pid, poll in self.polls.items():
            assert tallies[pid] == self.model_tally(pid)
            assert stored[pid].status == poll["status"]
            if pid in self.finals:
                finals = {o.idx: o.final_count for o in stored[pid].options}
                assert finals == {i: self.finals[pid].get(i, 0) for i in range(OPTIONS)}
                assert stored[pid].final_voters == sum(self.finals[pid].values())


PollMachine.TestCase.settings = settings(
    max_examples=20,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPollStateMachine = PollMachine.TestCase
