"""/leaning through the sandbox and the real bot: every command answers in time with a PNG and text,
members and servers without data get a friendly explanation, groups under 5 are never revealed,
/leaning me is ephemeral."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pytest

from tests.harness import START, Harness
from tests.storage.test_leaning_queries import seed_poll

EXTENSIONS = ("bot.cogs.meta", "bot.cogs.leaning")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EPHEMERAL = 64
DEADLINE = 3.0  # Discord's window for the first answer; the sandbox enforces it too
THEMES = ("rights", "balance", "conformity")


async def seed_camps(h: Harness, camps: dict[int | None, int], *, polls: int = 12, voter=None) -> list[int]:
    """Closed polls over the weeks before START; members in camps voting mostly one way.

    ``camps`` maps the option a camp prefers (None: the middle, noisily) to its size. ``voter``, when
    given, is a sandbox member who votes "Us first" in every poll.
    """
    rng = np.random.default_rng(7)
    members: list[tuple[int, int | None]] = []
    base = 10**17
    for camp, size in camps.items():
        for _ in range(size):
            members.append((base + len(members), camp))
    ids = []
    async with h.db.write() as conn:
        for k in range(polls):
            ballots = {}
            for user, camp in members:
                if camp is None:
                    ballots[user] = 1 if rng.random() < 0.8 else int(rng.integers(0, 3))
                else:
                    ballots[user] = camp if rng.random() < 0.8 else 1
            if voter is not None:
                ballots[voter.id] = 2
            history = [(members[0][0], "cast", 1)] if k % 3 == 0 else []
            ids.append(
                await seed_poll(
                    conn,
                    h.guild.id,
                    closed_at=START - timedelta(days=2 + 5 * k, hours=3),
                    ballots=ballots,
                    theme=THEMES[k % len(THEMES)],
                    question=f"Dilemma number {k}: who comes first?",
                    history=history,
                )
            )
    return ids


async def answer(h: Harness, member, name: str, options=None, *, timeout: float = 20) -> tuple[dict, dict]:
    """(first callback, final message) of a slash command; the first within Discord's deadline."""
    ix = await h.slash(member, name, options)
    first = await ix.response(timeout=DEADLINE)
    assert not ix.rejected_callbacks
    if first["type"] == 4:
        return first, first["data"]
    assert first["type"] == 5, first  # deferred: "thinking…"
    followups = await h.sandbox.wait_for(lambda: ix.followups, timeout=timeout)
    return first, followups[0]


def png_of(h: Harness, message: dict) -> bytes:
    (attachment,) = message["attachments"]
    assert attachment["filename"].endswith(".png")
    _filename, data, _ctype = h.sandbox.attachments[int(attachment["id"])]
    assert data[:8] == PNG_MAGIC
    return data


def text_of(message: dict) -> str:
    parts = [message.get("content") or ""]
    for embed in message.get("embeds") or []:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f"{f['name']}\n{f['value']}" for f in embed.get("fields") or []]
    return "\n".join(parts)


@pytest.fixture
async def h(tmp_path):
    async with Harness(tmp_path, extensions=EXTENSIONS) as harness:
        yield harness


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("leaning show", {}),
        ("leaning show", {"period": "year", "theme": "rights"}),
        ("leaning show", {"period": "month"}),
        ("leaning show", {"period": "all"}),
        ("leaning themes", {}),
        ("leaning shift", {"period": "quarter"}),
        ("leaning groups", {}),
    ],
)
async def test_each_command_answers_in_time_with_png_and_text(h, command, options):
    await seed_camps(h, {0: 9, 2: 8})
    _first, message = await answer(h, h.members[1], command, options)
    png_of(h, message)
    text = text_of(message)
    assert len(text) > 40
    for embed in message["embeds"]:
        assert len(embed.get("description") or "") <= 4096
        assert all(len(f["value"]) <= 1024 for f in embed.get("fields") or [])


async def test_show_summarises_where_the_server_stands(h):
    await seed_camps(h, {0: 9, 2: 8})
    _, message = await answer(h, h.members[1], "leaning show", {"period": "quarter"})
    text = text_of(message)
    assert "Took part:** 17 members" in text
    assert "votes in 12 polls" in text
    assert "Most unifying" in text and "Most divisive" in text
    assert "Change:" in text


async def test_groups_show_two_groups_of_at_least_five(h):
    await seed_camps(h, {0: 9, 2: 8, None: 3})
    _, message = await answer(h, h.members[1], "leaning groups")
    png_of(h, message)
    text = text_of(message)
    sizes = [int(n) for n in re.findall(r"Group [A-E] \(n=(\d+)\)", text)]
    assert len(sizes) >= 2 and min(sizes) >= 5
    assert "What splits them" in text
    assert str(10**17) not in text  # no member ids


