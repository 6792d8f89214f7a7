"""The answers of ``/leaning``: embeds, and the chart adapters over ``bot.ui.charts``.

The adapters import ``bot.ui.charts`` (matplotlib, numpy) when a chart is drawn, in the worker thread
that draws it (``asyncio.to_thread``), never at start-up: a process that only takes votes and posts
debates does not hold the chart stack in memory.

Every number is shown with what it rests on ("based on 7 votes"); every embed stays inside Discord's
limits (title 256, description 4096, field 1024, total 6000) whatever the questions say.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import discord

from bot.domain.groups import MIN_GROUP, MIN_VOTES, GroupsResult
from bot.domain.leaning import (
    METHODOLOGY,
    MIN_PLACEMENT_VOTERS,
    SMALL_SAMPLE,
    Leaning,
    OptionCheck,
    PollShift,
    SeriesPoint,
    ShiftSummary,
    label_for,
)
from bot.storage.leaning import MemberCompass, PollFinal

ACCENT = discord.Colour(0x5DADE2)
WITHDREW = "#CC79A7"
TITLE_MAX, DESCRIPTION_MAX, FIELD_MAX, FIELD_NAME_MAX, TOTAL_MAX = 256, 4096, 1024, 256, 6000
QUESTION_MAX = 140  # a question quoted in a list

NO_DATA = (
    "There's nothing to show yet: no poll in this server has closed{scope}. "
    "Once a daily debate's poll closes, its votes count here. Moderators can start with `/schedule setup`."
)


def _cut(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _quote(question: str) -> str:
    # Questions are written by moderators: keep them on one line and inert (no mentions render anyway,
    # allowed_mentions is none on the client, but markdown could break the layout).
    return "“" + discord.utils.escape_markdown(_cut(question, QUESTION_MAX)) + "”"


def _signed(x: float | None) -> str:
    if x is None:
        return "—"
    return "0.00" if abs(x) < 0.005 else f"{x:+.2f}"


def _votes(n: int) -> str:
    return "1 vote" if n == 1 else f"{n} votes"


def _polls(n: int) -> str:
    return "1 poll" if n == 1 else f"{n} polls"


def _members(n: int) -> str:
    return "1 member" if n == 1 else f"{n} members"


def finish(embed: discord.Embed) -> discord.Embed:
    """Trim an embed to Discord's limits (the last fields go first when the total is over)."""
    if embed.title:
        embed.title = _cut(embed.title, TITLE_MAX)
    if embed.description:
        embed.description = embed.description[:DESCRIPTION_MAX]
    for i, field in enumerate(embed.fields):
        embed.set_field_at(
            i,
            name=_cut(field.name or "\u200b", FIELD_NAME_MAX),
            value=(field.value or "\u200b")[:FIELD_MAX],
            inline=False,
        )
    while len(embed) > TOTAL_MAX and embed.fields:
        embed.remove_field(-1)
    if len(embed) > TOTAL_MAX and embed.description:
        embed.description = embed.description[: max(0, len(embed.description) - (len(embed) - TOTAL_MAX))]
    return embed


def no_data(scope: str = "") -> str:
    return NO_DATA.format(scope=scope)


# --- /leaning show ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShowData:
    period_label: str  # "the last month"
    theme: str | None
    points: list[SeriesPoint]
    overall: Leaning
    participants: int
    unifying: PollFinal | None
    divisive: PollFinal | None
    movers: list[PollFinal]


def _latest(points: Sequence[SeriesPoint]) -> SeriesPoint | None:
    return next((p for p in reversed(points) if p.leaning.n), None)


def _earliest(points: Sequence[SeriesPoint]) -> SeriesPoint | None:
    return next((p for p in points if p.leaning.n), None)


