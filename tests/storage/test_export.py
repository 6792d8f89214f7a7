"""CSV export: one row per closed poll with the right counts and leaning, and no user id anywhere."""

from __future__ import annotations

import csv
import io
import math
from datetime import timedelta

from sqlalchemy import delete

from bot.domain.leaning import poll_leaning
from bot.storage import privacy
from bot.storage.export import export_csv
from bot.storage.tables import votes
from tests.storage.test_leaning_queries import GUILD, OTHER, T0, seed_poll

ALICE, BOB, CAROL = 311_111_111_111_111_111, 322_222_222_222_222_222, 333_333_333_333_333_333


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_export_rows_counts_and_no_user_ids(db):
    async with db.write() as conn:
        await seed_poll(
            conn,
            GUILD,
            closed_at=T0,
            ballots={ALICE: 0, BOB: 2, CAROL: 2},
            theme="rights",
            question="Who decides?",
            prompt_key="builtin/who-decides",
            history=[(ALICE, "cast", 2)],
        )
        await seed_poll(conn, GUILD, closed_at=T0 + timedelta(days=1), ballots={}, theme=None, prompt_key=None)
        await seed_poll(conn, GUILD, closed_at=T0 + timedelta(days=2), ballots={ALICE: 1}, status="open")
        await seed_poll(conn, OTHER, closed_at=T0, ballots={BOB: 0}, question="Elsewhere?")
    text = await export_csv(db, GUILD)
    for user in (ALICE, BOB, CAROL):
        assert str(user) not in text
    rows = rows_of(text)
    assert len(rows) == 2  # closed polls of this server only
    first, empty = rows
    assert first["date"] == T0.date().isoformat()
    assert (first["prompt_id"], first["theme"], first["question"]) == ("builtin/who-decides", "rights", "Who decides?")
    assert [first[f"option_{i}_count"] for i in (1, 2, 3)] == ["1", "0", "2"]
    assert [first[f"option_{i}_position"] for i in (1, 2, 3)] == ["-1.00", "+0.00", "+1.00"]
    assert first["option_4"] == "" and first["voters"] == "3"
    expected = poll_leaning({-1.0: 1, 1.0: 2})
    for column, value in (("leaning", expected.mean), ("ci_low", expected.low), ("ci_high", expected.high)):
        assert math.isclose(float(first[column]), value, abs_tol=1e-4)
    assert first["options"] == "Me first: 1; Both: 0; Us first: 2"
    assert empty["voters"] == "0" and empty["leaning"] == "" and empty["theme"] == ""


async def test_export_keeps_totals_after_forget_me(db):
    async with db.write() as conn:
        await seed_poll(conn, GUILD, closed_at=T0, ballots={ALICE: 0, BOB: 2})
        await privacy.forget_member(conn, ALICE)
        await conn.execute(delete(votes))
    (row,) = rows_of(await export_csv(db, GUILD))
    assert row["voters"] == "2" and row["option_1_count"] == "1"


async def test_export_neutralises_spreadsheet_formulas(db):
    async with db.write() as conn:
        await seed_poll(
            conn,
            GUILD,
            closed_at=T0,
            ballots={},
            question='=HYPERLINK("http://x","click")',
            options=[("+1", 1.0), ("@a", -1.0)],
        )
    (row,) = rows_of(await export_csv(db, GUILD))
    assert row["question"].startswith("'=")
    assert row["option_1"] == "'+1" and row["option_2"] == "'@a"


async def test_export_of_an_unknown_server_is_just_the_header(db):
    text = await export_csv(db, 42)
    assert text.splitlines() == [text.strip()]
    assert text.startswith("date,prompt_id,theme,question,options,option_1,")
