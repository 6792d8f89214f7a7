"""The rotation end to end: a new dilemma each time a prompt comes round, per-prompt skips, sensitive
prompts, and the option order varied from poll to poll."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.domain.essay import load_essay
from bot.storage import polls as poll_store
from bot.storage.tables import debates, polls, prompt_skips
from tests.e2e.test_polls import eventually
from tests.harness import Harness

ESSAY = load_essay()
EPHEMERAL = 64
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


async def only_our_pack(h: Harness, data: bytes, style: str = "buttons", hours: int = 24) -> None:
    ix = await h.slash(h.mod, "pack upload", {"file": h.sandbox.attach("ours.yaml", data, "application/yaml")})
    await ix.response()
    await h.sandbox.wait_for(lambda: "enabled" in answer_text(ix) or "not imported" in answer_text(ix))
    assert "enabled" in answer_text(ix), answer_text(ix)
    await h.reply(h.mod, "pack disable", {"pack": "individualism-collectivism"})
    await h.reply(
        h.mod,
        "schedule setup",
        {"channel": h.channel.id, "time": "09:00", "timezone": "UTC", "poll-style": style, "poll-hours": hours},
    )


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


ONE_PROMPT = pack(prompt("only-one", dilemma("d-a", "Which grade for the group?"), dilemma("d-b", "Who cooks?")))


async def open_polls(h: Harness) -> list:
    async with h.db.read() as conn:
        ids = [r.id for r in await conn.execute(select(polls.c.id).order_by(polls.c.id))]
        return [await poll_store.get(conn, i) for i in ids]


async def test_button_polls_vary_the_option_order_and_votes_keep_the_option(tmp_path):
    async with Harness(tmp_path) as h:
        await only_our_pack(h, ONE_PROMPT)
        await h.advance(timedelta(hours=3))  # the first debate, at 09:00
        await h.advance(timedelta(hours=23, minutes=30))  # the second debate is half an hour away
        await h.advance(timedelta(minutes=30))
        posts = h.posts()
        assert len(posts) == 2
        rows = await open_polls(h)
        # One of the two is reversed: across a pair, neither end is always first.
        assert sorted(r.option_order for r in rows) == [(0, 1, 2), (2, 1, 0)]
        new = posts[1]
        poll = rows[1]
        buttons = [c for row in new["components"] for c in row["components"]]
        assert [b["custom_id"] for b in buttons] == [f"poll:vote:{poll.id}:{i}" for i in poll.option_order]
        labels = {0: "Me first", 1: "Both", 2: "Us first"}
        assert [b["label"] for b in buttons] == [f"{n}. {labels[i]}" for n, i in enumerate(poll.option_order, 1)]
        dilemma_embed = next(e for e in new["embeds"] if e.get("title") == "Dilemma")
        assert dilemma_embed["fields"][0]["value"].splitlines()[0] == f"**1.** {labels[poll.option_order[0]]}"
        # The first button shown stores that option's identity, not "the first option".
        member = h.members[0]
        ix = await h.sandbox.click(h.channel.id, int(new["id"]), buttons[0]["custom_id"], member.id)
        reply = await ix.response(timeout=5)
        assert labels[poll.option_order[0]] in reply["data"]["content"]
        async with h.db.read() as conn:
            assert await poll_store.user_vote(conn, poll.id, member.id) == poll.option_order[0]
        await h.advance(timedelta(days=1))
        result = h.sandbox.message(h.channel.id, int(new["id"]))
        shown = next(e for e in result["embeds"] if e.get("title", "").startswith("Results"))
        lines = shown["fields"][0]["value"].splitlines()
        assert [line.split(" — ")[0] for line in lines[:3]] == ["• Me first", "• Both", "• Us first"]
        assert "From the individual first (top) to the community first (bottom)" in lines[3]


async def test_native_polls_map_answers_through_the_order_shown(tmp_path):
    async with Harness(tmp_path, members=3) as h:
        a, b, c = h.members
        await only_our_pack(h, ONE_PROMPT, style="native", hours=30)
        await h.advance(timedelta(hours=3))
        await h.advance(timedelta(days=1))  # both polls open: the first closes at 15:00
        rows = await open_polls(h)
        poll = next(r for r in rows if r.option_order == (2, 1, 0))
        message = h.sandbox.message(h.channel.id, poll.message_id)
        assert [ans["poll_media"]["text"] for ans in message["poll"]["answers"]] == ["Us first", "Both", "Me first"]
        h.sandbox.poll_vote(h.channel.id, poll.message_id, a.id, 1)  # "Us first", shown first
        await eventually(lambda: votes_are(h, poll.id, {a.id: 2}))
        await h.stop_bot()
        h.sandbox.poll_vote(h.channel.id, poll.message_id, b.id, 3, dispatch=False)  # "Me first", read at start
        await h.start_bot()
        await eventually(lambda: votes_are(h, poll.id, {a.id: 2, b.id: 0}))
        h.sandbox.poll_vote(h.channel.id, poll.message_id, c.id, 3, dispatch=False)  # read when it closes
        await h.advance(timedelta(hours=30))
        async with h.db.read() as conn:
            closed = await poll_store.get(conn, poll.id)
        assert closed.status == "closed"
        assert {o.label: o.final_count for o in closed.options} == {"Me first": 2, "Both": 0, "Us first": 1}
        assert await votes_of(h, poll.id) == {a.id: 2, b.id: 0, c.id: 0}


async def votes_of(h: Harness, poll_id: int) -> dict[int, int]:
    async with h.db.read() as conn:
        result = await conn.exec_driver_sql("SELECT user_id, option_idx FROM votes WHERE poll_id = ?", (poll_id,))
        return dict(result.all())


async def votes_are(h: Harness, poll_id: int, expected: dict[int, int]) -> bool:
    return await votes_of(h, poll_id) == expected


# -- per-prompt moderation ----------------------------------------------------------------------------

THREE = pack(
    prompt("p-a", dilemma("a-one", "Question A?")),
    prompt("p-b", dilemma("b-one", "Question B?")),
    prompt("p-c", dilemma("c-one", "Question C?")),
)


async def posted_keys(h: Harness) -> list[str]:
    async with h.db.read() as conn:
        rows = await conn.execute(select(debates.c.prompt_key).order_by(debates.c.id))
        return [r.prompt_key for r in rows]


async def skips(h: Harness) -> list[tuple]:
    async with h.db.read() as conn:
        return [tuple(r) for r in await conn.execute(select(prompt_skips.c.guild_id, prompt_skips.c.prompt_key))]


async def content(h: Harness, member, name: str, options: dict) -> str:
    reply = await h.reply(member, name, options)
    assert reply["data"]["flags"] & EPHEMERAL, reply
    return reply["data"]["content"]


async def test_a_moderator_skips_a_prompt_by_id_and_from_debate_prompts(tmp_path):
    async with Harness(tmp_path) as h:
        await only_our_pack(h, THREE)
        member = h.members[0]
        # Refusals change nothing: a member, an unknown id, one past the length of any key.
        assert "Manage Server" in await content(h, member, "pack skip-prompt", {"prompt": "ours/p-a"})
        for bad in ("ours/nope", "nope", "individualism-collectivism/" + "x" * 200, "ours/p-a' OR 1=1 --"):
            assert "no prompt with that id" in await content(h, h.mod, "pack skip-prompt", {"prompt": bad})
            assert "no prompt with that id" in await content(h, h.mod, "pack unskip-prompt", {"prompt": bad})
        assert await skips(h) == []
        assert "wasn't skipped" in await content(h, h.mod, "pack unskip-prompt", {"prompt": "ours/p-b"})

        # By id.
        assert "is skipped here" in await content(h, h.mod, "pack skip-prompt", {"prompt": "ours/p-a"})
        assert "already skipped" in await content(h, h.mod, "pack skip-prompt", {"prompt": "ours/p-a"})
        offered = await h.sandbox.autocomplete(
            h.guild.id, h.channel.id, h.mod.id, "pack skip-prompt", {"prompt": ""}, "prompt"
        )
        assert [c["value"] for c in offered] == ["ours/p-b", "ours/p-c"]
        offered = await h.sandbox.autocomplete(
            h.guild.id, h.channel.id, h.mod.id, "pack unskip-prompt", {"prompt": ""}, "prompt"
        )
        assert [c["value"] for c in offered] == ["ours/p-a"]

        # From /debate prompts: members see the pages only; a moderator also gets the skip select.
        reply = await h.reply(member, "debate prompts")
        assert not reply["data"].get("components")
        ix = await h.slash(h.mod, "debate prompts")
        reply = await ix.response()
        fields = reply["data"]["embeds"][0]["fields"]
        assert "skipped here" in fields[0]["name"] and "skipped here" not in fields[1]["name"]
        menu = reply["data"]["components"][0]["components"][0]
        assert [o["label"][:8] for o in menu["options"]] == ["Restore:", "Skip: ¶2", "Skip: ¶2"]
        picked = await h.sandbox.select(h.channel.id, ix.original["id"], menu["custom_id"], h.mod.id, ["1"])
        update = await picked.response()
        assert update["type"] == 7  # the page is edited in place
        assert "skipped here" in update["data"]["embeds"][0]["fields"][1]["name"]
        assert sorted(k for _, k in await skips(h)) == ["ours/p-a", "ours/p-b"]

        # The rotation only posts what is left.
        await days(h, 3)
        assert await posted_keys(h) == ["ours/p-c"] * 3
        # Restored from the same select ("Restore: ..." for p-a), it comes back.
        picked = await h.sandbox.select(h.channel.id, ix.original["id"], menu["custom_id"], h.mod.id, ["0"])
        await picked.response()
        assert sorted(k for _, k in await skips(h)) == ["ours/p-b"]
        for _ in range(2):
            await h.advance(timedelta(days=1))
        assert "ours/p-a" in (await posted_keys(h))[3:]


async def test_sensitive_prompts_are_left_out_unless_the_server_opts_in(tmp_path):
    data = pack(
        prompt("calm-one", dilemma("calm-d", "Calm?")),
        prompt("hot-one", dilemma("hot-d", "Hot?"), extra="\n    sensitive: true"),
    )
    async with Harness(tmp_path) as h:
        await only_our_pack(h, data)
        assert "Manage Server" in await content(h, h.members[0], "pack sensitive-prompts", {"include": True})
        await days(h, 4)
        assert await posted_keys(h) == ["ours/calm-one"] * 4
        reply = await h.reply(h.members[0], "debate prompts")
        assert "sensitive, left out" in reply["data"]["embeds"][0]["fields"][1]["name"]
        text = await content(h, h.mod, "pack sensitive-prompts", {"include": True})
        assert "now join the rotation" in text and "1 prompt marked sensitive" in text
        for _ in range(2):
            await h.advance(timedelta(days=1))
        assert "ours/hot-one" in (await posted_keys(h))[4:]
        text = await content(h, h.mod, "pack sensitive-prompts", {"include": False})
        assert "left out of the rotation" in text
        before = len(await posted_keys(h))
        for _ in range(3):
            await h.advance(timedelta(days=1))
        assert set((await posted_keys(h))[before:]) == {"ours/calm-one"}


async def test_a_server_whose_every_prompt_is_skipped_is_told_why(tmp_path):
    async with Harness(tmp_path) as h:
        await only_our_pack(h, pack(prompt("only-one", dilemma("d-1", "Q?"))))
        await content(h, h.mod, "pack skip-prompt", {"prompt": "ours/only-one"})
        ix = await h.slash(h.mod, "schedule post-now")
        await ix.response()
        await h.sandbox.wait_for(lambda: "skipped here or marked sensitive" in answer_text(ix))
        assert h.posts() == []