async def test_groups_never_reveal_a_group_under_five(h):
    await seed_camps(h, {0: 9, 2: 3})  # the community-first camp is only three members
    _, message = await answer(h, h.members[1], "leaning groups")
    png_of(h, message)
    text = text_of(message)
    assert "No opinion groups to show" in text
    assert not re.search(r"Group [A-E]", text)
    assert "n=3" not in text


async def test_me_is_ephemeral_and_shows_the_member_next_to_the_server(h):
    await seed_camps(h, {0: 9, 2: 8}, voter=h.members[0])
    first, message = await answer(h, h.members[0], "leaning me")
    assert first["data"]["flags"] & EPHEMERAL, "the deferral is ephemeral"
    assert message["flags"] & EPHEMERAL
    png_of(h, message)
    text = text_of(message)
    assert "**Your votes:** puts the community first (+1.00" in text
    assert "**This server:**" in text
    assert {"rights", "balance", "conformity"} <= {f["name"] for f in message["embeds"][0]["fields"]}


async def test_member_without_votes_gets_a_friendly_private_note(h):
    await seed_camps(h, {0: 9, 2: 8})
    first, message = await answer(h, h.members[2], "leaning me")
    assert first["data"]["flags"] & EPHEMERAL and message["flags"] & EPHEMERAL
    assert "haven't voted" in message["content"]
    assert not message["attachments"]


@pytest.mark.parametrize("command", ["leaning show", "leaning themes", "leaning shift", "leaning groups"])
async def test_server_without_data_gets_a_friendly_explanation(h, command):
    _, message = await answer(h, h.members[0], command)
    assert "nothing to show yet" in message["content"]
    assert "went wrong" not in message["content"]


async def test_a_period_without_polls_says_so(h):
    async with h.db.write() as conn:
        await seed_poll(conn, h.guild.id, closed_at=START - timedelta(days=200), ballots={1: 0})
    _, message = await answer(h, h.members[0], "leaning show", {"period": "week"})
    assert "No poll closed in the last week" in message["content"]


async def test_methodology_and_unknown_theme(h):
    _, message = await answer(h, h.members[0], "leaning methodology")
    assert message["flags"] & EPHEMERAL
    assert "not a measure of anyone's personality" in text_of(message)
    ix = await h.slash(h.members[0], "leaning show", {"theme": "astrology"})
    reply = await ix.response(timeout=DEADLINE)
    assert reply["data"]["flags"] & EPHEMERAL
    assert "no theme called" in reply["data"]["content"]


async def test_theme_autocomplete_offers_the_essay_themes(h):
    choices = await h.sandbox.autocomplete(
        h.guild.id, h.channel.id, h.members[0].id, "leaning show", {"theme": "right"}, "theme"
    )
    assert [c["value"] for c in choices] == ["rights"]


async def test_all_time_beyond_two_years_is_drawn_in_four_week_steps(h):
    async with h.db.write() as conn:
        for k in range(4):
            ballots = {10**17 + i: i % 3 for i in range(12)}
            await seed_poll(conn, h.guild.id, closed_at=START - timedelta(days=1 + 300 * k), ballots=ballots)
    _, message = await answer(h, h.members[0], "leaning show", {"period": "all"})
    png_of(h, message)
    text = text_of(message)
    assert "**Latest four weeks**" in text
    assert "48 votes in 4 polls" in text


async def test_methodology_for_moderators_adds_options_whose_voters_disagree(h):
    await seed_camps(h, {0: 25, 2: 25}, polls=6)
    individualists = [10**17 + i for i in range(25)]
    communitarians = [10**17 + 25 + i for i in range(25)]
    async with h.db.write() as conn:
        # "Keep it" is placed at +1 (community first) but the individualists pick it.
        await seed_poll(
            conn,
            h.guild.id,
            closed_at=START - timedelta(days=1),
            ballots={**dict.fromkeys(individualists, 0), **dict.fromkeys(communitarians, 1)},
            options=(("Keep it", 1.0), ("Share it", -1.0)),
            question="Misplaced options?",
        )
    _, message = await answer(h, h.members[0], "leaning methodology")
    assert len(message["embeds"]) == 1  # members: the methodology only
    _, message = await answer(h, h.mod, "leaning methodology")
    assert message["flags"] & EPHEMERAL
    method, placement = message["embeds"]
    assert "Option order" in method["description"]
    assert placement["title"] == "Options whose voters disagree with their placement"
    text = placement["description"]
    assert "2 flagged" in text
    assert "⚠ “Misplaced options?” — *Keep it* (+1.0): its 25 voters lean" in text
    assert sum(len(e.get("description", "")) + len(e.get("title", "")) for e in message["embeds"]) <= 6000
