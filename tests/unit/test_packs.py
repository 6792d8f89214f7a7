"""The prompt-pack validator: one test per rule, each naming the field and the message."""

from __future__ import annotations

import time
import unicodedata
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain import packs
from bot.domain.essay import PROMPTS_DIR, Essay, load_essay
from bot.domain.packs import (
    ID_RE,
    MAX_CONTEXT,
    MAX_DILEMMAS,
    MAX_PACK_BYTES,
    MAX_PROMPT_BYTES,
    SETTINGS,
    THEMES,
    Dilemma,
    Option,
    Pack,
    PackError,
    PackLoader,
    PackProblem,
    Prompt,
    check_files,
    load_builtin_pack,
    parse_pack,
)

ESSAY = load_essay()
P1S1 = "Individualism emphasizes the value of self-reliance and personal responsibility."

HEAD = 'pack: {id: test-pack, name: "Test pack", description: "For tests.", version: 1}\nprompts:\n'


def prompt_yaml(
    pid: str = "first-prompt",
    *,
    paragraph: str = "1",
    excerpt: str = f'"{P1S1}"',
    theme: str = "self-reliance",
    question: str = '"Is self-reliance a virtue?"',
    dq: str = '"Who should pay for the street party?"',
    options: str = '[{label: "Each their own", position: -1.0}, {label: "We all chip in", position: 1.0}]',
    extra: str = "",
) -> str:
    return (
        f"  - id: {pid}\n"
        f"    paragraph: {paragraph}\n"
        f"    excerpt: {excerpt}\n"
        f"    theme: {theme}\n"
        f"    question: {question}\n"
        f"{extra}"
        f"    dilemma:\n"
        f"      question: {dq}\n"
        f"      options: {options}\n"
    )


def doc(*prompts: str) -> bytes:
    return (HEAD + "".join(prompts or (prompt_yaml(),))).encode("utf-8")


def opts(*pairs: tuple[str, float]) -> str:
    return "[" + ", ".join(f"{{label: {label}, position: {pos}}}" for label, pos in pairs) + "]"


def problems(data: bytes, **kwargs: object) -> tuple[PackProblem, ...]:
    essay = kwargs.pop("essay", ESSAY)
    with pytest.raises(PackError) as info:
        parse_pack(data, "test.yaml", essay, **kwargs)  # type: ignore[arg-type]
    return info.value.problems


def only(data: bytes, **kwargs: object) -> PackProblem:
    found = problems(data, **kwargs)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def assert_problem(data: bytes, field: str | None, fragment: str, line: int | None = None) -> PackProblem:
    problem = only(data)
    assert problem.field == field, str(problem)
    assert fragment in problem.message, str(problem)
    if line is not None:
        assert problem.line == line, str(problem)
    return problem


# ----- a valid pack


def test_minimal_pack_parses() -> None:
    pack = parse_pack(doc(), "test.yaml", ESSAY)
    assert pack == Pack(
        id="test-pack",
        name="Test pack",
        description="For tests.",
        prompts=(
            Prompt(
                id="first-prompt",
                paragraph=1,
                excerpt=P1S1,
                theme="self-reliance",
                question="Is self-reliance a virtue?",
                dilemmas=(
                    Dilemma(
                        "Who should pay for the street party?",
                        (Option("Each their own", -1.0), Option("We all chip in", 1.0)),
                        id="first-prompt",
                    ),
                ),
            ),
        ),
        source="test.yaml",
        version=1,
    )


def test_integer_positions_become_floats() -> None:
    pack = parse_pack(doc(prompt_yaml(options=opts(('"a"', -1), ('"b"', 0), ('"c"', 1)))), "t", ESSAY)
    assert [o.position for o in pack.prompts[0].dilemma.options] == [-1.0, 0.0, 1.0]
    assert all(type(o.position) is float for o in pack.prompts[0].dilemma.options)


def test_excerpt_whitespace_is_normalised() -> None:
    folded = '"Individualism emphasizes the value\n      of self-reliance and   personal responsibility."'
    pack = parse_pack(doc(prompt_yaml(excerpt=folded)), "t", ESSAY)
    assert pack.prompts[0].excerpt == P1S1


# ----- several dilemmas per prompt, context, sensitive, setting/teen/beyond_anglo

TWO = '[{label: "Each their own", position: -1.0}, {label: "We all chip in", position: 1.0}]'


def dilemma_yaml(
    did: str = "street-party",
    *,
    dq: str = '"Who should pay for the street party?"',
    setting: str | None = "neighbourhood",
    options: str = TWO,
    extra: str = "",
) -> str:
    text = f"      - id: {did}\n        question: {dq}\n"
    if setting is not None:
        text += f"        setting: {setting}\n"
    return text + extra + f"        options: {options}\n"


def multi_yaml(pid: str = "first-prompt", *dilemmas: str, extra: str = "") -> str:
    """A prompt in the ``dilemmas:`` form (its head as prompt_yaml's)."""
    head = prompt_yaml(pid, extra=extra).split("    dilemma:\n")[0]
    return head + "    dilemmas:\n" + "".join(dilemmas or (dilemma_yaml(),))


def test_several_dilemmas_parse_in_order_with_their_fields() -> None:
    data = doc(
        multi_yaml(
            "first-prompt",
            dilemma_yaml(
                "group-project-grade", setting="school", extra="        teen: true\n        beyond_anglo: true\n"
            ),
            dilemma_yaml("first-wages", setting="family", extra="        teen: false\n"),
        )
    )
    prompt = parse_pack(data, "t", ESSAY).prompts[0]
    assert [d.id for d in prompt.dilemmas] == ["group-project-grade", "first-wages"]
    assert [(d.setting, d.teen, d.beyond_anglo) for d in prompt.dilemmas] == [
        ("school", True, True),
        ("family", False, False),
    ]
    assert prompt.dilemma is prompt.dilemmas[0]
    assert prompt.dilemma_by_id("first-wages") is prompt.dilemmas[1]
    assert prompt.dilemma_by_id("nope") is None
    assert (prompt.context, prompt.sensitive) == (None, False)


