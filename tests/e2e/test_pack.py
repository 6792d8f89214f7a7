"""/pack and /debate end to end: uploads (good and bad), enable/disable/remove, suggestions, history."""

from __future__ import annotations

from datetime import timedelta

from bot.domain.essay import load_essay
from bot.storage import packs as pack_store
from tests.harness import Harness

ESSAY = load_essay()
SENTENCE = ESSAY.sentences(2)[0]

GOOD = f"""
pack: {{id: our-pack, name: "Our pack", description: "Ours", version: 1}}
prompts:
  - id: first-one
    paragraph: 2
    excerpt: "{SENTENCE}"
    theme: balance
    question: "Is this true where we live?"
    dilemma:
      question: "Your street votes on a shared garden. Do you join?"
      options:
        - {{label: "Keep my own garden", position: -1.0}}
        - {{label: "Join the shared one", position: 1.0}}
""".encode()

BAD = b"""
pack: {id: bad-pack, name: "Bad", description: "x", version: 1}
prompts:
  - id: one
    paragraph: 9
    excerpt: "Not in the essay at all."
    theme: nonsense
    question: "?"
    dilemma:
      question: "q"
      options:
        - {label: "only one", position: 7}
"""


MULTI = f"""
pack: {{id: multi-pack, name: "Multi", description: "Several dilemmas", version: 1}}
prompts:
  - id: first-one
    paragraph: 2
    excerpt: "{SENTENCE}"
    theme: balance
    question: "Is this true where we live?"
    context: "A note under the question."
    sensitive: false
    dilemmas:
      - id: shared-garden
        question: "Your street votes on a shared garden. Do you join?"
        setting: neighbourhood
        options:
          - {{label: "Keep my own garden", position: -1.0}}
          - {{label: "Join the shared one", position: 1.0}}
      - id: group-grade
        question: "Your group project gets one shared grade. Do you report who did little?"
        setting: school
        teen: TEEN
        beyond_anglo: true
        options:
          - {{label: "Yes, grades should be earned", position: -1.0}}
          - {{label: "No, we carry each other", position: 1.0}}
"""


def answer_text(ix) -> str:
    texts = [(ix.original or {}).get("content") or ""] + [m.get("content") or "" for m in ix.followups]
    return "\n".join(texts)


async def upload(h: Harness, name: str, data: bytes):
    ix = await h.slash(h.mod, "pack upload", {"file": h.sandbox.attach(name, data, "application/yaml")})
    await ix.response()
    await h.sandbox.wait_for(lambda: answer_text(ix).strip())
    return answer_text(ix)


async def test_upload_with_errors_lists_them_and_changes_nothing(tmp_path):
    async with Harness(tmp_path) as h:
        text = await upload(h, "bad.yaml", BAD)
        assert "was not imported (nothing changed)" in text
        assert "bad.yaml:5: prompt one: paragraph" in text and "dilemma.options" in text and "theme" in text
        assert len(text) <= 2000
        async with h.db.read() as conn:
            assert await pack_store.count(conn, h.guild.id) == 0


async def test_upload_knows_several_dilemmas_and_their_fields(tmp_path):
    async with Harness(tmp_path) as h:
        text = await upload(h, "multi.yaml", MULTI.replace("TEEN", "yes").encode())
        assert "was not imported (nothing changed)" in text
        assert "multi.yaml:21: prompt first-one: dilemmas[2].teen: expected true or false" in text
        async with h.db.read() as conn:
            assert await pack_store.count(conn, h.guild.id) == 0
        text = await upload(h, "multi.yaml", MULTI.replace("TEEN", "true").encode())
        assert "multi-pack" in text and "1 prompts, 2 dilemmas, enabled" in text


async def test_upload_list_disable_enable_remove(tmp_path):
    async with Harness(tmp_path) as h:
        text = await upload(h, "ours.yaml", GOOD)
        assert "our-pack" in text and "added" in text and "1 prompts" in text
        listing = (await h.reply(h.mod, "pack list"))["data"]["content"]
        assert "our-pack" in listing and "individualism-collectivism" in listing and "built-in" in listing
        # Only our pack active: the post-now prompt must be ours.
        await h.reply(h.mod, "pack disable", {"pack": "individualism-collectivism"})
        await h.reply(
            h.mod, "schedule setup", {"channel": h.channel.id, "time": "09:00", "timezone": "UTC", "thread": False}
        )
        await h.advance(timedelta(hours=3))
        assert h.posts()[0]["embeds"][0]["description"].startswith("> " + SENTENCE)
        refused = (await h.reply(h.mod, "pack remove", {"pack": "individualism-collectivism"}))["data"]["content"]
        assert "can't be removed" in refused
        assert "removed" in (await h.reply(h.mod, "pack remove", {"pack": "our-pack"}))["data"]["content"]
        gone = (await h.reply(h.mod, "pack enable", {"pack": "our-pack"}))["data"]["content"]
        assert "no pack" in gone
        choices = await h.sandbox.autocomplete(
            h.guild.id, h.channel.id, h.mod.id, "pack enable", {"pack": "indiv"}, focused="pack"
        )
        assert [c["value"] for c in choices] == ["individualism-collectivism"]


