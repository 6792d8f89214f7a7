"""The command line: one clear line and exit status 2 for every bad set-up, no data touched."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from bot.__main__ import main
from bot.config import _LOGGER_FLOORS

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "DATABASE_URL", "LOG_LEVEL")}
    base.update(env or {})
    return base


def run_process(*args: str, env: dict[str, str] | None = None) -> Result:
    """``python -m bot ...`` in its own process."""
    done = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=_environment(env),
        cwd=ROOT,
        timeout=60,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
    """``commonground ...`` as ``bot.__main__.main`` runs it, in this process: the environment replaced,
    stdout and stderr captured, and logging set up from scratch (so a log line or a traceback the command
    logs lands in the captured stderr, as in a terminal), then put back. A process start costs ~1 s of
    CPU; the console script is ``sys.exit(main())``, and the tests that need a real process use one
    (``run_process`` below, ``tests/e2e/test_cli_live.py``, ``tests/install``)."""
    root = logging.getLogger()
    floors = {name: logging.getLogger(name).level for name in (*_LOGGER_FLOORS, "discord.client")}
    saved_handlers, saved_level = root.handlers[:], root.level
    out, err = io.StringIO(), io.StringIO()
    root.handlers.clear()  # so configure_logging's basicConfig writes to the captured stderr
    try:
        with (
            mock.patch.dict(os.environ, _environment(env), clear=True),
            contextlib.chdir(cwd or ROOT),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse: --help, a usage error
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, level in floors.items():
            logging.getLogger(name).setLevel(level)
    return Result(code, out.getvalue(), err.getvalue())


def test_run_without_token_points_to_demo(tmp_path):
    result = run_process("run", env={"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"})
    assert result.returncode == 2
    assert "DISCORD_TOKEN is not set" in result.stderr
    assert "commonground demo" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL"),
        ({"LOG_LEVEL": "CHATTY"}, "LOG_LEVEL"),
    ],
)
def test_bad_configuration_exits_2(env, fragment):
    result = run("migrate", env=env)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_newer_schema_exits_2_and_touches_nothing(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    assert run("migrate", env={"DATABASE_URL": url}).returncode == 0
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = 'zzzz'")
    conn.close()  # checkpoints the WAL, so the file alone holds the state we compare
    before = (tmp_path / "db.sqlite").read_bytes()
    result = run("migrate", env={"DATABASE_URL": url})
    assert result.returncode == 2
    assert "newer version" in result.stderr
    assert (tmp_path / "db.sqlite").read_bytes() == before


def test_backup_command(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    result = run("backup", str(tmp_path / "copy.db"), env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "integrity_check: ok" in result.stdout
    with sqlite3.connect(tmp_path / "copy.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_help_everywhere():
    for args in (
        ["--help"],
        ["run", "--help"],
        ["demo", "--help"],
        ["backup", "--help"],
        ["prompts", "check", "--help"],
    ):
        result = run(*args)
        assert result.returncode == 0
        assert "usage: commonground" in result.stdout


def test_backup_into_a_folder_keeps_the_configured_number(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    folder = tmp_path / "backups"
    folder.mkdir()
    for _ in range(3):
        result = run("backup", str(folder), env={"DATABASE_URL": url, "COMMONGROUND_BACKUP_KEEP": "2"})
        assert result.returncode == 0, result.stderr
    assert len(list(folder.glob("commonground-*.db"))) == 2


def test_prompts_check_prints_file_line_for_whole_file_problems(tmp_path):
    """Whole-file problems (empty, over the size cap, not UTF-8, unreadable) read `file:line:` like the rest."""
    files = {
        "empty.yaml": b"",
        "huge.yaml": b"# padding\n" * 30_000,
        "latin1.yaml": "pack: caf\xe9\n".encode("latin-1"),
        "two.yaml": b"a: 1\n---\nb: 2\n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "missing.yaml")  # cannot be read
    paths = [str(tmp_path / name) for name in (*files, "gone.yaml")]
    result = run("prompts", "check", *paths)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 1
    for path in paths:
        mine = [line for line in lines if line.startswith(path + ":")]
        assert mine, f"nothing reported for {path}: {result.stdout}"
        for line in mine:
            rest = line[len(path) + 1 :]
            assert rest.split(":", 1)[0].isdigit(), line


def test_run_with_shards_but_no_count_exits_2(tmp_path):
    result = run("run", "--shards", "0-7", env={"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"})
    assert result.returncode == 2
    assert "needs COMMONGROUND_SHARD_COUNT" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_cluster_on_sqlite_is_refused_with_the_way_to_postgresql(tmp_path):
    result = run(
        "run",
        "--shards",
        "0-7",
        "--shard-count",
        "16",
        env={"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db", "DISCORD_TOKEN": "abc.def"},
    )
    assert result.returncode == 2
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "shards 0-7 of 16" in line and "PostgreSQL" in line and "commonground db copy" in line
    assert not (tmp_path / "x.db").exists()


def test_a_second_process_on_one_sqlite_file_is_refused(tmp_path):
    from bot.app import ShardingError
    from bot.runtime import sqlite_process_lock

    database = tmp_path / "data" / "bot.db"
    with (
        sqlite_process_lock(database),
        pytest.raises(ShardingError, match=rf"pid {os.getpid()}\) is serving .*SQLite serves one process"),
        sqlite_process_lock(database),
    ):
        pass
    with sqlite_process_lock(database):  # released when the first process ends
        pass


PACK_WITH_DILEMMAS = """\
pack: {{id: cli-pack, name: "CLI pack", description: "For the CLI test.", version: 1}}
prompts:
  - id: first-prompt
    paragraph: 1
    excerpt: "Individualism emphasizes the value of self-reliance and personal responsibility."
    theme: self-reliance
    question: "Is self-reliance a virtue?"
    context: "A note shown under the question."
    sensitive: false
    dilemmas:
      - id: group-project-grade
        question: "Your group project gets one shared grade. One member did little. What do you do?"
        setting: {setting}
        teen: true
        beyond_anglo: true
        options:
          - {{label: "Tell the teacher who did what", position: -1.0}}
          - {{label: "Share the grade; we're a team", position: 1.0}}
