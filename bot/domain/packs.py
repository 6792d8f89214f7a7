"""Prompt packs: the one validator for the built-in pack, `commonground prompts check` and uploads.

A pack is a YAML file::

    pack: {id: my-pack, name: "My pack", description: "...", version: 1}
    prompts:
      - id: self-reliance-first
        paragraph: 1
        excerpt: "Individualism emphasizes the value of self-reliance and personal responsibility."
        theme: self-reliance
        question: "..."
        context: "..."                # optional: a sourced claim or note shown under the question
        sensitive: false              # optional: true keeps the prompt out unless a server opts in
        dilemmas:                     # 1..12 everyday dilemmas; a server sees the next one each time
          - id: street-party          #   the prompt comes round again (ids unique in the pack)
            question: "..."
            setting: neighbourhood    # one of SETTINGS
            teen: true                # optional: comfortably answerable by a 13-16-year-old
            beyond_anglo: false       # optional: set outside Anglo-European defaults
            options:
              - {label: "...", position: -1.0}
              - {label: "...", position: 1.0}

The older single ``dilemma:`` mapping (question, options; setting, teen and beyond_anglo optional) is
still accepted: it is one dilemma whose id is the prompt's id. A prompt has exactly one of the two.

Positions run from -1.0 (the individual first) to +1.0 (the community first); 0 is "both equally".

The file is untrusted (moderators upload packs), so: the byte cap is checked before anything is
parsed; the text must be UTF-8; the YAML is *composed* (never constructed as a whole) by a SafeLoader
subclass that refuses anchors, aliases, non-standard tags and deep nesting as the events arrive; and
the schema is checked against the node tree so every problem carries a line number. Import is
all-or-nothing: any problem raises PackError listing every problem found.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import math
import re
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, Event
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.domain.essay import PROMPTS_DIR, Essay, load_essay, normalise_space

MAX_PACK_BYTES = 256 * 1024
MAX_PROMPT_BYTES = 16 * 1024  # all the text of one prompt: a dozen full dilemmas fit with room to spare
MAX_PROMPTS = 500
MAX_DILEMMAS = 12  # per prompt; a daily server meets each one once in a dozen rounds of the pack
MAX_DEPTH = 12  # the schema needs 7 levels; a deeper file is a recursion bomb, not a pack
MAX_QUESTION = 300  # Discord's native poll question limit; used for the debate question too
MAX_CONTEXT = 300  # a note under the question; same rules as the question
MAX_LABEL = 55  # Discord's native poll answer limit
MIN_OPTIONS, MAX_OPTIONS = 2, 5  # Discord allows 10 poll answers / 25 buttons; 5 is our design cap
MAX_EXCERPT_SENTENCES = 3
MAX_NAME = 100
MAX_DESCRIPTION = 1000
ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,63}$")

BUILTIN_PACK_FILE = "individualism-collectivism.yaml"

THEMES: dict[str, str] = {
    "self-reliance": "standing on your own feet and answering for your own choices",
    "duty-to-community": "what we owe the people and places we belong to",
    "freedom-and-democracy": "self-government, liberty and who gets to decide how we live",
    "selfishness": "whether putting yourself first is egotism or simply choice",
    "crime-and-safety": "whether weak community ties make us less safe, and what would help",
    "conformity": "common goals, fitting in and the pressure to go along",
    "uniqueness": "people as unique individuals whom no group fully captures",
    "rights": "individual rights and needs inside a community that comes first",
    "balance": "mixing both traditions: what each could learn from the other",
}

# Where a dilemma is set, so a pack can be checked for variety (scripts/pack-report).
SETTINGS: dict[str, str] = {
    "family": "home, relatives and the household",
    "school": "classes, teachers, school clubs and trips",
    "friends": "friendships and the groups friends form",
    "neighbourhood": "the street, the building, the village or town",
    "workplace": "jobs, colleagues and employers",
    "online": "chats, games, forums and social media",
    "club": "sports teams, hobby groups, choirs and societies",
    "civic": "votes, public services, local government and the law",
    "health": "illness, care, medicine and public health",
}

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
# Only the tags SafeLoader gives plain YAML implicitly. Anything else (!!python/object, !!binary,
# !!set, local !tags) is refused before any constructor runs.
_ALLOWED_TAGS = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _SEQ, _MAP, _TIMESTAMP})

# Bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) reorder how the
# text *around* them is displayed: an RTL override in a poll label can make "Individual first" show
# as something else and spill into the rest of the embed ("Trojan Source"). They are refused. The
# plain marks LRM/RLM (U+200E/U+200F) are kept: Hebrew and Arabic text needs them and they cannot
# reverse neighbouring text.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# "Zalgo" stacks dozens of combining marks on one letter and paints over neighbouring lines in
# Discord. Real scripts (Vietnamese, Devanagari, Hebrew with points) need at most a few per base
# character, so more than this many in a row is refused.
MAX_COMBINING_RUN = 4
_MENTION_RE = re.compile(r"@(?:everyone|here)\b|<@[!&]?|<#|</", re.IGNORECASE)


def text_problem(value: str, *, multiline: bool) -> str | None:
    """Why ``value`` is unsafe to show (control, bidi-override or zalgo characters), or None."""
    combining = 0
    for ch in value:
        if ch in "\n\t\r":
            if not multiline:
                return "must be one line (no line breaks or tabs)"
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs") or ch in "\ufffe\uffff\ufeff":
            return f"control character U+{ord(ch):04X} is not allowed"
        if ch in _BIDI_CONTROLS:
            return f"bidirectional control U+{ord(ch):04X} is not allowed (it can disguise text)"
        if cat in ("Mn", "Me"):
            combining += 1
            if combining > MAX_COMBINING_RUN:
                return f"more than {MAX_COMBINING_RUN} combining marks on one character"
        else:
            combining = 0
    return None


@dataclass(frozen=True)
class Option:
    label: str
    position: float


@dataclass(frozen=True)
class Dilemma:
    """An everyday question with 2–5 placed options. Ad-hoc polls (``/poll create``) have no id."""

    question: str
    options: tuple[Option, ...]
    id: str = ""
    setting: str | None = None  # one of SETTINGS; None only for ad-hoc polls and old single dilemmas
    teen: bool = False  # comfortably answerable by a 13–16-year-old
    beyond_anglo: bool = False  # set in family, school or community life outside Anglo-European defaults


@dataclass(frozen=True)
class Prompt:
    id: str
    paragraph: int
    excerpt: str
    theme: str
    question: str
    dilemmas: tuple[Dilemma, ...]
    context: str | None = None  # a sourced claim or note shown under the question
    sensitive: bool = False  # left out of the rotation unless a server opts in

    @property
    def dilemma(self) -> Dilemma:
        """The first dilemma (the one a prompt posted for the first time uses)."""
        return self.dilemmas[0]

    def dilemma_by_id(self, dilemma_id: str | None) -> Dilemma | None:
        """The dilemma with this id, or None."""
        return next((d for d in self.dilemmas if d.id == dilemma_id), None)

    def using(self, dilemma_id: str | None) -> Prompt:
        """This prompt with ``dilemma_id`` first, so ``.dilemma`` is the one a debate chose.

        An unknown id (None for old debates, or a dilemma since removed from the pack) keeps the order.
        """
        chosen = self.dilemma_by_id(dilemma_id)
        if chosen is None or chosen is self.dilemmas[0]:
            return self
        return replace(self, dilemmas=(chosen, *(d for d in self.dilemmas if d is not chosen)))


@dataclass(frozen=True)
class Pack:
    id: str
    name: str
    description: str
    prompts: tuple[Prompt, ...]
    source: str
    version: int = 1

    def prompt(self, prompt_id: str) -> Prompt | None:
        """The prompt with this id, or None."""
        return next((p for p in self.prompts if p.id == prompt_id), None)


@dataclass(frozen=True)
class PackProblem:
    """One thing wrong with a pack, located as precisely as the file allows."""

    source: str
    line: int | None
    prompt_id: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        # A problem of the whole file (empty, over the size cap, unreadable) is reported at line 1, so
        # every line reads `file:line:` as editors and the README expect.
        where = f"{self.source}:{self.line or 1}"
        parts = [where]
        if self.prompt_id is not None:
            parts.append(f"prompt {self.prompt_id}")
        if self.field is not None:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


class PackError(Exception):
    """A pack was refused. ``problems`` lists every problem; ``message`` is safe to show a user."""

    MAX_SHOWN = 10

    def __init__(self, problems: list[PackProblem] | tuple[PackProblem, ...]) -> None:
        self.problems: tuple[PackProblem, ...] = tuple(problems)
        n = len(self.problems)
        lines = [f"The pack was not imported: {n} problem{'s' if n != 1 else ''} found."]
        lines += [f"- {p}" for p in self.problems[: self.MAX_SHOWN]]
        if n > self.MAX_SHOWN:
            lines.append(f"- … and {n - self.MAX_SHOWN} more")
        self.message = "\n".join(lines)
        super().__init__(self.message)


# --------------------------------------------------------------------------------------------------
# YAML: compose a node tree, refusing anchors, aliases, foreign tags and deep nesting as events come.


class _Refused(yaml.YAMLError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class PackLoader(yaml.SafeLoader):
    """A SafeLoader that only composes, and refuses what a pack never needs before it is built."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def peek_event(self) -> Event:
        # Through the class: the stubs leave Parser.peek_event unannotated (untyped_calls_exclude).
        event: Event = yaml.parser.Parser.peek_event(self)
        return event

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark is not None else 0  # the parser always sets it
        if isinstance(event, AliasEvent):
            # Refused here, before the composer looks the anchor up: an alias bomb never grows.
            raise _Refused(line, f"aliases (*{event.anchor}) are not allowed in a pack; write the value out")
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise _Refused(line, f"anchors (&{anchor}) are not allowed in a pack; write each value out")
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in ("!", *_ALLOWED_TAGS):
            raise _Refused(line, f"the tag {_short_tag(tag)} is not allowed; packs hold plain text, numbers and lists")
        if isinstance(event, CollectionStartEvent):
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _Refused(line, f"the file is nested more than {MAX_DEPTH} levels deep")
            try:
                node = super().compose_node(parent, index)
            finally:
                self._depth -= 1
        else:
            node = super().compose_node(parent, index)
        if node is not None and node.tag not in _ALLOWED_TAGS:  # e.g. a resolver result we do not expect
            raise _Refused(line, f"the tag {_short_tag(node.tag)} is not allowed")
        return node


