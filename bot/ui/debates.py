"""Debate embeds, the pager for /debate history and prompts, the suggestion modal and review buttons.

Review buttons are ``DynamicItem``s (``suggest:approve:<id>``, ``suggest:reject:<id>``) so they keep
working after a restart; each click is checked at run time (Manage Server, the suggestion belongs to
this server and is still pending) before anything changes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, cast

import discord

from bot.domain import permissions as perms

if TYPE_CHECKING:
    from bot.app import CommonGround
    from bot.domain.packs import Prompt
    from bot.storage.debates import Debate, ResultLine

COLOUR = discord.Colour(0x5DADE2)
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
FIELD_VALUE_MAX = 1024
FIELD_NAME_MAX = 256
EMBED_TOTAL_MAX = 6000
THREAD_NAME_MAX = 100

REVIEW_TEMPLATE = r"suggest:(?P<action>approve|reject):(?P<id>[0-9]+)"


def safe(text: str) -> str:
    """Text from a pack or a member, shown as text: no markdown, no mentions."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(text: str) -> str:
    """A block quote of ``text``, every line quoted."""
    return "\n".join(f"> {line}" for line in text.splitlines() or [""])


def source_line(essay_title: str, paragraph: int) -> str:
    return f"{essay_title}, ¶{paragraph}"


def post_actions(*, thread: bool, pin: bool, style: str = "buttons", chart: bool = True) -> list[str]:
    """The actions (rows of bot.domain.permissions.ACTIONS) a daily post with these options performs."""
    actions = ["post"]
    if chart:
        actions.append("chart")
    if style == "native":
        actions.append("native-poll")
    if thread:
        actions += ["thread", "summary"]
    if pin:
        actions.append("pin")
    return actions


def missing_in(channel: Any, actions: Sequence[str]) -> list[perms.Permission]:
    """What the bot lacks in ``channel`` (from the gateway's cache) for ``actions``, root cause first."""
    return perms.missing(channel.permissions_for(channel.guild.me).value, actions)


def missing_permissions(channel: Any, *, thread: bool, pin: bool, style: str = "buttons") -> list[str]:
    """Names of permissions the bot lacks in ``channel`` for a daily post with these options."""
    return perms.names(missing_in(channel, post_actions(thread=thread, pin=pin, style=style)))


def explain_missing(lacking: Sequence[perms.Permission]) -> str:
    """``**Send Polls** (post Discord's native polls) and **Pin Messages** (…)``: what to grant and why."""
    return perms.join_names([f"**{p.name}** ({p.why})" for p in lacking])


def join_names(names: Sequence[str]) -> str:
    return perms.join_names(names)


def thread_name(debate: Debate) -> str:
    text = " ".join(debate.question.split()) or "Discussion"
    return cut(text, THREAD_NAME_MAX)


def _fit(embed: discord.Embed) -> discord.Embed:
    """Trim the description so the whole embed stays within Discord's 6,000 characters."""
    over = len(embed) - EMBED_TOTAL_MAX
    if over > 0 and embed.description:
        embed.description = cut(embed.description, max(len(embed.description) - over, 1))
    return embed


def debate_embed(
    debate: Debate, essay_title: str, *, dilemma: Prompt | None = None, context: str | None = None
) -> discord.Embed:
    """The daily post: the excerpt quoted verbatim with its source, the question, the prompt's context
    note if it has one, and (without a poll service's own embed) the dilemma and its options."""
    theme = debate.theme.replace("-", " ")
    description = (
        f"{quote(safe(debate.excerpt))}\n— *{safe(source_line(essay_title, debate.paragraph))}*\n\n"
        f"**{safe(' '.join(debate.question.split()))}**"
    )
    if context:
        description += f"\n*{safe(' '.join(context.split()))}*"
    embed = discord.Embed(
        title=cut(f"Today's debate · {theme}", EMBED_TITLE_MAX),
        description=cut(description, EMBED_DESCRIPTION_MAX),
        colour=COLOUR,
    )
    if dilemma is not None:
        lines = [f"{i + 1}. {safe(o.label)}" for i, o in enumerate(dilemma.dilemma.options)]
        embed.add_field(
            name=cut(safe(dilemma.dilemma.question), FIELD_NAME_MAX),
            value=cut("\n".join(lines), FIELD_VALUE_MAX),
            inline=False,
        )
    embed.set_footer(text="Discuss in the thread below. Be kind: argue with ideas, not people.")
    return _fit(embed)