def change_sentence(points: Sequence[SeriesPoint], step: str) -> str:
    """The change from the first to the latest period with votes, honest about noise."""
    first, last = _earliest(points), _latest(points)
    if first is None or last is None or first is last:
        return f"Only one {step} has votes so far, so there is no change to report yet."
    a, b = first.leaning, last.leaning
    delta = (b.mean or 0.0) - (a.mean or 0.0)
    text = (
        f"From {_signed(a.mean)} ({step} of {first.period_start:%d %b}, {_votes(a.n)}) "
        f"to {_signed(b.mean)} ({step} of {last.period_start:%d %b}, {_votes(b.n)}): "
    )
    if abs(delta) < 0.005:
        return text + "no change."
    direction = "towards the community" if delta > 0 else "towards the individual"
    text += f"{abs(delta):.2f} {direction}"
    overlap = a.low is not None and b.low is not None and a.low <= b.high and b.low <= a.high
    if overlap or a.small or b.small:
        text += ", within the noise (the two intervals overlap)" if overlap else ", from a small sample"
    return text + "."


def show_embed(data: ShowData, step: str) -> discord.Embed:
    scope = f" on **{data.theme}**" if data.theme else ""
    latest = _latest(data.points)
    lines = [f"Over {data.period_label}{scope}, this server {data.overall.describe()}."]
    if latest is not None:
        lines.append(f"**Latest {step}** ({latest.period_start:%d %b %Y}): {latest.leaning.describe()}.")
    lines.append(f"**Change:** {change_sentence(data.points, step)}")
    took_part = f"**Took part:** {_members(data.participants)} cast {_votes(data.overall.n)}"
    took_part += f" in {data.overall.polls} poll{'s' if data.overall.polls != 1 else ''}."
    lines.append(took_part)
    embed = discord.Embed(title=f"Where the server leans — {data.period_label}", colour=ACCENT)
    embed.description = "\n\n".join(lines)
    if data.unifying is not None and data.divisive is not None:
        embed.add_field(name="Most unifying", value=_poll_line(data.unifying), inline=False)
        embed.add_field(name="Most divisive", value=_poll_line(data.divisive), inline=False)
    else:
        embed.add_field(
            name="Unifying and divisive",
            value="Needs at least two polls with 10 or more votes in this period.",
            inline=False,
        )
    embed.set_footer(text="The chart marks the debates that moved the leaning most. /leaning methodology explains it.")
    return finish(embed)


def _poll_line(p: PollFinal) -> str:
    top = max(p.options, key=lambda o: o[2]) if p.options else None
    lean = p.leaning
    tail = f" Most chose *{discord.utils.escape_markdown(_cut(top[0], 60))}*." if top else ""
    return f"{_quote(p.question)} ({p.closed_at:%d %b}): {label_for(lean.mean)}, {_votes(lean.n)}.{tail}"


def marks(movers: Sequence[PollFinal]) -> list[tuple[date, str]]:
    return [(p.closed_at.date(), _cut(p.question, 40)) for p in movers]


def movers(finals: Sequence[PollFinal], overall: Leaning, *, limit: int = 3) -> list[PollFinal]:
    """The polls that pulled the period's leaning most: votes x distance from the period's mean."""
    if overall.mean is None:
        return []
    scored = [
        (p.moments.n * abs(p.moments.mean - overall.mean), p.poll_id, p)
        for p in finals
        if p.moments.n >= SMALL_SAMPLE and p.moments.mean is not None
    ]
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [p for score, _, p in scored[:limit] if score > 0]


# --- /leaning themes -------------------------------------------------------------------------------


def themes_embed(rows: Sequence[tuple[str, Leaning]], period_label: str) -> discord.Embed:
    embed = discord.Embed(title=f"Leaning by theme — {period_label}", colour=ACCENT)
    lines = [f"**{discord.utils.escape_markdown(theme)}**: {lean.describe()}." for theme, lean in rows]
    ordered = sorted((r for r in rows if r[1].mean is not None), key=lambda r: r[1].mean)
    if len(ordered) >= 2:
        lines.append(
            f"\nMost towards the individual: **{ordered[0][0]}**. Most towards the community: **{ordered[-1][0]}**."
        )
    embed.description = "\n".join(lines)
    embed.set_footer(text="Each theme pools its polls, weighted by voters. Faded bars rest on under 10 votes.")
    return finish(embed)


# --- /leaning shift --------------------------------------------------------------------------------


