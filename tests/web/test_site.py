"""The website over HTTP (no browser): log in through the sandbox's OAuth2, act as a moderator and as a
member, and every forged or foreign request refused with 0 rows changed."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.storage import schedules as schedule_store
from bot.storage.tables import jobs, web_audit, web_sessions
from tests.web.support import client, csrf_of, login, site, snapshot

pytestmark = pytest.mark.timeout(60)


def schedule_form(h, csrf: str, **extra) -> dict:
    form = {
        "csrf": csrf,
        "channel": str(h.channel.id),
        "time": "09:30",
        "timezone": "Europe/London",
        "days": ["0", "1", "2", "3", "4"],
        "poll_style": "buttons",
        "poll_hours": "24",
        "thread": "on",
        "ping_role": "",
        "review_channel": "",
        "catch_up_hours": "3",
    }
    form.update(extra)
    return form


def multidict(form: dict) -> list[tuple[str, str]]:
    out = []
    for k, v in form.items():
        for item in v if isinstance(v, list) else [v]:
            out.append((k, item))
    return out


async def test_moderator_sets_the_schedule_and_the_bot_posts_at_the_new_time(tmp_path):
    async with site(tmp_path) as (h, base), client() as http:
        await login(h, http, h.mod.id)
        home = await (await http.get(f"{base}/")).text()
        assert "Common Ground Test" in home and "moderator" in home and "Elsewhere" not in home
        page = await http.get(f"{base}/s/{h.guild.id}/schedule")
        assert page.status == 200
        headers = page.headers
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        csrf = await csrf_of(http, f"{base}/s/{h.guild.id}/schedule")
        # A bad time: the domain parser's message, nothing stored.
        before = await snapshot(h)
        bad = await http.post(f"{base}/s/{h.guild.id}/schedule", data=multidict(schedule_form(h, csrf, time="25:00")))
        assert bad.status == 400
        assert "HH:MM" in await bad.text()
        assert await snapshot(h) == before
        saved = await http.post(
            f"{base}/s/{h.guild.id}/schedule", data=multidict(schedule_form(h, csrf)), allow_redirects=False
        )
        assert saved.status == 303
        async with h.db.read() as conn:
            schedule = await schedule_store.get(conn, h.guild.id)
            job = (await conn.execute(select(jobs).where(jobs.c.key == f"post:{h.guild.id}"))).first()
            audit = (await conn.execute(select(web_audit))).all()
        assert schedule is not None and schedule.post_time == "09:30" and schedule.timezone == "Europe/London"
        assert job is not None  # armed at once, exactly like /schedule setup
        assert job.due_at.isoformat().startswith("2026-03-02T09:30")
        assert [a.action for a in audit] == ["schedule"] and audit[0].user_id == h.mod.id
        page = await (await http.get(f"{base}/s/{h.guild.id}/schedule?saved=1")).text()
        assert page.count("<time ") == 5 and "Mon 02 Mar 2026, 09:30" in page
        await h.advance(timedelta(hours=3, minutes=29))
        assert h.posts() == []
        await h.advance(timedelta(minutes=1))
        assert len(h.posts()) == 1


MOD_GETS = ["schedule", "prompts", "suggestions", "archive", "archive.csv", "audit", "packs/web-prompts.yaml"]
MOD_POSTS = ["schedule", "prompts", "prompts/check", "packs/import", "suggestions/1", "publish"]


async def test_member_is_refused_every_moderator_page_and_action(tmp_path):
    async with site(tmp_path) as (h, base), client() as http:
        await login(h, http, h.members[0].id)
        home = await (await http.get(f"{base}/s/{h.guild.id}")).text()
        assert "/schedule" not in home and "My compass" in home
        csrf = await csrf_of(http, f"{base}/")
        before = await snapshot(h)
        for path in MOD_GETS:
            resp = await http.get(f"{base}/s/{h.guild.id}/{path}")
            assert resp.status == 403, path
        for path in MOD_POSTS:
            form = {**schedule_form(h, csrf), "published": "on", "decision": "approve", "id": "x-y"}
            resp = await http.post(f"{base}/s/{h.guild.id}/{path}", data=multidict(form))
            assert resp.status == 403, path
        assert await snapshot(h) == before
        assert (await http.get(f"{base}/s/{h.guild.id}/compass")).status == 200


async def test_forged_forms_replayed_state_foreign_cookie_and_foreign_server_change_nothing(tmp_path):
    async with site(tmp_path) as (h, base), client() as http, client() as other:
        callback = await login(h, http, h.mod.id)
        csrf = await csrf_of(http, f"{base}/s/{h.guild.id}/schedule")
        before = await snapshot(h)
        url = f"{base}/s/{h.guild.id}/schedule"
        # 1. No CSRF token, a wrong one, and a form posted from another origin.
        form = schedule_form(h, csrf)
        del form["csrf"]
        assert (await http.post(url, data=multidict(form))).status == 403
        assert (await http.post(url, data=multidict({**form, "csrf": "x" * 43}))).status == 403
        evil = await http.post(url, data=multidict(schedule_form(h, csrf)), headers={"Origin": "https://evil.example"})
        assert evil.status == 403
        # 2. The OAuth2 callback replayed (same state and code), in this browser and in another.
        assert (await http.get(callback, allow_redirects=False)).status == 400
        assert (await other.get(callback, allow_redirects=False)).status == 400
        # 3. Another member's session: a member's browser holding the moderator's CSRF token, and a
        #    cookie made up from the moderator's user id.
        await login(h, other, h.members[0].id)
        assert (await other.post(url, data=multidict(schedule_form(h, csrf)))).status == 403
        other.cookie_jar.update_cookies({"cg_session": str(h.mod.id)})
        assert (await other.post(url, data=multidict(schedule_form(h, csrf)))).status == 403
        # 4. A server the moderator does not share (the bot is in it) and one that does not exist.
        for gid in (h.elsewhere.id, 1234):
            resp = await http.post(f"{base}/s/{gid}/schedule", data=multidict(schedule_form(h, csrf)))
            assert resp.status == 404
            assert (await http.get(f"{base}/s/{gid}/schedule")).status == 404
        after = await snapshot(h)
        after["web_sessions"] -= 1  # the member's login above is the only new row
        assert after == before


async def test_manage_server_is_rechecked_before_every_change_and_logout_everywhere(tmp_path):
    async with site(tmp_path) as (h, base), client() as http, client() as second:
        await login(h, http, h.mod.id)
        await login(h, second, h.mod.id)
        csrf = await csrf_of(http, f"{base}/s/{h.guild.id}/schedule")
        # Discord now says the moderator lost the role: the very next change is refused.
        h.sandbox.guilds[h.guild.id].members[h.mod.id]["roles"] = []
        before = await snapshot(h)
        resp = await http.post(f"{base}/s/{h.guild.id}/schedule", data=multidict(schedule_form(h, csrf)))
        assert resp.status == 403
        assert await snapshot(h) == before
        # Log out everywhere ends the other browser's session too, and revokes the Discord tokens.
        await http.post(f"{base}/logout/everywhere", data={"csrf": csrf})
        async with h.db.read() as conn:
            assert (await conn.execute(select(web_sessions))).all() == []
        assert (await second.get(f"{base}/s/{h.guild.id}", allow_redirects=False)).status == 302
        assert h.sandbox.oauth.tokens == {}


async def test_public_page_is_404_until_published_and_never_names_a_member(tmp_path):
    async with site(tmp_path) as (h, base), client() as http:
        assert (await http.get(f"{base}/p/{h.guild.id}")).status == 404
        reply = await h.reply(h.members[0], "web publish", {"on": True})
        assert "Manage Server" in reply["data"]["content"]
        assert (await http.get(f"{base}/p/{h.guild.id}")).status == 404
        reply = await h.reply(h.mod, "web publish", {"on": True})
        assert f"/p/{h.guild.id}" in reply["data"]["content"]
        # A debate with votes, closed, so the page has results to show.
        options = {"channel": h.channel.id, "time": "09:00", "timezone": "Europe/London"}
        assert (await h.reply(h.mod, "schedule setup", options))["type"] == 4
        await h.slash(h.mod, "schedule post-now")
        await h.sandbox.wait_for(lambda: h.posts(), timeout=10)
        post = h.posts()[0]
        button = post["components"][0]["components"][0]["custom_id"]
        for m in h.members:
            await (await h.sandbox.click(h.channel.id, int(post["id"]), button, m.id)).response()
        await h.advance(timedelta(hours=25))
        page = await http.get(f"{base}/p/{h.guild.id}")
        assert page.status == 200
        text = await page.text()
        assert "Recent debates" in text and "<svg" in text and "small sample" in text
        for user in (h.mod, *h.members, h.sandbox.users[h.guild.owner_id]):
            uid = str(user["id"] if isinstance(user, dict) else user.id)
            name = user["username"] if isinstance(user, dict) else h.sandbox.users[user.id]["username"]
            assert uid not in text
            assert re.search(rf"\b{re.escape(name)}\b", text) is None, name
        assert "avatar" not in text.lower()
        reply = await h.reply(h.mod, "web publish", {"on": False})
        assert (await http.get(f"{base}/p/{h.guild.id}")).status == 404


def prompt_form(csrf: str, **extra) -> dict:
    form = {
        "csrf": csrf,
        "id": "web-written",
        "sentence": "1:0",
        "count": "1",
        "theme": "self-reliance",
        "question": "Is standing on your own feet a virtue in itself?",
        "poll_question": "A friend refuses help moving house. What do you do?",
        "label_1": "Respect it",
        "position_1": "-1",
        "label_2": "Turn up anyway",
        "position_2": "1",
    }
    for i in range(3, 6):
        form[f"label_{i}"] = ""
        form[f"position_{i}"] = "0"
    form.update(extra)
    return form


async def test_prompt_editor_shows_the_validators_messages_then_saves_into_debate_prompts(tmp_path):
    async with site(tmp_path) as (h, base), client() as http:
        await login(h, http, h.mod.id)
        url = f"{base}/s/{h.guild.id}/prompts"
        csrf = await csrf_of(http, url)
        before = await snapshot(h)
        # One invalid field (a position past +1): the validator's own message beside that field.
        check = await (await http.post(f"{url}/check", data=prompt_form(csrf, position_2="1.5"))).json()
        assert list(check["errors"]) == ["position_2"], check
        assert "1" in check["errors"]["position_2"][0]
        assert check["preview"]["title"].startswith("Today's debate")
        bad = await http.post(url, data=prompt_form(csrf, position_2="1.5", theme="nonsense"))
        assert bad.status == 400
        text = await bad.text()
        assert "unknown theme &#39;nonsense&#39;" in text or "unknown theme 'nonsense'" in text
        assert await snapshot(h) == before
        ok = await http.post(url, data=prompt_form(csrf), allow_redirects=False)
        assert ok.status == 303
        assert (await h.reply(h.mod, "pack disable", {"pack": "individualism-collectivism"}))["type"] == 4
        shown = (await h.reply(h.members[0], "debate prompts"))["data"]["embeds"][0]
        assert "Is standing on your own feet a virtue in itself?" in str(shown)
        exported = await (await http.get(f"{base}/s/{h.guild.id}/packs/web-prompts.yaml")).text()
        assert "id: web-written" in exported
        # The same id again: the validator says it is a duplicate; nothing changes.
        before = await snapshot(h)
        again = await http.post(url, data=prompt_form(csrf))
        assert again.status == 400 and "duplicate id" in await again.text()
        assert await snapshot(h) == before


async def test_member_pages_export_and_forget_me_end_every_session(tmp_path):
    async with site(tmp_path) as (h, base), client() as http, client() as second:
        member = h.members[0]
        await login(h, http, member.id)
        await login(h, second, member.id)
        exported = await (await http.get(f"{base}/me/export.json")).json()
        assert exported["user_id"] == str(member.id) and len(exported["website"]["sessions"]) == 2
        assert "access_token" not in json.dumps(exported)
        csrf = await csrf_of(http, f"{base}/")
        unconfirmed = await http.post(f"{base}/me/forget", data={"csrf": csrf})
        assert unconfirmed.status == 400
        done = await http.post(f"{base}/me/forget", data={"csrf": csrf, "confirm": "yes"})
        assert done.status == 200 and "Your data was deleted" in await done.text()
        async with h.db.read() as conn:
            assert (await conn.execute(select(web_sessions))).all() == []
        assert (await second.get(f"{base}/s/{h.guild.id}/compass", allow_redirects=False)).status == 302


async def test_slash_forget_me_also_removes_the_moderators_name_from_the_audit_log(tmp_path):
    async with site(tmp_path) as (h, base), client() as http:
        await login(h, http, h.mod.id)
        csrf = await csrf_of(http, f"{base}/s/{h.guild.id}")
        await http.post(f"{base}/s/{h.guild.id}/publish", data={"csrf": csrf, "published": "on"})
        ix = await h.slash(h.mod, "privacy forget-me")
        reply = await ix.response()
        confirm = reply["data"]["components"][0]["components"][0]["custom_id"]
        msg = ix.original
        await (await h.sandbox.click(h.channel.id, int(msg["id"]), confirm, h.mod.id)).response()
        async with h.db.read() as conn:
            rows = (await conn.execute(select(web_audit))).all()
            assert [(r.user_id, r.user_name) for r in rows] == [(None, "(forgotten)")]
            assert (await conn.execute(select(web_sessions))).all() == []


async def test_suggestion_approved_on_the_site_joins_the_pack_and_closes_the_review_message(tmp_path):
    from tests.e2e.test_pack import SENTENCE

    async with site(tmp_path) as (h, base), client() as http:
        review = h.sandbox.create_channel(h.guild.id, "review")
        options = {"channel": h.channel.id, "time": "09:00", "timezone": "UTC", "review-channel": review.id}
        assert (await h.reply(h.mod, "schedule setup", options))["type"] == 4
        ix = await h.slash(h.members[0], "debate suggest")
        await ix.response()
        names = [c["components"][0]["custom_id"] for c in ix.modal["components"]]
        texts = [SENTENCE, "Is this still true?", "balance", "Fund a shared tool library?", "-1 No\n1 Yes"]
        sub = await h.sandbox.submit_modal(
            h.channel.id,
            h.members[0].id,
            ix.modal["custom_id"],
            dict(zip(names, texts, strict=True)),
            from_interaction=ix,
        )
        await sub.response()
        msg = (await h.sandbox.wait_for(lambda: h.sandbox.messages(review.id)))[0]
        await login(h, http, h.mod.id)
        page = await (await http.get(f"{base}/s/{h.guild.id}/suggestions")).text()
        assert "Is this still true?" in page and h.members[0].user["username"] not in page
        found = re.search(r'action="/s/\d+/suggestions/(\d+)"', page)
        assert found is not None
        csrf = await csrf_of(http, f"{base}/s/{h.guild.id}/suggestions")
        url = f"{base}/s/{h.guild.id}/suggestions/{found.group(1)}"
        done = await http.post(url, data={"csrf": csrf, "decision": "approve"}, allow_redirects=False)
        assert done.status == 303
        again = await http.post(url, data={"csrf": csrf, "decision": "reject"})
        assert again.status == 400 and "already approved" in await again.text()
        edited = h.sandbox.message(review.id, int(msg["id"]))
        assert edited["components"] == [] and "approved" in json.dumps(edited["embeds"]).lower()
        listing = (await h.reply(h.mod, "pack list"))["data"]["content"]
        assert "server-suggestions" in listing


async def test_pack_import_is_all_or_nothing_with_the_validators_problems(tmp_path):
    import aiohttp

    from tests.e2e.test_pack import SENTENCE

    async with site(tmp_path) as (h, base), client() as http:
        await login(h, http, h.mod.id)
        url = f"{base}/s/{h.guild.id}/packs/import"
        csrf = await csrf_of(http, f"{base}/s/{h.guild.id}/prompts")

        def upload(text: str) -> aiohttp.FormData:
            form = aiohttp.FormData()
            form.add_field("csrf", csrf)
            form.add_field("file", text.encode(), filename="mine.yaml", content_type="application/yaml")
            return form

        before = await snapshot(h)
        bad = await http.post(url, data=upload("pack: &a {id: x}\nprompts: *a\n"))
        assert bad.status == 400 and "nothing changed" in await bad.text()
        assert await snapshot(h) == before
        good = f"""pack: {{id: mine, name: "Mine", description: "d", version: 1}}
