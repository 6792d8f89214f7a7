"""Bad inputs through the real commands: a clear ephemeral error and 0 rows changed (a dump of every
table before and after), user text that never pings, SQL metacharacters stored verbatim.

Pack files: the parser's refusals (syntax, wrong root, missing/extra/mistyped fields, duplicate keys,
alias bombs, anchors, ``!!python/object``, non-UTF-8, empty, several documents, oversize files and
prompts, excerpts not in the essay, positions outside −1..+1, too many options) are each covered in
``tests/unit/test_packs.py``; here a sample goes through ``/pack upload`` to prove the command answers
ephemerally and stores nothing, which the unit tests cannot show.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.storage import polls as poll_store
from tests.reliability.support import (
    DISABLED,
    EPHEMERAL,
    check_database,
    click,
    diff,
    dump,
    gather_limited,
    mention_violations,
    post_poll,
    stored_votes,
    vote_id,
    world,
)

TRIED: dict[str, int] = {}


@pytest.fixture(autouse=True)
def tried(summary):
    """How many bad inputs each test tried, by kind: asserted by the test, one summary line each."""
    TRIED.clear()
    yield TRIED
    for kind, n in TRIED.items():
        summary(f"bad inputs: {kind}", "bad-input", tried=n)


@pytest.fixture
async def h(tmp_path):
    async with world(tmp_path) as (harness, _):
        yield harness


async def final_text(h, ix, *, timeout: float = 10) -> tuple[str, bool]:
    """(text, ephemeral) of an interaction's visible answer, following a defer to its follow-up."""
    first = await ix.response(timeout=3)
    if first["type"] == 5:
        (message, *_) = await h.sandbox.wait_for(lambda: ix.followups, timeout=timeout)
        return message.get("content") or "", bool((message.get("flags") or 0) & EPHEMERAL)
    data = first.get("data") or {}
    return data.get("content") or "", bool((data.get("flags") or 0) & EPHEMERAL)


async def refused(h, ix, *expect: str) -> str:
    text, ephemeral = await final_text(h, ix)
    assert ephemeral, text
    for e in expect:
        assert e.lower() in text.lower(), text
    return text


def count(kind: str, n: int = 1) -> None:
    TRIED[kind] = TRIED.get(kind, 0) + n


# -- /poll create, driven through the modal, the position selects and the Post button ----------------


async def poll_create(h, question: str, options: str, *, member=None) -> tuple[str, int | None]:
    """Run /poll create to the end; returns (the last text the moderator saw, the poll id or None)."""
    sb = h.sandbox
    who = member or h.mod
    ix = await h.slash(who, "poll create", {"hours": 2})
    first = await ix.response(timeout=3)
    if first["type"] != 9:
        return await final_text(h, ix), None  # type: ignore[return-value]
    fields = [c["components"][0] for c in ix.modal["components"]]
    values = dict(zip((f["custom_id"] for f in fields), (question, options), strict=True))
    sub = await sb.submit_modal(h.channel.id, who.id, ix.modal["custom_id"], values, from_interaction=ix)
    answer = await sub.response(timeout=3)
    text = (answer.get("data") or {}).get("content") or ""
    wizard = sub.original
    while wizard is not None and wizard.get("components"):
        comp = wizard["components"][0]["components"][0]
        if comp["type"] == 3:
            step = await sb.select(h.channel.id, int(wizard["id"]), comp["custom_id"], who.id, ["-1.0"])
            await step.response(timeout=3)
            wizard = sb._find_message(int(wizard["id"]))
            continue
        post = next(c for c in wizard["components"][0]["components"] if c.get("label") == "Post poll")
        step = await sb.click(h.channel.id, int(wizard["id"]), post["custom_id"], who.id)
        await step.response(timeout=3)
        done = await sb.wait_for(lambda s=step: (s.original or {}).get("content", "").startswith(("Poll #", "I ")), 10)
        text = done if isinstance(done, str) else step.original["content"]
        break
    async with h.db.read() as conn:
        latest = await poll_store.latest_id(conn, h.guild.id)
    return text, latest