class _ReplayPackLoader(PackLoader):
    """The same composer over events that libyaml has already scanned and parsed. For the built-in pack
    only: parsing its ~70 KB in Python is ~0.3 s of every bot process's start-up, in C a fraction. The
    error messages of libyaml differ from PyYAML's, so a pack with any error is read again with
    :class:`PackLoader`, whose messages the problems quote (:func:`_compose_builtin`)."""

    def __init__(self, events: list[Event]) -> None:
        super().__init__("")
        self._events = collections.deque(events)

    def check_event(self, *choices: Any) -> bool:
        if not self._events:
            return False
        return not choices or isinstance(self._events[0], choices)

    def peek_event(self) -> Event:
        return self._events[0]

    def get_event(self) -> Event:
        return self._events.popleft()


def _text_bytes(node: Node) -> int:
    """UTF-8 bytes of every scalar (keys included) under ``node``; the depth is already capped."""
    if isinstance(node, ScalarNode):
        return len(node.value.encode("utf-8", "surrogatepass"))
    if isinstance(node, SequenceNode):
        return sum(_text_bytes(n) for n in node.value)
    if isinstance(node, MappingNode):
        return sum(_text_bytes(k) + _text_bytes(v) for k, v in node.value)
    return 0


def _short_tag(tag: str) -> str:
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix) :] if tag.startswith(prefix) else tag