async def test_member_cannot_upload(tmp_path):
    async with Harness(tmp_path) as h:
        ix = await h.slash(h.members[0], "pack upload", {"file": h.sandbox.attach("ours.yaml", GOOD)})
        reply = await ix.response()
        assert "Manage Server" in reply["data"]["content"]
        async with h.db.read() as conn:
            assert await pack_store.count(conn, h.guild.id) == 0


async def test_suggestion_reviewed_and_approved_joins_the_server_pack(tmp_path):
    async with Harness(tmp_path) as h:
        review = h.sandbox.create_channel(h.guild.id, "review")
        await h.reply(
            h.mod,
            "schedule setup",
            {"channel": h.channel.id, "time": "09:00", "timezone": "UTC", "review-channel": review.id},
        )

        async def suggest(question: str) -> str:
            ix = await h.slash(h.members[0], "debate suggest")
            reply = await ix.response()
            assert reply["type"] == 9
            names = [c["components"][0]["custom_id"] for c in ix.modal["components"]]
            texts = [
                SENTENCE,
                question,
                "balance",
                "Your block can fund a shared tool library. Do you chip in?",
                "-1 Buy my own tools\n1 Chip in for the library",
            ]
            values = dict(zip(names, texts, strict=True))
            sub = await h.sandbox.submit_modal(
                h.channel.id, h.members[0].id, ix.modal["custom_id"], values, from_interaction=ix
            )
            first = await sub.response()
            assert first["type"] == 5 and first["data"]["flags"] & 64, "deferred privately before the work"
            await h.sandbox.wait_for(lambda: (sub.original or {}).get("content") or sub.followups)
            assert sub.original["flags"] & 64
            return sub.original.get("content") or sub.followups[0]["content"]

        refused = await suggest("@everyone is this still true?")
        assert "mentions are not allowed" in refused
        assert h.sandbox.messages(review.id) == []
        assert "went to the moderators" in await suggest("Is this still true?")
        msgs = await h.sandbox.wait_for(lambda: h.sandbox.messages(review.id))
        msg = msgs[0]
        custom_ids = [c["custom_id"] for row in msg["components"] for c in row["components"]]
        assert custom_ids[0].startswith("suggest:approve:") and custom_ids[1].startswith("suggest:reject:")
        # A member can't approve; a moderator can.
        no = await h.sandbox.click(review.id, int(msg["id"]), custom_ids[0], h.members[1].id)
        assert "Manage Server" in (await no.response())["data"]["content"]
        yes = await h.sandbox.click(review.id, int(msg["id"]), custom_ids[0], h.mod.id)
        assert (await yes.response())["type"] == 7
        async with h.db.read() as conn:  # reviewed: the suggestion no longer names the member
            suggesters = (await conn.exec_driver_sql("SELECT user_id FROM suggestions")).scalars().all()
        assert suggesters == [None]
        async with h.db.read() as conn:
            row = await pack_store.get(conn, h.guild.id, "server-suggestions")
        assert row is not None and row.prompt_count == 1 and row.enabled
        listing = (await h.reply(h.mod, "pack list"))["data"]["content"]
        assert "server-suggestions" in listing


async def test_history_today_and_prompts(tmp_path):
    async with Harness(tmp_path) as h:
        await h.reply(h.mod, "schedule setup", {"channel": h.channel.id, "time": "09:00", "timezone": "UTC"})
        none_yet = (await h.reply(h.members[0], "debate today"))["data"]["content"]
        assert "No debate" in none_yet
        for _ in range(7):
            await h.advance(timedelta(hours=3) if not h.posts() else timedelta(days=1))
        assert len(h.posts()) == 7
        today = (await h.reply(h.members[0], "debate today"))["data"]["content"]
        assert h.posts()[-1]["id"] in today
        ix = await h.slash(h.members[0], "debate history")
        page = await ix.response()
        embed = page["data"]["embeds"][0]
        assert len(embed["fields"]) == 5 and "Page 1 of 2" in embed["footer"]["text"]
        assert "open" in embed["fields"][0]["value"] or "votes" in embed["fields"][0]["value"]
        message = ix.original
        nxt = [c["custom_id"] for row in message["components"] for c in row["components"]][1]
        turned = await h.sandbox.click(h.channel.id, int(message["id"]), nxt, h.members[0].id)
        second = await turned.response()
        assert "Page 2 of 2" in second["data"]["embeds"][0]["footer"]["text"]
        prompts = (await h.reply(h.members[0], "debate prompts"))["data"]["embeds"][0]
        assert "Page 1 of" in prompts["footer"]["text"]