# -- limits at and one past --------------------------------------------------------------------------


LIMITS = [
    ("question300", "q" * 300, "a\nb", True),
    ("question301", "q" * 301, "a\nb", False),  # refused by the form itself (max_length) or by us
    ("label55", "Q?", "a" * 55 + "\nb", True),
    ("label56", "Q?", "a" * 56 + "\nb", False),
    ("options5", "Q?", "\n".join("abcde"), True),
    ("options6", "Q?", "\n".join("abcdef"), False),
    ("options1", "Q?", "only one", False),
    ("duplicate", "Q?", "same\nSAME", False),
]


async def test_poll_create_limits_at_and_one_past(h, summary):
    for name, question, options, ok in LIMITS:
        before = await dump(h.db)
        try:
            text, poll_id = await poll_create(h, question, options)
        except ValueError as exc:  # the sandbox, like Discord, refuses a field longer than the form allows
            assert not ok, name
            text, poll_id = str(exc), None
        count("limits")
        if ok:
            assert text.startswith("Poll #"), (name, text)
            async with h.db.read() as conn:
                row = await poll_store.get(conn, poll_id)
            assert row.question == question.strip()
            assert [o.label for o in row.options] == options.split("\n")
        else:
            assert diff(before, await dump(h.db)) == {}, (name, text)
            assert not text.startswith("Poll #"), (name, text)
    await check_database(h.db)
    assert dict(TRIED) == {"limits": len(LIMITS)}


# -- unicode, mentions, markdown, SQL ------------------------------------------------------------------

ZALGO = "Z" + "\u0336\u0335\u0334\u0337\u0338\u0321\u0322\u0327\u0328" * 3 + "algo"
NASTY_REFUSED = {
    "NUL": ("Is this\x00fine?", "a\nb"),
    "control": ("Bell\x07ring?", "a\nb"),
    "NUL in option": ("Q?", "a\x00b\nc"),
    "RTL override": ("Who \u202efirst?", "a\nb"),
    "RTL in option": ("Q?", "Individual \u202efirst\nb"),
    "zalgo": (ZALGO + "?", "a\nb"),
    "zalgo option": ("Q?", ZALGO + "\nb"),
}


async def test_poll_create_refuses_unsafe_unicode(h, summary):
    for name, (question, options) in NASTY_REFUSED.items():
        before = await dump(h.db)
        text, _ = await poll_create(h, question, options)
        count("unicode")
        assert not text.startswith("Poll #"), (name, text)
        assert "can't be used" in text or "one line" in text, (name, text)
        assert diff(before, await dump(h.db)) == {}, name
    await check_database(h.db)
    assert dict(TRIED) == {"unicode": len(NASTY_REFUSED)}


SQL = "Robert'); DROP TABLE votes;-- \" % _ \\ ; /* */"
MENTIONS = "@everyone @here <@&{role}> <@{user}> ＠everyone [free nitro](https://example.com) ```` ``` }}"


async def test_user_text_never_pings_and_sql_is_stored_verbatim(h, summary):
    role = h.mod_role.id
    question = MENTIONS.format(role=role, user=h.members[0].id) + " " + SQL
    labels = ["@everyone first", f"<@&{role}> second", "Robert'); DROP TABLE votes;--", "＠here ** __ ~~"]
    text, poll_id = await poll_create(h, question, "\n".join(labels))
    if not text.startswith("Poll #"):
        # Refusing mentions outright is also acceptable, if it is an ephemeral error that names why.
        assert "mention" in text.lower() or "@" in text, text
        question = SQL + " ＠everyone"
        labels = ["Robert'); DROP TABLE votes;--", "＠here ** __ ~~", "% _ \\"]
        text, poll_id = await poll_create(h, question, "\n".join(labels))
    assert text.startswith("Poll #"), text
    async with h.db.read() as conn:
        row = await poll_store.get(conn, poll_id)
        tables = {r[0] for r in (await conn.exec_driver_sql("SELECT name FROM sqlite_master")).all()}
    assert row.question == question.strip() and [o.label for o in row.options] == labels
    assert "votes" in tables
    c = await click(h.sandbox, h.channel.id, row.message_id, poll_id, 2, h.members[1].id)
    assert c.acked
    await h.advance(timedelta(hours=3))  # the result is posted
    count("mentions+sql", 2)
    assert mention_violations(h.sandbox) == []
    await check_database(h.db)


