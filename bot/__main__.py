"""The ``commonground`` command: run, demo, migrate, backup, sync, export, prompts check."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from bot import __version__
from bot.config import ConfigError, Settings, configure_logging, load_settings
from bot.domain.permissions import FEATURES as FEATURE_NAMES

log = logging.getLogger("bot")

EXIT_USAGE = 2


class CommandError(Exception):
    """A clear, one-line reason the command cannot go on (exit status 2)."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive whole number")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="commonground",
        description="Common Ground: daily debates on individualism and collectivism for Discord servers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", type=Path, help="optional YAML settings file (see config.example.yaml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="connect to Discord and serve (needs DISCORD_TOKEN)",
        description="Connect to Discord with DISCORD_TOKEN and serve until stopped (SIGTERM/Ctrl-C). "
        "Shards automatically (the count Discord recommends); --shards and --shard-count run one "
        "cluster of several instead (PostgreSQL needed).",
    )
    run.add_argument("--shards", help="the shard ids this cluster holds, e.g. 0-7 (env COMMONGROUND_SHARDS)")
    run.add_argument(
        "--shard-count", help="the total number of shards across all clusters, e.g. 16 (env COMMONGROUND_SHARD_COUNT)"
    )
    demo = sub.add_parser(
        "demo",
        help="play a scripted session against the local sandbox (no token needed)",
        description="Start the local Discord sandbox and the real bot in one process, play a "
        "scripted session through real interactions and print what the members saw.",
    )
    demo.add_argument("--days", type=_positive_int, default=60, help="simulated days of debates (default 60)")
    demo.add_argument("--out", type=Path, default=Path("data/demo"), help="where charts are written (data/demo)")
    demo.add_argument("--seed", type=int, default=7, help="random seed for the simulated members")
    demo.add_argument(
        "--realistic",
        action="store_true",
        help="Discord as a busy bot meets it: 80 ms ± 40 ms latency each way, the host clock 2 s fast, "
        "real per-route and global (50/s) rate limits",
    )
    demo.add_argument(
        "--web", action="store_true", help="then leave the website running on 127.0.0.1 (screenshots in OUT/web)"
    )
    demo.add_argument("--web-port", type=int, default=0, help="the website's port with --web (default: a free one)")
    demo.add_argument(
        "--web-screenshots-only", action="store_true", help="with --web: write the screenshots, then exit"
    )
    sub.add_parser(
        "migrate",
        help="apply database migrations and exit",
        description="Apply every pending database migration, then exit.",
    )
    backup = sub.add_parser(
        "backup",
        help="copy the live SQLite database to PATH and check the copy",
        description="Online backup of the SQLite database; the copy must pass integrity_check.",
    )
    backup.add_argument("path", type=Path, help="the backup file, or a folder to write a timestamped file into")
    backup.add_argument(
        "--keep", type=_positive_int, default=None, help="with a folder: keep only the newest N backups there"
    )
    sync = sub.add_parser(
        "sync",
        help="register the slash commands with Discord",
        description="Register the slash commands globally, or in one server with --guild.",
    )
    sync.add_argument("--guild", type=_positive_int, help="a server id: sync there only (instant, for testing)")
    sync.add_argument(
        "--clear",
        action="store_true",
        help="with --guild: remove that server's copy of the commands (the global ones stay)",
    )
    invite = sub.add_parser(
        "invite-url",
        help="print the OAuth2 URL that invites the bot with exactly the permissions it needs",
        description="Print the invite URL (scopes bot and applications.commands) asking for the core "
        "permissions plus those of --features; the client id comes from DISCORD_TOKEN or --client-id.",
    )
    invite.add_argument(
        "--features",
        default="",
        help="comma-separated optional features: " + ", ".join(FEATURE_NAMES) + " (default: none)",
    )
    invite.add_argument("--client-id", type=_positive_int, help="the application's client id (default: from the token)")
    invite.add_argument(
        "--update-readme",
        type=Path,
        metavar="README",
        help="instead, rewrite the permission list in README (generated from the same table)",
    )
    export = sub.add_parser(
        "export",
        help="write a server's poll aggregates as CSV (no user ids)",
        description="Write per-poll aggregates of one server as CSV; contains no user ids.",
    )
    export.add_argument("--guild", type=_positive_int, required=True, help="the server id")
    export.add_argument("--out", type=Path, required=True, help="the CSV file to write ('-' for stdout)")
    dbp = sub.add_parser("db", help="move data between databases", description="Move data between databases.")
    db_sub = dbp.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    copy = db_sub.add_parser(
        "copy",
        help="copy a database (e.g. SQLite) into a new, empty one (e.g. PostgreSQL)",
        description="Copy every row of --from into the empty --to in one transaction, then check every "
        "table's row count and every poll's tally before committing. The source may be live (it is "
        "read as one snapshot), but votes cast after the snapshot are not copied: stop the bot first "
        "for the final move.",
    )
    copy.add_argument(
        "--from",
        dest="source",
        required=True,
        help="source DATABASE_URL, e.g. sqlite+aiosqlite:///data/commonground.db",
    )
    copy.add_argument(
        "--to", dest="target", required=True, help="target DATABASE_URL, e.g. postgresql+asyncpg://user@host/db"
    )
    prompts = sub.add_parser("prompts", help="work with prompt packs", description="Work with prompt packs.")
    prompts_sub = prompts.add_subparsers(dest="prompts_command", metavar="ACTION", required=True)
    check = prompts_sub.add_parser(
        "check",
        help="validate prompt packs (the built-in pack by default)",
        description="Validate prompt pack YAML files; print every problem as "
        "file:line: prompt <id>: <field>: <what is wrong>; exit 1 on any.",
    )
    check.add_argument("paths", nargs="*", type=Path, help="pack files (default: the packs in prompts/)")
    return parser