# What each kind of job does, in a moderator's words, and how to start it again once it is parked.
_JOB_WORDS = {
    "debate-post": ("the daily post", "`/schedule resume` arms it again"),
    "debate-plan": ("a planned debate", "plan it again with `/schedule plan`"),
    "poll-close": ("closing a poll", "close it with `/poll close`"),
    "poll-publish": ("publishing a poll's result", "the host's log has the details"),
    "guild-purge": ("the data purge", "the host's log has the details"),
}


def parked_job_text(kind: str, attempts: int, error: str) -> str:
    """One /schedule status line for a job that stopped retrying."""
    what, fix = _JOB_WORDS.get(kind, (f"a {kind} job", "the host's log has the details"))
    error = cut(error.replace("`", "'"), 150)  # shown in a code span: a backtick would end it
    return f"**Stopped retrying:** {what}, after {attempts} failed attempts (last error: `{error}`); {fix}."


def message_link(guild_id: int, channel_id: int, message_id: int) -> str:
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def result_text(line: ResultLine | None) -> str:
    if line is None:
        return "no poll"
    if line.voters == 0:
        return f"{line.status}, no votes yet"
    people = "person" if line.voters == 1 else "people"
    lead = f"leading: {safe(line.leader)} ({line.leader_votes})" if line.leader else "no leader"
    return f"{line.status} · {line.voters} {people} · {lead}"


def history_embed(
    rows: Sequence[Debate], results: dict[int, ResultLine], *, page: int, pages: int, total: int
) -> discord.Embed:
    embed = discord.Embed(title="Past debates", colour=COLOUR)
    if not rows:
        embed.description = "No debate has been posted here yet."
        return embed
    for d in rows:
        when = discord.utils.format_dt(d.posted_at, "D") if d.posted_at else "?"
        link = message_link(d.guild_id, d.channel_id, d.message_id) if d.message_id else None
        question = cut(safe(" ".join(d.question.split())), 300)
        value = f"{question}\n{result_text(results.get(d.id))}" + (f" · [post]({link})" if link else "")
        embed.add_field(name=cut(f"{when} · ¶{d.paragraph} · {d.theme}", FIELD_NAME_MAX), value=value, inline=False)
    embed.set_footer(text=f"Page {page + 1} of {pages} · {total} debates")
    return _fit(embed)


def prompts_embed(
    items: Sequence[tuple[str, str, Prompt]],
    essay_title: str,
    *,
    page: int,
    pages: int,
    total: int,
    skipped: Collection[str] = (),
    sensitive_on: bool = False,
) -> discord.Embed:
    """A page of prompts: ``(pack name, key, prompt)`` each, marked when skipped here or sensitive."""
    embed = discord.Embed(title="Prompts in this server's active packs", colour=COLOUR)
    if not items:
        embed.description = "No active prompts: every pack is disabled."
        return embed
    for pack_name, key, p in items:
        marks = []
        if key in skipped:
            marks.append("skipped here")
        if p.sensitive:
            marks.append("sensitive" + ("" if sensitive_on else ", left out"))
        dilemmas = f"{len(p.dilemmas)} dilemmas" if len(p.dilemmas) > 1 else ""
        value = f"{cut(quote(safe(p.excerpt)), 500)}\n**{cut(safe(p.question), 400)}**"
        name = " · ".join(x for x in (pack_name, f"¶{p.paragraph}", p.theme, key, dilemmas, *marks) if x)
        embed.add_field(name=cut(name, FIELD_NAME_MAX), value=value, inline=False)
    embed.set_footer(text=f"Page {page + 1} of {pages} · {total} prompts · {essay_title}")
    return _fit(embed)


