"""Settings from the environment and an optional YAML file: validated once, then frozen.

Every problem is reported as a :class:`ConfigError` whose message names the key and the fix; the
token is never part of any message or ``repr``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.domain.shards import MAX_SHARD_COUNT, ShardScope, ShardSpecError, parse_shards, rest_share

DEFAULT_API_BASE = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/commonground.db"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
MAX_CONFIG_BYTES = 64 * 1024


class ConfigError(Exception):
    """A configuration problem, with a message safe to print: it names the key and the fix."""


@dataclass(frozen=True)
class Settings:
    """Everything the process needs to start. Build with :func:`load_settings`."""

    token: str | None = field(default=None, repr=False)
    database_url: str = DEFAULT_DATABASE_URL
    api_base: str = DEFAULT_API_BASE
    gateway_url: str = DEFAULT_GATEWAY_URL
    log_level: str = "INFO"
    # Days a server's data is kept after the bot is removed from it (Discord developer terms).
    retention_days: int = 30
    # How many backup files `commonground backup --keep` leaves by default.
    backup_keep: int = 7
    # Reconciliation refuses to mark more than this many known servers as left at once: the larger of
    # the percentage of known servers and the count (a wrong token or a partial READY would otherwise
    # stop every schedule and arm every purge). A host who really lost that many raises it.
    reconcile_max_left_percent: int = 10
    reconcile_max_left_min: int = 5
    # Sharding: None = automatic (every shard, the count Discord recommends). A cluster sets both:
    # the shard ids it holds and the total number of shards across all clusters.
    shards: tuple[int, ...] | None = None
    shard_count: int | None = None
    # Port of the Prometheus metrics, /healthz and /readyz endpoint (None: not served).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # Requests per second the whole bot may spend on Discord's REST API, all processes together
    # (Discord's global limit is 50 per bot, L1; the default leaves headroom for retries after 5xx).
    # Interaction answers are not counted (I5). Each process spends its shards' share (rest_share).
    rest_budget: float = 40.0
    # DISCORD_API_BASE is a REST proxy shared by every process (nirn-proxy, twilight-http-proxy): the
    # proxy keeps the whole bot under Discord's limit, so no process paces itself.
    rest_proxy: bool = False

    @property
    def scope(self) -> ShardScope:
        """The servers this process owns (see :mod:`bot.domain.shards`)."""
        return ShardScope(self.shard_count, self.shards)

    @property
    def is_cluster(self) -> bool:
        """True when other processes hold the other shards."""
        return not self.scope.everything

    @property
    def rest_share(self) -> float | None:
        """This process's REST requests per second: its shards' part of ``rest_budget``, or None
        behind a shared REST proxy (the proxy keeps the whole bot under the limit)."""
        return rest_share(self.rest_budget, self.scope, shared_proxy=self.rest_proxy)

    # The website (bot/web): served by this process when `web` ("host:port") is set, reachable at
    # `web_url` (the public base URL, also the OAuth2 redirect's base). Log in with Discord needs the
    # application's OAuth2 client id and secret (the secret only from the environment, like the token).
    web: str | None = None
    web_url: str | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = field(default=None, repr=False)

    @property
    def web_address(self) -> tuple[str, int] | None:
        """``(host, port)`` the website binds, or None when it is off."""
        if self.web is None:
            return None
        host, _, port = self.web.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        """The database file for SQLite URLs (None for in-memory or other backends)."""
        if not self.is_sqlite:
            return None
        database = make_url(self.database_url).database
        if not database or database == ":memory:":
            return None
        return Path(database)


_ENV_KEYS = {
    "DISCORD_TOKEN": "token",
    "DATABASE_URL": "database_url",
    "DISCORD_API_BASE": "api_base",
    "DISCORD_GATEWAY_URL": "gateway_url",
    "LOG_LEVEL": "log_level",
    "COMMONGROUND_RETENTION_DAYS": "retention_days",
    "COMMONGROUND_BACKUP_KEEP": "backup_keep",
    "COMMONGROUND_RECONCILE_MAX_LEFT_PERCENT": "reconcile_max_left_percent",
    "COMMONGROUND_RECONCILE_MAX_LEFT_MIN": "reconcile_max_left_min",
    "COMMONGROUND_SHARDS": "shards",
    "COMMONGROUND_SHARD_COUNT": "shard_count",
    "COMMONGROUND_METRICS_PORT": "metrics_port",
    "COMMONGROUND_METRICS_HOST": "metrics_host",
    "COMMONGROUND_REST_BUDGET": "rest_budget",
    "COMMONGROUND_REST_PROXY": "rest_proxy",
    "COMMONGROUND_WEB": "web",
    "COMMONGROUND_WEB_URL": "web_url",
    "DISCORD_CLIENT_ID": "oauth_client_id",
    "DISCORD_CLIENT_SECRET": "oauth_client_secret",
}
_YAML_KEYS = {f.name for f in fields(Settings)} - {"token", "oauth_client_secret"}


def _read_yaml(path: Path) -> Mapping[str, Any]:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read the file ({exc.strerror}); check the path.") from None
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"--config {path}: the file is {size} bytes; the limit is {MAX_CONFIG_BYTES}.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path}: not valid YAML ({exc}); see config.example.yaml.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: the top level must be a mapping of keys, like config.example.yaml.")
    if "oauth_client_secret" in data:
        raise ConfigError(
            f"--config {path}: the OAuth2 client secret does not belong in a file; set DISCORD_CLIENT_SECRET."
        )
    if "token" in data or "discord_token" in data:
        raise ConfigError(
            f"--config {path}: the token does not belong in a file; set the DISCORD_TOKEN environment variable."
        )
    unknown = sorted(set(data) - _YAML_KEYS)
    if unknown:
        raise ConfigError(
            f"--config {path}: unknown key {unknown[0]!r}; known keys are {', '.join(sorted(_YAML_KEYS))}."
        )
    return data


def _validate_url(key: str, value: str, schemes: tuple[str, ...]) -> str:
    if not any(value.startswith(s + "://") for s in schemes) or len(value) <= len(schemes[0]) + 3:
        raise ConfigError(f"{key}={value!r} is not a valid URL: it must start with {' or '.join(schemes)}://")
    return value.rstrip("/") if key == "DISCORD_API_BASE" else value


def validate_database_url(value: str, key: str = "DATABASE_URL") -> str:
    try:
        url = make_url(value)
    except ArgumentError:
        raise ConfigError(f"{key}={value!r} is not a database URL; use e.g. {DEFAULT_DATABASE_URL}") from None
    if url.drivername not in SUPPORTED_DRIVERS:
        raise ConfigError(
            f"{key} uses the driver {url.drivername!r}; supported: {', '.join(SUPPORTED_DRIVERS)} "
            f"(e.g. {DEFAULT_DATABASE_URL})."
        )
    if url.drivername.startswith("sqlite") and not url.database:
        raise ConfigError(f"{key}={value!r} names no file; use e.g. {DEFAULT_DATABASE_URL}")
    return value


_validate_database_url = validate_database_url


def _validate_int(key: str, value: Any, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={value!r} is not a whole number; use a number from {low} to {high}.") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise ConfigError(f"{key}={value!r} is out of range; use a number from {low} to {high}.")
    return number


def _validate_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{key}={value!r} is not true or false; use true or false.")


def load_settings(env: Mapping[str, str] | None = None, config_path: Path | None = None, **overrides: Any) -> Settings:
    """Merge defaults < YAML file < environment < explicit overrides, then validate."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if config_path is not None:
        raw.update(_read_yaml(config_path))
    for env_key, name in _ENV_KEYS.items():
        value = env.get(env_key)
        if value not in (None, ""):
            raw[name] = value
    raw.update({k: v for k, v in overrides.items() if v is not None})

    values: dict[str, Any] = {}
    if "token" in raw:
        token = str(raw["token"]).strip()
        if token.lower().startswith("bot "):
            token = token[4:].strip()
        if not token or any(c.isspace() for c in token):
            raise ConfigError("DISCORD_TOKEN is malformed; copy the token from the developer portal's Bot page.")
        values["token"] = token
    if "database_url" in raw:
        values["database_url"] = _validate_database_url(str(raw["database_url"]))
    if "api_base" in raw:
        values["api_base"] = _validate_url("DISCORD_API_BASE", str(raw["api_base"]), ("https", "http"))
    if "gateway_url" in raw:
        values["gateway_url"] = _validate_url("DISCORD_GATEWAY_URL", str(raw["gateway_url"]), ("wss", "ws"))
    if "log_level" in raw:
        level = str(raw["log_level"]).upper()
        if level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL={raw['log_level']!r} is not a log level; use one of {', '.join(LOG_LEVELS)}.")
        values["log_level"] = level
    if "retention_days" in raw:
        values["retention_days"] = _validate_int("COMMONGROUND_RETENTION_DAYS", raw["retention_days"], 1, 3650)
    if "backup_keep" in raw:
        values["backup_keep"] = _validate_int("COMMONGROUND_BACKUP_KEEP", raw["backup_keep"], 1, 1000)
    if "reconcile_max_left_percent" in raw:
        values["reconcile_max_left_percent"] = _validate_int(
            "COMMONGROUND_RECONCILE_MAX_LEFT_PERCENT", raw["reconcile_max_left_percent"], 0, 100
        )
    if "reconcile_max_left_min" in raw:
        values["reconcile_max_left_min"] = _validate_int(
            "COMMONGROUND_RECONCILE_MAX_LEFT_MIN", raw["reconcile_max_left_min"], 0, 1_000_000
        )
    if "shard_count" in raw:
        values["shard_count"] = _validate_int("COMMONGROUND_SHARD_COUNT", raw["shard_count"], 1, MAX_SHARD_COUNT)
    if "shards" in raw:
        spec = raw["shards"]
        text = ",".join(str(i) for i in spec) if isinstance(spec, (list, tuple)) else str(spec)
        try:
            values["shards"] = parse_shards(text)
        except ShardSpecError as exc:
            raise ConfigError(f"COMMONGROUND_SHARDS: {exc}.") from None
        if "shard_count" not in values:
            raise ConfigError(
                f"COMMONGROUND_SHARDS={text} needs COMMONGROUND_SHARD_COUNT, the total number of shards "
                "across every cluster (e.g. 16 for two clusters of 0-7 and 8-15)."
            )
        try:
            ShardScope(values["shard_count"], values["shards"])
        except ShardSpecError as exc:
            raise ConfigError(f"COMMONGROUND_SHARDS={text}: {exc}; fix it or COMMONGROUND_SHARD_COUNT.") from None
    if "metrics_port" in raw:
        # 0 picks a free port (tests); the log line names it.
        values["metrics_port"] = _validate_int("COMMONGROUND_METRICS_PORT", raw["metrics_port"], 0, 65535)
    if "rest_budget" in raw:
        try:
            budget = float(raw["rest_budget"])
        except (TypeError, ValueError):
            budget = -1.0
        if not 1.0 <= budget <= 50.0:
            raise ConfigError(
                f"COMMONGROUND_REST_BUDGET={raw['rest_budget']!r} must be a number of requests per second from 1 to 50 "
                "(Discord's global limit is 50 per bot, across all its processes)."
            )
        values["rest_budget"] = budget
    if "metrics_host" in raw:
        values["metrics_host"] = str(raw["metrics_host"]).strip() or "127.0.0.1"
    if "rest_proxy" in raw:
        values["rest_proxy"] = _validate_bool("COMMONGROUND_REST_PROXY", raw["rest_proxy"])
    values.update(_validate_web(raw))
    return Settings(**values)