def test_single_dilemma_takes_the_prompt_id_and_may_carry_the_optional_fields() -> None:
    prompt = parse_pack(doc(), "t", ESSAY).prompts[0]
    assert [(d.id, d.setting, d.teen, d.beyond_anglo) for d in prompt.dilemmas] == [
        ("first-prompt", None, False, False)
    ]
    options = TWO + "\n      setting: online\n      teen: true"
    prompt = parse_pack(doc(prompt_yaml(options=options)), "t", ESSAY).prompts[0]
    assert (prompt.dilemma.setting, prompt.dilemma.teen, prompt.dilemma.beyond_anglo) == ("online", True, False)


def test_single_dilemma_cannot_name_its_own_id() -> None:
    options = TWO + "\n      id: other-id"
    assert_problem(doc(prompt_yaml(options=options)), "dilemma.id", "unknown field 'id'")


def test_dilemma_and_dilemmas_together_are_refused() -> None:
    text = prompt_yaml() + "    dilemmas:\n" + dilemma_yaml()
    problem = assert_problem(doc(text), "dilemmas", "either 'dilemma' (one) or 'dilemmas' (a list), not both", line=12)
    assert problem.prompt_id == "first-prompt"


def test_neither_dilemma_nor_dilemmas_is_refused() -> None:
    text = prompt_yaml().split("    dilemma:\n")[0]
    problem = assert_problem(doc(text), "dilemmas", "missing: a prompt needs 'dilemmas' (a list) or a single 'dilemma'")
    assert problem.line == 3 and problem.prompt_id == "first-prompt"


def test_dilemmas_must_be_a_non_empty_bounded_list() -> None:
    head = prompt_yaml().split("    dilemma:\n")[0]
    assert_problem(doc(head + "    dilemmas: []\n"), "dilemmas", f"has 0 dilemmas; a prompt needs 1–{MAX_DILEMMAS}")
    assert_problem(doc(head + '    dilemmas: "one"\n'), "dilemmas", "expected a list of dilemmas; got text")
    many = [dilemma_yaml(f"d-{i}", dq='"Q?"') for i in range(MAX_DILEMMAS + 1)]
    assert_problem(doc(multi_yaml("first-prompt", *many)), "dilemmas", f"has {MAX_DILEMMAS + 1} dilemmas")
    assert len(parse_pack(doc(multi_yaml("first-prompt", *many[:-1])), "t", ESSAY).prompts[0].dilemmas) == MAX_DILEMMAS


def test_listed_dilemma_needs_id_and_setting() -> None:
    no_setting = dilemma_yaml(setting=None)
    problem = assert_problem(doc(multi_yaml("first-prompt", no_setting)), "dilemmas[1].setting", "missing", line=9)
    assert problem.prompt_id == "first-prompt"
    no_id = dilemma_yaml().replace("      - id: street-party\n        question:", "      - question:")
    assert_problem(doc(multi_yaml("first-prompt", no_id)), "dilemmas[1].id", "missing", line=9)


def test_listed_dilemma_id_follows_the_id_rule() -> None:
    problem = assert_problem(
        doc(multi_yaml("first-prompt", dilemma_yaml("Bad_Id"))), "dilemmas[1].id", "lowercase letters"
    )
    assert problem.line == 9


def test_dilemma_ids_are_unique_across_the_pack() -> None:
    data = doc(
        multi_yaml("first-prompt", dilemma_yaml("shared-id"), dilemma_yaml("other-one")),
        multi_yaml("second-prompt", dilemma_yaml("shared-id")),
    )
    problem = assert_problem(data, "dilemmas[1].id", "duplicate dilemma id (first used on line 9, prompt first-prompt)")
    assert problem.prompt_id == "second-prompt"
    data = doc(multi_yaml("first-prompt", dilemma_yaml("same-twice"), dilemma_yaml("same-twice")))
    assert_problem(data, "dilemmas[2].id", "duplicate dilemma id (first used on line 9")


def test_a_listed_dilemma_id_may_not_take_another_prompts_single_dilemma_id() -> None:
    data = doc(prompt_yaml("old-style"), multi_yaml("new-style", dilemma_yaml("old-style")))
    problem = assert_problem(data, "dilemmas[1].id", "prompt old-style's single dilemma (line 9) already has the id")
    assert problem.prompt_id == "new-style"
    # ... and the other way round: the single dilemma comes second.
    data = doc(multi_yaml("new-style", dilemma_yaml("old-style")), prompt_yaml("old-style"))
    problem = assert_problem(data, "dilemma", "duplicate dilemma id (first used on line 9, prompt new-style)")
    assert problem.prompt_id == "old-style"
    # A listed dilemma may share its own prompt's id (the prompt has no single dilemma).
    assert parse_pack(doc(multi_yaml("new-style", dilemma_yaml("new-style"))), "t", ESSAY).prompts[0].dilemma.id == (
        "new-style"
    )


