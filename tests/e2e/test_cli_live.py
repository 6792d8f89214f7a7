"""The real command line against the sandbox: `commonground sync` registers the commands,
`commonground run` serves a member and stops cleanly on SIGTERM (as `docker stop` sends it)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys

from bot.sandbox.server import Sandbox


def _env(sb: Sandbox, db_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DATABASE_URL", "LOG_LEVEL"))}
    env.update(
        DISCORD_TOKEN=sb.token,
        DISCORD_API_BASE=sb.api_base,
        DISCORD_GATEWAY_URL=sb.gateway_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{db_path}",
        LOG_LEVEL="INFO",
    )
    return env


async def _commonground(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _read_until(proc: asyncio.subprocess.Process, marker: bytes) -> bytes:
    """The process's log lines up to the one containing ``marker``."""
    assert proc.stderr is not None
    lines = b""
    while marker not in lines:
        line = await proc.stderr.readline()
        if not line:
            raise AssertionError(f"the bot exited before logging {marker!r}: {lines.decode()[-2000:]}")
        lines += line
    return lines


async def test_sync_registers_every_command_in_one_server(tmp_path):
    async with Sandbox() as sb:
        guild = sb.create_guild("Sync")
        proc = await _commonground("sync", "--guild", str(guild.id), env=_env(sb, tmp_path / "db.sqlite"))
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        names = {c["name"] for c in sb.commands(guild.id)}
        assert {"about", "help", "schedule", "poll", "pack", "debate", "leaning", "privacy"} <= names
        assert f"server {guild.id}" in out.decode()
        assert sb.commands() == [], "a guild sync registers nothing globally"


async def test_run_serves_then_stops_cleanly_on_sigterm(tmp_path):
    async with Sandbox() as sb:
        guild = sb.create_guild("Live")
        channel = sb.create_channel(guild.id, "general")
        member = sb.add_member(guild.id, "alice")
        env = _env(sb, tmp_path / "db.sqlite")
        sync = await _commonground("sync", env=env)
        await asyncio.wait_for(sync.communicate(), 60)
        proc = await _commonground("run", env=env)
        try:
            seen = await asyncio.wait_for(_read_until(proc, b"servers reconciled"), 30)
            reply = await (await sb.slash(guild.id, channel.id, member.id, "about")).response(timeout=10)
            assert reply["data"]["embeds"][0]["title"] == "Common Ground"
            proc.send_signal(signal.SIGTERM)
            _out, rest = await asyncio.wait_for(proc.communicate(), 20)
            err = seen + rest
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()[-2000:]
        assert "stopping" in err.decode()
        assert sb.token not in err.decode()
        conn = sqlite3.connect(tmp_path / "db.sqlite")
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("SELECT count(*) FROM guilds").fetchone()[0] == 1
        finally:
            conn.close()


async def test_sync_clear_removes_a_guild_copy_and_leaves_the_global_commands(tmp_path):
    async with Sandbox() as sb:
        guild = sb.create_guild("Sync")
        env = _env(sb, tmp_path / "db.sqlite")
        for args in (("sync",), ("sync", "--guild", str(guild.id))):
            proc = await _commonground(*args, env=env)
            _out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
        assert sb.commands(guild.id) and sb.commands(), "a guild copy beside the global commands: duplicates"
        global_ids = {c["id"] for c in sb.commands()}
        proc = await _commonground("sync", "--guild", str(guild.id), "--clear", env=env)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert sb.commands(guild.id) == []
        assert {c["id"] for c in sb.commands()} == global_ids, "the global commands are untouched"
        assert f"server {guild.id}" in out.decode() and "removed" in out.decode()
        # --clear without --guild would wipe the global commands: refused with a clear line.
        proc = await _commonground("sync", "--clear", env=env)
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2 and "--guild" in err.decode()
        assert {c["id"] for c in sb.commands()} == global_ids