_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def _validate_web(raw: Mapping[str, Any]) -> dict[str, Any]:
    """COMMONGROUND_WEB=host:port with its public URL and OAuth2 client: all or nothing, each checked."""
    if raw.get("web") in (None, ""):
        return {}
    web = str(raw["web"]).strip()
    host, sep, port = web.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535 or any(c.isspace() for c in web):
        raise ConfigError(f"COMMONGROUND_WEB={web!r} is not host:port; use e.g. 127.0.0.1:8080 (port 1-65535).")
    url = str(raw.get("web_url") or "").strip()
    if not url:
        raise ConfigError(
            "COMMONGROUND_WEB is set but COMMONGROUND_WEB_URL is not: set the site's public base URL, "
            "e.g. https://debates.example.org"
        )
    parsed = urlsplit(url)
    if parsed.scheme not in ("https", "http") or not parsed.hostname or parsed.query or parsed.fragment:
        raise ConfigError(
            f"COMMONGROUND_WEB_URL={url!r} is not a base URL; use e.g. https://debates.example.org (no ? or #)."
        )
    if parsed.scheme == "http" and parsed.netloc.rsplit(":", 1)[0] not in _LOOPBACK:
        raise ConfigError(
            f"COMMONGROUND_WEB_URL={url!r} must use https:// (session cookies are Secure); "
            "plain http:// is only allowed on 127.0.0.1 or localhost."
        )
    client_id = str(raw.get("oauth_client_id") or "").strip()
    if not client_id.isdigit():
        raise ConfigError(
            "COMMONGROUND_WEB needs DISCORD_CLIENT_ID: the application id from the developer portal's OAuth2 page."
        )
    secret = str(raw.get("oauth_client_secret") or "").strip()
    if not secret or any(c.isspace() for c in secret):
        raise ConfigError(
            "COMMONGROUND_WEB needs DISCORD_CLIENT_SECRET (in the environment): the OAuth2 client secret."
        )
    return {"web": web, "web_url": url.rstrip("/"), "oauth_client_id": client_id, "oauth_client_secret": secret}


# Loggers that are never allowed below a level, whatever LOG_LEVEL says:
# discord.http and discord.webhook print request URLs, which carry interaction and webhook tokens;
# aiosqlite's debug lines carry every SQL parameter, which would show who voted for what.
_LOGGER_FLOORS = {
    "discord.http": logging.WARNING,
    "discord.webhook": logging.WARNING,
    "discord.gateway": logging.INFO,
    "aiosqlite": logging.INFO,
    "alembic": logging.WARNING,
}


def configure_logging(level: str) -> None:
    """Root logging at ``level``; ``discord.http`` never below WARNING (its debug lines carry tokens)."""
    logging.basicConfig(format="%(asctime)s %(levelname)-8s %(name)s: %(message)s")  # no-op if already set up
    logging.getLogger().setLevel(getattr(logging, level))
    for name, floor in _LOGGER_FLOORS.items():
        logging.getLogger(name).setLevel(max(floor, getattr(logging, level)))
    logging.getLogger("discord.client").addFilter(_no_voice_warnings)


def _no_voice_warnings(record: logging.LogRecord) -> bool:
    """The bot has no voice features; discord.py's "PyNaCl is not installed" warnings are noise here."""
    return "voice will NOT be supported" not in record.getMessage()