def test_setting_must_be_known() -> None:
    problem = assert_problem(
        doc(multi_yaml("first-prompt", dilemma_yaml(setting="beach"))), "dilemmas[1].setting", "unknown setting 'beach'"
    )
    assert "family, school, friends, neighbourhood, workplace, online, club, civic, health" in problem.message
    assert problem.line == 11
    assert_problem(doc(multi_yaml("first-prompt", dilemma_yaml(setting="3"))), "dilemmas[1].setting", "expected text")
    bad_single = doc(prompt_yaml(options=TWO + "\n      setting: street"))
    assert_problem(bad_single, "dilemma.setting", "unknown setting 'street'")


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_every_setting_is_accepted(setting: str) -> None:
    assert (
        parse_pack(doc(multi_yaml("first-prompt", dilemma_yaml(setting=setting))), "t", ESSAY)
        .prompts[0]
        .dilemma.setting
        == setting
    )


def test_settings_are_the_agreed_nine() -> None:
    assert list(SETTINGS) == [
        "family",
        "school",
        "friends",
        "neighbourhood",
        "workplace",
        "online",
        "club",
        "civic",
        "health",
    ]


@pytest.mark.parametrize("field", ["teen", "beyond_anglo"])
@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), ("True", True), ("FALSE", False)])
def test_dilemma_flags_accept_true_and_false(field: str, value: str, expected: bool) -> None:
    data = doc(multi_yaml("first-prompt", dilemma_yaml(extra=f"        {field}: {value}\n")))
    assert getattr(parse_pack(data, "t", ESSAY).prompts[0].dilemma, field) is expected


@pytest.mark.parametrize("field", ["teen", "beyond_anglo"])
@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("yes", "write true or false (not 'yes')"),
        ("off", "write true or false (not 'off')"),
        ('"true"', "got text; write it without quotes"),
        ("1", "expected true or false; got a number (1)"),
        ("maybe", "expected true or false; got text"),
        ("", "expected true or false; got nothing"),
    ],
)
def test_dilemma_flags_refuse_anything_else(field: str, value: str, fragment: str) -> None:
    data = doc(multi_yaml("first-prompt", dilemma_yaml(extra=f"        {field}: {value}\n")))
    problem = assert_problem(data, f"dilemmas[1].{field}", fragment, line=12)
    assert problem.prompt_id == "first-prompt"


def test_listed_dilemma_options_are_checked_under_their_own_field() -> None:
    one_sided = '[{label: "a", position: 0.5}, {label: "b", position: 1.0}]'
    data = doc(multi_yaml("first-prompt", dilemma_yaml(), dilemma_yaml("second-one", options=one_sided)))
    assert_problem(data, "dilemmas[2].options", "needs at least one option below 0")
    data = doc(multi_yaml("first-prompt", dilemma_yaml(dq='"' + "d" * 301 + '"')))
    assert_problem(data, "dilemmas[1].question", "the limit is 300")
    data = doc(multi_yaml("first-prompt", dilemma_yaml(extra="        colour: red\n")))
    assert_problem(data, "dilemmas[1].colour", "unknown field 'colour'")


def test_context_is_optional_text_with_the_question_rules() -> None:
    note = '"Source: a 2019 survey by the named institute."'
    pack = parse_pack(doc(prompt_yaml(extra=f"    context: {note}\n")), "t", ESSAY)
    assert pack.prompts[0].context == "Source: a 2019 survey by the named institute."
    two_lines = parse_pack(doc(prompt_yaml(extra='    context: "One.\\nTwo."\n')), "t", ESSAY)
    assert two_lines.prompts[0].context == "One.\nTwo."
    assert MAX_CONTEXT == 300
    exact = parse_pack(doc(prompt_yaml(extra=f'    context: "{"c" * 300}"\n')), "t", ESSAY)
    assert exact.prompts[0].context == "c" * 300


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ('"' + "c" * 301 + '"', "is 301 characters; the limit is 300"),
        ('"  "', "must not be empty"),
        ("42", "expected text; got a number (42); quote it"),
        ('"see <@123>"', "mentions are not allowed"),
        ('"a\u202eb"', "bidirectional control U+202E"),
        ("[a, b]", "expected text; got a list"),
    ],
)
def test_bad_context_is_refused(value: str, fragment: str) -> None:
    problem = assert_problem(doc(prompt_yaml(extra=f"    context: {value}\n")), "context", fragment, line=8)
    assert problem.prompt_id == "first-prompt"


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False)])
def test_sensitive_flag(value: str, expected: bool) -> None:
    assert parse_pack(doc(prompt_yaml(extra=f"    sensitive: {value}\n")), "t", ESSAY).prompts[0].sensitive is expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("no", "write true or false (not 'no')"), ('"false"', "write it without quotes"), ("0", "got a number (0)")],
)
def test_bad_sensitive_is_refused(value: str, fragment: str) -> None:
    assert_problem(doc(prompt_yaml(extra=f"    sensitive: {value}\n")), "sensitive", fragment, line=8)


def test_problems_in_several_dilemmas_are_all_reported() -> None:
    data = doc(
        multi_yaml(
            "first-prompt",
            dilemma_yaml("one-here", setting="beach"),
            dilemma_yaml("two-here", extra="        teen: yes\n"),
        )
    )
    found = problems(data)
    assert [(p.field, p.line) for p in found] == [("dilemmas[1].setting", 11), ("dilemmas[2].teen", 16)]
    assert all(p.prompt_id == "first-prompt" for p in found)
    assert str(found[1]).startswith("test.yaml:16: prompt first-prompt: dilemmas[2].teen: ")


# ----- YAML-level rules


def test_syntax_error_names_the_line() -> None:
    data = doc(prompt_yaml(question='"unterminated'))
    problem = only(data)
    assert problem.line is not None and problem.line >= 7
    assert "YAML syntax error" in problem.message


def test_syntax_error_bad_indentation() -> None:
    data = (HEAD + "  - id: x\n   paragraph: 1\n").encode()
    problem = only(data)
    assert problem.line == 4
    assert "YAML syntax error" in problem.message