# --------------------------------------------------------------------------------------------------
# Problems are collected, never raised one by one, so a moderator sees everything in one go.


class _Collector:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[PackProblem] = []

    def add(self, node: Node | None, message: str, *, prompt: str | None = None, field: str | None = None) -> None:
        line = node.start_mark.line + 1 if node is not None else None
        self.problems.append(PackProblem(self.source, line, prompt, field, message))

    def add_line(self, line: int | None, message: str) -> None:
        self.problems.append(PackProblem(self.source, line, None, None, message))


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _decode(data: bytes, out: _Collector) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        out.add_line(
            data.count(b"\n", 0, exc.start) + 1,
            f"the file is not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at byte offset {exc.start}); "
            "save it as UTF-8",
        )
        return None
    text = text.removeprefix("\ufeff")
    bad = 0
    for i, ch in enumerate(text):
        if ch in "\t\n\r":
            continue
        if unicodedata.category(ch) == "Cc" or ch in "\ufffe\uffff":
            bad += 1
            if bad <= 10:
                out.add_line(_line_of(text, i), f"control character U+{ord(ch):04X} is not allowed in a pack")
    return None if bad else text


def _compose_with_libyaml(text: str) -> Node | None:
    """The node tree of a pack read with libyaml's parser (``_ReplayPackLoader``); raises as PackLoader would,
    with libyaml's messages."""
    loader = _ReplayPackLoader(list(yaml.parse(text, Loader=yaml.CSafeLoader)))
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _compose(text: str, out: _Collector, *, libyaml: bool = False) -> Node | None:
    if libyaml and yaml.__with_libyaml__:
        with contextlib.suppress(yaml.YAMLError, RecursionError):  # read again below, for PyYAML's messages
            root = _compose_with_libyaml(text)
            if root is not None:
                return root
    loader = PackLoader(text)
    try:
        root = loader.get_single_node()
    except _Refused as exc:
        out.add_line(exc.line, exc.message)
        return None
    except yaml.composer.ComposerError as exc:
        if "single document" in f"{exc.context} {exc.problem}":
            line = exc.problem_mark.line + 1 if exc.problem_mark else None
            out.add_line(line, "the file holds more than one YAML document (a second '---'); a pack is one document")
        else:
            out.add_line(_mark_line(exc), f"YAML error: {_yaml_message(exc)}")
        return None
    except yaml.MarkedYAMLError as exc:
        out.add_line(_mark_line(exc), f"YAML syntax error: {_yaml_message(exc)}")
        return None
    except yaml.YAMLError as exc:  # ReaderError and friends: no marks
        out.add_line(None, f"YAML error: {exc}")
        return None
    except RecursionError:
        out.add_line(None, "the file is nested too deeply")
        return None
    finally:
        loader.dispose()
    if root is None:
        out.add_line(None, "the file is empty; a pack needs a 'pack' section and a list of 'prompts'")
    return root