def _shift_line(s: PollShift, *, overall: bool = False) -> str:
    if not s.voters:
        return "nobody voted"
    if overall:  # summed over polls: a member who voted in 12 polls counts 12 times
        parts = [f"{s.changed} of {s.voters} votes ended on a different option than they started"]
    else:
        parts = [f"{s.changed} of {_members(s.voters)} changed their mind"]
    if s.changed:
        parts.append(f"{s.toward_community} towards the community, {s.toward_individual} towards the individual")
    if s.withdrew:
        parts.append(f"{s.withdrew} withdrew")
    return "; ".join(parts)


def top_shifts(summary: ShiftSummary, *, limit: int = 5) -> list[tuple[int, PollShift]]:
    """The debates where most members changed their mind (share first, then count)."""
    items = [(poll, s) for poll, s in summary.per_poll.items() if s.changed]
    items.sort(key=lambda kv: (-kv[1].changed / max(kv[1].voters, 1), -kv[1].changed, kv[0]))
    return items[:limit]  # type: ignore[return-value]


def shift_embed(summary: ShiftSummary, questions: Mapping[int, str], period_label: str) -> discord.Embed:
    o = summary.overall
    embed = discord.Embed(title=f"Changes of mind — {period_label}", colour=ACCENT)
    share = f" ({summary.members_changed / summary.members:.0%})" if summary.members else ""
    lines = [
        f"**{_members(summary.members_changed)}** of {summary.members} changed their mind at least once{share}.",
        f"Across {_polls(len(summary.per_poll))}: {_shift_line(o, overall=True)}.",
    ]
    if summary.members < SMALL_SAMPLE:
        lines.append(f"Based on {_members(summary.members)}: a small sample.")
    embed.description = "\n".join(lines)
    top = top_shifts(summary)
    if top:
        items = [f"• {_quote(questions.get(p, 'a poll'))}: {_shift_line(s)}." for p, s in top]
        # Whole items only: a field holds 1,024 characters, and a cut item read as a wrong number.
        embed.add_field(name="The debates that moved most", value=cut_lines(items, FIELD_MAX), inline=False)
    else:
        embed.add_field(name="The debates that moved most", value="Nobody has changed their mind yet.", inline=False)
    embed.set_footer(text="First vote against final vote, per member and poll. Going back to where you began is kept.")
    return finish(embed)


def shift_chart(summary: ShiftSummary, questions: Mapping[int, str], title: str) -> bytes:
    """Stacked bars: kept / towards the individual / towards the community / withdrew, per debate."""
    import numpy as np
    from matplotlib.patches import Rectangle

    from bot.ui import charts

    rows = [("All debates", summary.overall)] + [
        (questions.get(p, "a poll"), s) for p, s in top_shifts(summary, limit=5)
    ]
    if not summary.overall.voters:
        return charts.empty_chart("No votes recorded in this period yet.", title)
    fig = charts._fig()
    charts._title(fig, title, width=70, lines=1)
    ax = fig.add_axes((0.36, 0.16, 0.58, 0.64))
    charts._style(ax, grid_axis="x")
    ys = np.arange(len(rows))[::-1]
    # "withdrew" must not read as "kept" (both were greys): a distinct hue (Okabe-Ito reddish purple)
    # and a hatch, so the two differ in colour-blind and greyscale viewing too.
    segments = (
        ("kept", charts.GRID, lambda s: s.kept, None),
        ("towards the individual", charts.INDIVIDUAL, lambda s: s.toward_individual, None),
        ("towards the community", charts.COMMUNITY, lambda s: s.toward_community, None),
        ("withdrew", WITHDREW, lambda s: s.withdrew, "////"),
    )
    for y, (label, s) in zip(ys, rows, strict=True):
        left = 0.0
        for _, colour, get, hatch in segments:
            share = get(s) / s.voters * 100 if s.voters else 0.0
            ax.barh(y, share, left=left, height=0.6, color=colour, hatch=hatch, edgecolor=charts.BG, linewidth=0)
            left += share
        charts._fit(
            fig,
            0.345,
            y,
            label,
            max_px=260,
            width=38,
            max_lines=2,
            size=charts.FS_SMALL,
            ha="right",
            va="center",
            transform=charts._blend(fig, ax),
        )
        moved = s.changed / s.voters * 100 if s.voters else 0.0
        charts._text(
            fig,
            0.945,
            y,
            f"{moved:.0f}%",
            size=charts.FS_SMALL,
            color=charts.TEXT,
            ha="left",
            va="center",
            transform=charts._blend(fig, ax),
        )
    ax.set_xlim(0, 100)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_yticks([])
    ax.xaxis.set_major_formatter(lambda v, _pos: f"{v:.0f}%")
    x = 0.03
    for name, colour, _, hatch in segments:
        fig.patches.append(
            Rectangle(
                (x, 0.045),
                0.018,
                0.032,
                transform=fig.transFigure,
                facecolor=colour,
                hatch=hatch,
                edgecolor=charts.BG if hatch else colour,
                linewidth=0,
            )
        )
        charts._text(fig, x + 0.025, 0.06, name, size=charts.FS_SMALL, color=charts.MUTED, va="center")
        x += 0.06 + 0.0095 * len(name) * 1.05
    charts._text(
        fig, 0.03, 0.875, "share of voters; right: % who changed", size=charts.FS_SMALL, color=charts.MUTED, va="top"
    )
    return charts._png(fig)


