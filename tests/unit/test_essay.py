"""The essay: the shipped file, paragraphs, sentences and excerpt lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain.essay import ESSAY_PATH, Essay, load_essay, normalise_space, parse_essay, split_sentences

REPO = Path(__file__).resolve().parents[2]
SHARED_ESSAY = REPO.parent / "shared" / "essay.txt"
TITLE = "Individualism and Collectivism"


@pytest.fixture(scope="module")
def essay() -> Essay:
    return load_essay()


def test_shipped_file_is_title_then_five_paragraphs() -> None:
    lines = ESSAY_PATH.read_text(encoding="utf-8").splitlines()
    assert lines[0] == TITLE
    assert len(lines) == 6
    assert all(line == line.strip() and line for line in lines)


def test_load_essay_defaults_to_the_shipped_file(essay: Essay) -> None:
    assert essay.title == TITLE
    assert len(essay.paragraphs) == 5
    assert essay.paragraph(1).startswith("Individualism emphasizes the value of self-reliance")
    assert essay.paragraph(5).endswith("where individual's needs and rights are respected.")


@pytest.mark.skipif(not SHARED_ESSAY.is_file(), reason="../shared/essay.txt (the source text) is not present")
def test_shipped_essay_matches_the_source_text(essay: Essay) -> None:
    # The source has the title and paragraph 1 on one line, and stray whitespace; nothing else differs.
    source = [line.strip() for line in SHARED_ESSAY.read_text(encoding="utf-8").splitlines()]
    source = [line for line in source if line]
    assert source[0] == f"{TITLE} {essay.paragraphs[0]}"
    assert tuple(source[1:]) == essay.paragraphs[1:]


@pytest.mark.parametrize("n", [0, 6, -1, True, "1"])
def test_paragraph_out_of_range_raises(essay: Essay, n: object) -> None:
    with pytest.raises(IndexError):
        essay.paragraph(n)  # type: ignore[arg-type]


def test_sentences_per_paragraph(essay: Essay) -> None:
    assert [len(essay.sentences(n)) for n in range(1, 6)] == [4, 4, 4, 5, 3]
    assert essay.sentences(4)[2].endswith("everyone else's.")
    assert " ".join(essay.sentences(3)) == essay.paragraph(3)


def test_find_returns_the_paragraph_number(essay: Essay) -> None:
    assert essay.find("Collectivist societies place a great deal of emphasis on conformity") == 4
    assert essay.find("commonly communist or communal societies.") == 1
    assert essay.find("This sentence is not in the essay.") is None
    assert essay.find("   ") is None


def test_find_normalises_only_whitespace(essay: Essay) -> None:
    assert essay.find("Democratic  society\n is more or less\tbased on individualism") == 2
    assert essay.find("democratic society is more or less based on individualism") is None  # case counts
    assert essay.find("Democratic society is more or less based on individualism,and") is None


def test_find_all_lists_every_paragraph(essay: Essay) -> None:
    assert essay.find_all("individual") == (1, 2, 3, 4, 5)
    assert essay.find_all("community") == (1, 3, 4, 5)


def test_whole_sentences(essay: Essay) -> None:
    one, two, three = essay.sentences(5)
    assert essay.whole_sentences(5, one) == 1
    assert essay.whole_sentences(5, f"{two} {three}") == 2
    assert essay.whole_sentences(5, f"{one}  {two}\n{three}") == 3
    assert essay.whole_sentences(5, one[:-1]) is None  # stops mid-sentence
    assert essay.whole_sentences(5, one[3:]) is None  # starts mid-sentence
    assert essay.whole_sentences(4, f"{one}") is None  # wrong paragraph


def test_split_sentences_keeps_closing_quotes() -> None:
    assert split_sentences('He said "Go." Then (she left.) And so on') == (
        'He said "Go."',
        "Then (she left.)",
        "And so on",
    )


def test_parse_essay_needs_title_and_a_paragraph() -> None:
    with pytest.raises(ValueError):
        parse_essay("Only a title\n\n")
    essay = parse_essay("\n  Title  \n\n First   paragraph. \n")
    assert essay == Essay("Title", ("First paragraph.",))


def test_normalise_space() -> None:
    assert normalise_space("  a \t b\n\nc ") == "a b c"