# -- commands ---------------------------------------------------------------------------------------


async def _open_database(settings: Settings, *, migrate: bool = True):
    from bot.storage.database import Database, DatabaseUnusableError, SchemaTooNewError

    try:
        return await Database.open(settings.database_url, migrate=migrate)
    except (SchemaTooNewError, DatabaseUnusableError) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot open the database ({exc}); check DATABASE_URL") from None


async def cmd_run(settings: Settings) -> int:
    if not settings.token:
        raise CommandError(
            "DISCORD_TOKEN is not set: export your bot's token to connect to Discord, "
            "or try `commonground demo`, which needs no token."
        )
    if settings.is_cluster and settings.is_sqlite:
        raise CommandError(
            f"this process holds {settings.scope.describe()}, so other processes hold the rest, and SQLite "
            "serves one process: move to PostgreSQL (`commonground db copy --from SQLITE_URL --to POSTGRES_URL`) "
            "and point DATABASE_URL of every cluster at it"
        )
    from bot.app import ShardingError

    try:
        return await _serve(settings)
    except ShardingError as exc:
        raise CommandError(str(exc)) from None


async def _serve(settings: Settings) -> int:
    from bot.app import WrongApplication
    from bot.runtime import run_bot, sqlite_process_lock
    from bot.storage.database import DatabaseSettingsError

    db = await _open_database(settings)
    healthy = False
    try:
        try:
            await db.require_healthy()
        except DatabaseSettingsError as exc:
            raise CommandError(f"{exc}; restore a backup (see `commonground backup`) or repair the file") from None
        healthy = True
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # Taken only once the file is known good: a database refused above is left exactly as it was.
        path = settings.sqlite_path
        lock = sqlite_process_lock(path) if path is not None else contextlib.nullcontext()
        try:
            with lock:
                await run_bot(settings, db, stop=stop)
        except WrongApplication as exc:
            raise CommandError(str(exc)) from None
    finally:
        await db.close(checkpoint=healthy)  # nothing is written to a file the self-check refused
    return 0


async def cmd_migrate(settings: Settings) -> int:
    db = await _open_database(settings)
    try:
        print(f"database at revision {await db.current_revision()}")
    finally:
        await db.close()
    return 0


async def cmd_backup(settings: Settings, path: Path, keep: int | None) -> int:
    from bot.storage.backups import backup_to

    if not settings.is_sqlite:
        raise CommandError("backup copies SQLite databases; for PostgreSQL use pg_dump")
    if keep is None and path.is_dir():
        keep = settings.backup_keep  # a folder of backups is pruned to COMMONGROUND_BACKUP_KEEP by default
    db = await _open_database(settings)
    try:
        target, integrity, removed = await backup_to(db, path, keep=keep, now=None)
    finally:
        await db.close()
    if integrity != "ok":
        print(f"backup written to {target}, but integrity_check says: {integrity}", file=sys.stderr)
        return 1
    print(f"backup written to {target} (integrity_check: ok)" + (f"; removed {removed} old" if removed else ""))
    return 0


async def cmd_sync(settings: Settings, guild: int | None, clear: bool = False) -> int:
    from bot.runtime import sync_commands

    if clear and guild is None:
        raise CommandError("--clear removes one server's copy of the commands: name it with --guild ID")
    if not settings.token:
        raise CommandError("DISCORD_TOKEN is not set: syncing registers commands with Discord and needs the token.")
    db = await _open_database(settings)
    try:
        names = await sync_commands(settings, db, guild_id=guild, clear=clear)
    finally:
        await db.close()
    if clear:
        print(f"removed the copy of the commands in server {guild}; the global commands are unchanged")
        return 0
    where = f"server {guild}" if guild else "all servers (global commands can take up to an hour to appear)"
    print(f"synced {len(names)} commands to {where}: {', '.join('/' + n for n in names)}")
    return 0


