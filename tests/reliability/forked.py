"""Bot processes forked from one that has already imported the bot.

A fresh interpreter spends about a second of CPU importing discord.py, SQLAlchemy and aiohttp before
the bot does anything, and the reliability tests start the bot some thirty times. Here a
``multiprocessing`` fork server imports the bot once per test process, and every start forks it. The
child is still a process of its own: its own pid, environment, working directory and output, stopped
with real signals (SIGKILL, SIGTERM); it runs the same entry points as the command line
(``bot.__main__.main``, :func:`tests.reliability.botproc.main`). What only a fresh interpreter checks,
the console script and the imports themselves, is ``tests/e2e/test_cli_live.py``'s,
``tests/unit/test_runtime.py``'s and ``tests/install``'s business.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Literal

Entry = Literal["run", "botproc"]
ROOT = Path(__file__).resolve().parents[2]

# Imported once in the fork server; each child starts with them loaded.
PRELOAD = ["bot.__main__", "bot.app", "bot.runtime", "tests.reliability.botproc"]


def _child(argv: Sequence[str] | None, env: dict[str, str], cwd: str, out: str, err: str) -> None:
    """``commonground <argv>``, or the reliability tests' bot on a fake clock when ``argv`` is None."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for path, fd in ((out, 1), (err, 2)):
        opened = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    if argv is None:
        from tests.reliability import botproc

        sys.argv = ["botproc"]
        sys.exit(asyncio.run(botproc.main()))
    from bot.__main__ import main

    sys.argv = ["commonground", *argv]
    sys.exit(main(list(argv)))


def _process(argv: Sequence[str] | None, env: Mapping[str, str], cwd: Path, out: Path, err: Path) -> BaseProcess:
    """Daemonic: one a failed test left running is ended when the test process exits."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)  # read when the fork server starts: once per test process
    args = (None if argv is None else tuple(argv), dict(env), str(cwd), str(out), str(err))
    return context.Process(target=_child, args=args, daemon=True)


class ForkedProcess:
    """The part of ``asyncio.subprocess.Process`` the tests use, for a child of the fork server."""

    def __init__(self, process: BaseProcess) -> None:
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


async def start(entry: Entry, *, env: Mapping[str, str], log: Path, cwd: Path = ROOT) -> ForkedProcess:
    """Start the bot (``commonground run``, or ``botproc`` on a fake clock) with ``env``, its output
    appended to ``log``."""
    process = _process(["run"] if entry == "run" else None, env, cwd, log, log)
    # In a thread: the first start waits for the fork server's imports, and the sandbox shares this loop.
    await asyncio.to_thread(process.start)
    return ForkedProcess(process)


def run(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path = ROOT, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``commonground <argv>`` to its end, reported as ``subprocess.run(..., capture_output=True,
    text=True)`` would."""
    with tempfile.TemporaryDirectory() as folder:
        out, err = Path(folder, "stdout"), Path(folder, "stderr")
        process = _process(argv, env, cwd, out, err)
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired(["commonground", *argv], timeout)
        code = process.exitcode
        return subprocess.CompletedProcess(["commonground", *argv], code, out.read_text(), err.read_text())
