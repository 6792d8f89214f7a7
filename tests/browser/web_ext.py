"""The bot's web extension, serving the vendored axe-core from the repository at /_test/ for the
browser tests (never from a CDN; the production site does not serve it)."""

from __future__ import annotations

from pathlib import Path

from bot.cogs.web import Web

VENDOR = Path(__file__).parent / "vendor"


class WebWithAxe(Web):
    extra_static = VENDOR


async def setup(bot) -> None:
    await bot.add_cog(WebWithAxe(bot))
