"""Security: no bot token and no interaction token in any log line (docs/RELIABILITY.md, commitment 12)."""

from __future__ import annotations

import logging

import pytest

from bot.config import configure_logging
from tests.harness import Harness


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_no_token_in_any_log_line(tmp_path, level):
    root = logging.getLogger()
    saved = (root.level, {name: logging.getLogger(name).level for name in ("discord.http", "discord.gateway")})
    collect = Collect()
    collect.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root.addHandler(collect)
    try:
        configure_logging(level)
        async with Harness(tmp_path) as h:
            interactions = [await h.slash(m, "about") for m in h.members]
            for ix in interactions:
                await ix.response()
            await h.reply(h.mod, "help")
            secrets = [h.sandbox.token, *(ix.token for ix in interactions)]
    finally:
        root.removeHandler(collect)
        root.setLevel(saved[0])
        for name, lvl in saved[1].items():
            logging.getLogger(name).setLevel(lvl)
    assert collect.lines, "the bot logged nothing at all; the test would prove nothing"
    leaks = [line for line in collect.lines for secret in secrets if secret in line]
    assert leaks == []