class Pager(discord.ui.View):
    """Previous / Next over pages built on demand; only the member who asked can turn them."""

    def __init__(self, owner_id: int, pages: int, render: Callable[[int], Awaitable[discord.Embed]]) -> None:
        super().__init__(timeout=600)
        self.owner_id = owner_id
        self.pages = max(pages, 1)
        self.page = 0
        self.render = render
        self._sync()

    def _sync(self) -> None:
        self.previous.disabled = self.page <= 0
        self.next.disabled = self.page >= self.pages - 1

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await interaction.response.send_message("These pages belong to someone else's command.", ephemeral=True)
            return False
        return True

    async def _turn(self, interaction: discord.Interaction, step: int) -> None:
        self.page = min(max(self.page + step, 0), self.pages - 1)
        self._sync()
        await self.refresh()
        await interaction.response.edit_message(embed=await self.render(self.page), view=self)

    async def refresh(self) -> None:
        """Called before a page is shown; subclasses update their own items."""

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary)
    async def previous(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await self._turn(interaction, -1)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await self._turn(interaction, 1)


async def send_pages(
    interaction: discord.Interaction,
    pages: int,
    render: Callable[[int], Awaitable[discord.Embed]],
    view: Pager | None = None,
) -> None:
    """Answer with the first page, only to the member who asked: with ``view``, or with a plain
    :class:`Pager` when there is more than one page."""
    if view is None and pages > 1:
        view = Pager(interaction.user.id, pages, render)
    kwargs: dict[str, Any] = {"embed": await render(0), "ephemeral": True}
    if view is not None:
        await view.refresh()
        kwargs["view"] = view
    await interaction.response.send_message(**kwargs)


class PromptSkipSelect(discord.ui.Select["PromptsPager"]):
    def __init__(self) -> None:
        super().__init__(placeholder="Moderators: skip or restore a prompt on this page", row=1)

    async def callback(self, interaction: discord.Interaction) -> None:
        assert self.view is not None
        await self.view.toggle(interaction, self.values[0])


class PromptsPager(Pager):
    """The prompt pages with, for moderators, a select that skips or restores a prompt of the page.

    ``choices(page)`` gives ``(key, label, skipped)`` for the page; ``toggle(interaction, key)``
    re-checks the permission and changes the skip (the select itself is only shown to moderators).
    """

    def __init__(
        self,
        owner_id: int,
        pages: int,
        render: Callable[[int], Awaitable[discord.Embed]],
        choices: Callable[[int], Awaitable[list[tuple[str, str, bool]]]],
        toggle: Callable[[discord.Interaction, str], Awaitable[None]],
    ) -> None:
        super().__init__(owner_id, pages, render)
        self.choices = choices
        self.on_toggle = toggle
        self.select = PromptSkipSelect()
        self._keys: dict[str, str] = {}
        self.add_item(self.select)
        if pages <= 1:
            self.remove_item(self.previous)
            self.remove_item(self.next)

    async def refresh(self) -> None:
        # Values are positions on the page: a prompt key can be longer than a select value (100).
        found = (await self.choices(self.page))[:25]
        self._keys = {str(i): key for i, (key, _label, _skipped) in enumerate(found)}
        self.select.options = [
            discord.SelectOption(label=cut(("Restore: " if skipped else "Skip: ") + label, 100), value=str(i))
            for i, (_key, label, skipped) in enumerate(found)
        ] or [discord.SelectOption(label="No prompts on this page", value="-")]

    async def toggle(self, interaction: discord.Interaction, value: str) -> None:
        await self.on_toggle(interaction, self._keys.get(value, "-"))
        if interaction.response.is_done():
            return
        await self.refresh()
        await interaction.response.edit_message(embed=await self.render(self.page), view=self)


# -- suggestions ---------------------------------------------------------------------------------------

_OPTION_RE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*[|:;,]?\s*(.+?)\s*$")


def parse_option_lines(text: str) -> list[dict[str, Any]]:
    """``-1 Keep it private`` per line -> ``[{"label": ..., "position": ...}]``; ValueError names the line."""
    options = []
    for n, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        match = _OPTION_RE.match(line)
        if match is None:
            raise ValueError(f"option line {n} should start with a position from -1 to 1, like `-1 Keep it private`")
        options.append({"label": match.group(2), "position": float(match.group(1))})
    return options


class SuggestModal(discord.ui.Modal, title="Suggest a debate prompt"):
    excerpt = discord.ui.TextInput(
        label="Excerpt (copied word for word from the essay)",
        style=discord.TextStyle.paragraph,
        max_length=1000,
    )
    question = discord.ui.TextInput(
        label="Question for the discussion", style=discord.TextStyle.paragraph, max_length=300
    )
    theme = discord.ui.TextInput(label="Theme (e.g. self-reliance, rights, balance)", max_length=40)
    poll_question = discord.ui.TextInput(label="Poll question (an everyday dilemma)", max_length=300)
    options = discord.ui.TextInput(
        label="Options: one per line, position first",
        style=discord.TextStyle.paragraph,
        placeholder="-1 Keep the money for my family\n1 Give it to the neighbourhood fund",
        max_length=400,
    )

    def __init__(self, submit: Callable[[discord.Interaction, dict[str, Any]], Awaitable[None]]) -> None:
        super().__init__(timeout=900)
        self._submit = submit

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self._submit(
            interaction,
            {
                "excerpt": self.excerpt.value,
                "question": self.question.value,
                "theme": self.theme.value.strip(),
                "poll_question": self.poll_question.value,
                "options": self.options.value,
            },
        )

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        from bot.app import send_ephemeral, user_message

        message = user_message(error)
        if message is None:
            raise error
        await send_ephemeral(interaction, message)


def suggestion_embed(suggestion_id: int, body: dict[str, Any], *, user_id: int | None, status: str) -> discord.Embed:
    embed = discord.Embed(title=f"Suggested prompt #{suggestion_id}", colour=COLOUR)
    embed.description = cut(
        f"{quote(safe(body['excerpt']))}\n— ¶{body.get('paragraph', '?')}\n\n**{safe(body['question'])}**",
        EMBED_DESCRIPTION_MAX,
    )
    opts = "\n".join(f"{o['position']:+.1f} {safe(o['label'])}" for o in body["dilemma"]["options"])
    embed.add_field(
        name=cut(safe(body["dilemma"]["question"]), FIELD_NAME_MAX), value=cut(opts, FIELD_VALUE_MAX), inline=False
    )
    embed.add_field(name="Theme", value=safe(body["theme"]))
    if user_id is not None:
        embed.add_field(name="From", value=f"<@{user_id}>")
    embed.set_footer(
        text={"pending": "Waiting for a moderator", "approved": "Approved", "rejected": "Rejected"}[status]
    )
    return embed


def review_view(suggestion_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ReviewButton(suggestion_id, approve=True))
    view.add_item(ReviewButton(suggestion_id, approve=False))
    return view


class ReviewButton(discord.ui.DynamicItem[discord.ui.Button], template=REVIEW_TEMPLATE):
    """Approve or Reject of one suggestion; the custom_id names the action and the suggestion."""

    def __init__(self, suggestion_id: int, *, approve: bool) -> None:
        action = "approve" if approve else "reject"
        super().__init__(
            discord.ui.Button(
                label=action.capitalize(),
                style=discord.ButtonStyle.success if approve else discord.ButtonStyle.danger,
                custom_id=f"suggest:{action}:{suggestion_id}",
            )
        )
        self.suggestion_id = suggestion_id
        self.approve = approve

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> ReviewButton:
        return cls(int(match["id"]), approve=match["action"] == "approve")

    async def callback(self, interaction: discord.Interaction) -> None:
        from bot.app import send_ephemeral, user_message

        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            await send_ephemeral(interaction, "You need the **Manage Server** permission to review suggestions.")
            return
        service = cast("CommonGround", interaction.client).suggestions
        try:
            suggestion, body = await service.decide_suggestion(
                interaction.guild_id, self.suggestion_id, approve=self.approve
            )
        except Exception as exc:
            message = user_message(exc)
            if message is None:
                raise
            await send_ephemeral(interaction, message)
            return
        embed = suggestion_embed(suggestion.id, body, user_id=None, status="approved" if self.approve else "rejected")
        await interaction.response.edit_message(embed=embed, view=None)
