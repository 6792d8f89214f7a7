"""The site's pages: thin adapters over the same services, parsers and validators as the slash commands."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import discord
from aiohttp import web

from bot.domain.errors import UserError
from bot.domain.leaning import label_for
from bot.domain.packs import MAX_OPTIONS, MAX_PACK_BYTES, THEMES, PackError
from bot.domain.schedule import ScheduleInputError, format_days, next_slot, parse_days, parse_time, parse_timezone
from bot.services.debates import DebateService, get_service
from bot.services.packs import PackService
from bot.services.schedule_checks import check_setup
from bot.services.site import SiteService
from bot.services.suggestions import SuggestionService
from bot.storage import debates as debate_store
from bot.storage import leaning as leaning_store
from bot.storage import packs as pack_store
from bot.storage import privacy as privacy_store
from bot.storage import web as web_store
from bot.storage.export import export_csv
from bot.storage.schedules import days_to_mask
from bot.ui import debates as debates_ui
from bot.web import svg
from bot.web.auth import Access, access, fresh_guilds, require_session
from bot.web.discord_oauth import can_manage
from bot.web.prompt_form import WEB_PACK, PromptForm, essay_choices
from bot.web.server import REQUEST_SESSION

if TYPE_CHECKING:
    from bot.web.server import WebServer

log = logging.getLogger(__name__)

ARCHIVE_PAGE = 30
PUBLIC_RECENT = 10
# A page of debates as read for the results block: (debates, result line per debate id, finals per poll id).
_Results = tuple[list[Any], dict[int, Any], dict[int, Any]]
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def add_routes(server: WebServer, app: web.Application) -> None:
    p = Pages(server)
    r = app.router
    r.add_get("/", p.index)
    r.add_get("/me/export.json", p.export_me)
    r.add_post("/me/forget", p.forget_me)
    r.add_get("/s/{guild_id}", p.server)
    r.add_get("/s/{guild_id}/compass", p.compass)
    r.add_get("/s/{guild_id}/schedule", p.schedule)
    r.add_post("/s/{guild_id}/schedule", p.schedule_save)
    r.add_get("/s/{guild_id}/prompts", p.prompts)
    r.add_post("/s/{guild_id}/prompts", p.prompt_save)
    r.add_post("/s/{guild_id}/prompts/check", p.prompt_check)
    r.add_get("/s/{guild_id}/packs/{slug}.yaml", p.pack_export)
    r.add_post("/s/{guild_id}/packs/import", p.pack_import)
    r.add_get("/s/{guild_id}/suggestions", p.suggestions)
    r.add_post("/s/{guild_id}/suggestions/{suggestion_id}", p.suggestion_decide)
    r.add_get("/s/{guild_id}/archive", p.archive)
    r.add_get("/s/{guild_id}/archive.csv", p.archive_csv)
    r.add_get("/s/{guild_id}/audit", p.audit)
    r.add_post("/s/{guild_id}/publish", p.publish)
    r.add_get("/p/{guild_id}", p.public)


def _download(text: str, content_type: str, filename: str) -> web.Response:
    return web.Response(
        text=text, content_type=content_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


def _tz(name: str | None) -> ZoneInfo:
    return ZoneInfo(name or "UTC")


class Pages:
    def __init__(self, server: WebServer) -> None:
        self.s = server
        self.site = SiteService(server.db, server.clock)

    @property
    def debates(self) -> DebateService:
        return get_service(self.s.bot)

    @property
    def packs(self) -> PackService:
        return self.s.bot.packs

    @property
    def suggestion_service(self) -> SuggestionService:
        return self.s.bot.suggestions

    async def _recorded(self, a: Access, action: str, detail: str, *, then: str) -> web.HTTPSeeOther:
        """A change made through the site, written to the server's audit log; returns the redirect to
        ``then`` for the handler to raise."""
        await self.site.record(
            a.guild.id, user_id=a.session.user_id, user_name=a.session.user_name, action=action, detail=detail
        )
        return web.HTTPSeeOther(then)

    # -- home ------------------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        session = request.get(REQUEST_SESSION)
        servers = []
        if session is not None:
            for entry in await fresh_guilds(self.s, request, force=False):
                guild = self.s.bot.get_guild(int(entry["id"]))
                if guild is not None:
                    servers.append({"id": guild.id, "name": guild.name, "manage": can_manage(entry)})
        return self.s.render(request, "index.html", servers=servers, title="Common Ground")

    async def server(self, request: web.Request) -> web.StreamResponse:
        a = await access(self.s, request, manage=False)
        published = await self.site.is_published(a.guild.id)
        return self.s.render(request, "server.html", a=a, published=published, title=a.guild.name)

    # -- member pages ------------------------------------------------------------------------------------

    async def compass(self, request: web.Request) -> web.StreamResponse:
        a = await access(self.s, request, manage=False)
        async with self.s.db.read() as conn:
            compass = await leaning_store.member_compass(conn, a.guild.id, a.session.user_id)
        return self.s.render(
            request, "compass.html", a=a, compass=compass, label_for=label_for, title=f"My compass · {a.guild.name}"
        )

    async def export_me(self, request: web.Request) -> web.StreamResponse:
        session = require_session(request)
        async with self.s.db.read() as conn:
            data = await privacy_store.export_member(conn, session.user_id)
        return web.Response(
            text=json.dumps(data, indent=2, ensure_ascii=False, default=str),
            content_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="common-ground-my-data.json"'},
        )

    async def forget_me(self, request: web.Request) -> web.StreamResponse:
        """The same deletion as `/privacy forget-me`, then every web session of the member ends."""
        session = require_session(request)
        form = await request.post()
        if form.get("confirm") != "yes":
            raise web.HTTPBadRequest(text="Tick the box to confirm that your votes should be deleted everywhere.")
        async with self.s.db.write() as conn:
            forgotten = await privacy_store.forget_member(conn, session.user_id)  # as /privacy forget-me
        await self.s.oauth.revoke(session.access_token)
        response = self.s.render(request, "forgotten.html", forgotten=forgotten, title="Your data was deleted")
        self.s.clear_cookie(response, self.s.session_cookie)
        return response

    # -- the schedule ------------------------------------------------------------------------------------

    def _schedule_view(self, request, a, schedule, values: dict[str, Any], error: str | None, saved: bool, status=200):
        guild = a.guild
        tz = _tz(values.get("timezone") or (schedule.timezone if schedule else None))
        upcoming = []
        if schedule is not None and schedule.active:
            after = self.s.clock.now()
            for _ in range(5):
                slot = next_slot(after, schedule.at, ZoneInfo(schedule.timezone), schedule.days)
                upcoming.append(slot.due_utc.astimezone(ZoneInfo(schedule.timezone)))
                after = slot.due_utc
        return self.s.render(
            request,
            "schedule.html",
            status=status,
            a=a,
            schedule=schedule,
            values=values,
            error=error,
            saved=saved,
            upcoming=upcoming,
            tz=tz,
            channels=sorted(guild.text_channels, key=lambda c: c.position),
            roles=[r for r in guild.roles if not r.is_default() and not r.managed],
            day_names=DAY_NAMES,
            format_days=format_days,
            title=f"Schedule · {guild.name}",
        )

    @staticmethod
    def _schedule_values(schedule) -> dict[str, Any]:
        if schedule is None:
            return {
                "channel": "",
                "time": "18:00",
                "timezone": "UTC",
                "days": list(range(7)),
                "ping_role": "",
                "thread": True,
                "pin": False,
                "poll_hours": 24,
                "poll_style": "buttons",
                "review_channel": "",
                "catch_up_hours": 3,
            }
        return {
            "channel": str(schedule.channel_id),
            "time": schedule.post_time,
            "timezone": schedule.timezone,
            "days": sorted(schedule.days),
            "ping_role": str(schedule.ping_role_id or ""),
            "thread": schedule.thread,
            "pin": schedule.pin,
            "poll_hours": schedule.poll_hours,
            "poll_style": schedule.poll_style,
            "review_channel": str(schedule.review_channel_id or ""),
            "catch_up_hours": schedule.catch_up_minutes // 60,
        }

    async def schedule(self, request: web.Request) -> web.StreamResponse:
        a = await access(self.s, request, manage=True)
        schedule, _due, _last = await self.debates.status(a.guild.id)
        return self._schedule_view(
            request, a, schedule, self._schedule_values(schedule), None, "saved" in request.query
        )

    async def schedule_save(self, request: web.Request) -> web.StreamResponse:
        a = await access(self.s, request, manage=True)
        form = await request.post()
        values = {
            "channel": str(form.get("channel", "")),
            "time": str(form.get("time", "")),
            "timezone": str(form.get("timezone", "")),
            "days": [int(d) for d in form.getall("days", []) if str(d).isdigit() and int(d) < 7],
            "ping_role": str(form.get("ping_role", "")),
            "thread": form.get("thread") == "on",
            "pin": form.get("pin") == "on",
            "poll_hours": str(form.get("poll_hours", "")),
            "poll_style": str(form.get("poll_style", "")),
            "review_channel": str(form.get("review_channel", "")),
            "catch_up_hours": str(form.get("catch_up_hours", "")),
        }
        guild = a.guild
        try:
            channel = _channel(guild, values["channel"], "Channel")
            at = parse_time(values["time"])
            tz = parse_timezone(values["timezone"])
            if not values["days"]:
                raise UserError("Pick at least one day.")
            chosen = parse_days(",".join(DAY_NAMES[d] for d in values["days"]))
            ping_role = _role(guild, values["ping_role"])
            review = _channel(guild, values["review_channel"], "Review channel") if values["review_channel"] else None
            poll_hours = _whole(values["poll_hours"], "Poll length (hours)", 1, 768)
            catch_up = _whole(values["catch_up_hours"], "Catch-up window (hours)", 0, 24)
            if values["poll_style"] not in ("buttons", "native"):
                raise UserError("Poll style must be buttons or a native Discord poll.")
            check_setup(
                guild,
                channel,
                thread=values["thread"],
                pin=values["pin"],
                poll_style=values["poll_style"],
                ping_role=ping_role,
                review_channel=review,
                where=lambda c: f"#{c.name}",
            )
        except (UserError, ScheduleInputError) as exc:
            schedule, _, _ = await self.debates.status(guild.id)
            message = exc.message if isinstance(exc, UserError) else str(exc)
            return self._schedule_view(request, a, schedule, values, message, False, status=400)
        # The same call as `/schedule setup`: saved and re-armed in one transaction.
        _schedule, due = await self.debates.setup(
            guild.id,
            channel_id=channel.id,
            post_time=f"{at:%H:%M}",
            timezone=tz.key,
            weekdays=days_to_mask(chosen),
            ping_role_id=ping_role.id if ping_role else None,
            thread=values["thread"],
            pin=values["pin"],
            poll_hours=poll_hours,
            poll_style=values["poll_style"],
            review_channel_id=review.id if review else None,
            catch_up_minutes=catch_up * 60,
        )
        raise await self._recorded(
            a,
            "schedule",
            f"#{channel.name} at {at:%H:%M} {tz.key}, {format_days(chosen)}; poll {poll_hours} h "
            f"({values['poll_style']}); next post {due.astimezone(tz):%Y-%m-%d %H:%M}",
            then=f"/s/{guild.id}/schedule?saved=1",
        )

    # -- prompts and packs -------------------------------------------------------------------------------

    async def _prompts_view(self, request, a, form: PromptForm, *, status=200, saved=None, import_errors=None):
        infos = await self.packs.pack_infos(a.guild.id)
        return self.s.render(
            request,
            "prompts.html",
            status=status,
            a=a,
            form=form,
            infos=infos,
            themes=THEMES,
            choices=essay_choices(self.debates.essay),
            max_options=MAX_OPTIONS,
            saved=saved,
            import_errors=import_errors or [],
            web_pack=WEB_PACK,
            title=f"Prompts · {a.guild.name}",
        )

    async def prompts(self, request: web.Request) -> web.StreamResponse:
        a = await access(self.s, request, manage=True)
        return await self._prompts_view(request, a, PromptForm.empty(), saved=request.query.get("saved"))

    async def _checked(self, request, a) -> tuple[PromptForm, bytes | None]:
        form = PromptForm.from_post(await request.post(), self.debates.essay)
        async with self.s.db.read() as conn:
            row = await pack_store.get(conn, a.guild.id, WEB_PACK)
        data = form.validate(row.source if row else None, self.debates.essay)
        return form, data

    async def prompt_check(self, request: web.Request) -> web.StreamResponse:
        """Live validation: the validator's messages per field, as JSON, nothing stored."""
        a = await access(self.s, request, manage=True)
        form, _data = await self._checked(request, a)
        return web.json_response({"errors": form.errors, "preview": form.preview(self.debates.essay)})

    async def prompt_save(self, request: web.Request) -> web.StreamResponse:
        a = await access(self.s, request, manage=True)
        form, data = await self._checked(request, a)
        if data is None:
            return await self._prompts_view(request, a, form, status=400)
        return await self._save_pack(request, a, data, WEB_PACK, form)

    async def _save_pack(
        self, request: web.Request, a: Access, data: bytes, name: str, form: PromptForm | None = None
    ) -> web.StreamResponse:
        """Store a pack as `/pack upload` does: the web pack with the prompt ``form`` adds, or an imported
        file. Refused: the prompts page again (400) naming the problems, nothing stored. Stored: the
        audit log, then back to the prompts page."""
        try:
            if form is None and len(data) > MAX_PACK_BYTES:
                raise UserError(f"That file is over {MAX_PACK_BYTES // 1024} KiB; a pack may be at most that.")
            pack, created = await self.packs.upload_pack(a.guild.id, data, name)
        except PackError as exc:
            if form is not None:
                form.absorb(exc)
                return await self._prompts_view(request, a, form, status=400)
            problems = [str(p) for p in exc.problems]
            return await self._prompts_view(request, a, PromptForm.empty(), status=400, import_errors=problems)
        except UserError as exc:
            if form is not None:
                raise
            return await self._prompts_view(request, a, PromptForm.empty(), status=400, import_errors=[exc.message])
        if form is not None:
            action, saved = "prompt added", form.values["id"]
            detail = f"{pack.id}/{form.values['id']}: {form.values['question'][:200]}"
        else:
            action, saved = "pack imported", f"pack:{pack.id}"
            detail = f"{pack.id} ({len(pack.prompts)} prompts, {'new' if created else 'updated'})"
        raise await self._recorded(a, action, detail, then=f"/s/{a.guild.id}/prompts?saved={saved}")

    async def pack_export(self, request: web.Request) -> web.StreamResponse:
        a = await access(self.s, request, manage=True)
        slug = request.match_info["slug"]
        if slug == self.packs.catalog.builtin.id:
            text = self.packs.catalog.builtin.source
        else:
            async with self.s.db.read() as conn:
                row = await pack_store.get(conn, a.guild.id, slug)
            if row is None:
                raise web.HTTPNotFound()
            text = row.source
        return _download(text, "application/yaml", f"{slug}.yaml")

    async def pack_import(self, request: web.Request) -> web.StreamResponse:
        a = await access(self.s, request, manage=True)
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return await self._prompts_view(
                request, a, PromptForm.empty(), status=400, import_errors=["Choose a .yaml file to import."]
            )
        data = upload.file.read(MAX_PACK_BYTES + 1)
        name = (upload.filename or "pack.yaml")[:100]
        return await self._save_pack(request, a, data, name)

    # -- suggestions -------------------------------------------------------------------------------------

    async def suggestions(self, request: web.Request) -> web.StreamResponse:
        a = await access(self.s, request, manage=True)
        async with self.s.db.read() as conn:
            pending = await pack_store.pending_suggestions(conn, a.guild.id)
        return self.s.render(request, "suggestions.html", a=a, pending=pending, title=f"Suggestions · {a.guild.name}")

    async def suggestion_decide(self, request: web.Request) -> web.StreamResponse:
        a = await access(self.s, request, manage=True)
        form = await request.post()
        decision = form.get("decision")
        if decision not in ("approve", "reject"):
            raise web.HTTPBadRequest(text="Choose approve or reject.")
        try:
            suggestion_id = int(request.match_info["suggestion_id"])
        except ValueError:
            raise web.HTTPNotFound() from None
        approve = decision == "approve"
        try:
            suggestion, body = await self.suggestion_service.decide_suggestion(
                a.guild.id, suggestion_id, approve=approve
            )
        except UserError as exc:
            raise web.HTTPBadRequest(text=exc.message) from None
        await self._close_review_message(suggestion, body, approve)
        raise await self._recorded(
            a, "suggestion", f"#{suggestion_id} {decision}d", then=f"/s/{a.guild.id}/suggestions"
        )

    async def _close_review_message(self, suggestion: Any, body: dict[str, Any], approve: bool) -> None:
        """What the review buttons do in Discord: the review message shows the decision, without buttons."""
        if suggestion.review_channel_id is None or suggestion.review_message_id is None:
            return
        channel = self.s.bot.get_channel(suggestion.review_channel_id)
        if not isinstance(channel, discord.TextChannel):
            return
        embed = debates_ui.suggestion_embed(
            suggestion.id, body, user_id=None, status="approved" if approve else "rejected"
        )
        try:
            await channel.get_partial_message(suggestion.review_message_id).edit(embed=embed, view=None)
        except discord.HTTPException as exc:
            log.warning("review message of suggestion %s not updated: %s", suggestion.id, exc.status)

    # -- archive, audit, publish ---------------------------------------------------------------------------

    async def archive(self, request: web.Request) -> web.StreamResponse:
        a = await access(self.s, request, manage=True)
        try:
            page = max(int(request.query.get("page", "1")), 1)
        except ValueError:
            page = 1
        data = await archive_data(self.s.db, a.guild.id, page)
        return self.s.render(request, "archive.html", a=a, title=f"Archive · {a.guild.name}", **data)

    async def archive_csv(self, request: web.Request) -> web.StreamResponse:
        a = await access(self.s, request, manage=True)
        text = await export_csv(self.s.db, a.guild.id)  # the same export as /poll export
        return _download(text, "text/csv", f"common-ground-{a.guild.id}.csv")

    async def audit(self, request: web.Request) -> web.StreamResponse:
        a = await access(self.s, request, manage=True)
        entries = await self.site.audit_log(a.guild.id)
        return self.s.render(request, "audit.html", a=a, entries=entries, title=f"Audit log · {a.guild.name}")

    async def publish(self, request: web.Request) -> web.StreamResponse:
        a = await access(self.s, request, manage=True)
        form = await request.post()
        on = form.get("published") == "on"
        await self.site.publish(a.guild.id, on, user_id=a.session.user_id, user_name=a.session.user_name, via="website")
        raise web.HTTPSeeOther(f"/s/{a.guild.id}")

    # -- the public page ---------------------------------------------------------------------------------

    async def public(self, request: web.Request) -> web.StreamResponse:
        """No member in any form: aggregates only, small samples flagged, a table beside every chart."""
        try:
            guild_id = int(request.match_info["guild_id"])
        except ValueError:
            raise web.HTTPNotFound() from None
        guild = self.s.bot.get_guild(guild_id)
        data = await public_data(self.s.db, self.s.clock, guild_id, guild.name if guild else None)
        if data is None:
            raise web.HTTPNotFound()
        response = self.s.render(request, "public.html", public=True, **data)
        response.headers["Cache-Control"] = "public, max-age=300"
        return response