# --- /leaning groups -------------------------------------------------------------------------------


def groups_embed(result: GroupsResult, questions: Mapping[int, str], period_label: str) -> discord.Embed:
    embed = discord.Embed(title=f"Opinion groups — {period_label}", colour=ACCENT)
    shown = [g for g in result.groups if g.size >= MIN_GROUP]
    considered = f"{_members(result.members_considered)} with at least {MIN_VOTES} votes"
    if len(shown) < 2:
        reason = result.reason or "no distinct groups"
        embed.description = (
            f"No opinion groups to show: {reason}. The map places {considered}; "
            f"a group is shown only with at least {MIN_GROUP} members."
        )
    else:
        lines = [f"{considered} fall into {len(shown)} groups (a group is shown only with {MIN_GROUP}+ members)."]
        for g in shown:
            lines.append(f"**{g.name}**: {g.leaning.describe()}.")
        embed.description = "\n".join(lines)
        letters = "/".join(g.label for g in shown)
        if result.consensus:
            value = "\n".join(
                f"• {_quote(questions.get(c.poll, 'a poll'))} ({letters}: {', '.join(_signed(m) for m in c.means)})"
                for c in result.consensus[:4]
            )
            embed.add_field(name="Where all groups agree", value=value, inline=False)
        if result.divisive:
            value = "\n".join(
                f"• {_quote(questions.get(c.poll, 'a poll'))} ({letters}: {', '.join(_signed(m) for m in c.means)})"
                for c in result.divisive[:4]
            )
            embed.add_field(name="What splits them", value=value, inline=False)
    if result.members_excluded:
        embed.add_field(
            name="Not on the map",
            value=f"{_members(result.members_excluded)} voted fewer than {MIN_VOTES} times in this period.",
            inline=False,
        )
    embed.set_footer(text="Groups describe voting patterns on these dilemmas, not people. No names are shown.")
    return finish(embed)


# --- /leaning me -----------------------------------------------------------------------------------


def me_embed(compass: MemberCompass, period_label: str) -> discord.Embed:
    embed = discord.Embed(title=f"Your compass — {period_label}", colour=ACCENT)
    m = compass.member
    lines = [
        f"**Your votes:** {m.describe()}.",
        f"**This server:** {compass.server.describe()}.",
    ]
    if m.small:
        lines.append(f"Based on {_votes(m.n)}: read it as a hint, not a finding.")
    embed.description = "\n".join(lines)
    for theme, mine, server in compass.themes[:12]:
        embed.add_field(
            name=theme,
            value=f"You: {_signed(mine.mean)} ({_votes(mine.n)}) · server: {_signed(server.mean)} ({_votes(server.n)})",
            inline=False,
        )
    embed.set_footer(text="Only you can see this. It describes your votes on these dilemmas, not who you are.")
    return finish(embed)


