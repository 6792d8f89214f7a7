"""Poll components and texts: persistent vote/withdraw buttons, the dilemma and result embeds, native polls.

Buttons are ``DynamicItem``s, so they keep working after a restart: the custom_id alone names the poll
and option (``poll:vote:<poll>:<idx>``, ``poll:withdraw:<poll>``), and every click is checked against
the database by :class:`bot.services.polls.PollService` before anything is written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import discord

from bot.domain.leaning import Leaning

if TYPE_CHECKING:
    from bot.app import CommonGround
    from bot.storage.polls import PollRow


def _bot(interaction: discord.Interaction) -> CommonGround:
    """The bot behind a component's interaction (discord.py types it as any Client)."""
    return cast("CommonGround", interaction.client)


VOTE_TEMPLATE = r"poll:vote:(?P<poll>[0-9]+):(?P<idx>[0-9]+)"
WITHDRAW_TEMPLATE = r"poll:withdraw:(?P<poll>[0-9]+)"
NATIVE_QUESTION_MAX = 300
NATIVE_ANSWER_MAX = 55
NATIVE_ANSWERS_MAX = 10
NATIVE_HOURS_MAX = 768  # 32 days
BUTTON_LABEL_MAX = 80

UNAVAILABLE = "This poll isn't available here."
COLOUR = discord.Colour.from_rgb(88, 101, 242)


def safe(text: str) -> str:
    """Member-provided text, shown as text: no markdown, no mentions."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def _button_label(i: int, label: str) -> str:
    text = f"{i + 1}. {label}"
    return text if len(text) <= BUTTON_LABEL_MAX else text[: BUTTON_LABEL_MAX - 1] + "…"


class VoteButton(discord.ui.DynamicItem[discord.ui.Button], template=VOTE_TEMPLATE):
    """One option of a button poll. The custom_id names the option's idx (its identity); the label
    numbers it by where it is shown (``number``, 0-based), which varies from poll to poll."""

    def __init__(
        self, poll_id: int, idx: int, label: str | None = None, *, number: int | None = None, disabled: bool = False
    ) -> None:
        shown = idx if number is None else number
        super().__init__(
            discord.ui.Button(
                label=_button_label(shown, label) if label is not None else str(shown + 1),
                style=discord.ButtonStyle.secondary,
                custom_id=f"poll:vote:{poll_id}:{idx}",
                disabled=disabled,
            )
        )
        self.poll_id = poll_id
        self.idx = idx

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: Any, /
    ) -> VoteButton:
        return cls(int(match["poll"]), int(match["idx"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _bot(interaction).polls.handle_click(interaction, self.poll_id, self.idx)


class WithdrawButton(discord.ui.DynamicItem[discord.ui.Button], template=WITHDRAW_TEMPLATE):
    """Offered (ephemerally) to a member who clicks their current choice."""

    def __init__(self, poll_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Withdraw my vote", style=discord.ButtonStyle.danger, custom_id=f"poll:withdraw:{poll_id}"
            )
        )
        self.poll_id = poll_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: Any, /
    ) -> WithdrawButton:
        return cls(int(match["poll"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _bot(interaction).polls.handle_withdraw(interaction, self.poll_id)


def vote_view(poll: PollRow, *, disabled: bool = False) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for number, opt in enumerate(poll.shown):
        view.add_item(VoteButton(poll.id, opt.idx, opt.label, number=number, disabled=disabled))
    return view


def withdraw_view(poll_id: int) -> discord.ui.View:
    """The Withdraw button as a finished view: it only carries the component. Clicks reach the
    :class:`WithdrawButton` registered as a dynamic item; a live view would instead be kept by
    discord.py for 15 minutes (the timeout it gives ephemeral views), one per click on a current
    choice, with a timer task each."""
    view = discord.ui.View(timeout=None)
    view.add_item(WithdrawButton(poll_id))
    view.stop()
    return view


def native_hours(closes_at: datetime, now: datetime) -> int:
    return max(1, min(NATIVE_HOURS_MAX, math.ceil((closes_at - now) / timedelta(hours=1))))


def native_poll(poll: PollRow, now: datetime) -> discord.Poll:
    """The dilemma as a native Discord poll (question ≤ 300, ≤ 10 answers of ≤ 55 characters)."""
    question = poll.question if len(poll.question) <= NATIVE_QUESTION_MAX else poll.question[:299] + "…"
    native = discord.Poll(question=question, duration=timedelta(hours=native_hours(poll.closes_at, now)))
    for opt in poll.shown[:NATIVE_ANSWERS_MAX]:  # answer ids 1.. follow this order (PollRow.idx_of_answer)
        label = opt.label if len(opt.label) <= NATIVE_ANSWER_MAX else opt.label[:54] + "…"
        native.add_answer(text=label)
    return native


def dilemma_embed(poll: PollRow) -> discord.Embed:
    """The open poll: the question, the options, and when it closes (counts hidden unless live)."""
    lines = [f"**{number}.** {safe(opt.label)}" for number, opt in enumerate(poll.shown, 1)]
    embed = discord.Embed(title="Dilemma", description=safe(poll.question), colour=COLOUR)
    embed.add_field(name="Options", value="\n".join(lines)[:1024], inline=False)
    when = discord.utils.format_dt(poll.closes_at, "R")
    if poll.style == "native":
        note = f"Vote in the poll below; it closes {when}."
    elif poll.live_counts:
        note = f"Click an option to vote; you can change your mind until it closes {when}."
    else:
        note = f"Click an option to vote. Results stay hidden until the poll closes {when}."
    embed.add_field(name="How to vote", value=note, inline=False)
    embed.set_footer(text=f"Poll {poll.id} · votes are anonymous")
    return embed


def carries_poll(message: discord.Message, poll_id: int) -> bool:
    """Whether ``message`` is a post of poll ``poll_id``: its vote buttons (``poll:vote:<id>:…``) or its
    embed's footer (``Poll <id> · …``, native polls too). History carries no nonce to match on."""
    prefix = f"poll:vote:{poll_id}:"
    for row in message.components:
        for item in getattr(row, "children", ()):
            if (getattr(item, "custom_id", None) or "").startswith(prefix):
                return True
    footer = f"Poll {poll_id} ·"
    return any((embed.footer.text or "").startswith(footer) for embed in message.embeds)