async def _read_results(conn: Any, guild_id: int, *, offset: int, limit: int) -> tuple[_Results, int]:
    """Debates newest first, with each one's poll line and, once closed, its final counts."""
    rows, total = await debate_store.history(conn, guild_id, offset=offset, limit=limit)
    results = await debate_store.result_lines(conn, [d.id for d in rows])
    closed = [r.poll_id for r in results.values() if r.status != "open"]
    finals = {f.poll_id: f for f in await leaning_store.poll_finals(conn, guild_id, poll_ids=closed)}
    return (rows, results, finals), total


def _cards(read: _Results) -> list[dict[str, Any]]:
    """What the debate_card macro (templates/_results.html) shows per debate; bars drawn after the read."""
    rows, results, finals = read
    items = []
    for d in rows:
        line = results.get(d.id)
        final = finals.get(line.poll_id) if line is not None else None
        items.append({"debate": d, "line": line, "final": final, "bars": svg.bars(final) if final else None})
    return items


async def archive_data(db: Any, guild_id: int, page: int) -> dict[str, Any]:
    """A page of the archive: debates newest first, with each closed poll's final counts and bars."""
    async with db.read() as conn:
        read, total = await _read_results(conn, guild_id, offset=(page - 1) * ARCHIVE_PAGE, limit=ARCHIVE_PAGE)
    items = _cards(read)
    pages = max((total + ARCHIVE_PAGE - 1) // ARCHIVE_PAGE, 1)
    return {"items": items, "page": page, "pages": pages, "total": total, "label_for": label_for}


async def public_data(db: Any, clock: Any, guild_id: int, guild_name: str | None) -> dict[str, Any] | None:
    """What the public page shows, or None when the server has not published it."""
    async with db.read() as conn:
        if not await web_store.is_published(conn, guild_id):
            return None
        today = clock.now().date()
        since = today - timedelta(days=364)
        points = await leaning_store.weekly_series(conn, guild_id, since=since)
        themes = await leaning_store.theme_leanings(conn, guild_id)
        overall = await leaning_store.period_leaning(conn, guild_id)
        read, total = await _read_results(conn, guild_id, offset=0, limit=PUBLIC_RECENT)
    recent = _cards(read)
    return {
        "guild_name": guild_name or "A Common Ground server",
        "points": points,
        "chart": svg.leaning_chart(points),
        "themes": themes,
        "theme_names": THEMES,
        "overall": overall,
        "recent": recent,
        "total": total,
        "label_for": label_for,
        "since": since,
        "today": today,
        "title": "Where this community leans",
    }


def _channel(guild: discord.Guild, value: str, what: str) -> discord.TextChannel:
    channel = guild.get_channel(int(value)) if value.isdigit() else None
    if not isinstance(channel, discord.TextChannel):
        raise UserError(f"{what}: pick a text channel of this server from the list.")
    return channel


def _role(guild: discord.Guild, value: str) -> discord.Role | None:
    if not value:
        return None
    role = guild.get_role(int(value)) if value.isdigit() else None
    if role is None:
        raise UserError("Ping role: pick a role of this server from the list, or none.")
    return role


def _whole(value: str, what: str, low: int, high: int) -> int:
    if not value.strip().isdigit() or not low <= int(value) <= high:
        raise UserError(f"{what}: use a whole number from {low} to {high}.")
    return int(value)