# -- schedules: timezones and times through /schedule setup ----------------------------------------


SCHEDULE_INPUTS = [
    ("09:00", "Mars/Olympus"),
    ("09:00", "../../etc/passwd"),
    ("09:00", "UTC+5"),
    ("09:00", "A" * 300),
    ("09:00", "Europe/London\x00"),
    ("25:00", "UTC"),
    ("9:60", "UTC"),
    ("9am", "UTC"),
    ("０９:００", "UTC"),
    ("", "UTC"),
    ("09:00'; DROP TABLE schedules;--", "UTC"),
]


async def test_schedule_setup_bad_times_and_zones(h, summary):
    for time, timezone in SCHEDULE_INPUTS:
        before = await dump(h.db)
        ix = await h.slash(h.mod, "schedule setup", {"channel": h.channel.id, "time": time, "timezone": timezone})
        text = await refused(h, ix)
        count("schedule")
        assert "Next post" not in text, (time, timezone, text)
        assert diff(before, await dump(h.db)) == {}, (time, timezone)
    assert mention_violations(h.sandbox) == []
    assert dict(TRIED) == {"schedule": len(SCHEDULE_INPUTS)}


# -- votes ---------------------------------------------------------------------------------------------


async def test_vote_same_option_twice_and_closed_poll(h, summary):
    poll_id, message_id = await post_poll(h, hours=1)
    m = h.members[0]
    assert (await click(h.sandbox, h.channel.id, message_id, poll_id, 1, m.id)).acked
    before = await dump(h.db)
    again = await click(h.sandbox, h.channel.id, message_id, poll_id, 1, m.id)
    assert again.ephemeral and "already chose" in again.text
    assert diff(before, await dump(h.db)) == {}
    await h.bot.polls.close(poll_id)
    before = await dump(h.db)
    ix = await h.sandbox._send_interaction(
        3, h.guild.id, h.channel.id, h.members[1].id, {"custom_id": vote_id(poll_id, 0), "component_type": 2}
    )
    await refused(h, ix, "isn't available")
    assert diff(before, await dump(h.db)) == {}
    count("votes", 2)
    await check_database(h.db)