@pytest.mark.parametrize("root", ["- a\n- b\n", '"just text"\n', "42\n"])
def test_wrong_root(root: str) -> None:
    problem = assert_problem(root.encode(), None, "expected a mapping with pack, prompts")
    assert problem.line == 1


def test_empty_file() -> None:
    assert_problem(b"", None, "the file is empty")
    assert_problem(b"# only a comment\n\n", None, "the file is empty")


def test_two_documents() -> None:
    data = doc() + b"---\n" + doc()
    problem = assert_problem(data, None, "more than one YAML document")
    assert problem.line == 11  # the second '---'


def test_missing_field() -> None:
    text = prompt_yaml().replace("    theme: self-reliance\n", "")
    problem = assert_problem(doc(text), "theme", "missing", line=3)
    assert problem.prompt_id == "first-prompt"


def test_missing_section() -> None:
    assert_problem(b"pack: {id: a-pack, name: A, description: B, version: 1}\n", "prompts", "missing")


def test_extra_field() -> None:
    assert_problem(doc(prompt_yaml(extra="    colour: red\n")), "colour", "unknown field 'colour'", line=8)


def test_extra_field_in_option() -> None:
    options = '[{label: "a", position: -1, emoji: "x"}, {label: "b", position: 1}]'
    assert_problem(doc(prompt_yaml(options=options)), "dilemma.options[1].emoji", "unknown field")


def test_duplicate_key_names_the_line_of_the_duplicate() -> None:
    problem = assert_problem(
        doc(prompt_yaml(extra="    theme: balance\n")), "theme", "duplicate key 'theme' (first given on line 6)"
    )
    assert problem.line == 8


def test_duplicate_key_at_root() -> None:
    assert_problem(doc() + b"prompts: []\n", "prompts", "duplicate key")


def test_alias_bomb_is_refused_fast() -> None:
    # The classic "billion laughs": 9 levels of 9 aliases each; constructed, it would be 9**9 nodes.
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    data = ("\n".join(lines) + "\n").encode()
    assert len(data) < 1000
    problem = only(data)
    assert "anchors (&a) are not allowed" in problem.message
    assert problem.line == 1


@pytest.mark.timing
def test_alias_bomb_is_refused_in_under_200_ms() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        lines.append(f"{name}: &{name} [{','.join(['*' + 'abcdefghi'[i]] * 9)}]")
    start = time.perf_counter()
    only(("\n".join(lines) + "\n").encode())
    assert time.perf_counter() - start < 0.2


def test_any_anchor_is_refused() -> None:
    assert_problem(doc(prompt_yaml(question='&q "Is it?"')), None, "anchors (&q) are not allowed", line=7)


def test_alias_without_anchor_is_refused() -> None:
    assert_problem(doc(prompt_yaml(question="*q")), None, "aliases (*q) are not allowed", line=7)


def test_python_tag_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = doc(prompt_yaml(question=f'!!python/object/apply:os.system ["touch {marker}"]'))
    problem = assert_problem(data, None, "the tag !!python/object/apply:os.system is not allowed", line=7)
    assert problem.prompt_id is None
    assert not marker.exists()


@pytest.mark.parametrize("tag", ["!!binary", "!!set", "!local", "!<tag:example.com,2024:x>"])
def test_other_tags_are_refused(tag: str) -> None:
    assert_problem(doc(prompt_yaml(question=f'{tag} "aGk="')), None, "is not allowed")


def test_deep_nesting_is_refused() -> None:
    data = b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n"
    problem = only(data)
    assert "nested more than" in problem.message


def test_not_utf8_names_the_byte_offset() -> None:
    data = doc().replace(b"Is self-reliance", b"Is self\xffreliance")
    offset = data.index(b"\xff")
    problem = assert_problem(data, None, f"not UTF-8 text (invalid byte 0xff at byte offset {offset})")
    assert problem.line == 7


def test_utf8_bom_is_accepted() -> None:
    assert parse_pack(b"\xef\xbb\xbf" + doc(), "t", ESSAY).id == "test-pack"


def test_oversize_file_is_refused_before_parsing() -> None:
    data = b"\xff" * (MAX_PACK_BYTES + 1)  # not even UTF-8: the cap must be the first check
    assert_problem(data, None, "at most 256 KiB")


def test_file_at_the_cap_is_parsed() -> None:
    data = doc()
    data += b"#" * (MAX_PACK_BYTES - len(data) - 1) + b"\n"
    assert len(data) == MAX_PACK_BYTES
    assert parse_pack(data, "t", ESSAY).id == "test-pack"


def test_max_bytes_is_a_parameter() -> None:
    problem = only(doc(), max_bytes=100)
    assert "bytes; a pack may be at most" in problem.message


def test_oversize_prompt() -> None:
    padded = (
        f'"Individualism emphasizes the value{" " * MAX_PROMPT_BYTES}of self-reliance and personal responsibility."'
    )
    problem = assert_problem(doc(prompt_yaml(excerpt=padded)), None, f"one prompt may hold at most {MAX_PROMPT_BYTES}")
    assert problem.prompt_id == "first-prompt"


def test_too_many_prompts() -> None:
    one = prompt_yaml("p-{i}", question='"Q?"', dq='"D?"', options=opts(('"a"', -1), ('"b"', 1)))
    data = doc(*(one.replace("{i}", str(i)) for i in range(501)))
    assert len(data) < MAX_PACK_BYTES
    assert_problem(data, "prompts", "a pack holds at most 500")


def test_no_prompts() -> None:
    assert_problem(HEAD.encode() + b"  []\n", "prompts", "the list is empty")


# ----- types


