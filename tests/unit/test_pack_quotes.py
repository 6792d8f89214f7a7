"""Every phrase the built-in pack puts in quotes as the essay's words is the essay's words, verbatim.

The pack's house rule: quote marks in a prompt's question or context are reserved for the essay. A
dilemma's question may quote someone in its scene ("to 'build team identity'"); a quote there counts
as the essay's only when its sentence names the essay. Phrases are compared with whitespace collapsed,
at word boundaries (so 'greatest failing' does not pass for "greatest failings"), allowing only a
capital or small first letter and the sentence punctuation a quote absorbs at its ends; an ellipsis
splits a quote into parts that must each be verbatim.
"""

from __future__ import annotations

import re

import pytest

from bot.domain.essay import Essay, load_essay, normalise_space
from bot.domain.packs import Pack, load_builtin_pack

# A straight single quote opens after a non-word character and closes before one, so the apostrophes
# in "one's" or "individual's" are never taken for quote marks.
_QUOTE_PATTERNS = (
    re.compile(r"“([^”]*)”"),
    re.compile(r"‘([^’]*)’"),
    re.compile(r'"([^"]*)"'),
    re.compile(r"(?<!\w)'(?=\S)(.*?\S)'(?!\w)"),
)
# A mark left once the pairs are removed. A lone ' after a word is a plural possessive ("residents'"),
# not a closing mark, so only a lone opening ' counts.
_STRAY = re.compile(r"[“”‘\"]|(?<!\w)'")
_ELLIPSIS = re.compile(r"\s*(?:\.\.\.|…)\s*")
_EDGE_PUNCTUATION = " .,;:!?"


class UnbalancedQuote(ValueError):
    pass


def quoted_phrases(text: str) -> list[str]:
    """The phrases inside quote marks in ``text``; UnbalancedQuote if a mark is left unpaired."""
    phrases: list[str] = []
    rest = text
    for pattern in _QUOTE_PATTERNS:
        phrases += [m.group(1) for m in pattern.finditer(rest)]
        rest = pattern.sub(" ", rest)
    stray = _STRAY.search(rest)
    if stray is not None:
        raise UnbalancedQuote(f"unpaired quote mark {stray.group()!r} in: {text}")
    return phrases


def in_essay(phrase: str, essay: Essay) -> bool:
    """Whether every part of ``phrase`` appears verbatim, at word boundaries, in the essay."""
    haystack = normalise_space(" ".join(essay.paragraphs))
    parts = [normalise_space(p).strip(_EDGE_PUNCTUATION) for p in _ELLIPSIS.split(phrase)]
    parts = [p for p in parts if p]
    if not parts:
        return False
    for part in parts:
        variants = {part, part[0].swapcase() + part[1:]}
        if not any(re.search(rf"(?<!\w){re.escape(v)}(?!\w)", haystack) for v in variants):
            return False
    return True


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.?!])\s+", text)


def essay_quotes(pack: Pack) -> list[tuple[str, str]]:
    """(where, phrase) for every quoted phrase in the pack that claims to be the essay's words."""
    found: list[tuple[str, str]] = []
    for prompt in pack.prompts:
        found += [(f"{prompt.id}: question", q) for q in quoted_phrases(prompt.question)]
        if prompt.context:
            found += [(f"{prompt.id}: context", q) for q in quoted_phrases(prompt.context)]
        for dilemma in prompt.dilemmas:
            for sentence in _sentences(dilemma.question):
                quotes = quoted_phrases(sentence)
                if quotes and re.search(r"\bessay\b", sentence, re.IGNORECASE):
                    found += [(f"{prompt.id}/{dilemma.id}: question", q) for q in quotes]
    return found


@pytest.fixture(scope="module")
def essay() -> Essay:
    return load_essay()


def test_every_quote_claimed_for_the_essay_is_verbatim(essay: Essay) -> None:
    quotes = essay_quotes(load_builtin_pack(essay))
    assert len(quotes) >= 15, "the pack quotes the essay in many questions; fewer found means the scan broke"
    assert [f"{where}: '{phrase}'" for where, phrase in quotes if not in_essay(phrase, essay)] == []


def test_dilemma_questions_have_balanced_quotes() -> None:
    for prompt in load_builtin_pack().prompts:
        for dilemma in prompt.dilemmas:
            quoted_phrases(dilemma.question)  # raises on an unpaired mark


@pytest.mark.parametrize(
    ("text", "phrases"),
    [
        ("Is it 'more or less based on individualism'? Or not?", ["more or less based on individualism"]),
        ('We "all say" it, and “we all say” it, and ‘we all say’ it.', ["we all say", "we all say", "all say"]),
        ("The individual's will and one's own: no quotes here.", []),
        ("The residents' co-op and the members' rules.", []),
        ("'These days, we all say' no one's life is theirs.", ["These days, we all say"]),
        ("Calls it 'the importance of the individual's will' twice.", ["the importance of the individual's will"]),
    ],
)
def test_quoted_phrases_finds_each_kind_of_quote_and_skips_apostrophes(text: str, phrases: list[str]) -> None:
    assert sorted(quoted_phrases(text)) == sorted(phrases)


@pytest.mark.parametrize("text", ["It says 'greatest failing and stops.", 'An "open quote.', "A “curly one."])
def test_an_unpaired_quote_mark_is_refused(text: str) -> None:
    with pytest.raises(UnbalancedQuote):
        quoted_phrases(text)


@pytest.mark.parametrize(
    "phrase",
    [
        "perhaps one of its greatest failings",
        "Perhaps one of its greatest failings",  # a quote may start a sentence
        "increasing crime rates, especially of violent crime.",
        "even though personal liberty is important... the importance of community",
        "free to decide   our own path",  # whitespace collapsed
    ],
)
def test_verbatim_phrases_pass(essay: Essay, phrase: str) -> None:
    assert in_essay(phrase, essay)


@pytest.mark.parametrize(
    "phrase",
    [
        "greatest failing",  # the old misquote: the essay says "greatest failings"
        "collectivism's greatest failing",
        "violent crime has fallen",
        "free to decide our own paths",
        "the importance of the community is far above that of the individual",
        "",
    ],
)
def test_misquotes_fail(essay: Essay, phrase: str) -> None:
    assert not in_essay(phrase, essay)


def test_the_old_misquoted_question_would_fail(essay: Essay) -> None:
    old = "The essay calls conformity collectivism's 'greatest failing'. Which pressure is stronger?"
    assert [q for q in quoted_phrases(old) if not in_essay(q, essay)] == ["greatest failing"]
