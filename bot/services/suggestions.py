"""Prompt suggestions: a member proposes a prompt, moderators approve it into the server's own pack
(``pack_store.SUGGESTIONS_SLUG``) or reject it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.domain.errors import NotFound, UserError
from bot.domain.essay import Essay
from bot.domain.packs import parse_pack
from bot.services.packs import store_pack
from bot.storage import guilds as guild_store
from bot.storage import packs as pack_store
from bot.storage import schedules as schedule_store

if TYPE_CHECKING:
    from bot.domain.clock import Clock
    from bot.storage.database import AsyncConnection, Database


class SuggestionService:
    """`/debate suggest` and the review buttons and page; validates a suggestion against the essay."""

    def __init__(self, db: Database, clock: Clock, essay: Essay) -> None:
        self.db, self.clock, self.essay = db, clock, essay

    def _suggestion_prompt(self, fields: dict[str, Any]) -> dict[str, Any]:
        from bot.ui.debates import parse_option_lines

        excerpt = " ".join(str(fields["excerpt"]).split())
        paragraph = self.essay.find(excerpt)
        if paragraph is None:
            raise UserError(
                "The excerpt must be copied word for word from the essay (one to three whole sentences); "
                "`/debate prompts` shows passages you can copy."
            )
        try:
            options = parse_option_lines(str(fields["options"]))
        except ValueError as exc:
            raise UserError(f"The options couldn't be read: {exc}.") from None
        return {
            "paragraph": paragraph,
            "excerpt": excerpt,
            "theme": str(fields["theme"]).strip().lower().replace(" ", "-"),
            "question": " ".join(str(fields["question"]).split()),
            "dilemma": {"question": " ".join(str(fields["poll_question"]).split()), "options": options},
        }

    async def _server_pack_yaml(self, conn: AsyncConnection, guild_id: int, extra: list[dict[str, Any]]) -> bytes:
        import yaml

        row = await pack_store.get(conn, guild_id, pack_store.SUGGESTIONS_SLUG)
        prompts: list[dict[str, Any]] = []
        if row is not None:
            prompts = list((yaml.safe_load(row.source) or {}).get("prompts") or [])
        doc = {
            "pack": {
                "id": pack_store.SUGGESTIONS_SLUG,
                "name": "Server suggestions",
                "description": "Prompts suggested by members of this server and approved by its moderators.",
                "version": 1,
            },
            "prompts": prompts + extra,
        }
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100).encode("utf-8")

    async def suggest(self, guild_id: int, user_id: int, fields: dict[str, Any]) -> tuple[int, int, dict[str, Any]]:
        """Validate a member's suggestion as part of the server pack and store it; returns
        ``(suggestion id, review channel id, body)``. UserError/PackError say what to fix."""
        body = self._suggestion_prompt(fields)
        now = self.clock.now()
        async with self.db.write() as conn:
            schedule = await schedule_store.get(conn, guild_id)
            if schedule is None or schedule.review_channel_id is None:
                raise UserError(
                    "Suggestions aren't open here yet: a moderator can name a review channel with `/schedule setup`."
                )
            data = await self._server_pack_yaml(conn, guild_id, [{"id": "suggestion-new", **body}])
            parse_pack(data, "your suggestion", self.essay)
            await guild_store.ensure(conn, guild_id, now=now)
            suggestion_id = await pack_store.add_suggestion(
                conn, guild_id, user_id=user_id, body=body, review_channel_id=schedule.review_channel_id, now=now
            )
        return suggestion_id, schedule.review_channel_id, body

    async def set_review_message(self, suggestion_id: int, message_id: int) -> None:
        async with self.db.write() as conn:
            await pack_store.set_review_message(conn, suggestion_id, message_id)

    async def decide_suggestion(self, guild_id: int, suggestion_id: int, *, approve: bool):
        """Approve (the prompt joins the server's own pack) or reject a pending suggestion of this server."""
        now = self.clock.now()
        async with self.db.write() as conn:
            suggestion = await pack_store.get_suggestion(conn, suggestion_id, guild_id)
            if suggestion is None:
                raise NotFound("That suggestion isn't in this server.")
            if suggestion.status != "pending":
                raise UserError(f"That suggestion was already {suggestion.status}.")
            if approve:
                data = await self._server_pack_yaml(
                    conn, guild_id, [{"id": f"suggestion-{suggestion_id}", **suggestion.body}]
                )
                pack = parse_pack(data, pack_store.SUGGESTIONS_SLUG, self.essay)
                await store_pack(conn, guild_id, pack, data, now=now)
            await pack_store.decide(conn, suggestion_id, "approved" if approve else "rejected", now=now)
        return suggestion, suggestion.body
