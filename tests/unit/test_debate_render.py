"""The debate post embed: excerpt verbatim, source line, Discord's limits, user text escaped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.cogs.pack import problems_message
from bot.domain.essay import load_essay
from bot.domain.packs import Dilemma, Option, PackError, PackProblem, Prompt, load_builtin_pack
from bot.storage.debates import Debate
from bot.ui.debates import EMBED_TOTAL_MAX, debate_embed, parse_option_lines, thread_name

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


def debate_of(prompt: Prompt, **over) -> Debate:
    values = {
        "id": 1,
        "guild_id": 1,
        "kind": "scheduled",
        "slot_date": "2026-03-02",
        "due_at": NOW,
        "prompt_key": f"x/{prompt.id}",
        "paragraph": prompt.paragraph,
        "excerpt": prompt.excerpt,
        "question": prompt.question,
        "theme": prompt.theme,
        "channel_id": 2,
        "message_id": None,
        "thread_id": None,
        "event_id": None,
        "nonce": "n",
        "status": "pending",
        "error": None,
        "created_at": NOW,
        "posted_at": None,
    }
    values.update(over)
    return Debate(**values)


@pytest.mark.parametrize("prompt", load_builtin_pack().prompts, ids=lambda p: p.id)
def test_every_builtin_excerpt_is_quoted_verbatim_with_its_source(prompt):
    embed = debate_embed(debate_of(prompt), "Individualism and Collectivism", dilemma=prompt)
    quoted = embed.description.split("\n— ")[0]
    assert quoted == "> " + prompt.excerpt
    assert f"Individualism and Collectivism, ¶{prompt.paragraph}" in embed.description
    assert prompt.question in embed.description
    assert len(embed) <= EMBED_TOTAL_MAX
    assert len(embed.title) <= 256 and len(embed.description) <= 4096
    for field in embed.fields:
        assert len(field.name) <= 256 and len(field.value) <= 1024
    assert all(o.label in embed.fields[0].value for o in prompt.dilemma.options)
    assert len(thread_name(debate_of(prompt))) <= 100


def test_user_text_is_escaped():
    evil = Prompt(
        id="evil",
        paragraph=1,
        excerpt="@everyone look **here** ```",
        theme="balance",
        question="<@&123456789012345678> [click](https://evil.example) `code` @here",
        dilemmas=(Dilemma("Pick _one_", (Option("@everyone yes", -1.0), Option("||no||", 1.0))),),
    )
    embed = debate_embed(debate_of(evil), "Essay", dilemma=evil)
    text = embed.description + embed.fields[0].name + embed.fields[0].value
    assert "@everyone" not in text and "@here" not in text
    assert "<@&123456789012345678>" not in text
    assert "**here**" not in text and "```" not in text and "||no||" not in text


def test_huge_text_stays_within_limits():
    big = Prompt(
        id="big",
        paragraph=2,
        excerpt="x " * 3000,
        theme="balance",
        question="q" * 3000,
        dilemmas=(Dilemma("d" * 300, tuple(Option("o" * 55, 0.0) for _ in range(5))),),
    )
    embed = debate_embed(debate_of(big), "Essay", dilemma=big)
    assert len(embed) <= EMBED_TOTAL_MAX
    assert len(embed.description) <= 4096


def test_pack_problems_fit_one_message_with_a_count_of_the_rest():
    problems = [PackProblem("pack.yaml", i, f"p{i}", "excerpt", "not found in the essay " * 3) for i in range(200)]
    text = problems_message(PackError(problems))
    assert len(text) <= 2000
    assert text.endswith("more")
    shown = text.count("\n- ")
    assert f"…and {200 - shown} more" in text


def test_option_lines():
    assert parse_option_lines("-1 Keep it\n\n0.5 | Share it") == [
        {"label": "Keep it", "position": -1.0},
        {"label": "Share it", "position": 0.5},
    ]
    with pytest.raises(ValueError):
        parse_option_lines("Keep it")


def test_the_essay_title_is_the_source():
    assert load_essay().title == "Individualism and Collectivism"


def test_the_context_note_is_shown_under_the_question_and_escaped():
    prompt = load_builtin_pack().prompts[0]
    embed = debate_embed(debate_of(prompt), "Essay", context="Source: a *2019* survey @everyone")
    question_at = embed.description.index(prompt.question.split()[0])
    note_at = embed.description.index("Source: a")
    assert note_at > question_at
    assert "\\*2019\\*" in embed.description and "@everyone" not in embed.description
    assert "Source" not in debate_embed(debate_of(prompt), "Essay").description
