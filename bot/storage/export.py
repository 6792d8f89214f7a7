"""A server's closed polls as CSV aggregates: no user ids, nothing that names a member.

Used by ``commonground export --guild ID --out FILE`` and by ``/poll export``.
"""

from __future__ import annotations

import csv
import io

from bot.domain.packs import MAX_OPTIONS
from bot.storage.database import Database
from bot.storage.leaning import poll_finals

BASE_COLUMNS = ["date", "prompt_id", "theme", "question", "options"]
STAT_COLUMNS = ["leaning", "ci_low", "ci_high", "voters"]
# A spreadsheet runs a cell that starts with one of these as a formula; moderators write the questions.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _safe(text: str | None) -> str:
    text = text or ""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def _prompt_id(prompt_key: str | None) -> str:
    # prompt_key is "<pack slug>/<prompt id>"; the id alone is what a pack author recognises, but two
    # packs may share an id, so keep the full key.
    return prompt_key or ""


async def export_csv(db: Database, guild_id: int) -> str:
    """Per closed poll, oldest first: date, prompt id, theme, question, each option's label, position
    and final count, the leaning with its 95% interval, and the number of voters."""
    async with db.read() as conn:
        finals = await poll_finals(conn, guild_id)
    width = max([MAX_OPTIONS, *(len(p.options) for p in finals)])
    header = list(BASE_COLUMNS)
    for i in range(1, width + 1):
        header += [f"option_{i}", f"option_{i}_position", f"option_{i}_count"]
    header += STAT_COLUMNS
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for p in finals:
        lean = p.leaning
        summary = "; ".join(f"{label}: {count}" for label, _, count in p.options)
        row = [p.closed_at.date().isoformat(), _safe(_prompt_id(p.prompt_key)), _safe(p.theme), _safe(p.question)]
        row.append(_safe(summary))
        for i in range(width):
            if i < len(p.options):
                label, position, count = p.options[i]
                row += [_safe(label), f"{position:+.2f}", str(count)]
            else:
                row += ["", "", ""]
        row += [_num(lean.mean), _num(lean.low), _num(lean.high), str(p.moments.n)]
        writer.writerow(row)
    return buf.getvalue()
