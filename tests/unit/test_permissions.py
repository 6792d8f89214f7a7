"""The permission table: invite integers, what is missing (root cause first), the token's client id."""

from __future__ import annotations

import base64

import discord
import pytest

from bot.domain import permissions as perms


def test_every_row_matches_discord_py_and_discords_bits():
    for p in perms.PERMISSIONS:
        assert getattr(discord.Permissions, p.key).flag == p.bit, p.key
    # The two that moved (change log 2025-11-20 PR #7991, 2025-11-24 PR #8002) and Send Polls.
    assert perms.BY_KEY["pin_messages"].bit == 1 << 51
    assert perms.BY_KEY["create_events"].bit == 1 << 44
    assert perms.BY_KEY["send_polls"].bit == 1 << 49
    assert "manage_messages" not in perms.BY_KEY and "manage_events" not in perms.BY_KEY


def test_invite_integer_is_exactly_core_plus_the_chosen_features():
    core = discord.Permissions(
        view_channel=True,
        send_messages=True,
        embed_links=True,
        attach_files=True,
        read_message_history=True,
        create_public_threads=True,
        send_messages_in_threads=True,
    ).value
    assert perms.invite_permissions() == core
    assert perms.invite_permissions({"pin"}) == core | 1 << 51
    assert perms.invite_permissions({"events", "native-polls"}) == core | 1 << 44 | 1 << 49
    assert perms.full_invite_permissions() == core | 1 << 51 | 1 << 44 | 1 << 49 | 1 << 17
    url = perms.invite_url(42_000_000_000_000_000, {"pin"})
    assert url == (
        "https://discord.com/oauth2/authorize?client_id=42000000000000000"
        f"&permissions={core | 1 << 51}&scope=bot+applications.commands"
    )


def test_parse_features_refuses_unknown_names():
    assert perms.parse_features(" pin, events ,") == {"pin", "events"}
    assert perms.parse_features(None) == frozenset()
    with pytest.raises(ValueError, match="unknown feature pins: choose from"):
        perms.parse_features("pins")


def test_missing_names_the_root_cause_only():
    everything = perms.full_invite_permissions()
    assert perms.missing(everything, perms.ACTIONS) == []
    no_view = everything & ~(1 << 10)
    assert perms.names(perms.missing(no_view, ["post", "pin"])) == ["View Channel"]
    no_send = everything & ~(1 << 11) & ~(1 << 14)
    # Embed Links depends on Send Messages; Create Public Threads does not.
    assert perms.names(perms.missing(no_send & ~(1 << 35), ["post", "thread"])) == [
        "Send Messages",
        "Create Public Threads",
    ]
    only_manage = (everything & ~(1 << 51) & ~(1 << 44)) | (1 << 13) | (1 << 33)  # Manage Messages/Events
    assert perms.names(perms.missing(only_manage, ["pin", "event"])) == ["Pin Messages", "Create Events"]
    assert perms.names(perms.missing(everything & ~(1 << 49) & ~(1 << 16), ["native-poll"])) == [
        "Read Message History",
        "Send Polls",
    ]
    with pytest.raises(ValueError):
        perms.needed(["fly"])


def test_client_id_from_a_token():
    user_id = "1234567890123456789"
    token = base64.b64encode(user_id.encode()).decode().rstrip("=") + ".GaBcDe.secretpart"
    assert perms.client_id_from_token(token) == int(user_id)
    assert perms.client_id_from_token("not-a-token") is None
    assert perms.client_id_from_token("") is None