async def run_race(h, summary, clicks: int) -> None:
    crowd = [h.sandbox.add_member(h.guild.id, f"race-{i}") for i in range(clicks)]
    poll_id, message_id = await post_poll(h)
    service = h.bot.polls

    async def close_midway():
        await asyncio.sleep(0)  # let the first clicks go out, then close while the rest arrive
        await h.sandbox.wait_for(lambda: len(h.sandbox.interactions) > clicks // 2, timeout=20)
        await service.close(poll_id, reason="moderator")

    closer = asyncio.ensure_future(close_midway())
    results = await gather_limited(
        (click(h.sandbox, h.channel.id, message_id, poll_id, i % 3, m.id) for i, m in enumerate(crowd)), 50
    )
    await closer
    stored = await stored_votes(h.db)
    async with h.db.read() as conn:
        row = await poll_store.get(conn, poll_id)
    acked = [c for c in results if c.acked]
    final = sum(o.final_count for o in row.options)
    summary(
        f"votes: {clicks} clicks racing the close",
        "bad-input",
        acked=len(acked),
        refused=sum(1 for c in results if "isn't available" in c.text),
        disabled=sum(1 for c in results if c.text == DISABLED),
        stored=len(stored),
        final_count=final,
        lost=sum(1 for c in acked if stored.get((poll_id, c.user_id)) != c.idx),
    )
    assert row.status == "closed"
    assert len(stored) == len(acked) == final  # every acknowledged vote is counted; none arrives later
    assert all(c.acked or "isn't available" in c.text or c.text == DISABLED for c in results)
    count("race", clicks)
    await check_database(h.db)


async def test_clicks_racing_the_close_fast(h, summary):
    await run_race(h, summary, 300)


@pytest.mark.soak
async def test_clicks_racing_the_close_soak(h, summary):
    await run_race(h, summary, 1000)


async def test_forged_custom_id_naming_another_servers_poll(tmp_path, summary):
    async with world(tmp_path, servers=1, members=2) as (h, (other,)):
        theirs, _their_message = await post_poll(h, other.channel)
        ours, our_message = await post_poll(h)
        before = await dump(h.db)
        forged = [
            vote_id(theirs, 0),  # another server's poll, clicked from our message
            vote_id(ours + 1000, 0),  # no such poll
            vote_id(ours, 7),  # no such option
            vote_id(ours, 99),
            f"poll:vote:{2**70}:0",  # beyond a 64-bit id
            f"poll:withdraw:{theirs}",
        ]
        message = h.sandbox._find_message(our_message)
        for custom_id in forged:
            ix = await h.sandbox._send_interaction(
                3, h.guild.id, h.channel.id, h.members[0].id, {"custom_id": custom_id, "component_type": 2}, message
            )
            text, ephemeral = await final_text(h, ix)
            assert ephemeral and not text.startswith("You chose"), (custom_id, text)
        assert diff(before, await dump(h.db)) == {}
        count("forged", len(forged))
        await check_database(h.db)


async def test_member_without_the_required_role(h, summary):
    voters = h.sandbox.create_role(h.guild.id, "Voters")
    reply = await h.reply(h.mod, "poll settings", {"required-role": voters.id})
    assert "Saved" in reply["data"]["content"]
    poll_id, message_id = await post_poll(h)
    before = await dump(h.db)
    c = await click(h.sandbox, h.channel.id, message_id, poll_id, 0, h.members[0].id)
    assert c.ephemeral and "Only members with" in c.text and not c.acked
    assert diff(before, await dump(h.db)) == {}
    count("votes")
    await check_database(h.db)


# -- permissions: moderator commands from a member, through a forged payload -------------------------


MODERATOR_COMMANDS = [
    ("schedule setup", {"time": "09:00", "timezone": "UTC"}),
    ("schedule pause", {}),
    ("schedule post-now", {}),
    ("poll create", {}),
    ("poll settings", {"live-counts": True}),
    ("pack disable", {"pack": "essay"}),
]


async def test_moderator_commands_from_a_member_are_refused(h, summary):
    for command, options in MODERATOR_COMMANDS:
        if command == "schedule setup":
            options = {**options, "channel": h.channel.id}
        before = await dump(h.db)
        # The sandbox does not apply default_permissions: this is the forged payload a client could send.
        ix = await h.slash(h.members[0], command, options)
        await refused(h, ix, "Manage Server")
        assert diff(before, await dump(h.db)) == {}, command
        count("permissions")
    assert dict(TRIED) == {"permissions": len(MODERATOR_COMMANDS)}


# -- packs through /pack upload --------------------------------------------------------------------

PACKS = {
    "syntax": b"pack: [unclosed\n",
    "wrong root": b"- just\n- a list\n",
    "alias bomb": b'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b]\n',
    "python tag": b"pack: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
    "not utf-8": b"pack:\n  name: \xff\xfe\n",
    "empty": b"",
    "two documents": b"a: 1\n---\nb: 2\n",
    "oversize": b"#" * (256 * 1024 + 1),
}


async def test_pack_upload_refuses_and_stores_nothing(h, summary):
    for name, data in PACKS.items():
        attachment = h.sandbox.attach("pack.yaml", data, "application/x-yaml")
        before = await dump(h.db)
        ix = await h.slash(h.mod, "pack upload", {"file": attachment})
        text = await refused(h, ix)
        assert "added" not in text and "updated" not in text, (name, text)
        assert diff(before, await dump(h.db)) == {}, name
        count("packs")
    assert dict(TRIED) == {"packs": len(PACKS)}