prompts:
  - id: one
    paragraph: 2
    excerpt: "{SENTENCE}"
    theme: balance
    question: "Is it?"
    dilemma:
      question: "Which?"
      options:
        - {{label: "Me", position: -1}}
        - {{label: "Us", position: 1}}
"""
        ok = await http.post(url, data=upload(good), allow_redirects=False)
        assert ok.status == 303, await ok.text()
        exported = await (await http.get(f"{base}/s/{h.guild.id}/packs/mine.yaml")).text()
        assert exported == good
        audit = await (await http.get(f"{base}/s/{h.guild.id}/audit")).text()
        assert "pack imported" in audit and "mine (1 prompts, new)" in audit


async def test_a_page_view_trusts_discords_answer_for_at_most_a_minute(tmp_path):
    async with site(tmp_path) as (h, base), client() as http:
        await login(h, http, h.mod.id)
        url = f"{base}/s/{h.guild.id}/audit"
        assert (await http.get(url)).status == 200
        h.sandbox.guilds[h.guild.id].members[h.mod.id]["roles"] = []  # Discord: no longer a moderator
        h.clock.advance(timedelta(seconds=59))
        assert (await http.get(url)).status == 200  # within the minute: the last answer stands
        h.clock.advance(timedelta(seconds=2))
        assert (await http.get(url)).status == 403  # re-read from Discord