def _mark_line(exc: yaml.MarkedYAMLError) -> int | None:
    mark = exc.problem_mark or exc.context_mark
    return mark.line + 1 if mark is not None else None


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    bits = [b for b in (exc.context, exc.problem) if b]
    return ", ".join(bits) if bits else "could not parse"


# --------------------------------------------------------------------------------------------------
# Schema, checked against nodes.


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return {
        _INT: f"a number ({node.value})",
        _FLOAT: f"a number ({node.value})",
        _BOOL: f"a yes/no value ({node.value!r} reads as {_bool_of(node)})",
        _NULL: "nothing",
        _TIMESTAMP: f"a date ({node.value})",
        _STR: "text",
    }.get(node.tag, node.tag)


def _bool_of(node: Node) -> str:
    return "true" if node.value.lower() in ("yes", "true", "on", "y") else "false"


class _Checker:
    def __init__(self, text: str, source: str, essay: Essay, out: _Collector) -> None:
        self.text = text
        self.source = source
        self.essay = essay
        self.out = out
        self.prompt_id: str | None = None
        # dilemma id -> (line, prompt id, whether it is a single dilemma named after its prompt)
        self.dilemma_ids: dict[str, tuple[int, str | None, bool]] = {}

    def bad(self, node: Node | None, field: str | None, message: str) -> None:
        self.out.add(node, message, prompt=self.prompt_id, field=field)

    # ----- structure

    def mapping(
        self, node: Node, field: str | None, required: tuple[str, ...], optional: tuple[str, ...] = ()
    ) -> dict[str, Node] | None:
        """Check a mapping's keys exactly: unique, plain text, no missing and no unknown ones."""
        if not isinstance(node, MappingNode):
            self.bad(node, field, f"expected a mapping with {', '.join(required)}; got {_kind(node)}")
            return None
        known = required + optional
        seen: dict[str, Node] = {}
        for key_node, _value in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                self.bad(key_node, field, f"keys must be plain names; got {_kind(key_node)}")
                continue
            key = key_node.value
            sub = f"{field}.{key}" if field else key
            if key in seen:
                first = seen[key].start_mark.line + 1
                self.bad(key_node, sub, f"duplicate key '{key}' (first given on line {first})")
                continue
            seen[key] = key_node
            if key not in known:
                self.bad(key_node, sub, f"unknown field '{key}'; expected only {', '.join(known)}")
        values: dict[str, Node] = {}
        for k, v in node.value:  # the first of duplicate keys is the one validated
            if isinstance(k, ScalarNode) and k.value in known:
                values.setdefault(k.value, v)
        for key in required:
            if key not in seen:
                self.bad(node, f"{field}.{key}" if field else key, "missing")
        return values

    def flag(self, node: Node | None, field: str) -> bool | None:
        """An optional true/false field: absent is False. yes/no/on/off are refused as ambiguous."""
        if node is None:
            return False
        if isinstance(node, ScalarNode) and node.tag == _BOOL and node.value.lower() in ("true", "false"):
            return str(node.value).lower() == "true"
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            hint = f"; write true or false (not {node.value!r})"
        elif isinstance(node, ScalarNode) and node.tag == _STR and node.value.strip().lower() in ("true", "false"):
            hint = "; write it without quotes"
        else:
            hint = ""
        self.bad(node, field, f"expected true or false; got {_kind(node)}{hint}")
        return None

    def text_field(
        self,
        node: Node | None,
        field: str,
        *,
        max_len: int,
        multiline: bool = False,
    ) -> str | None:
        if node is None:
            return None
        if not isinstance(node, ScalarNode) or node.tag != _STR:
            hint = "; quote it" if isinstance(node, ScalarNode) and node.tag != _NULL else ""
            self.bad(node, field, f"expected text; got {_kind(node)}{hint}")
            return None
        value = node.value.strip()
        if not value:
            self.bad(node, field, "must not be empty")
            return None
        ok = self.check_characters(node, field, value, multiline=multiline)
        if len(value) > max_len:
            self.bad(node, field, f"is {len(value)} characters; the limit is {max_len}")
            ok = False
        return value if ok else None

    def check_characters(self, node: Node, field: str, value: str, *, multiline: bool) -> bool:
        ok = True
        problem = text_problem(value, multiline=multiline)
        if problem is not None:
            self.bad(node, field, problem)
            return False
        folded = unicodedata.normalize("NFKC", value)
        match = _MENTION_RE.search(folded)
        if match:
            self.bad(node, field, f"mentions are not allowed in pack text ({match.group(0)!r})")
            ok = False
        return ok

    def slug(self, node: Node | None, field: str) -> str | None:
        value = self.text_field(node, field, max_len=MAX_DESCRIPTION)
        if value is not None and not ID_RE.match(value):
            self.bad(node, field, "must be 2–64 lowercase letters, digits or '-', starting with a letter or digit")
            return None
        return value

    def integer(self, node: Node | None, field: str, lo: int, hi: int | None) -> int | None:
        if node is None:
            return None
        rng = f"{lo}–{hi}" if hi is not None else f"≥ {lo}"
        if not isinstance(node, ScalarNode) or node.tag != _INT:
            hint = "; write it without quotes" if isinstance(node, ScalarNode) and node.tag == _STR else ""
            self.bad(node, field, f"expected a whole number {rng}; got {_kind(node)}{hint}")
            return None
        value = yaml.SafeLoader.construct_yaml_int(_CONSTRUCTOR, node)
        if value < lo or (hi is not None and value > hi):
            self.bad(node, field, f"must be {rng}; got {value}")
            return None
        return value

    def position(self, node: Node | None, field: str) -> float | None:
        if node is None:
            return None
        if not isinstance(node, ScalarNode) or node.tag not in (_INT, _FLOAT):
            hint = "; write it without quotes" if isinstance(node, ScalarNode) and node.tag == _STR else ""
            self.bad(node, field, f"expected a number from -1.0 to 1.0; got {_kind(node)}{hint}")
            return None
        if node.tag == _INT:
            value = float(yaml.SafeLoader.construct_yaml_int(_CONSTRUCTOR, node))
        else:
            value = yaml.SafeLoader.construct_yaml_float(_CONSTRUCTOR, node)
        if not math.isfinite(value) or not -1.0 <= value <= 1.0:
            self.bad(
                node, field, f"must be from -1.0 (the individual first) to 1.0 (the community first); got {node.value}"
            )
            return None
        return value + 0.0  # -0.0 becomes 0.0, so equal packs compare equal

    # ----- the pack

    def pack(self, root: Node) -> Pack | None:
        top = self.mapping(root, None, ("pack", "prompts"))
        if top is None:
            return None
        meta = self.pack_meta(top.get("pack"))
        prompts = self.prompts(top.get("prompts"))
        if self.out.problems or meta is None or prompts is None:
            return None
        pack_id, name, description, version = meta
        return Pack(pack_id, name, description, prompts, self.source, version)

    def pack_meta(self, node: Node | None) -> tuple[str, str, str, int] | None:
        if node is None:
            return None
        fields = self.mapping(node, "pack", ("id", "name", "description", "version"))
        if fields is None:
            return None
        pack_id = self.slug(fields.get("id"), "pack.id")
        name = self.text_field(fields.get("name"), "pack.name", max_len=MAX_NAME)
        description = self.text_field(
            fields.get("description"), "pack.description", max_len=MAX_DESCRIPTION, multiline=True
        )
        version = self.integer(fields.get("version"), "pack.version", 1, None)
        if pack_id is None or name is None or description is None or version is None:
            return None
        return pack_id, name, description, version

    def prompts(self, node: Node | None) -> tuple[Prompt, ...] | None:
        if node is None:
            return None
        if not isinstance(node, SequenceNode):
            self.bad(node, "prompts", f"expected a list of prompts; got {_kind(node)}")
            return None
        if not node.value:
            self.bad(node, "prompts", "the list is empty; a pack needs at least one prompt")
            return None
        if len(node.value) > MAX_PROMPTS:
            self.bad(node, "prompts", f"{len(node.value)} prompts; a pack holds at most {MAX_PROMPTS}")
            return None
        result: list[Prompt] = []
        ids: dict[str, int] = {}
        for i, prompt_node in enumerate(node.value, start=1):
            prompt = self.prompt(prompt_node, i, ids)
            if prompt is not None:
                result.append(prompt)
        return tuple(result) if len(result) == len(node.value) else None

    def prompt(self, node: Node, index: int, ids: dict[str, int]) -> Prompt | None:
        self.prompt_id = f"#{index}"
        try:
            return self._prompt(node, index, ids)
        finally:
            self.prompt_id = None

    def _prompt(self, node: Node, index: int, ids: dict[str, int]) -> Prompt | None:
        before = len(self.out.problems)
        # Name the prompt by its id in every message, if it has a usable one.
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.value == "id" and isinstance(value, ScalarNode):
                    if value.tag == _STR and ID_RE.match(value.value.strip()):
                        self.prompt_id = value.value.strip()
                    break
        size = _text_bytes(node)
        if size > MAX_PROMPT_BYTES:
            self.bad(node, None, f"holds {size} bytes of text; one prompt may hold at most {MAX_PROMPT_BYTES}")
            return None
        fields = self.mapping(
            node,
            None,
            ("id", "paragraph", "excerpt", "theme", "question"),
            ("context", "sensitive", "dilemma", "dilemmas"),
        )
        if fields is None:
            return None
        prompt_id = self.slug(fields.get("id"), "id")
        duplicate = prompt_id is not None and prompt_id in ids
        if prompt_id is not None:
            if duplicate:
                self.bad(fields["id"], "id", f"duplicate id (first used on line {ids[prompt_id]})")
            else:
                ids[prompt_id] = fields["id"].start_mark.line + 1
        paragraph = self.integer(fields.get("paragraph"), "paragraph", 1, len(self.essay.paragraphs))
        excerpt = self.excerpt(fields.get("excerpt"), paragraph)
        theme = self.theme(fields.get("theme"))
        question = self.text_field(fields.get("question"), "question", max_len=MAX_QUESTION, multiline=True)
        context = None
        if "context" in fields:
            context = self.text_field(fields["context"], "context", max_len=MAX_CONTEXT, multiline=True)
        sensitive = self.flag(fields.get("sensitive"), "sensitive")
        dilemmas: tuple[Dilemma, ...] | None = None
        if "dilemma" in fields and "dilemmas" in fields:
            self.bad(
                fields["dilemmas"],
                "dilemmas",
                "give either 'dilemma' (one) or 'dilemmas' (a list), not both; move the single one into the list",
            )
        elif "dilemma" in fields:
            # A duplicate prompt id is reported once, not again as a duplicate dilemma id.
            single = self.dilemma(fields["dilemma"], "dilemma", implied_id=None if duplicate else prompt_id)
            dilemmas = (single,) if single is not None else None
        elif "dilemmas" in fields:
            dilemmas = self.dilemma_list(fields["dilemmas"])
        else:
            self.bad(node, "dilemmas", "missing: a prompt needs 'dilemmas' (a list) or a single 'dilemma'")
        if len(self.out.problems) != before:
            return None
        if (
            prompt_id is None
            or paragraph is None
            or excerpt is None
            or theme is None
            or question is None
            or sensitive is None
            or dilemmas is None
        ):
            return None
        return Prompt(prompt_id, paragraph, excerpt, theme, question, dilemmas, context, sensitive)

    def theme(self, node: Node | None) -> str | None:
        value = self.text_field(node, "theme", max_len=64)
        if value is not None and value not in THEMES:
            self.bad(node, "theme", f"unknown theme '{value}'; use one of: {', '.join(THEMES)}")
            return None
        return value

    def excerpt(self, node: Node | None, paragraph: int | None) -> str | None:
        value = self.text_field(node, "excerpt", max_len=2000, multiline=True)
        if value is None:
            return None
        value = normalise_space(value)
        if paragraph is None:
            if not self.essay.find_all(value):
                self.bad(node, "excerpt", "not found verbatim anywhere in the essay")
            return None
        if self.essay.find_all(value) and paragraph not in self.essay.find_all(value):
            others = ", ".join(str(n) for n in self.essay.find_all(value))
            self.bad(node, "excerpt", f"is from paragraph {others}, not paragraph {paragraph}")
            return None
        if paragraph not in self.essay.find_all(value):
            self.bad(
                node, "excerpt", f"not found verbatim in paragraph {paragraph}{self._divergence(value, paragraph)}"
            )
            return None
        count = self.essay.whole_sentences(paragraph, value)
        if count is None:
            self.bad(node, "excerpt", "must be whole sentences (it starts or ends mid-sentence)")
            return None
        if count > MAX_EXCERPT_SENTENCES:
            self.bad(node, "excerpt", f"is {count} sentences; quote at most {MAX_EXCERPT_SENTENCES}")
            return None
        return value

    def _divergence(self, value: str, paragraph: int) -> str:
        """Where a near-miss excerpt stops matching, to spare a moderator a character hunt."""
        haystack = normalise_space(self.essay.paragraph(paragraph))
        lo, hi = 0, len(value)
        while lo < hi:  # longest prefix of the excerpt that occurs in the paragraph
            mid = (lo + hi + 1) // 2
            if value[:mid] in haystack:
                lo = mid
            else:
                hi = mid - 1
        if lo < 10:
            return ""
        return f" (it matches up to “…{value[max(0, lo - 30) : lo]}” and then differs)"

    def dilemma_list(self, node: Node) -> tuple[Dilemma, ...] | None:
        if not isinstance(node, SequenceNode):
            self.bad(node, "dilemmas", f"expected a list of dilemmas; got {_kind(node)}")
            return None
        n = len(node.value)
        if not 1 <= n <= MAX_DILEMMAS:
            self.bad(node, "dilemmas", f"has {n} dilemmas; a prompt needs 1–{MAX_DILEMMAS}")
            return None
        result = [self.dilemma(d, f"dilemmas[{i}]", implied_id=None) for i, d in enumerate(node.value, start=1)]
        if any(d is None for d in result):
            return None
        return tuple(d for d in result if d is not None)

    def dilemma(self, node: Node, field: str, *, implied_id: str | None) -> Dilemma | None:
        """One dilemma. In a ``dilemmas`` list it has its own id and a setting; the single ``dilemma``
        form takes the prompt's id (``implied_id``) and may leave the setting out."""
        listed = field != "dilemma"
        required = ("id", "question", "setting", "options") if listed else ("question", "options")
        optional = ("teen", "beyond_anglo") if listed else ("setting", "teen", "beyond_anglo")
        fields = self.mapping(node, field, required, optional)
        if fields is None:
            return None
        dilemma_id = implied_id
        if listed:
            dilemma_id = self.slug(fields.get("id"), f"{field}.id")
        if dilemma_id is not None:
            id_node = fields.get("id", node)
            line = id_node.start_mark.line + 1
            first = self.dilemma_ids.get(dilemma_id)
            if first is not None:
                self.bad(id_node, f"{field}.id" if listed else field, self._dilemma_clash(dilemma_id, first))
                dilemma_id = None
            else:
                self.dilemma_ids[dilemma_id] = (line, self.prompt_id, not listed)
        question = self.text_field(fields.get("question"), f"{field}.question", max_len=MAX_QUESTION)
        setting: str | None = None
        setting_ok = True
        if "setting" in fields:
            setting = self.text_field(fields["setting"], f"{field}.setting", max_len=64)
            if setting is not None and setting not in SETTINGS:
                known = ", ".join(SETTINGS)
                self.bad(fields["setting"], f"{field}.setting", f"unknown setting '{setting}'; use one of: {known}")
                setting = None
            setting_ok = setting is not None
        teen = self.flag(fields.get("teen"), f"{field}.teen")
        beyond_anglo = self.flag(fields.get("beyond_anglo"), f"{field}.beyond_anglo")
        options = self.options(fields.get("options"), f"{field}.options")
        if (
            not setting_ok
            or dilemma_id is None
            or question is None
            or options is None
            or teen is None
            or beyond_anglo is None
        ):
            return None
        return Dilemma(question, options, dilemma_id, setting, teen, beyond_anglo)

    def _dilemma_clash(self, dilemma_id: str, first: tuple[int, str | None, bool]) -> str:
        line, prompt_id, single = first
        if single:
            return (
                f"duplicate dilemma id: prompt {prompt_id}'s single dilemma (line {line}) already has the id "
                f"'{dilemma_id}'; dilemma ids are unique in the pack"
            )
        return (
            f"duplicate dilemma id (first used on line {line}, prompt {prompt_id}); dilemma ids are unique in the pack"
        )

    def options(self, node: Node | None, field: str) -> tuple[Option, ...] | None:
        if node is None:
            return None
        if not isinstance(node, SequenceNode):
            self.bad(node, field, f"expected a list of options; got {_kind(node)}")
            return None
        n = len(node.value)
        if not MIN_OPTIONS <= n <= MAX_OPTIONS:
            self.bad(node, field, f"has {n} options; a dilemma needs {MIN_OPTIONS}–{MAX_OPTIONS}")
            return None
        result: list[Option] = []
        labels: dict[str, int] = {}
        for i, option_node in enumerate(node.value, start=1):
            sub = f"{field}[{i}]"
            fields = self.mapping(option_node, sub, ("label", "position"))
            if fields is None:
                continue
            label = self.text_field(fields.get("label"), f"{sub}.label", max_len=MAX_LABEL)
            position = self.position(fields.get("position"), f"{sub}.position")
            if label is not None:
                key = normalise_space(label).casefold()
                if key in labels:
                    self.bad(fields["label"], f"{sub}.label", f"the same label as option {labels[key]}")
                    label = None
                else:
                    labels[key] = i
            if label is not None and position is not None:
                result.append(Option(label, position))
        if len(result) != n:
            return None
        if not any(o.position < 0 for o in result) or not any(o.position > 0 for o in result):
            self.bad(
                node,
                field,
                "needs at least one option below 0 (the individual first) and one above 0 (the community first)",
            )
            return None
        return tuple(result)