def leaning_chart(points: Sequence[SeriesPoint], title: str, marks: Sequence[tuple[date, str]] = ()) -> bytes:
    """``charts.leaning_chart``, importing the chart stack on first use."""
    from bot.ui import charts

    return charts.leaning_chart(points, title, marks)


def themes_chart(rows: Sequence[tuple[str, Leaning]], title: str) -> bytes:
    """``charts.themes_chart``, importing the chart stack on first use."""
    from bot.ui import charts

    return charts.themes_chart(rows, title)


def groups_chart(result: GroupsResult, title: str) -> bytes:
    """``charts.groups_chart``, importing the chart stack on first use."""
    from bot.ui import charts

    return charts.groups_chart(result, title)


def me_chart(compass: MemberCompass, title: str) -> bytes:
    """The themes chart with a "you" bar above the server's for each theme (up to six themes)."""
    from bot.ui import charts

    rows: list[tuple[str, Leaning]] = [("You · all themes", compass.member), ("Server · all themes", compass.server)]
    for theme, mine, server in compass.themes[:5]:
        rows += [(f"You · {theme}", mine), (f"Server · {theme}", server)]
    return charts.themes_chart(rows, title)


def placement_embed(
    checks: Sequence[OptionCheck],
    labels: Mapping[tuple[int, int], str],
    questions: Mapping[int, str],
    *,
    budget: int = DESCRIPTION_MAX,
) -> discord.Embed:
    """For moderators: options whose voters lean the other way than the option's position says.

    ``budget``: characters the embed may use (a message's embeds share Discord's 6,000)."""
    embed = discord.Embed(title="Options whose voters disagree with their placement", colour=ACCENT)
    head = (
        f"For each option with at least {MIN_PLACEMENT_VOTERS} voters who also voted in other polls: the average "
        "leaning of those voters *on the other polls*. An option is flagged when the options of its poll, ordered "
        "by where their voters lean, come out in a different order than their positions: a hint that it sits "
        "in the wrong place on the axis, or is worded so that it draws a different crowd."
    )
    flagged = [c for c in checks if c.flagged]
    polls = {c.poll for c in checks}
    if not checks:
        embed.description = head + f"\n\nNo option has {MIN_PLACEMENT_VOTERS} such voters yet."
        return finish(embed)
    summary = f"{len(checks)} options of {len(polls)} polls checked; " + (
        f"**{len(flagged)} flagged**." if flagged else "none contradicts its placement."
    )
    lines = [head, "", summary]
    by_key = {(c.poll, c.option): c for c in checks}
    for c in flagged:
        others = ", ".join(
            f"*{_esc(labels.get((c.poll, o), '?'))}* ({by_key[(c.poll, o)].position:+.1f}: "
            f"{_signed(by_key[(c.poll, o)].voter_leaning)})"
            for o in c.against
        )
        lines.append(
            f"⚠ {_quote(questions.get(c.poll, ''))} — *{_esc(labels.get((c.poll, c.option), '?'))}* "
            f"({c.position:+.1f}): its {c.voters} voters lean {_signed(c.voter_leaning)} elsewhere; vs {others}"
        )
    embed.description = cut_lines(lines, min(DESCRIPTION_MAX, budget - len(embed.title or "")))
    return finish(embed)


def _esc(text: str) -> str:
    return discord.utils.escape_mentions(discord.utils.escape_markdown(_cut(text, 60)))


def cut_lines(lines: Sequence[str], limit: int) -> str:
    """Whole lines up to ``limit`` characters, then "… and N more" (never a line cut in the middle)."""
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        more = f"… and {len(lines) - i} more"
        if used + len(line) + 1 > limit - len(more) - 1:
            out.append(more)
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out)


def methodology_embed() -> discord.Embed:
    title, _, body = METHODOLOGY.partition("\n")
    embed = discord.Embed(title=title.strip("* ") or "How the numbers are made", colour=ACCENT)
    embed.description = body.strip()
    return finish(embed)


def png(data: bytes, name: str) -> discord.File:
    return discord.File(io.BytesIO(data), filename=name)