def test_paragraph_as_text_is_refused() -> None:
    assert_problem(doc(prompt_yaml(paragraph='"3"')), "paragraph", "got text; write it without quotes", line=4)


@pytest.mark.parametrize("value", ["0", "6", "-1"])
def test_paragraph_out_of_range(value: str) -> None:
    assert_problem(doc(prompt_yaml(paragraph=value)), "paragraph", "must be 1–5")


def test_paragraph_as_bool_or_float() -> None:
    assert_problem(doc(prompt_yaml(paragraph="yes")), "paragraph", "got a yes/no value")
    assert_problem(doc(prompt_yaml(paragraph="1.0")), "paragraph", "expected a whole number")


def test_label_no_is_refused_with_a_quote_hint() -> None:
    options = '[{label: no, position: -1}, {label: "Yes", position: 1}]'
    problem = assert_problem(doc(prompt_yaml(options=options)), "dilemma.options[1].label", "expected text")
    assert "'no' reads as false" in problem.message
    assert "quote it" in problem.message


def test_text_as_number_is_refused() -> None:
    assert_problem(doc(prompt_yaml(question="10:30")), "question", "got a number (10:30); quote it")


def test_text_as_null() -> None:
    assert_problem(doc(prompt_yaml(question="~")), "question", "expected text; got nothing")


def test_text_as_list() -> None:
    assert_problem(doc(prompt_yaml(question="[a, b]")), "question", "expected text; got a list")


def test_position_as_text_or_bool() -> None:
    quoted = opts(('"a"', '"-0.5"'), ('"b"', 1))
    assert_problem(doc(prompt_yaml(options=quoted)), "dilemma.options[1].position", "write it without quotes")
    boolean = opts(('"a"', "true"), ('"b"', -1))
    assert_problem(doc(prompt_yaml(options=boolean)), "dilemma.options[1].position", "got a yes/no value")


@pytest.mark.parametrize("value", ["1.01", "-1.5", "2", ".nan", ".inf", "-.inf"])
def test_position_outside_range(value: str) -> None:
    data = doc(prompt_yaml(options=opts(('"a"', -1), ('"b"', 1), ('"c"', value))))
    assert_problem(data, "dilemma.options[3].position", "must be from -1.0 (the individual first) to 1.0")


def test_position_at_the_ends_passes() -> None:
    pack = parse_pack(doc(prompt_yaml(options=opts(('"a"', "-1.0"), ('"b"', "1.0")))), "t", ESSAY)
    assert [o.position for o in pack.prompts[0].dilemma.options] == [-1.0, 1.0]


def test_options_not_a_list() -> None:
    assert_problem(doc(prompt_yaml(options='"a, b"')), "dilemma.options", "expected a list of options")


# ----- ids and themes


@pytest.mark.parametrize("bad", ["Bad_Id", "-leading", "x", "a" * 65, '"has space"', "émoji"])
def test_id_must_be_a_slug(bad: str) -> None:
    assert_problem(doc(prompt_yaml(bad)), "id", "lowercase letters, digits or '-'")


def test_ids_must_be_unique() -> None:
    problem = assert_problem(doc(prompt_yaml("same-id"), prompt_yaml("same-id")), "id", "duplicate id")
    assert "first used on line 3" in problem.message
    assert problem.line == 11


def test_pack_id_must_be_a_slug() -> None:
    data = doc().replace(b"id: test-pack", b"id: Test Pack")
    assert_problem(data, "pack.id", "lowercase letters")


def test_unknown_theme() -> None:
    problem = assert_problem(doc(prompt_yaml(theme="economics")), "theme", "unknown theme 'economics'")
    assert "self-reliance" in problem.message


# ----- the excerpt


def test_excerpt_not_in_the_essay() -> None:
    wrong = '"Individualism emphasizes the value of self-reliance and personal freedom."'
    problem = assert_problem(doc(prompt_yaml(excerpt=wrong)), "excerpt", "not found verbatim in paragraph 1")
    assert "matches up to" in problem.message


def test_excerpt_from_another_paragraph() -> None:
    other = '"An ideal society might contain elements of both individualist and collectivist societies."'
    assert_problem(doc(prompt_yaml(excerpt=other)), "excerpt", "is from paragraph 5, not paragraph 1")


def test_excerpt_must_be_whole_sentences() -> None:
    part = '"the value of self-reliance and personal responsibility."'
    assert_problem(doc(prompt_yaml(excerpt=part)), "excerpt", "must be whole sentences")


def test_excerpt_at_most_three_sentences() -> None:
    four = " ".join(ESSAY.sentences(4)[:4])
    assert_problem(doc(prompt_yaml(paragraph="4", excerpt=f'"{four}"')), "excerpt", "quote at most 3")
    three = " ".join(ESSAY.sentences(4)[1:4])
    assert parse_pack(doc(prompt_yaml(paragraph="4", excerpt=f'"{three}"')), "t", ESSAY)


def test_excerpt_checked_even_when_paragraph_is_bad() -> None:
    found = problems(doc(prompt_yaml(paragraph='"1"', excerpt='"Not in the essay."')))
    assert {p.field for p in found} == {"paragraph", "excerpt"}


# ----- lengths and options


def test_question_300_passes_301_fails() -> None:
    assert parse_pack(doc(prompt_yaml(question='"' + "q" * 300 + '"')), "t", ESSAY)
    assert_problem(doc(prompt_yaml(question='"' + "q" * 301 + '"')), "question", "is 301 characters; the limit is 300")


def test_dilemma_question_300_passes_301_fails() -> None:
    assert parse_pack(doc(prompt_yaml(dq='"' + "d" * 300 + '"')), "t", ESSAY)
    assert_problem(doc(prompt_yaml(dq='"' + "d" * 301 + '"')), "dilemma.question", "the limit is 300")


