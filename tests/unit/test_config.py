"""Settings: defaults, precedence, and one clear message per bad value."""

from __future__ import annotations

import logging

import pytest

from bot.config import DEFAULT_DATABASE_URL, ConfigError, configure_logging, load_settings


def test_defaults_need_nothing():
    settings = load_settings(env={})
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.api_base == "https://discord.com/api/v10"
    assert settings.token is None
    assert settings.log_level == "INFO"


def test_environment_overrides_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("log_level: debug\ndatabase_url: sqlite+aiosqlite:///x.db\n")
    settings = load_settings(env={"LOG_LEVEL": "warning"}, config_path=config)
    assert settings.log_level == "WARNING"
    assert settings.database_url == "sqlite+aiosqlite:///x.db"


def test_token_never_in_repr():
    settings = load_settings(env={"DISCORD_TOKEN": "MTIz.secret.value"})
    assert settings.token == "MTIz.secret.value"
    assert "secret" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://u@h/db"}, "supported: sqlite+aiosqlite"),
        ({"DATABASE_URL": "sqlite+aiosqlite://"}, "names no file"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL='LOUD'"),
        ({"DISCORD_API_BASE": "ftp://x"}, "DISCORD_API_BASE"),
        ({"DISCORD_GATEWAY_URL": "http://x"}, "DISCORD_GATEWAY_URL"),
        ({"COMMONGROUND_RETENTION_DAYS": "soon"}, "whole number"),
        ({"COMMONGROUND_RETENTION_DAYS": "0"}, "out of range"),
        ({"DISCORD_TOKEN": "has space"}, "DISCORD_TOKEN is malformed"),
    ],
)
def test_bad_values_name_the_key(env, fragment):
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert fragment in str(info.value)


def test_bad_token_message_does_not_echo_it():
    with pytest.raises(ConfigError) as info:
        load_settings(env={"DISCORD_TOKEN": "abc def-secret"})
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[1, 2]", "must be a mapping"),
        ("colour: blue\n", "unknown key 'colour'"),
        ("token: abc\n", "DISCORD_TOKEN environment variable"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_config_file(tmp_path, content, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, config_path=path)
    assert fragment in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(env={}, config_path=tmp_path / "nope.yaml")


def test_discord_http_logger_stays_at_warning():
    configure_logging("DEBUG")
    assert logging.getLogger("discord.http").getEffectiveLevel() >= logging.WARNING
