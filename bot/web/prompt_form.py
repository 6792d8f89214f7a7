"""The prompt editor's form: fields in, the pack validator's own messages out, beside each field.

A prompt written on the site joins the server's pack ``web-prompts``. The form never checks a rule
itself: it builds the pack's YAML (the prompts already there plus the new one) and hands it to
``bot.domain.packs.parse_pack``, the validator `/pack upload` and `commonground prompts check` use,
then files each problem under the field it names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from bot.domain.essay import Essay
from bot.domain.packs import MAX_OPTIONS, Dilemma, Option, PackError, Prompt, parse_pack
from bot.storage.debates import Debate
from bot.ui import debates as ui

WEB_PACK = "web-prompts"
SOURCE = "web form"
_OPTION_FIELD = re.compile(r"^dilemma\.options\[(\d+)\]\.(label|position)$")
FIELD_OF = {
    "id": "id",
    "paragraph": "excerpt",
    "excerpt": "excerpt",
    "theme": "theme",
    "question": "question",
    "dilemma": "poll_question",
    "dilemma.question": "poll_question",
    "dilemma.options": "options",
}


class _NoAliases(yaml.SafeDumper):
    """The pack loader refuses anchors and aliases, so never write one."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def essay_choices(essay: Essay) -> list[tuple[int, list[tuple[str, str]]]]:
    """``[(paragraph, [(value "p:i", sentence)])]`` for the excerpt picker."""
    return [
        (n, [(f"{n}:{i}", sentence) for i, sentence in enumerate(essay.sentences(n))])
        for n in range(1, len(essay.paragraphs) + 1)
    ]


@dataclass
class PromptForm:
    values: dict[str, Any]
    options: list[tuple[str, str]]  # (label, position) as typed, MAX_OPTIONS rows
    errors: dict[str, list[str]] = field(default_factory=dict)
    rows: list[int] = field(default_factory=list)  # form row of each option sent to the validator
    index: int = 0  # the new prompt's position in the pack (the validator names an id-less prompt "#N")

    @classmethod
    def empty(cls) -> PromptForm:
        values = {"id": "", "sentence": "", "count": "1", "theme": "", "question": "", "poll_question": ""}
        return cls(values, [("", "0") for _ in range(MAX_OPTIONS)])

    @classmethod
    def from_post(cls, form: Any, essay: Essay) -> PromptForm:
        def text(name: str) -> str:
            value = form.get(name, "")
            return value if isinstance(value, str) else ""

        values = {k: text(k).strip() for k in ("id", "sentence", "count", "theme", "question", "poll_question")}
        options = [(text(f"label_{i}").strip(), text(f"position_{i}").strip()) for i in range(1, MAX_OPTIONS + 1)]
        return cls(values, options)

    def add(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def excerpt(self, essay: Essay) -> tuple[int | None, str]:
        """The paragraph and the chosen sentences (the excerpt is picked, never typed)."""
        paragraph, _, index = self.values["sentence"].partition(":")
        count = self.values["count"]
        if not (paragraph.isdigit() and index.isdigit() and 1 <= int(paragraph) <= len(essay.paragraphs)):
            self.add("excerpt", "choose the first sentence of the excerpt from the essay")
            return None, ""
        if count not in ("1", "2", "3"):
            self.add("excerpt", "quote one, two or three sentences")
            return None, ""
        sentences = essay.sentences(int(paragraph))
        start, n = int(index), int(count)
        if start >= len(sentences):
            self.add("excerpt", "choose the first sentence of the excerpt from the essay")
            return None, ""
        if start + n > len(sentences):
            self.add("excerpt", f"paragraph {paragraph} has only {len(sentences) - start} sentence(s) from there")
            return None, ""
        return int(paragraph), " ".join(sentences[start : start + n])

    def prompt_dict(self, essay: Essay) -> dict[str, Any]:
        paragraph, excerpt = self.excerpt(essay)
        options = []
        for i, (label, position) in enumerate(self.options, start=1):
            if not label and position in ("", "0", "0.0"):
                continue  # an unused row
            try:
                value: Any = float(position)
            except ValueError:
                value = position  # the validator names it
            options.append({"label": label, "position": value})
            self.rows.append(i)
        return {
            "id": self.values["id"],
            "paragraph": paragraph if paragraph is not None else 1,
            "excerpt": excerpt,
            "theme": self.values["theme"],
            "question": self.values["question"],
            "dilemma": {"question": self.values["poll_question"], "options": options},
        }

    def validate(self, existing_source: str | None, essay: Essay) -> bytes | None:
        """The pack YAML with this prompt added if the validator accepts it, else None (``errors`` filled)."""
        self.rows = []
        prompt = self.prompt_dict(essay)
        if self.errors:
            # The excerpt could not even be picked; still run the validator for the other fields.
            prompt["excerpt"] = prompt["excerpt"] or "-"
        existing: list[Any] = []
        if existing_source:
            existing = list((yaml.safe_load(existing_source) or {}).get("prompts") or [])
        doc = {
            "pack": {
                "id": WEB_PACK,
                "name": "Written on the website",
                "description": "Prompts this server's moderators wrote in the website's editor.",
                "version": 1,
            },
            "prompts": [*existing, prompt],
        }
        data = yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=100).encode("utf-8")
        self.index = len(existing) + 1
        try:
            parse_pack(data, SOURCE, essay)
        except PackError as exc:
            self.absorb(exc)
        if self.errors:
            return None
        return data

    def absorb(self, error: PackError) -> None:
        """File each problem under the form field it names (the new prompt's), the rest under "form"."""
        mine = {self.values["id"], f"#{self.index}"}
        rows = self.rows
        for problem in error.problems:
            if problem.prompt_id not in mine:
                self.add("form", str(problem))
                continue
            name = FIELD_OF.get(problem.field or "", "form")
            found = _OPTION_FIELD.match(problem.field or "")
            if found:
                index = int(found.group(1))
                row = rows[index - 1] if 0 < index <= len(rows) else index
                name = f"{found.group(2)}_{row}"
            if name == "excerpt" and "excerpt" in self.errors:
                continue  # the picker's own message already says it
            self.add(name, problem.message)

    def preview(self, essay: Essay) -> dict[str, Any] | None:
        """The post as Discord will show it: the same embed the bot sends, as title/description/fields."""
        paragraph, excerpt = self.excerpt_quietly(essay)
        if paragraph is None:
            return None
        options = []
        for label, position in self.options:
            if label:
                try:
                    options.append(Option(label, float(position)))
                except ValueError:
                    options.append(Option(label, 0.0))
        now = datetime.now(UTC)
        debate = Debate(
            0, 0, "preview", None, now, "", paragraph, excerpt, self.values["question"] or "…",
            self.values["theme"] or "theme", 0, None, None, None, "", "preview", None, now, now,
        )  # fmt: skip
        prompt = Prompt("preview", paragraph, excerpt, debate.theme, debate.question,
                        (Dilemma(self.values["poll_question"] or "…", tuple(options)),))  # fmt: skip
        return ui.debate_embed(debate, essay.title, dilemma=prompt).to_dict()

    def excerpt_quietly(self, essay: Essay) -> tuple[int | None, str]:
        saved = {k: list(v) for k, v in self.errors.items()}
        try:
            return self.excerpt(essay)
        finally:
            self.errors = saved