def test_dilemma_question_must_be_one_line() -> None:
    assert_problem(doc(prompt_yaml(dq='"Two\\nlines"')), "dilemma.question", "must be one line")


def test_label_55_passes_56_fails() -> None:
    ok = opts(('"' + "a" * 55 + '"', -1), ('"b"', 1))
    assert parse_pack(doc(prompt_yaml(options=ok)), "t", ESSAY)
    long = opts(('"' + "a" * 56 + '"', -1), ('"b"', 1))
    assert_problem(doc(prompt_yaml(options=long)), "dilemma.options[1].label", "is 56 characters; the limit is 55")


def test_empty_label() -> None:
    assert_problem(doc(prompt_yaml(options=opts(('"  "', -1), ('"b"', 1)))), "dilemma.options[1].label", "empty")


def test_six_options_are_refused_five_pass() -> None:
    five = opts(*((f'"o{i}"', p) for i, p in enumerate([-1, -0.5, 0, 0.5, 1])))
    assert len(parse_pack(doc(prompt_yaml(options=five)), "t", ESSAY).prompts[0].dilemma.options) == 5
    six = opts(*((f'"o{i}"', p) for i, p in enumerate([-1, -0.5, 0, 0, 0.5, 1])))
    assert_problem(doc(prompt_yaml(options=six)), "dilemma.options", "has 6 options; a dilemma needs 2–5")


def test_one_option_is_refused() -> None:
    assert_problem(doc(prompt_yaml(options=opts(('"a"', 0)))), "dilemma.options", "has 1 options")


def test_labels_unique_within_a_prompt() -> None:
    same = opts(('"Me first"', -1), ('"me  FIRST"', 1))
    assert_problem(doc(prompt_yaml(options=same)), "dilemma.options[2].label", "the same label as option 1")


@pytest.mark.parametrize(
    "positions",
    [(-1, -0.5, 0), (0, 0.5, 1), (0, 0), (-0.0, 1)],
)
def test_needs_an_option_on_each_side(positions: tuple[float, ...]) -> None:
    options = opts(*((f'"o{i}"', p) for i, p in enumerate(positions)))
    assert_problem(doc(prompt_yaml(options=options)), "dilemma.options", "needs at least one option below 0")


# ----- characters and mentions


def test_nul_escape_is_refused() -> None:
    assert_problem(doc(prompt_yaml(question='"Is it\\0 fair?"')), "question", "control character U+0000")


def test_raw_nul_byte_is_refused_with_its_line() -> None:
    problem = assert_problem(doc().replace(b"Is self", b"Is\x00self"), None, "control character U+0000")
    assert problem.line == 7


@pytest.mark.parametrize("char", ["\\x07", "\\e", "\\x85", "\\ud800"])
def test_other_control_characters_are_refused(char: str) -> None:
    assert_problem(doc(prompt_yaml(question=f'"Is it{char} fair?"')), "question", "is not allowed")


def test_rtl_override_is_refused_in_labels() -> None:
    # U+202E reverses the display of whatever follows: "‮tsrif ytinummoC" shows as "Community first"
    # while the stored text says something else, and the reversal can spill over the rest of the post.
    options = opts(('"Me \\u202efirst"', -1), ('"Us"', 1))
    assert_problem(doc(prompt_yaml(options=options)), "dilemma.options[1].label", "bidirectional control U+202E")


def test_rtl_marks_for_hebrew_are_accepted() -> None:
    pack = parse_pack(doc(prompt_yaml(question='"Is \\u200fשלום\\u200f a community word?"')), "t", ESSAY)
    assert "\u200f" in pack.prompts[0].question


def test_zalgo_is_refused() -> None:
    zalgo = "Z" + "\u0301\u0302\u0303\u0304\u0305\u0306" + "algo"
    assert_problem(doc(prompt_yaml(question=f'"{zalgo}?"')), "question", "combining marks on one character")


def test_ordinary_accents_are_accepted() -> None:
    vietnamese = unicodedata.normalize("NFD", "Tiếng Việt: cộng đồng hay cá nhân?")
    pack = parse_pack(doc(prompt_yaml(question=f'"{vietnamese}"')), "t", ESSAY)
    assert pack.prompts[0].question == vietnamese


@pytest.mark.parametrize(
    "text",
    [
        "Hey @everyone",
        "@here now",
        "Hi <@123456789012345678>",
        "Hi <@!123>",
        "Role <@&42>",
        "See <#99>",
        "＠everyone!",
        "@EVERYONE",
    ],
)
def test_mentions_are_refused(text: str) -> None:
    assert_problem(doc(prompt_yaml(question=f'"{text}"')), "question", "mentions are not allowed")


def test_mentions_are_refused_in_labels_and_pack_name() -> None:
    options = opts(('"@everyone first"', -1), ('"b"', 1))
    assert_problem(doc(prompt_yaml(options=options)), "dilemma.options[1].label", "mentions are not allowed")
    assert_problem(doc().replace(b'"Test pack"', b'"<@&1> pack"'), "pack.name", "mentions are not allowed")


def test_email_like_text_is_fine() -> None:
    assert parse_pack(doc(prompt_yaml(question='"Mail me at a@example.org?"')), "t", ESSAY)


def test_sql_metacharacters_are_kept_verbatim() -> None:
    label = "Robert'); DROP TABLE votes;-- %_\\\\"
    options = opts((f'"{label}"', -1), ('"1 OR 1=1; --"', 1))
    pack = parse_pack(doc(prompt_yaml(options=options, question="\"It's a 'quote' -- /* */?\"")), "t", ESSAY)
    assert pack.prompts[0].dilemma.options[0].label == "Robert'); DROP TABLE votes;-- %_\\"
    assert pack.prompts[0].dilemma.options[1].label == "1 OR 1=1; --"
    assert pack.prompts[0].question == "It's a 'quote' -- /* */?"


