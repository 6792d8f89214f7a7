"""/poll export: a moderator gets the server's closed-poll totals as CSV, with no user ids."""

from __future__ import annotations

import csv
import io

from tests.e2e.test_leaning import answer, seed_camps
from tests.harness import Harness

EXTENSIONS = ("bot.cogs.meta", "bot.cogs.poll")


async def test_export_is_a_private_csv_without_user_ids(tmp_path):
    async with Harness(tmp_path, extensions=EXTENSIONS) as h:
        first, message = await answer(h, h.mod, "poll export")
        assert "nothing to export" in message["content"]
        await seed_camps(h, {0: 5, 2: 5}, polls=4)
        first, message = await answer(h, h.mod, "poll export")
        assert first["data"]["flags"] & 64, "the export is only for the moderator who asked"
        (attachment,) = message["attachments"]
        assert attachment["filename"].endswith(".csv")
        _name, data, _ctype = h.sandbox.attachments[int(attachment["id"])]
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
        assert len(rows) == 4
        assert all(int(row["voters"]) == 10 for row in rows)
        text = data.decode("utf-8")
        assert str(10**17) not in text, "no member id in the export"


async def test_members_cannot_export(tmp_path):
    async with Harness(tmp_path, extensions=EXTENSIONS) as h:
        reply = await h.reply(h.members[0], "poll export")
        assert "Manage Server" in reply["data"]["content"]
        assert not reply["data"].get("attachments")
