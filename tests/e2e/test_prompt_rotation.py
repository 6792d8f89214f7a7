"""The rotation end to end: a new dilemma each time a prompt comes round, per-prompt skips, sensitive
prompts, and the option order varied from poll to poll."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.domain.essay import load_essay
from bot.storage.tables import debates, polls
from tests.harness import Harness

ESSAY = load_essay()
SENTENCE = ESSAY.sentences(2)[0]


def dilemma(did: str, question: str, setting: str = "school") -> str:
    return f"""
      - id: {did}
        question: "{question}"
        setting: {setting}
        options:
          - {{label: "Me first", position: -1.0}}
          - {{label: "Both", position: 0.0}}
          - {{label: "Us first", position: 1.0}}"""


def prompt(pid: str, *dilemmas: str, extra: str = "") -> str:
    return f"""
  - id: {pid}
    paragraph: 2
    excerpt: "{SENTENCE}"
    theme: balance
    question: "Question of {pid}?"{extra}
    dilemmas:{"".join(dilemmas)}"""


def pack(*prompts: str) -> bytes:
    head = 'pack: {id: ours, name: "Ours", description: "Test pack", version: 1}\nprompts:'
    return (head + "".join(prompts) + "\n").encode()


def answer_text(ix) -> str:
    texts = [(ix.original or {}).get("content") or ""] + [m.get("content") or "" for m in ix.followups]
    return "\n".join(texts)


async def only_our_pack(h: Harness, data: bytes) -> None:
    ix = await h.slash(h.mod, "pack upload", {"file": h.sandbox.attach("ours.yaml", data, "application/yaml")})
    await ix.response()
    await h.sandbox.wait_for(lambda: "enabled" in answer_text(ix) or "not imported" in answer_text(ix))
    assert "enabled" in answer_text(ix), answer_text(ix)
    await h.reply(h.mod, "pack disable", {"pack": "individualism-collectivism"})
    await h.reply(h.mod, "schedule setup", {"channel": h.channel.id, "time": "09:00", "timezone": "UTC"})


async def days(h: Harness, n: int) -> None:
    """Run ``n`` daily posts: the first at 09:00 today (the harness starts at 06:00), then one a day."""
    await h.advance(timedelta(hours=3))
    for _ in range(n - 1):
        await h.advance(timedelta(days=1))


async def poll_questions(h: Harness) -> list[str]:
    """The questions of the server's polls, oldest first (posts are edited to results when they close)."""
    async with h.db.read() as conn:
        return [r.question for r in await conn.execute(select(polls.c.question).order_by(polls.c.id))]


async def test_a_prompt_that_comes_round_again_shows_a_new_dilemma(tmp_path):
    questions = ("Which grade for the group?", "Who cooks on Sunday?", "Who keeps the trophy?")
    data = pack(prompt("only-one", *(dilemma(f"d-{i}", q) for i, q in enumerate(questions))))
    async with Harness(tmp_path) as h:
        await only_our_pack(h, data)
        await days(h, 6)
        assert len(h.posts()) == 6
        shown = await poll_questions(h)
        assert sorted(shown[:3]) == sorted(questions) and sorted(shown[3:]) == sorted(questions)
        async with h.db.read() as conn:
            rows = (await conn.execute(select(debates.c.dilemma_id).order_by(debates.c.id))).all()
        assert [r.dilemma_id for r in rows][:3] == [f"d-{questions.index(q)}" for q in shown[:3]]
