"""The prompt editor files the pack validator's own messages under the fields they name."""

from __future__ import annotations

import yaml

from bot.domain.essay import load_essay
from bot.domain.packs import parse_pack
from bot.web.prompt_form import PromptForm

ESSAY = load_essay()


def form(**values) -> PromptForm:
    base = {
        "id": "a-prompt",
        "sentence": "2:0",
        "count": "2",
        "theme": "balance",
        "question": "Is it so?",
        "poll_question": "Which do you pick?",
        "label_1": "Me",
        "position_1": "-1",
        "label_2": "Us",
        "position_2": "1",
    }
    base.update(values)
    return PromptForm.from_post(base, ESSAY)


def test_a_good_form_gives_a_pack_the_validator_accepts_with_the_picked_sentences():
    f = form()
    data = f.validate(None, ESSAY)
    assert f.errors == {} and data is not None
    pack = parse_pack(data, "x", ESSAY)
    assert pack.prompts[0].excerpt == " ".join(ESSAY.sentences(2)[:2])
    assert pack.prompts[0].dilemma.options[1].position == 1.0


def test_each_problem_lands_beside_its_field_and_skipped_rows_keep_their_numbers():
    # Option row 2 left empty, row 3 used: the validator's option 2 is the form's row 3.
    f = form(theme="nope", label_2="", position_2="0", label_3="Y" * 60, position_3="1")
    assert f.validate(None, ESSAY) is None
    assert set(f.errors) == {"theme", "label_3"}
    assert "unknown theme 'nope'" in f.errors["theme"][0]
    assert "55" in f.errors["label_3"][0]


def test_the_excerpt_is_picked_never_typed_and_a_duplicate_id_is_the_validators_message():
    f = form(sentence="2:999")
    assert f.validate(None, ESSAY) is None and list(f.errors) == ["excerpt"]
    last = len(ESSAY.sentences(1)) - 1
    f = form(sentence=f"1:{last}", count="3")
    assert f.validate(None, ESSAY) is None and "only 1 sentence" in f.errors["excerpt"][0]
    existing = yaml.safe_load(form().validate(None, ESSAY))
    again = form()
    assert again.validate(yaml.safe_dump(existing), ESSAY) is None
    assert "duplicate id" in again.errors["id"][0]
