"""Every YAML file shipped under prompts/ is a valid pack; the built-in pack meets its editorial bar."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bot.domain.essay import PROMPTS_DIR, load_essay
from bot.domain.packs import MAX_LABEL, MAX_QUESTION, SETTINGS, THEMES, Dilemma, Pack, check_files, load_builtin_pack
from bot.ui.debates import FIELD_NAME_MAX, safe

SHIPPED = sorted([*PROMPTS_DIR.glob("*.yaml"), *PROMPTS_DIR.glob("*.yml")])


@pytest.fixture(scope="module")
def pack() -> Pack:
    return load_builtin_pack()


def all_dilemmas(pack: Pack) -> list[tuple[str, Dilemma]]:
    return [(f"{p.id}/{d.id}", d) for p in pack.prompts for d in p.dilemmas]


def test_there_is_a_shipped_pack() -> None:
    assert SHIPPED, "no pack under prompts/"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_file_is_valid(path: Path) -> None:
    assert [str(p) for p in check_files([path], load_essay())] == []


def test_at_least_40_prompts(pack: Pack) -> None:
    assert len(pack.prompts) >= 40


def test_every_paragraph_is_the_source_of_at_least_six(pack: Pack) -> None:
    per_paragraph = Counter(p.paragraph for p in pack.prompts)
    assert {n: per_paragraph[n] for n in range(1, 6)} == {n: max(6, per_paragraph[n]) for n in range(1, 6)}


def test_every_theme_is_used(pack: Pack) -> None:
    assert {p.theme for p in pack.prompts} == set(THEMES)


def test_positions_balance_near_zero(pack: Pack) -> None:
    positions = [o.position for _, d in all_dilemmas(pack) for o in d.options]
    assert abs(sum(positions) / len(positions)) <= 0.15
    for where, d in all_dilemmas(pack):  # and no single dilemma is loaded to one side
        mean = sum(o.position for o in d.options) / len(d.options)
        assert abs(mean) <= 0.25, where


def test_limits(pack: Pack) -> None:
    for p in pack.prompts:
        assert len(p.question) <= MAX_QUESTION, p.id
    for where, d in all_dilemmas(pack):
        assert len(d.question) <= MAX_QUESTION, where
        assert all(len(o.label) <= MAX_LABEL for o in d.options), where


def test_every_dilemma_has_a_setting_and_its_options_run_along_the_axis(pack: Pack) -> None:
    for where, d in all_dilemmas(pack):
        assert d.setting in SETTINGS, where
        positions = [o.position for o in d.options]
        assert positions == sorted(set(positions)), where  # written individual first, no two at one place


def test_no_excerpt_leaves_its_referent_out(pack: Pack) -> None:
    # "This is perhaps one of its greatest failings" alone: the reader cannot tell what "this" is.
    for p in pack.prompts:
        assert not p.excerpt.startswith(("This ", "It is ", "Collectivist societies may not recognize this")), p.id


def test_question_openings_vary(pack: Pack) -> None:
    openings = Counter(p.question.split()[0] for p in pack.prompts)
    assert sum(p.question.startswith("The essay") for p in pack.prompts) <= len(pack.prompts) // 8
    assert openings.most_common(1)[0][1] <= len(pack.prompts) // 4


def test_the_essays_contestable_claims_are_open_to_debate(pack: Pack) -> None:
    excerpts = " ".join(p.excerpt for p in pack.prompts)
    for claim in ("commonly communist", "based on individualism", "especially of violent crime"):
        assert claim in excerpts, claim


def test_each_dilemma_is_its_own(pack: Pack) -> None:
    questions = [d.question for _, d in all_dilemmas(pack)]
    assert len(set(questions)) == len(questions)


def test_every_dilemma_question_shows_uncut_in_the_debate_embed(pack: Pack) -> None:
    # The debate embed puts the dilemma's question in a field name (256 characters), escaped first.
    for where, d in all_dilemmas(pack):
        assert len(safe(d.question)) <= FIELD_NAME_MAX, where