# ----- all or nothing, and how problems read


def test_every_problem_is_reported() -> None:
    bad_one = prompt_yaml("bad-one", theme="nope")
    bad_two = prompt_yaml("bad-two", paragraph="9", options=opts(('"a"', 3), ('"b"', 1)))
    good = prompt_yaml("good-one")
    found = problems(doc(bad_one, good, bad_two))
    assert {(p.prompt_id, p.field) for p in found} == {
        ("bad-one", "theme"),
        ("bad-two", "paragraph"),
        ("bad-two", "dilemma.options[1].position"),
    }


def test_prompt_without_a_usable_id_is_named_by_its_position() -> None:
    problem = only(doc(prompt_yaml("good-one"), prompt_yaml('"Not A Slug"')))
    assert problem.prompt_id == "#2"


def test_problem_str() -> None:
    assert str(PackProblem("p.yaml", 12, "my-prompt", "dilemma.question", "is too long")) == (
        "p.yaml:12: prompt my-prompt: dilemma.question: is too long"
    )
    # A whole-file problem is located at line 1, so every problem reads `file:line:` (README).
    assert str(PackProblem("p.yaml", None, None, None, "the file is empty")) == "p.yaml:1: the file is empty"


def test_pack_error_message_is_bounded() -> None:
    many = [PackProblem("p.yaml", i, None, "x", "bad") for i in range(1, 30)]
    error = PackError(many)
    assert error.message.startswith("The pack was not imported: 29 problems found.")
    assert "… and 19 more" in error.message
    assert str(error) == error.message


# ----- files