def cmd_invite_url(settings: Settings, features: str, client_id: int | None, update_readme: Path | None) -> int:
    from bot.domain import permissions

    if update_readme is not None:
        try:
            text = update_readme.read_text(encoding="utf-8")
            new = permissions.replace_readme_section(text)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot update {update_readme}: {exc}") from None
        if new != text:
            update_readme.write_text(new, encoding="utf-8")
        print(f"{update_readme}: permission list {'updated' if new != text else 'already current'}")
        return 0
    try:
        chosen = permissions.parse_features(features)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if client_id is None and settings.token:
        client_id = permissions.client_id_from_token(settings.token)
    if client_id is None:
        raise CommandError(
            "no client id: pass --client-id (the application id from the developer portal) or set DISCORD_TOKEN"
        )
    print(permissions.invite_url(client_id, chosen))
    return 0


async def cmd_export(settings: Settings, guild: int, out: Path) -> int:
    from bot.storage.export import export_csv

    db = await _open_database(settings)
    try:
        text = await export_csv(db, guild)
    finally:
        await db.close()
    if str(out) == "-":
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {text.count(chr(10)) - 1} polls to {out}")
    return 0


async def cmd_db_copy(source: str, target: str) -> int:
    import time

    from bot.config import validate_database_url
    from bot.storage.copy import CopyError, copy_database

    source = validate_database_url(source, key="--from")
    target = validate_database_url(target, key="--to")
    started = time.monotonic()
    last: dict[str, int] = {}

    def progress(table: str, done: int, total: int) -> None:
        step = max(total // 10, 1)
        if done == total or done - last.get(table, 0) >= step:
            last[table] = done
            print(f"  {table}: {done:,}/{total:,}", file=sys.stderr, flush=True)

    try:
        report = await copy_database(source, target, progress=progress)
    except CopyError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot reach a database ({exc}); check --from and --to") from None
    print(
        f"copied {report.total:,} rows in {len(report.rows)} tables in {time.monotonic() - started:.1f} s; "
        f"verified every table's row count and the tallies of {report.polls_verified:,} polls"
    )
    return 0


def cmd_prompts_check(paths: Sequence[Path]) -> int:
    from bot.domain.essay import load_essay
    from bot.domain.packs import builtin_pack_path, check_files

    files = list(paths) or sorted(builtin_pack_path().parent.glob("*.yaml"))
    problems = check_files(files, load_essay())
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {len(files)} file(s)", file=sys.stderr)
        return 1
    print(f"{len(files)} pack file(s) valid")
    return 0


async def cmd_demo(
    settings: Settings, days: int, out: Path, seed: int, realistic: bool = False, args: argparse.Namespace | None = None
) -> int:
    if args is not None and args.web:
        from bot.demo_web import run_web_demo

        return await run_web_demo(
            settings, days=days, out=out, seed=seed, port=args.web_port, wait=not args.web_screenshots_only
        )
    from bot.demo import run_demo

    return await run_demo(settings, days=days, out=out, seed=seed, realistic=realistic)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides = {}
        if args.command == "run":
            overrides = {"shards": args.shards, "shard_count": args.shard_count}
        settings = load_settings(config_path=args.config, **overrides)
        configure_logging(settings.log_level if args.command == "run" else max_level(settings.log_level, "WARNING"))
        if args.command == "prompts":
            return cmd_prompts_check(args.paths)
        if args.command == "run":
            from bot.runtime import run as run_loop

            return run_loop(cmd_run(settings))
        if args.command == "demo":
            return asyncio.run(cmd_demo(settings, args.days, args.out, args.seed, args.realistic, args))
        if args.command == "migrate":
            return asyncio.run(cmd_migrate(settings))
        if args.command == "backup":
            return asyncio.run(cmd_backup(settings, args.path, args.keep))
        if args.command == "sync":
            return asyncio.run(cmd_sync(settings, args.guild, args.clear))
        if args.command == "invite-url":
            return cmd_invite_url(settings, args.features, args.client_id, args.update_readme)
        if args.command == "db":
            return asyncio.run(cmd_db_copy(args.source, args.target))
        if args.command == "export":
            return asyncio.run(cmd_export(settings, args.guild, args.out))
    except (ConfigError, CommandError) as exc:
        print(f"commonground: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {args.command}")


def max_level(a: str, b: str) -> str:
    return a if logging.getLevelName(a) >= logging.getLevelName(b) else b


if __name__ == "__main__":
    sys.exit(main())
