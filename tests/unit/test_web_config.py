"""COMMONGROUND_WEB and its companions: all or nothing, each bad value refused with one clear line."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings

GOOD = {
    "COMMONGROUND_WEB": "127.0.0.1:8080",
    "COMMONGROUND_WEB_URL": "https://debates.example.org/",
    "DISCORD_CLIENT_ID": "123456789012345678",
    "DISCORD_CLIENT_SECRET": "s3cret-value",
}


def test_off_by_default_and_on_with_everything():
    assert load_settings(env={}).web_address is None
    settings = load_settings(env=GOOD)
    assert settings.web_address == ("127.0.0.1", 8080)
    assert settings.web_url == "https://debates.example.org"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"COMMONGROUND_WEB": "8080"}, "COMMONGROUND_WEB='8080' is not host:port"),
        ({"COMMONGROUND_WEB": "localhost:99999"}, "port 1-65535"),
        ({"COMMONGROUND_WEB": "local host:80"}, "is not host:port"),
        ({"COMMONGROUND_WEB_URL": ""}, "COMMONGROUND_WEB_URL is not"),
        ({"COMMONGROUND_WEB_URL": "ftp://x.org"}, "is not a base URL"),
        ({"COMMONGROUND_WEB_URL": "https://x.org/?a=1"}, "is not a base URL"),
        ({"COMMONGROUND_WEB_URL": "http://debates.example.org"}, "must use https://"),
        ({"DISCORD_CLIENT_ID": "abc"}, "DISCORD_CLIENT_ID"),
        ({"DISCORD_CLIENT_SECRET": ""}, "DISCORD_CLIENT_SECRET"),
    ],
)
def test_bad_values_name_the_key_in_one_line(change, fragment):
    with pytest.raises(ConfigError) as info:
        load_settings(env={**GOOD, **change})
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert "s3cret" not in message


def test_http_only_on_loopback_and_secret_never_from_a_file(tmp_path):
    assert load_settings(env={**GOOD, "COMMONGROUND_WEB_URL": "http://127.0.0.1:8080"}).web_url
    config = tmp_path / "c.yaml"
    config.write_text("oauth_client_secret: abc\n")
    with pytest.raises(ConfigError, match="DISCORD_CLIENT_SECRET"):
        load_settings(env={}, config_path=config)
