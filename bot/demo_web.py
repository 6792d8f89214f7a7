"""`commonground demo --web`: the demo's 60 days of history, then the website left running on 127.0.0.1.

It prints the site's URL and the sandbox user to log in as (the sandbox's consent page lists them),
writes screenshots of the main pages to ``<out>/web/`` when Debian's Chromium is installed, and
serves until Ctrl-C (or exits after the screenshots with ``--web-screenshots-only``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import socket
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.demo import Demo

log = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDemo(Demo):
    def __init__(self, settings: Settings, *, port: int, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.port = port or _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.sandbox.oauth.register_redirect(f"{self.base}/callback")
        self.extra_settings = {
            "web": f"127.0.0.1:{self.port}",
            "web_url": self.base,
            "oauth_client_id": self.sandbox.oauth.client_id,
            "oauth_client_secret": self.sandbox.oauth.client_secret,
        }

    async def publish(self) -> None:
        await self.slash(self.mod, "web publish", {"on": True})

    async def screenshots(self) -> list[Path]:
        """The main pages, as the moderator and as a visitor, desktop and phone widths."""
        try:
            from playwright.async_api import async_playwright
        except ImportError:
            self.t.say("screenshots skipped: Playwright is not installed (pip install -e '.[test]')")
            return []
        if not Path(CHROMIUM).exists():
            self.t.say(f"screenshots skipped: no Chromium at {CHROMIUM} (apt-get install -y chromium)")
            return []
        folder = self.out / "web"
        folder.mkdir(parents=True, exist_ok=True)
        gid = self.guild.id
        written: list[Path] = []
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = await browser.new_page(viewport={"width": 1100, "height": 900})

                async def shot(name: str, url: str | None = None) -> None:
                    if url is not None:
                        await page.goto(url)
                    path = folder / f"{name}.png"
                    await page.screenshot(path=str(path), full_page=True)
                    written.append(path)

                await shot("01-start", f"{self.base}/")
                await page.get_by_role("link", name="Log in with Discord").click()
                await page.wait_for_url(re.compile(r".*/oauth2/authorize.*"))
                await shot("02-sandbox-consent")
                await page.locator(f"input[name=user_id][value='{self.mod.id}']").check()
                await page.get_by_role("button", name="Authorize").click()
                await page.wait_for_url(f"{self.base}/")
                await shot("03-home")
                await shot("04-server", f"{self.base}/s/{gid}")
                await shot("05-schedule", f"{self.base}/s/{gid}/schedule")
                await shot("06-prompts", f"{self.base}/s/{gid}/prompts")
                await shot("07-archive", f"{self.base}/s/{gid}/archive")
                await shot("08-audit", f"{self.base}/s/{gid}/audit")
                member = await browser.new_page(viewport={"width": 1100, "height": 900})  # a member who voted
                await member.goto(f"{self.base}/login?next=/s/{gid}/compass")
                ada = self.members[self.personas[0].name]
                await member.locator(f"input[name=user_id][value='{ada.id}']").check()
                await member.get_by_role("button", name="Authorize").click()
                await member.wait_for_url(f"{self.base}/s/{gid}/compass")
                path = folder / "09-compass-member.png"
                await member.screenshot(path=str(path), full_page=True)
                written.append(path)
                visitor = await browser.new_page(viewport={"width": 1100, "height": 900})
                await visitor.goto(f"{self.base}/p/{gid}")
                path = folder / "10-public.png"
                await visitor.screenshot(path=str(path), full_page=True)
                written.append(path)
                phone = await browser.new_page(viewport={"width": 375, "height": 800}, device_scale_factor=2)
                await phone.goto(f"{self.base}/p/{gid}")
                path = folder / "11-public-phone.png"
                await phone.screenshot(path=str(path), full_page=True)
                written.append(path)
            finally:
                await browser.close()
        return written


async def run_web_demo(settings: Settings, *, days: int, out: Path, seed: int, port: int, wait: bool) -> int:
    demo = WebDemo(settings, port=port, days=days, out=out, seed=seed)
    async with demo:
        await demo.run()
        await demo.publish()
        shots = await demo.screenshots()
        t = demo.t
        t.say("\n=== the website ===")
        t.say(f"open {demo.base}/ and choose “Log in with Discord”;")
        t.say(f"on the sandbox's page log in as “{demo.mod.user['username']}” (a moderator of {demo.guild.name})")
        t.say(f"or as a member, e.g. “{demo.personas[0].name}”. Public page: {demo.base}/p/{demo.guild.id}")
        for path in shots:
            t.say(f"  screenshot {path}")
        if wait:
            t.say("serving until Ctrl-C")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop.set)
            await stop.wait()
    return 0