def test_check_files(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_bytes(doc())
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(doc(prompt_yaml(theme="nope")))
    assert check_files([good], ESSAY) == []
    found = check_files([good, bad, tmp_path / "missing.yaml"], ESSAY)
    assert [(p.source, p.field) for p in found] == [(str(bad), "theme"), (str(tmp_path / "missing.yaml"), None)]
    assert "cannot read the file" in found[1].message
    assert len(check_files([tmp_path], ESSAY)) == 1  # a directory means its YAML files


def test_check_files_refuses_a_huge_file_without_reading_it(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as f:
        f.truncate(2 * 1024**3)  # sparse: 2 GiB that would take seconds to read
    [problem] = check_files([huge], ESSAY)
    assert "at most 256 KiB" in problem.message


@pytest.mark.timing
def test_check_files_refuses_a_huge_file_in_under_half_a_second(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as f:
        f.truncate(2 * 1024**3)
    start = time.perf_counter()
    check_files([huge], ESSAY)
    assert time.perf_counter() - start < 0.5


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_check_files_reads_at_most_the_cap_plus_one() -> None:
    # An endless stream whose size stat cannot tell (like a FIFO or a /proc file): the read is capped.
    [problem] = check_files([Path("/dev/zero")], ESSAY)
    assert "at most 256 KiB" in problem.message


def test_check_files_without_paths_checks_the_builtin_pack() -> None:
    assert check_files([], ESSAY) == []


# ----- property: what passes, round-trips


_text_chars = st.characters(
    blacklist_categories=("Cc", "Cs", "Cf", "Cn", "Mn", "Me", "Zl", "Zp"), blacklist_characters="@<＠﹫﹤＜"
)


def _clean(s: str) -> bool:
    folded = unicodedata.normalize("NFKC", s)
    return s == s.strip() and bool(s) and "@" not in folded and "<" not in folded and "\n" not in s


def _text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(_text_chars, min_size=1, max_size=max_size).filter(_clean)


@st.composite
def _excerpts(draw: st.DrawFn) -> tuple[int, str]:
    n = draw(st.integers(1, len(ESSAY.paragraphs)))
    sentences = ESSAY.sentences(n)
    i = draw(st.integers(0, len(sentences) - 1))
    k = draw(st.integers(1, min(3, len(sentences) - i)))
    return n, " ".join(sentences[i : i + k])


@st.composite
def _dilemma_docs(draw: st.DrawFn, did: str | None) -> dict:
    positions = [
        draw(st.floats(-1.0, 0.0, exclude_max=True)),
        draw(st.floats(0.0, 1.0, exclude_min=True)),
        *draw(st.lists(st.floats(-1.0, 1.0), max_size=3)),
    ]
    labels = draw(
        st.lists(
            _text(55),
            min_size=len(positions),
            max_size=len(positions),
            unique_by=lambda s: " ".join(s.split()).casefold(),
        )
    )
    out: dict = {} if did is None else {"id": did}
    out["question"] = draw(_text(300))
    if did is not None or draw(st.booleans()):
        out["setting"] = draw(st.sampled_from(sorted(SETTINGS)))
    out["teen"] = draw(st.booleans())
    out["beyond_anglo"] = draw(st.booleans())
    out["options"] = [{"label": lb, "position": p} for lb, p in zip(labels, positions, strict=True)]
    return out


@st.composite
def _prompt_docs(draw: st.DrawFn, pid: str, dilemma_ids: list[str]) -> dict:
    """A prompt; no dilemma ids means the old single ``dilemma:`` form."""
    paragraph, excerpt = draw(_excerpts())
    out = {
        "id": pid,
        "paragraph": paragraph,
        "excerpt": excerpt,
        "theme": draw(st.sampled_from(sorted(THEMES))),
        "question": draw(_text(300)),
        "context": draw(_text(300)),
        "sensitive": draw(st.booleans()),
    }
    if dilemma_ids:
        out["dilemmas"] = [draw(_dilemma_docs(d)) for d in dilemma_ids]
    else:
        out["dilemma"] = draw(_dilemma_docs(None))
    return out


@st.composite
def _pack_docs(draw: st.DrawFn) -> dict:
    counts = draw(st.lists(st.integers(0, 3), min_size=1, max_size=4))
    ids = draw(
        st.lists(
            st.from_regex(ID_RE, fullmatch=True),
            min_size=len(counts) + sum(counts),
            max_size=len(counts) + sum(counts),
            unique=True,
        )
    )
    prompts = []
    for n in counts:
        pid, ids = ids[0], ids[1:]
        prompts.append(draw(_prompt_docs(pid, ids[:n])))
        ids = ids[n:]
    return {
        "pack": {
            "id": draw(st.from_regex(ID_RE, fullmatch=True)),
            "name": draw(_text(100)),
            "description": draw(_text(200)),
            "version": draw(st.integers(1, 10**6)),
        },
        "prompts": prompts,
    }


def _dilemma_doc(d: Dilemma, *, single: bool) -> dict:
    out: dict = {} if single else {"id": d.id}
    out["question"] = d.question
    if d.setting is not None:
        out["setting"] = d.setting
    out["teen"] = d.teen
    out["beyond_anglo"] = d.beyond_anglo
    out["options"] = [{"label": o.label, "position": o.position} for o in d.options]
    return out


def _to_doc(pack: Pack, single: set[str]) -> dict:
    """The pack as a document; prompts named in ``single`` use the old ``dilemma:`` form."""
    prompts = []
    for p in pack.prompts:
        doc_ = {
            "id": p.id,
            "paragraph": p.paragraph,
            "excerpt": p.excerpt,
            "theme": p.theme,
            "question": p.question,
            "context": p.context,
            "sensitive": p.sensitive,
        }
        if p.id in single:
            assert len(p.dilemmas) == 1 and p.dilemma.id == p.id
            doc_["dilemma"] = _dilemma_doc(p.dilemma, single=True)
        else:
            doc_["dilemmas"] = [_dilemma_doc(d, single=False) for d in p.dilemmas]
        prompts.append(doc_)
    return {
        "pack": {"id": pack.id, "name": pack.name, "description": pack.description, "version": pack.version},
        "prompts": prompts,
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(_pack_docs())
def test_a_valid_pack_round_trips_through_safe_dump(document: dict) -> None:
    first = parse_pack(yaml.safe_dump(document, allow_unicode=True, sort_keys=False).encode(), "p.yaml", ESSAY)
    single = {p["id"] for p in document["prompts"] if "dilemma" in p}
    assert _to_doc(first, single) == document
    again = yaml.safe_dump(_to_doc(first, single), allow_unicode=True).encode()
    assert parse_pack(again, "p.yaml", ESSAY) == first


def test_essay_is_injected() -> None:
    tiny = Essay("T", ("One sentence here. Another one.",))
    pack = parse_pack(doc(prompt_yaml(excerpt='"Another one."')), "t", tiny)
    assert pack.prompts[0].excerpt == "Another one."
    problem = only(doc(prompt_yaml(paragraph="2", excerpt='"Another one."')), essay=tiny)
    assert (problem.field, problem.message) == ("paragraph", "must be 1–1; got 2")


# -- the built-in pack's libyaml reading ----------------------------------------------------------------

BROKEN = {
    "unterminated string": doc(prompt_yaml(question='"unterminated')),
    "bad indentation": (HEAD + "  - id: x\n   paragraph: 1\n").encode(),
    "two documents": doc() + b"---\n" + doc(),
    "duplicate key": doc() + b"prompts: []\n",
    "anchor": doc(prompt_yaml(question='&q "Is it?"')),
    "alias": doc(prompt_yaml(question="*q")),
    "foreign tag": doc(prompt_yaml(question='!!python/str "x"')),
    "deep nesting": HEAD.encode() + b"  - " + b"[" * 40 + b"]" * 40 + b"\n",
    "wrong root": b"- a\n- b\n",
    "empty": b"",
    "a field out of range": doc(prompt_yaml(paragraph="9")),
}


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml reads every pack in Python")
@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_pack_has_the_same_problems_read_with_libyaml(name: str) -> None:
    """libyaml's messages differ from PyYAML's: a file with any problem is read again in Python, so the
    problems are word for word the same whichever reader was asked for."""
    assert problems(BROKEN[name], libyaml=True) == problems(BROKEN[name])


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml reads every pack in Python")
@pytest.mark.parametrize("path", sorted(PROMPTS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_a_shipped_pack_read_with_libyaml_is_the_same_pack(path: Path, monkeypatch) -> None:
    data = path.read_bytes()
    in_python = parse_pack(data, path.name, ESSAY)

    def python_reader_used(*_args: object) -> None:
        raise AssertionError("a valid pack was read with PyYAML's own parser")

    monkeypatch.setattr(PackLoader, "peek_event", python_reader_used)
    with_libyaml = parse_pack(data, path.name, ESSAY, libyaml=True)
    assert with_libyaml == in_python


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml reads every pack in Python")
def test_the_built_in_pack_is_read_with_libyaml(monkeypatch) -> None:
    """Every bot process reads the built-in pack at start: in C, not in PyYAML's Python parser."""

    def python_reader_used(*_args: object) -> None:
        raise AssertionError("the built-in pack was read with PyYAML's own parser")

    monkeypatch.setattr(PackLoader, "peek_event", python_reader_used)
    packs._parse_builtin.cache_clear()
    try:
        assert load_builtin_pack().prompts
    finally:
        packs._parse_builtin.cache_clear()