_CONSTRUCTOR = yaml.SafeLoader("")  # only its scalar constructors are used (they keep no state)


def parse_pack(
    data: bytes, source: str, essay: Essay, *, max_bytes: int = MAX_PACK_BYTES, libyaml: bool = False
) -> Pack:
    """Validate and build a pack; raise PackError listing every problem. Nothing partial is returned.
    ``libyaml``: scan and parse with libyaml where PyYAML has it (the built-in pack, read at every start);
    the problems of a broken file are the same either way."""
    out = _Collector(source)
    if len(data) > max_bytes:  # before anything else touches the bytes
        out.add_line(None, f"the file is {len(data)} bytes; a pack may be at most {max_bytes // 1024} KiB")
        raise PackError(out.problems)
    text = _decode(data, out)
    root = _compose(text, out, libyaml=libyaml) if text is not None else None
    pack = _Checker(text, source, essay, out).pack(root) if text is not None and root is not None else None
    if out.problems or pack is None:
        raise PackError(out.problems or [PackProblem(source, None, None, None, "the pack could not be read")])
    return pack


def read_capped(path: Path, max_bytes: int = MAX_PACK_BYTES) -> bytes:
    """Read at most ``max_bytes + 1`` bytes: enough to know a file is too big without reading it all."""
    with path.open("rb") as f:
        return f.read(max_bytes + 1)


