"""Embeds for /about and /help."""

from __future__ import annotations

import discord
from discord import app_commands

ACCENT = discord.Colour(0x5DADE2)
ESSAY_TITLE = "Individualism and Collectivism"

ABOUT = (
    "Communities argue about how much a person owes the group, and how much the group owes the person. "
    "Common Ground turns that argument into a daily practice.\n\n"
    f"Every scheduled day it quotes a passage of the short essay **{ESSAY_TITLE}** (five paragraphs), "
    "asks a question about it, opens a thread for the discussion and runs a poll on an everyday dilemma. "
    "Each option sits on an axis from **the individual first** to **the community first**, "
    "so over weeks your server can see where it leans, and how that moves.\n\n"
    "Votes are private: nobody else sees what you chose. Start with `/debate today`, "
    "or `/help` for every command."
)


def about_embed() -> discord.Embed:
    embed = discord.Embed(title="Common Ground", description=ABOUT, colour=ACCENT)
    embed.add_field(name="The essay", value=f"*{ESSAY_TITLE}*, five paragraphs, quoted verbatim.", inline=False)
    embed.add_field(name="Your data", value="`/privacy export-me` and `/privacy forget-me` at any time.", inline=False)
    return embed


def _walk(command: app_commands.Command | app_commands.Group, prefix: str = ""):
    name = f"{prefix}{command.name}"
    if isinstance(command, app_commands.Group):
        for child in command.commands:
            yield from _walk(child, name + " ")
    else:
        yield name, command.description


def help_lines(tree: app_commands.CommandTree) -> dict[str, list[str]]:
    """Every slash command, grouped by its top-level name: ``{"schedule": ["/schedule setup — …"]}``."""
    groups: dict[str, list[str]] = {}
    for top in sorted(tree.get_commands(type=discord.AppCommandType.chat_input), key=lambda c: c.name):
        for name, description in _walk(top):
            groups.setdefault(top.name, []).append(f"`/{name}` — {description}")
    return groups


MODERATOR_GROUPS = {"schedule", "pack", "poll"}


def help_embed(tree: app_commands.CommandTree) -> discord.Embed:
    embed = discord.Embed(title="Common Ground commands", colour=ACCENT)
    groups = help_lines(tree)
    singles = [
        line
        for name, lines in groups.items()
        if len(lines) == 1 and " " not in lines[0].split("`")[1]
        for line in lines
    ]
    if singles:
        embed.add_field(name="General", value="\n".join(singles)[:1024], inline=False)
    for name, lines in groups.items():
        if lines and all(line not in singles for line in lines):
            title = f"/{name}" + (" (moderators: Manage Server)" if name in MODERATOR_GROUPS else "")
            embed.add_field(name=title, value="\n".join(lines)[:1024], inline=False)
    return embed
