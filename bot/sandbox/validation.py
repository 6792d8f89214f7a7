"""Payload validation with Discord's limits and Discord's nested ``errors`` shape.

Each ``validate_*`` function returns an :class:`Errors` collector; ``errors.raise_if_any()`` turns it into
a 400 ``{"code": 50035, "message": "Invalid Form Body", "errors": {...}}``.

Limits follow discord-api-docs (resources/message.md, interactions/message-components.md,
resources/poll.md, interactions/application-commands.md).
"""

from __future__ import annotations

import re
from typing import Any

from ._util import DiscordHTTPError, invalid_form

COMPONENTS_V2_FLAG = 1 << 15
EPHEMERAL_FLAG = 1 << 6

# limits
CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FIELDS_MAX = 25
EMBED_FIELD_NAME_MAX = 256
EMBED_FIELD_VALUE_MAX = 1024
EMBED_FOOTER_MAX = 2048
EMBED_AUTHOR_MAX = 256
EMBED_TOTAL_MAX = 6000
ACTION_ROWS_MAX = 5
ROW_BUTTONS_MAX = 5
CUSTOM_ID_MAX = 100
BUTTON_LABEL_MAX = 80
SELECT_OPTIONS_MAX = 25
SELECT_OPTION_LABEL_MAX = 100
SELECT_PLACEHOLDER_MAX = 150
MODAL_TITLE_MAX = 45
TEXT_INPUT_LABEL_MAX = 45
TEXT_INPUT_VALUE_MAX = 4000
V2_COMPONENTS_MAX = 40
POLL_QUESTION_MAX = 300
POLL_ANSWER_MAX = 55
POLL_ANSWERS_MAX = 10
POLL_DURATION_MAX_HOURS = 768
COMMAND_NAME_RE = re.compile(r"^[-_'\w\u0900-\u097F\u0E00-\u0E7F]{1,32}$")