def live_embed(poll: PollRow, counts: dict[int, int]) -> discord.Embed:
    embed = dilemma_embed(poll)
    total = sum(counts.values())
    embed.add_field(name=f"So far ({total} vote{'s' if total != 1 else ''})", value=_count_lines(poll, counts))
    return embed


AXIS_NOTE = (
    "From the individual first (top) to the community first (bottom); polls vary the order options are shown in."
)


def _count_lines(poll: PollRow, counts: dict[int, int], *, axis: bool = False) -> str:
    """Counts per option: numbered as shown while the poll is open, or (``axis``) in axis order."""
    total = sum(counts.values())
    lines = []
    for number, opt in enumerate(poll.by_axis if axis else poll.shown, 1):
        n = counts.get(opt.idx, 0)
        pct = 100.0 * n / total if total else 0.0
        head = "•" if axis else f"**{number}.**"
        lines.append(f"{head} {safe(opt.label)} — {n} ({pct:.0f}%)")
    if axis:
        lines.append(f"*{AXIS_NOTE}*")
    return "\n".join(lines)[:1024]


def chart_name(poll_id: int) -> str:
    return f"poll-{poll_id}.png"


def result_embed(poll: PollRow, counts: dict[int, int], leaning: Leaning, *, chart: bool) -> discord.Embed:
    """The closed poll: counts and percentages, the leaning with its interval and voters, the chart."""
    total = sum(counts.values())
    status = "Poll closed" if poll.status != "deleted" else "Poll closed (its message was deleted)"
    embed = discord.Embed(title=f"Results · {status}", description=safe(poll.question), colour=COLOUR)
    embed.add_field(
        name=f"{total} voter{'s' if total != 1 else ''}", value=_count_lines(poll, counts, axis=True), inline=False
    )
    embed.add_field(name="Leaning", value=leaning.describe()[:1024], inline=False)
    if poll.close_note:
        embed.add_field(name="Note", value=safe(poll.close_note)[:1024], inline=False)
    if chart:
        embed.set_image(url=f"attachment://{chart_name(poll.id)}")
    if poll.closed_at is not None:
        embed.timestamp = poll.closed_at
    embed.set_footer(text=f"Poll {poll.id} · votes are anonymous")
    return embed


def summary_text(poll: PollRow, counts: dict[int, int], leaning: Leaning) -> str:
    """A short summary for the debate's thread."""
    total = sum(counts.values())
    if total == 0:
        return f"The poll has closed with no votes: {safe(poll.question)}"
    top = max(poll.options, key=lambda o: counts.get(o.idx, 0))
    pct = 100.0 * counts.get(top.idx, 0) / total
    return (
        f"The poll has closed: {total} voter{'s' if total != 1 else ''}. "
        f"Most chose *{safe(top.label)}* ({pct:.0f}%). The server {leaning.describe()}."
    )[:2000]


def vote_reply(outcome: str, label: str | None, closes_at: datetime | None) -> str:
    # A relative timestamp renders as "in 12 hours": it needs a verb before it, never "until in 12 hours".
    until = "the poll closes" + (f" {discord.utils.format_dt(closes_at, 'R')}" if closes_at else "")
    if outcome in ("cast", "changed"):
        return f"You chose *{safe(label or '')}*. You can change your vote until {until}."
    if outcome == "same":
        return f"You already chose *{safe(label or '')}*. Withdraw your vote? (You can vote again until {until}.)"
    if outcome == "withdrawn":
        return f"Your vote was withdrawn. You can vote again until {until}."
    if outcome == "no_vote":
        return "You have no vote in this poll to withdraw."
    return UNAVAILABLE


def refused_role(role_id: int) -> str:
    return f"Only members with the <@&{role_id}> role can vote in this server's polls."


def refused_new(min_days: int, eligible_at: datetime | None) -> str:
    days = "1 day" if min_days == 1 else f"{min_days} days"
    when = f" You can vote from {discord.utils.format_dt(eligible_at, 'f')}." if eligible_at else ""
    return f"Members can vote once they have been in this server for {days}.{when}"


def options_for_chart(poll: PollRow, counts: dict[int, int]) -> Sequence[tuple[str, float, int]]:
    """The options in axis order (the chart lists them from the individual to the community)."""
    return [(opt.label, opt.position, counts.get(opt.idx, 0)) for opt in poll.by_axis]
