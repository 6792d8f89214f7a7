"""The website in a real browser (headless Chromium): log in through the sandbox's OAuth2 page, change
the schedule and see the post at the new time on the fake clock, write a prompt, be refused, and run
axe-core in every page (0 serious or critical violations)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from bot.app import EXTENSIONS
from tests.web.support import site, snapshot

# The module shares one Chromium (conftest.py), so its tests share the module's event loop.
pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="module")]
BROWSER_EXTENSIONS = tuple("tests.browser.web_ext" if e == "bot.cogs.web" else e for e in EXTENSIONS)

AXE = """
async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(' | '));
}
"""


async def axe_check(page, base: str) -> None:
    """axe-core, served by the app from the repository, run in the page as it stands."""
    await page.add_script_tag(url=f"{base}/_test/axe.min.js")
    found = await page.evaluate(AXE)
    assert found == [], f"{page.url}: {found}"


async def browser_login(page, h, user_id: int) -> None:
    await page.goto(f"{h.base}/")
    await page.get_by_role("link", name="Log in with Discord").click()
    await page.wait_for_url(re.compile(r".*/oauth2/authorize.*"))
    await page.locator(f"input[name=user_id][value='{user_id}']").check()
    await page.get_by_role("button", name="Authorize").click()
    await page.wait_for_url(f"{h.base}/")
    assert await page.get_by_text("Logged in as").count() == 1


async def closed_debate(h) -> None:
    """A posted debate whose poll every member voted in, closed: archive and public pages have data."""
    options = {"channel": h.channel.id, "time": "09:00", "timezone": "Europe/London"}
    assert (await h.reply(h.mod, "schedule setup", options))["type"] == 4
    await h.slash(h.mod, "schedule post-now")
    await h.sandbox.wait_for(lambda: h.posts(), timeout=10)
    post = h.posts()[0]
    buttons = post["components"][0]["components"]
    for i, m in enumerate(h.members):
        button = buttons[i % len(buttons)]["custom_id"]
        await (await h.sandbox.click(h.channel.id, int(post["id"]), button, m.id)).response()
    await h.advance(timedelta(hours=25))


async def test_moderator_changes_the_schedule_and_the_bot_posts_at_the_new_time(tmp_path, browser):
    async with site(tmp_path, extensions=BROWSER_EXTENSIONS) as (h, base):
        page = await browser.new_page()
        await browser_login(page, h, h.mod.id)
        await axe_check(page, base)
        await page.get_by_role("link", name="Common Ground Test").click()
        await axe_check(page, base)
        await page.get_by_role("link", name="Schedule").click()
        await page.get_by_label("Channel", exact=True).select_option(str(h.channel.id))
        await page.get_by_label("Local time (24-hour HH:MM)").fill("10:45")
        await page.get_by_label("Timezone (IANA, e.g. Europe/London)").fill("Europe/London")
        await page.get_by_role("button", name="Save the schedule").click()
        await page.get_by_text("Saved. The next post is armed.").wait_for()
        assert await page.locator("ol.upcoming time").count() == 5
        assert "Mon 02 Mar 2026, 10:45" in await page.locator("ol.upcoming").inner_text()
        await axe_check(page, base)
        await h.advance(timedelta(hours=4, minutes=44))  # 06:00 UTC now; London is UTC in March
        assert h.posts() == []
        await h.advance(timedelta(minutes=1))
        assert len(h.posts()) == 1
        # A bad value in the browser: the parser's message, and the page says it in an alert.
        await page.get_by_label("Local time (24-hour HH:MM)").fill("9am")
        await page.get_by_role("button", name="Save the schedule").click()
        assert "HH:MM" in await page.get_by_role("alert").inner_text()
        await axe_check(page, base)


async def test_prompt_with_an_invalid_field_then_fixed_is_in_debate_prompts(tmp_path, browser):
    async with site(tmp_path, extensions=BROWSER_EXTENSIONS) as (h, base):
        page = await browser.new_page()
        await browser_login(page, h, h.mod.id)
        await page.goto(f"{base}/s/{h.guild.id}/prompts")
        await axe_check(page, base)
        await page.get_by_label("Id (lowercase letters, digits and dashes)").fill("from-the-browser")
        await page.get_by_label("Excerpt: first sentence, from the essay").select_option("2:0")
        await page.get_by_label("Theme").select_option("self-reliance")
        await page.get_by_label("Debate question").fill("Does a community owe its members a second chance?")
        await page.get_by_label("Dilemma (the poll's question)").fill("A neighbour broke a promise once. Now?")
        await page.get_by_label("Option 1 label").fill("X" * 60)  # Discord's poll answers stop at 55
        await page.get_by_label("Option 1 position").fill("-1")
        await page.get_by_label("Option 2 label").fill("Trust them again")
        await page.get_by_label("Option 2 position").fill("1")
        # Live validation (the validator's message beside the field) and the preview of the post.
        message = page.locator("#err-label_1")
        await message.filter(has_text="55").wait_for(timeout=10_000)
        assert "Does a community owe its members a second chance?" in await page.locator("#preview").inner_text()
        await axe_check(page, base)
        before = await snapshot(h)
        await page.get_by_role("button", name="Save the prompt").click()
        assert "55" in await page.locator("#err-label_1").inner_text()  # the server says the same on save
        assert await snapshot(h) == before
        await page.get_by_label("Option 1 label").fill("Keep a polite distance")
        await page.get_by_role("button", name="Save the prompt").click()
        await page.get_by_text("Saved: from-the-browser").wait_for()
        await axe_check(page, base)
        assert (await h.reply(h.mod, "pack disable", {"pack": "individualism-collectivism"}))["type"] == 4
        shown = (await h.reply(h.members[0], "debate prompts"))["data"]["embeds"][0]
        assert "Does a community owe its members a second chance?" in json.dumps(shown)


MOD_PAGES = ["schedule", "prompts", "suggestions", "archive", "archive.csv", "audit", "packs/web-prompts.yaml"]
MOD_ACTIONS = ["schedule", "prompts", "prompts/check", "packs/import", "suggestions/1", "publish"]


async def test_member_refused_and_forged_requests_change_nothing(tmp_path, browser):
    async with site(tmp_path, extensions=BROWSER_EXTENSIONS) as (h, base):
        member_ctx = await browser.new_context()
        page = await member_ctx.new_page()
        await browser_login(page, h, h.members[0].id)
        await page.goto(f"{base}/s/{h.guild.id}")
        await axe_check(page, base)
        assert await page.get_by_role("link", name="Schedule").count() == 0
        csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
        before = await snapshot(h)
        for path in MOD_PAGES:
            response = await page.goto(f"{base}/s/{h.guild.id}/{path}")
            assert response is not None and response.status == 403, path
        await axe_check(page, base)  # the refusal page too
        form = {"csrf": csrf, "channel": str(h.channel.id), "time": "10:00", "timezone": "UTC", "published": "on"}
        for path in MOD_ACTIONS:
            response = await page.request.post(f"{base}/s/{h.guild.id}/{path}", form=form)
            assert response.status == 403, path
        assert await snapshot(h) == before

        # The moderator, in another browser: a forged form without its CSRF token, a replayed OAuth2
        # state, a member's session cookie, a server the moderator does not share.
        mod_ctx = await browser.new_context()
        mod = await mod_ctx.new_page()
        callbacks: list[str] = []
        mod.on("request", lambda r: callbacks.append(r.url) if "/callback?" in r.url else None)
        await browser_login(mod, h, h.mod.id)
        url = f"{base}/s/{h.guild.id}/schedule"
        no_token = {k: v for k, v in form.items() if k != "csrf"}
        assert (await mod.request.post(url, form=no_token)).status == 403
        assert (await mod.request.post(url, form=form)).status == 403  # the member's token, not the session's
        replay = await mod.goto(callbacks[0])
        assert replay is not None and replay.status == 400
        member_cookie = next(c for c in await member_ctx.cookies() if c["name"] == "cg_session")
        await page.request.post(f"{base}/logout", form={"csrf": csrf})  # the member logs out
        stolen_ctx = await browser.new_context()
        await stolen_ctx.add_cookies([{**member_cookie}])
        stolen = await stolen_ctx.new_page()
        await stolen.goto(f"{base}/s/{h.guild.id}/compass")
        assert "/oauth2/authorize" in stolen.url  # not let in: sent to log in
        mod_csrf = await mod.locator("input[name=csrf]").first.get_attribute("value")
        other = await mod.request.post(f"{base}/s/{h.elsewhere.id}/schedule", form={**form, "csrf": mod_csrf})
        assert other.status == 404
        after = await snapshot(h)
        # The member logged out (one session fewer) and the moderator logged in (one more); the stolen
        # cookie's visit was sent to log in, which starts a login in flight: nothing else changed.
        assert after.pop("web_logins") == before.pop("web_logins") + 1
        assert after == before


async def test_public_page_404_until_published_then_no_member_anywhere(tmp_path, browser):
    async with site(tmp_path, extensions=BROWSER_EXTENSIONS) as (h, base):
        # Usernames no prompt can contain ("moderator", "owner" are words the built-in dilemmas use), so a
        # name found on the public page below is a name that leaked.
        people = (h.mod.id, h.guild.owner_id, *(m.id for m in h.members))
        for i, uid in enumerate(people):
            h.sandbox.users[uid]["username"] = f"person_{i}_zq"
        page = await browser.new_page()
        response = await page.goto(f"{base}/p/{h.guild.id}")
        assert response is not None and response.status == 404
        await axe_check(page, base)  # the 404 page
        await page.goto(f"{base}/")
        await axe_check(page, base)  # the start page, logged out
        await closed_debate(h)
        await browser_login(page, h, h.mod.id)
        await page.goto(f"{base}/s/{h.guild.id}")
        await page.get_by_label("Publish this server's leaning on a public page (no member appears on it)").check()
        await page.get_by_role("button", name="Save").click()
        await page.goto(f"{base}/s/{h.guild.id}/archive")
        await axe_check(page, base)
        await page.goto(f"{base}/s/{h.guild.id}/audit")
        assert "published (website)" in await page.content()
        await axe_check(page, base)
        await page.goto(f"{base}/s/{h.guild.id}/compass")
        await axe_check(page, base)
        await page.goto(f"{base}/s/{h.guild.id}/suggestions")
        await axe_check(page, base)
        anonymous = await browser.new_page()  # a visitor with no session at all
        response = await anonymous.goto(f"{base}/p/{h.guild.id}")
        assert response is not None and response.status == 200
        html = await anonymous.content()
        assert "Recent debates" in html and "<svg" in html
        for uid in people:
            user = h.sandbox.users[uid]
            assert str(uid) not in html
            assert re.search(rf"\b{re.escape(user['username'])}\b", html) is None
        assert "avatar" not in html.lower()
        await axe_check(anonymous, base)
        await page.goto(f"{base}/p/{h.guild.id}")  # the moderator, logged in: not even their own name
        mine = await page.content()
        assert h.sandbox.users[h.mod.id]["username"] not in mine and str(h.mod.id) not in mine
        assert "Log out" not in mine
        await anonymous.set_viewport_size({"width": 375, "height": 800})  # a phone
        width = await anonymous.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, "the public page scrolls sideways on a phone"


async def test_the_axe_check_itself_catches_a_serious_violation(tmp_path, browser):
    """The check above is not vacuous: an unlabelled field and an image without text fail it."""
    async with site(tmp_path, extensions=BROWSER_EXTENSIONS) as (_h, base):
        page = await browser.new_page()
        await page.goto(f"{base}/static/site.css")  # same origin as the script
        await page.set_content('<html lang="en"><head><title>t</title></head><body><main><input><img src="x.png">'
                               "</main></body></html>")  # fmt: skip
        with pytest.raises(AssertionError, match="label"):
            await axe_check(page, base)