def _expand(paths: list[Path]) -> list[Path]:
    result: list[Path] = []
    for path in paths:
        if path.is_dir():
            result += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            result.append(path)
    return result


def check_files(paths: list[Path], essay: Essay, *, max_bytes: int = MAX_PACK_BYTES) -> list[PackProblem]:
    """Check pack files (a directory means its *.yaml/*.yml files; no paths means the built-in pack)."""
    problems: list[PackProblem] = []
    for path in _expand([Path(p) for p in paths] or [builtin_pack_path()]):
        source = str(path)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                problems.append(
                    PackProblem(
                        source,
                        None,
                        None,
                        None,
                        f"the file is {size} bytes; a pack may be at most {max_bytes // 1024} KiB",
                    )
                )
                continue
            data = read_capped(path, max_bytes)
        except OSError as exc:
            problems.append(PackProblem(source, None, None, None, f"cannot read the file: {exc.strerror or exc}"))
            continue
        try:
            parse_pack(data, source, essay, max_bytes=max_bytes)
        except PackError as exc:
            problems.extend(exc.problems)
    return problems


def builtin_pack_path() -> Path:
    """Where the built-in pack ships."""
    return PROMPTS_DIR / BUILTIN_PACK_FILE


def load_builtin_pack(essay: Essay | None = None) -> Pack:
    """Load and validate the built-in pack (PackError if it is broken, which a contract test prevents)."""
    path = builtin_pack_path()
    return _parse_builtin(read_capped(path), f"prompts/{path.name}", essay or load_essay())


@functools.lru_cache(maxsize=4)
def _parse_builtin(data: bytes, source: str, essay: Essay) -> Pack:
    """parse_pack with libyaml, remembered for the same bytes and essay: reading the built-in pack costs
    about 0.07 s of CPU in C (0.28 s in Python), and every bot built in one process (each test's, a
    restart's) would pay it again. The file is still read each time, so an edited pack is parsed afresh;
    a Pack is immutable, so sharing one is safe."""
    return parse_pack(data, source, essay, libyaml=True)
