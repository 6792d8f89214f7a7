"""Poll texts and components without a connection: custom_id templates, escaping, native limits, parsing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import discord

from bot.cogs.poll import parse_options
from bot.domain.leaning import poll_leaning
from bot.storage.polls import OptionRow, PollRow
from bot.ui import polls as ui

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def poll(labels=("Me", "Us"), *, question="Q?", style="buttons", status="open", poll_id=7) -> PollRow:
    opts = tuple(OptionRow(i, label, -1.0 + 2.0 * i / max(1, len(labels) - 1), None) for i, label in enumerate(labels))
    return PollRow(
        poll_id, 1, None, 2, 3, question, None, None, style, status, False, NOW, NOW + timedelta(hours=5),
        None, None, None, None, opts,
    )  # fmt: skip


def test_custom_ids_match_their_templates_and_fit():
    biggest = 2**63 - 1
    vote = ui.VoteButton(biggest, 24, "x" * 200)
    withdraw = ui.WithdrawButton(biggest)
    assert re.fullmatch(ui.VOTE_TEMPLATE, vote.item.custom_id)
    assert re.fullmatch(ui.WITHDRAW_TEMPLATE, withdraw.item.custom_id)
    assert len(vote.item.custom_id) <= 100 and len(withdraw.item.custom_id) <= 100
    assert vote.item.custom_id.split(":")[:2] == ["poll", "vote"]
    assert len(vote.item.label) <= 80


def test_vote_view_has_one_button_per_option_and_can_be_disabled():
    view = ui.vote_view(poll(("a", "b", "c")), disabled=True)
    assert [c.item.custom_id for c in view.children] == ["poll:vote:7:0", "poll:vote:7:1", "poll:vote:7:2"]
    assert all(c.item.disabled for c in view.children)
    assert view.timeout is None


def test_member_text_is_escaped():
    text = ui.vote_reply("cast", "**bold** @everyone <@&123456789012345678>", NOW)
    assert "\\*\\*bold\\*\\*" in text and "@everyone" not in text and "<@&123456789012345678>" not in text
    assert text.startswith("You chose *") and "<t:" in text and ":R>" in text
    embed = ui.dilemma_embed(poll(("@here", "`code`"), question="||spoiler|| @everyone"))
    assert "@everyone" not in embed.description and "\\|\\|spoiler" in embed.description
    assert "@here" not in embed.fields[0].value


def test_native_poll_respects_discord_limits():
    long = poll(tuple(f"{i}" + "x" * 80 for i in range(5)), question="q" * 400, style="native")
    native = ui.native_poll(long, NOW)
    assert isinstance(native, discord.Poll)
    assert len(native.question) <= 300
    assert all(len(a.text) <= 55 for a in native.answers) and len(native.answers) == 5
    assert native.duration == timedelta(hours=5)
    assert ui.native_hours(NOW + timedelta(minutes=1), NOW) == 1
    assert ui.native_hours(NOW + timedelta(days=90), NOW) == 768


def test_result_embed_counts_percentages_leaning_and_no_names():
    p = poll(("Me", "Both", "Us"))
    counts = {0: 1, 1: 0, 2: 3}
    embed = ui.result_embed(p, counts, poll_leaning({-1.0: 1, 0.0: 0, 1.0: 3}), chart=True)
    body = embed.fields[0].value
    assert embed.fields[0].name == "4 voters"
    assert "Me — 1 (25%)" in body and "Both — 0 (0%)" in body and "Us — 3 (75%)" in body
    assert "based on 4 votes" in embed.fields[1].value
    assert embed.image.url == "attachment://poll-7.png"
    assert "closed with no votes" in ui.summary_text(p, {}, poll_leaning({}))
    assert "Most chose *Us* (75%)" in ui.summary_text(p, counts, poll_leaning({-1.0: 1, 1.0: 3}))


def test_refusals_say_why():
    assert "<@&42>" in ui.refused_role(42)
    text = ui.refused_new(7, NOW + timedelta(days=3))
    assert "7 days" in text and "<t:" in text
    assert ui.vote_reply("unavailable", None, None) == "This poll isn't available here."


def test_parse_options():
    assert parse_options("1. Me\n\n2. Us\n- Both\n* Neither  \n") == ["Me", "Us", "Both", "Neither"]
    assert parse_options("2050 is far\n") == ["2050 is far"]
    assert parse_options("   \n") == []
