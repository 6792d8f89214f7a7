"""The command tree as Discord will see it: names, descriptions, limits, moderator gating."""

from __future__ import annotations

import re

import discord
import pytest

from bot.app import EXTENSIONS, CommonGround
from bot.config import load_settings

NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MODERATOR_GROUPS = {"schedule", "pack", "poll"}


class _NoDb:
    """The tree is built without touching a database (the one process of a SQLite file, as by default)."""

    is_sqlite = True


@pytest.fixture
async def tree():
    bot = CommonGround(settings=load_settings(env={}), db=_NoDb(), extensions=EXTENSIONS)  # type: ignore[arg-type]
    for name in EXTENSIONS:
        await bot.load_extension(name)
    payload = [c.to_dict(bot.tree) for c in bot.tree.get_commands()]
    yield bot.tree, payload
    await bot.close()


def _walk(payload):
    for command in payload:
        yield command, 0
        for option in command.get("options", []):
            if option["type"] in (1, 2):
                yield option, 1
                for sub in option.get("options", []):
                    if sub["type"] == 1:
                        yield sub, 2


async def test_every_name_and_description(tree):
    _, payload = tree
    assert len(payload) <= 100
    for item, _depth in _walk(payload):
        assert NAME.match(item["name"]), item["name"]
        assert len(item["name"]) <= 32
        assert 0 < len(item["description"]) <= 100, item["name"]
        options = item.get("options", [])
        assert len(options) <= 25
        for option in options:
            if option["type"] not in (1, 2):
                assert NAME.match(option["name"]), (item["name"], option["name"])
                assert 0 < len(option["description"]) <= 100, (item["name"], option["name"])
                assert len(option.get("choices", [])) <= 25


async def test_at_most_one_sub_level(tree):
    _, payload = tree
    assert all(depth < 2 for _item, depth in _walk(payload)), "docs/ARCHITECTURE.md: at most one sub-level"


async def test_moderator_groups_default_to_manage_server(tree):
    _, payload = tree
    by_name = {c["name"]: c for c in payload}
    assert set(by_name) >= MODERATOR_GROUPS
    for name in MODERATOR_GROUPS:
        assert int(by_name[name]["default_member_permissions"]) == discord.Permissions(manage_guild=True).value
        assert by_name[name]["contexts"] == [0] or by_name[name].get("dm_permission") is False


async def test_member_groups_are_open(tree):
    _, payload = tree
    by_name = {c["name"]: c for c in payload}
    for name in ("debate", "leaning", "privacy", "about", "help"):
        assert by_name[name]["default_member_permissions"] is None, name


async def test_dynamic_item_templates_fit_custom_id(tree):
    bot_tree, _ = tree
    bot = bot_tree.client
    templates = [pattern.pattern for pattern in bot._connection._view_store._dynamic_items]
    assert templates, "persistent buttons are registered"
    for pattern in templates:
        # "<feature>:<action>:<id>" (docs/ARCHITECTURE.md); the action is a literal or a named choice of
        # literals (one item, several actions); ids are snowflakes or row ids, at most 20 digits each.
        assert re.match(r"^\^?[a-z]+:([a-z-]+|\(\?P<\w+>[a-z-]+(\|[a-z-]+)*\)):", pattern), pattern
        longest = re.sub(r"\(\?P<\w+>([a-z|-]+)\)", lambda m: max(m[1].split("|"), key=len), pattern)
        assert len(re.sub(r"\(\?P<\w+>\[0-9\]\+\)", "9" * 20, longest)) <= 100, pattern
