"""Bot processes forked from one that has already imported the bot.

A fresh interpreter spends about a second of CPU importing discord.py, SQLAlchemy and aiohttp before
the bot does anything, and the reliability tests start the bot some thirty times. Here a
``multiprocessing`` fork server imports the bot once per test process, and every start forks it. The
child is still a process of its own: its own pid, environment, working directory and log file, stopped
with real signals (SIGKILL, SIGTERM); it runs the same entry points as the command line
(``bot.__main__.main(["run"])``, :func:`tests.reliability.botproc.main`). What only a fresh
interpreter checks, the console script and the imports themselves, is ``tests/e2e/test_cli_live.py``'s
and ``tests/install``'s business.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

Entry = Literal["run", "botproc"]

# Imported once in the fork server; each child starts with them loaded.
PRELOAD = ["bot.__main__", "bot.app", "bot.runtime", "tests.reliability.botproc"]


def _child(entry: Entry, env: dict[str, str], cwd: str, log: str) -> None:
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    if entry == "run":
        from bot.__main__ import main

        sys.argv = ["commonground", "run"]
        code = main(["run"])
    else:
        from tests.reliability import botproc

        sys.argv = ["botproc"]
        code = asyncio.run(botproc.main())
    sys.exit(code)


class ForkedProcess:
    """The part of ``asyncio.subprocess.Process`` the tests use, for a child of the fork server."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """None while it runs; the exit status, or minus the signal that ended it, as Popen reports."""
        return self._process.exitcode

    def send_signal(self, sig: signal.Signals) -> None:
        if self._process.exitcode is None:
            os.kill(self._process.pid or 0, sig)

    async def wait(self) -> int:
        loop = asyncio.get_running_loop()
        while (code := self._process.exitcode) is None:
            ended: asyncio.Future[None] = loop.create_future()
            loop.add_reader(self._process.sentinel, _settle, ended)
            try:
                await ended
            finally:
                loop.remove_reader(self._process.sentinel)
        return code


def _settle(ended: asyncio.Future[None]) -> None:
    if not ended.done():
        ended.set_result(None)


async def start(entry: Entry, *, env: Mapping[str, str], cwd: Path, log: Path) -> ForkedProcess:
    """Fork a bot process that runs ``entry`` with ``env`` in ``cwd``, its output appended to ``log``.
    Daemonic: one a failed test left running is ended when the test process exits."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)  # read when the fork server starts: once per test process
    process = context.Process(target=_child, args=(entry, dict(env), str(cwd), str(log)), daemon=True)
    # In a thread: the first start waits for the fork server's imports, and the sandbox shares this loop.
    await asyncio.to_thread(process.start)
    return ForkedProcess(process)