"""


def test_prompts_check_knows_the_dilemmas_schema(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(PACK_WITH_DILEMMAS.format(setting="school"), encoding="utf-8")
    result = run("prompts", "check", str(good))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 pack file(s) valid" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(PACK_WITH_DILEMMAS.format(setting="beach"), encoding="utf-8")
    result = run("prompts", "check", str(bad))
    assert result.returncode == 1
    assert f"{bad}:13: prompt first-prompt: dilemmas[1].setting: unknown setting 'beach'" in result.stdout


def test_demo_realistic_flag_gives_the_sandbox_realistic_conditions(tmp_path):
    from bot.__main__ import build_parser
    from bot.config import load_settings
    from bot.demo import Demo
    from bot.sandbox import Conditions

    assert build_parser().parse_args(["demo", "--realistic"]).realistic
    assert not build_parser().parse_args(["demo"]).realistic
    settings = load_settings(env={}, token="unused")
    plain = Demo(settings, days=1, out=tmp_path, seed=7)
    assert plain.sandbox.conditions == Conditions()
    real = Demo(settings, days=1, out=tmp_path, seed=7, conditions=Conditions.realistic(seed=7))
    c = real.sandbox.conditions
    assert (c.latency, c.skew, c.rate_limits, c.global_limit, c.seed) == ((0.080, 0.040), -2.0, True, 50, 7)


def test_invite_url_asks_for_exactly_the_chosen_features(tmp_path):
    import base64

    from bot.domain.permissions import invite_permissions

    token = base64.b64encode(b"1234567890123456789").decode().rstrip("=") + ".GaBcDe.secret"
    result = run("invite-url", "--features", "pin,events", env={"DISCORD_TOKEN": token})
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith("https://discord.com/oauth2/authorize?client_id=1234567890123456789&")
    assert f"permissions={invite_permissions({'pin', 'events'})}&" in url
    assert url.endswith("scope=bot+applications.commands")
    assert "secret" not in result.stdout + result.stderr
    plain = run("invite-url", "--client-id", "42424242424242424")
    assert f"client_id=42424242424242424&permissions={invite_permissions()}&" in plain.stdout
    for args, fragment in ((("--features", "pins"),), "unknown feature pins"), ((), "no client id"):
        bad = run("invite-url", *[a for pair in args for a in pair])
        assert bad.returncode == 2 and fragment in bad.stderr


def test_invite_url_regenerates_the_readme_list(tmp_path):
    readme = tmp_path / "README.md"
    original = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = original.index("   - **View Channel**"), original.index("   <!-- /permissions -->")
    readme.write_text(original[:start] + "   - **Manage Messages**: stale\n" + original[end:], encoding="utf-8")
    result = run("invite-url", "--update-readme", str(readme))
    assert result.returncode == 0 and "updated" in result.stdout
    assert readme.read_text(encoding="utf-8") == original
