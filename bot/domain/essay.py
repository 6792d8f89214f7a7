"""The essay "Individualism and Collectivism": loading, paragraphs, sentences, excerpt lookup.

The shipped file (``prompts/essay.txt``) holds the title on its first line and then one paragraph
per line. Paragraphs are numbered from 1, as moderators and the packs refer to them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path


def _prompts_dir() -> Path:
    """The folder of the package ``bot.prompts``: the repository's prompts/ in a checkout (pyproject.toml
    maps the package there), ``bot/prompts`` inside an installed wheel."""
    found = files("bot.prompts")
    if not isinstance(found, Path):  # pip installs wheels unpacked; a zipped copy would need as_file()
        raise RuntimeError(f"bot.prompts must be installed as files, not {type(found).__name__}")
    return found


PROMPTS_DIR = _prompts_dir()
ESSAY_PATH = PROMPTS_DIR / "essay.txt"

# A sentence ends at . ! or ? (optionally followed by a closing quote or bracket) before whitespace
# and a capital letter or an opening quote. The essay has no abbreviations, so this is exact for it;
# it is also what decides whether a pack's excerpt is made of whole sentences.
_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)\]]))\s+(?=[\"'“‘(\[]?[A-Z0-9])")


def normalise_space(text: str) -> str:
    """Collapse every run of whitespace into one space and strip the ends."""
    return " ".join(text.split())


def split_sentences(text: str) -> tuple[str, ...]:
    """Split a paragraph into sentences (whitespace-normalised)."""
    text = normalise_space(text)
    if not text:
        return ()
    parts = _SENTENCE_BREAK.split(text)
    return tuple(p for p in parts if p)


@dataclass(frozen=True)
class Essay:
    """The source text: a title and its paragraphs (numbered from 1)."""

    title: str
    paragraphs: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.paragraphs:
            raise ValueError("an essay needs at least one paragraph")

    def paragraph(self, n: int) -> str:
        """Paragraph ``n`` (1-based); IndexError if there is no such paragraph."""
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(self.paragraphs):
            raise IndexError(f"paragraph must be 1–{len(self.paragraphs)}, got {n!r}")
        return self.paragraphs[n - 1]

    def sentences(self, n: int) -> tuple[str, ...]:
        """The sentences of paragraph ``n`` (1-based)."""
        return split_sentences(self.paragraph(n))

    def find_all(self, excerpt: str) -> tuple[int, ...]:
        """Every paragraph number that contains ``excerpt`` (whitespace runs normalised)."""
        needle = normalise_space(excerpt)
        if not needle:
            return ()
        return tuple(i for i, text in enumerate(self.paragraphs, start=1) if needle in normalise_space(text))

    def find(self, excerpt: str) -> int | None:
        """The first paragraph number that contains ``excerpt`` verbatim, or None."""
        found = self.find_all(excerpt)
        return found[0] if found else None

    def whole_sentences(self, n: int, excerpt: str) -> int | None:
        """How many whole, consecutive sentences of paragraph ``n`` the excerpt is; None if it is not."""
        needle = normalise_space(excerpt)
        sentences = self.sentences(n)
        for i in range(len(sentences)):
            for j in range(i + 1, len(sentences) + 1):
                joined = " ".join(sentences[i:j])
                if joined == needle:
                    return j - i
                if len(joined) > len(needle):
                    break
        return None


def parse_essay(text: str) -> Essay:
    """Build an Essay from text: the first non-blank line is the title, each further one a paragraph."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) < 2:
        raise ValueError("an essay file needs a title line and at least one paragraph line")
    return Essay(title=lines[0], paragraphs=tuple(normalise_space(p) for p in lines[1:]))


def load_essay(path: Path | str | None = None) -> Essay:
    """Load the essay from ``path`` (default: the shipped ``prompts/essay.txt``)."""
    path = Path(path) if path is not None else ESSAY_PATH
    return parse_essay(path.read_text(encoding="utf-8"))
