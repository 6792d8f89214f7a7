"""Every YAML file shipped under prompts/ is a valid pack; the built-in pack meets its editorial bar."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bot.domain.essay import PROMPTS_DIR, load_essay
from bot.domain.packs import MAX_LABEL, MAX_QUESTION, THEMES, Pack, check_files, load_builtin_pack

SHIPPED = sorted([*PROMPTS_DIR.glob("*.yaml"), *PROMPTS_DIR.glob("*.yml")])


@pytest.fixture(scope="module")
def pack() -> Pack:
    return load_builtin_pack()


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
    positions = [o.position for p in pack.prompts for o in p.dilemma.options]
    assert abs(sum(positions) / len(positions)) <= 0.15
    for p in pack.prompts:  # and no single dilemma is loaded to one side
        mean = sum(o.position for o in p.dilemma.options) / len(p.dilemma.options)
        assert abs(mean) <= 0.25, p.id


def test_limits(pack: Pack) -> None:
    for p in pack.prompts:
        assert len(p.question) <= MAX_QUESTION, p.id
        assert len(p.dilemma.question) <= MAX_QUESTION, p.id
        assert all(len(o.label) <= MAX_LABEL for o in p.dilemma.options), p.id


def test_the_essays_contestable_claims_are_open_to_debate(pack: Pack) -> None:
    excerpts = " ".join(p.excerpt for p in pack.prompts)
    for claim in ("commonly communist", "based on individualism", "especially of violent crime"):
        assert claim in excerpts, claim


def test_each_prompt_has_its_own_dilemma(pack: Pack) -> None:
    questions = [p.dilemma.question for p in pack.prompts]
    assert len(set(questions)) == len(questions)