class Errors:
    """Collects errors at nested paths, e.g. ``("embeds", 0, "title")``."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: tuple[Any, ...], code: str, message: str) -> None:
        node = self.tree
        for key in path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def max_len(self, path: tuple[Any, ...], value: Any, limit: int) -> None:
        if isinstance(value, str) and len(value) > limit:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def between(self, path: tuple[Any, ...], value: Any, low: int, high: int) -> None:
        if value is None:
            if low > 0:
                self.add(path, "BASE_TYPE_REQUIRED", "This field is required")
            return
        if not isinstance(value, str | list):
            self.add(path, "BASE_TYPE_BAD_TYPE", "Invalid type.")
            return
        if not low <= len(value) <= high:
            self.add(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")

    def __bool__(self) -> bool:
        return bool(self.tree)

    def raise_if_any(self) -> None:
        if self.tree:
            raise invalid_form(self.tree)


def _embed_size(embed: dict[str, Any]) -> int:
    total = len(embed.get("title") or "") + len(embed.get("description") or "")
    total += len((embed.get("footer") or {}).get("text") or "")
    total += len((embed.get("author") or {}).get("name") or "")
    for field in embed.get("fields") or []:
        total += len(field.get("name") or "") + len(field.get("value") or "")
    return total


def validate_embeds(errors: Errors, embeds: Any) -> None:
    if embeds is None:
        return
    if not isinstance(embeds, list):
        errors.add(("embeds",), "BASE_TYPE_BAD_TYPE", "Must be an array.")
        return
    if len(embeds) > EMBEDS_MAX:
        errors.add(("embeds",), "BASE_TYPE_BAD_LENGTH", f"Must be between 0 and {EMBEDS_MAX} in length.")
    total = 0
    for i, embed in enumerate(embeds):
        p = ("embeds", i)
        errors.max_len((*p, "title"), embed.get("title"), EMBED_TITLE_MAX)
        errors.max_len((*p, "description"), embed.get("description"), EMBED_DESCRIPTION_MAX)
        fields = embed.get("fields") or []
        if len(fields) > EMBED_FIELDS_MAX:
            errors.add((*p, "fields"), "BASE_TYPE_BAD_LENGTH", f"Must be between 0 and {EMBED_FIELDS_MAX} in length.")
        for j, field in enumerate(fields):
            if not field.get("name"):
                errors.add((*p, "fields", j, "name"), "BASE_TYPE_REQUIRED", "This field is required")
            if not field.get("value"):
                errors.add((*p, "fields", j, "value"), "BASE_TYPE_REQUIRED", "This field is required")
            errors.max_len((*p, "fields", j, "name"), field.get("name"), EMBED_FIELD_NAME_MAX)
            errors.max_len((*p, "fields", j, "value"), field.get("value"), EMBED_FIELD_VALUE_MAX)
        errors.max_len((*p, "footer", "text"), (embed.get("footer") or {}).get("text"), EMBED_FOOTER_MAX)
        errors.max_len((*p, "author", "name"), (embed.get("author") or {}).get("name"), EMBED_AUTHOR_MAX)
        total += _embed_size(embed)
    if total > EMBED_TOTAL_MAX:
        errors.add(("embeds",), "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {EMBED_TOTAL_MAX}")


def _validate_button(errors: Errors, p: tuple[Any, ...], c: dict[str, Any]) -> None:
    style = c.get("style")
    if style not in (1, 2, 3, 4, 5, 6):
        errors.add((*p, "style"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4, 5, 6}.")
    errors.max_len((*p, "label"), c.get("label"), BUTTON_LABEL_MAX)
    if style == 5:
        if not c.get("url"):
            errors.add((*p, "url"), "BASE_TYPE_REQUIRED", "This field is required")
        if c.get("custom_id"):
            errors.add((*p, "custom_id"), "COMPONENT_CUSTOM_ID_NOT_ALLOWED", "A link button cannot have a custom_id")
    elif style == 6:
        if not c.get("sku_id"):
            errors.add((*p, "sku_id"), "BASE_TYPE_REQUIRED", "This field is required")
    elif not c.get("custom_id"):
        errors.add((*p, "custom_id"), "BASE_TYPE_REQUIRED", "This field is required")
    if not c.get("label") and not c.get("emoji") and style != 6:
        errors.add((*p,), "COMPONENT_INVALID_BUTTON", "A button needs a label or an emoji")


def _validate_select(errors: Errors, p: tuple[Any, ...], c: dict[str, Any]) -> None:
    if not c.get("custom_id"):
        errors.add((*p, "custom_id"), "BASE_TYPE_REQUIRED", "This field is required")
    errors.max_len((*p, "placeholder"), c.get("placeholder"), SELECT_PLACEHOLDER_MAX)
    if c.get("type") == 3:
        options = c.get("options")
        errors.between((*p, "options"), options, 1, SELECT_OPTIONS_MAX)
        for j, opt in enumerate(options or []):
            errors.between((*p, "options", j, "label"), opt.get("label"), 1, SELECT_OPTION_LABEL_MAX)
            errors.between((*p, "options", j, "value"), opt.get("value"), 1, 100)
    lo, hi = c.get("min_values", 1), c.get("max_values", 1)
    if not 0 <= lo <= 25:
        errors.add((*p, "min_values"), "NUMBER_TYPE_MAX", "int value should be between 0 and 25.")
    if not 1 <= hi <= 25:
        errors.add((*p, "max_values"), "NUMBER_TYPE_MAX", "int value should be between 1 and 25.")


def _check_custom_id(errors: Errors, p: tuple[Any, ...], c: dict[str, Any], seen: set[str]) -> None:
    cid = c.get("custom_id")
    if cid is None:
        return
    errors.between((*p, "custom_id"), cid, 1, CUSTOM_ID_MAX)
    if cid in seen:
        errors.add((*p, "custom_id"), "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated")
    seen.add(cid)


def _walk_v2(errors: Errors, p: tuple[Any, ...], c: dict[str, Any], seen: set[str], count: list[int]) -> None:
    count[0] += 1
    ctype = c.get("type")
    _check_custom_id(errors, p, c, seen)
    if ctype == 2:
        _validate_button(errors, p, c)
    elif ctype in (3, 5, 6, 7, 8):
        _validate_select(errors, p, c)
    for i, child in enumerate(c.get("components") or []):
        _walk_v2(errors, (*p, "components", i), child, seen, count)
    if isinstance(c.get("accessory"), dict):
        _walk_v2(errors, (*p, "accessory"), c["accessory"], seen, count)


def validate_components(errors: Errors, components: Any, flags: int = 0) -> None:
    if components is None:
        return
    if not isinstance(components, list):
        errors.add(("components",), "BASE_TYPE_BAD_TYPE", "Must be an array.")
        return
    seen: set[str] = set()
    if flags & COMPONENTS_V2_FLAG:
        count = [0]
        for i, c in enumerate(components):
            _walk_v2(errors, ("components", i), c, seen, count)
        if count[0] > V2_COMPONENTS_MAX:
            errors.add(
                ("components",),
                "BASE_TYPE_BAD_LENGTH",
                f"Must be between 1 and {V2_COMPONENTS_MAX} in length.",
            )
        return
    if len(components) > ACTION_ROWS_MAX:
        errors.add(("components",), "BASE_TYPE_BAD_LENGTH", f"Must be between 0 and {ACTION_ROWS_MAX} in length.")
    for i, row in enumerate(components):
        p = ("components", i)
        if row.get("type") != 1:
            errors.add((*p, "type"), "UNION_TYPE_CHOICES", 'Value of field "type" must be one of (1,).')
            continue
        children = row.get("components") or []
        if not 1 <= len(children) <= ROW_BUTTONS_MAX:
            errors.add(
                (*p, "components"), "BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {ROW_BUTTONS_MAX} in length."
            )
        kinds = {c.get("type") for c in children}
        if len(children) > 1 and kinds - {2}:
            errors.add(
                (*p, "components"),
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                "The specified component exceeds the maximum width",
            )
        for j, c in enumerate(children):
            cp = (*p, "components", j)
            _check_custom_id(errors, cp, c, seen)
            if c.get("type") == 2:
                _validate_button(errors, cp, c)
            elif c.get("type") in (3, 5, 6, 7, 8):
                _validate_select(errors, cp, c)
            else:
                errors.add((*cp, "type"), "UNION_TYPE_CHOICES", "Invalid component type for a message.")


def validate_poll(errors: Errors, poll: Any) -> None:
    if poll is None:
        return
    p = ("poll",)
    question = (poll.get("question") or {}).get("text")
    errors.between((*p, "question", "text"), question, 1, POLL_QUESTION_MAX)
    answers = poll.get("answers")
    errors.between((*p, "answers"), answers, 1, POLL_ANSWERS_MAX)
    for i, answer in enumerate(answers or []):
        text = (answer.get("poll_media") or {}).get("text")
        errors.between((*p, "answers", i, "poll_media", "text"), text, 1, POLL_ANSWER_MAX)
    duration = poll.get("duration", 24)
    integral = isinstance(duration, int | float) and not isinstance(duration, bool) and duration == int(duration)
    if not integral or not 1 <= duration <= POLL_DURATION_MAX_HOURS:
        errors.add(
            (*p, "duration"),
            "NUMBER_TYPE_MAX",
            f"int value should be between 1 and {POLL_DURATION_MAX_HOURS}.",
        )
    if poll.get("layout_type", 1) != 1:
        errors.add((*p, "layout_type"), "BASE_TYPE_CHOICES", "Value must be one of {1}.")


def validate_message(payload: dict[str, Any], *, n_files: int = 0, edit: bool = False) -> None:
    """Validate a create/edit message body; raise DiscordHTTPError on the first failure set."""
    errors = Errors()
    flags = payload.get("flags") or 0
    content = payload.get("content")
    if content is not None and not isinstance(content, str):
        errors.add(("content",), "BASE_TYPE_BAD_TYPE", "Must be a string.")
    errors.max_len(("content",), content, CONTENT_MAX)
    validate_embeds(errors, payload.get("embeds"))
    validate_components(errors, payload.get("components"), flags)
    validate_poll(errors, payload.get("poll"))
    if flags & COMPONENTS_V2_FLAG and (payload.get("content") or payload.get("embeds") or payload.get("poll")):
        errors.add(
            ("content",),
            "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
            "The 'content', 'embeds', 'stickers' and 'poll' fields cannot be used "
            "when using MessageFlags.IS_COMPONENTS_V2",
        )
    errors.raise_if_any()
    if edit:
        return
    has_anything = (
        payload.get("content")
        or payload.get("embeds")
        or payload.get("components")
        or payload.get("poll")
        or payload.get("sticker_ids")
        or n_files
    )
    if not has_anything:
        raise DiscordHTTPError(400, 50006, "Cannot send an empty message")


def validate_modal(data: dict[str, Any]) -> None:
    errors = Errors()
    errors.between(("title",), data.get("title"), 1, MODAL_TITLE_MAX)
    errors.between(("custom_id",), data.get("custom_id"), 1, CUSTOM_ID_MAX)
    comps = data.get("components")
    errors.between(("components",), comps, 1, 5)
    for i, comp in enumerate(comps or []):
        p = ("components", i)
        inner: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        if comp.get("type") == 1:
            inner = [((*p, "components", j), c) for j, c in enumerate(comp.get("components") or [])]
        elif comp.get("type") == 18:
            errors.between((*p, "label"), comp.get("label"), 1, TEXT_INPUT_LABEL_MAX)
            if isinstance(comp.get("component"), dict):
                inner = [((*p, "component"), comp["component"])]
        for cp, c in inner:
            if c.get("type") == 4:
                if comp.get("type") == 1:
                    errors.between((*cp, "label"), c.get("label"), 1, TEXT_INPUT_LABEL_MAX)
                errors.between((*cp, "custom_id"), c.get("custom_id"), 1, CUSTOM_ID_MAX)
                errors.max_len((*cp, "value"), c.get("value"), TEXT_INPUT_VALUE_MAX)
                errors.max_len((*cp, "placeholder"), c.get("placeholder"), 100)
                if c.get("max_length") is not None and not 1 <= c["max_length"] <= TEXT_INPUT_VALUE_MAX:
                    errors.add((*cp, "max_length"), "NUMBER_TYPE_MAX", "int value should be between 1 and 4000.")
    errors.raise_if_any()


def validate_autocomplete(data: dict[str, Any]) -> None:
    errors = Errors()
    choices = data.get("choices")
    errors.between(("choices",), choices, 0, 25)
    for i, choice in enumerate(choices or []):
        errors.between(("choices", i, "name"), choice.get("name"), 1, 100)
        if isinstance(choice.get("value"), str):
            errors.max_len(("choices", i, "value"), choice["value"], 100)
    errors.raise_if_any()


def _validate_options(errors: Errors, p: tuple[Any, ...], options: list[dict[str, Any]], depth: int) -> None:
    if len(options) > 25:
        errors.add(p, "BASE_TYPE_BAD_LENGTH", "Must be between 0 and 25 in length.")
    names: set[str] = set()
    seen_optional = False
    for i, opt in enumerate(options):
        op = (*p, i)
        name = opt.get("name")
        if not isinstance(name, str) or not COMMAND_NAME_RE.match(name) or name != name.lower():
            errors.add((*op, "name"), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        if name in names:
            errors.add((*op, "name"), "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Option name already exists")
        names.add(name)
        errors.between((*op, "description"), opt.get("description"), 1, 100)
        otype = opt.get("type")
        if otype in (1, 2):
            if otype == 2 and depth > 0:
                errors.add((*op, "type"), "APPLICATION_COMMAND_OPTION_TYPE_INVALID", "Subcommand groups cannot nest")
            if otype == 1 and depth > 1:
                errors.add((*op, "type"), "APPLICATION_COMMAND_OPTION_TYPE_INVALID", "Subcommands nest too deep")
            children = opt.get("options") or []
            if otype == 2 and any(c.get("type") != 1 for c in children):
                errors.add(
                    (*op, "options"), "APPLICATION_COMMAND_OPTION_TYPE_INVALID", "A group holds subcommands only"
                )
            _validate_options(errors, (*op, "options"), children, depth + 1)
        else:
            if not isinstance(otype, int) or not 3 <= otype <= 11:
                errors.add((*op, "type"), "BASE_TYPE_CHOICES", "Value must be one of 1..11.")
            if opt.get("required"):
                if seen_optional:
                    errors.add(
                        (*op, "required"),
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
            else:
                seen_optional = True
            choices = opt.get("choices") or []
            if len(choices) > 25:
                errors.add((*op, "choices"), "BASE_TYPE_BAD_LENGTH", "Must be between 0 and 25 in length.")
            if choices and opt.get("autocomplete"):
                errors.add(
                    (*op, "autocomplete"),
                    "APPLICATION_COMMAND_AUTOCOMPLETE_INVALID",
                    "Autocomplete and choices are exclusive",
                )
            for j, ch in enumerate(choices):
                errors.between((*op, "choices", j, "name"), ch.get("name"), 1, 100)
    kinds = {o.get("type") in (1, 2) for o in options}
    if len(kinds) > 1:
        errors.add(p, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "Subcommands cannot be mixed with other options")


def validate_commands(commands: Any) -> None:
    errors = Errors()
    if not isinstance(commands, list):
        raise invalid_form({"_errors": [{"code": "BASE_TYPE_BAD_TYPE", "message": "Must be an array."}]})
    if len(commands) > 110:
        errors.add((), "BASE_TYPE_BAD_LENGTH", "Must be between 0 and 110 in length.")
    seen: set[tuple[int, str]] = set()
    for i, cmd in enumerate(commands):
        ctype = cmd.get("type", 1)
        name = cmd.get("name")
        if ctype == 1:
            if not isinstance(name, str) or not COMMAND_NAME_RE.match(name) or name != name.lower():
                errors.add((i, "name"), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
            errors.between((i, "description"), cmd.get("description"), 1, 100)
            _validate_options(errors, (i, "options"), cmd.get("options") or [], 0)
        else:
            errors.between((i, "name"), name, 1, 32)
        if (ctype, name) in seen:
            errors.add((i, "name"), "APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique")
        seen.add((ctype, name))
    errors.raise_if_any()
