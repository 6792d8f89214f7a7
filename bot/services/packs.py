"""Prompt packs of a server: the catalog a debate draws from, uploads, enable/disable, skipped prompts.

:class:`Catalog` holds the built-in pack and parses each server pack once per version; the debate
service chooses prompts through it. :class:`PackService` is what `/pack`, `/debate prompts` and the
site's pack pages call.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.domain.errors import NotFound, UserError
from bot.domain.essay import Essay
from bot.domain.packs import Pack, PackError, Prompt, parse_pack
from bot.storage import guilds as guild_store
from bot.storage import packs as pack_store

if TYPE_CHECKING:
    from datetime import datetime

    from bot.domain.clock import Clock
    from bot.storage.database import AsyncConnection, Database
    from bot.storage.debates import Debate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackInfo:
    slug: str
    name: str
    enabled: bool
    builtin: bool
    prompts: tuple[Prompt, ...]


class Catalog:
    """The packs a server can draw from: the built-in pack plus its own, parsed once per version."""

    def __init__(self, essay: Essay, builtin: Pack) -> None:
        self.essay = essay
        self.builtin = builtin
        self._parsed: dict[str, Pack] = {}

    def parse(self, row: pack_store.PackRow) -> Pack | None:
        digest = hashlib.sha256(row.source.encode()).hexdigest()
        pack = self._parsed.get(digest)
        if pack is None:
            try:
                pack = parse_pack(row.source.encode(), row.slug, self.essay)
            except PackError:
                log.warning("stored pack %s of guild %s no longer validates; ignored", row.slug, row.guild_id)
                return None
            if len(self._parsed) > 512:
                self._parsed.clear()
            self._parsed[digest] = pack
        return pack

    async def packs(self, conn: AsyncConnection, guild_id: int) -> list[PackInfo]:
        settings = await guild_store.get(conn, guild_id)
        builtin_on = settings.builtin_pack_enabled if settings else True
        out = [PackInfo(self.builtin.id, self.builtin.name, builtin_on, True, self.builtin.prompts)]
        for row in await pack_store.list_for(conn, guild_id):
            pack = self.parse(row)
            out.append(PackInfo(row.slug, row.name, row.enabled, False, pack.prompts if pack else ()))
        return out

    async def active(self, conn: AsyncConnection, guild_id: int) -> dict[str, Prompt]:
        """``{"<pack slug>/<prompt id>": prompt}`` over the server's enabled packs."""
        return {
            f"{info.slug}/{p.id}": p for info in await self.packs(conn, guild_id) if info.enabled for p in info.prompts
        }

    async def for_debate(self, conn: AsyncConnection, debate: Debate) -> Prompt | None:
        """The debate's prompt with the dilemma the debate chose (``prompt.dilemma``), or None if gone."""
        prompt = await self.find(conn, debate.guild_id, debate.prompt_key)
        return prompt.using(debate.dilemma_id) if prompt is not None else None

    async def find(self, conn: AsyncConnection, guild_id: int, key: str) -> Prompt | None:
        """A prompt by key in any of the server's packs, enabled or not."""
        slug, _, prompt_id = key.partition("/")
        for info in await self.packs(conn, guild_id):
            if info.slug == slug:
                return next((p for p in info.prompts if p.id == prompt_id), None)
        return None


async def store_pack(conn: AsyncConnection, guild_id: int, pack: Pack, data: bytes, *, now: datetime) -> bool:
    """Save a validated pack with its source (``data``); True if the server did not have it yet."""
    return await pack_store.save(
        conn,
        guild_id,
        slug=pack.id,
        name=pack.name,
        source=data.decode("utf-8"),
        prompt_count=len(pack.prompts),
        now=now,
    )


class PackService:
    """A server's packs and prompt choices; shares the debate service's :class:`Catalog`."""

    def __init__(self, db: Database, clock: Clock, catalog: Catalog) -> None:
        self.db = db
        self.clock = clock
        self.catalog = catalog

    @property
    def essay(self) -> Essay:
        return self.catalog.essay

    async def upload_pack(self, guild_id: int, data: bytes, filename: str) -> tuple[Pack, bool]:
        """Validate (all-or-nothing) and store a server's pack; PackError lists every problem."""
        pack = parse_pack(data, filename, self.essay)
        if pack.id in (self.catalog.builtin.id, pack_store.SUGGESTIONS_SLUG):
            raise UserError(f"The pack id `{pack.id}` is reserved: give your pack another `id`.")
        async with self.db.write() as conn:
            await guild_store.ensure(conn, guild_id, now=self.clock.now())
            created = await store_pack(conn, guild_id, pack, data, now=self.clock.now())
        return pack, created

    async def set_pack_enabled(self, guild_id: int, slug: str, enabled: bool) -> PackInfo:
        async with self.db.write() as conn:
            await guild_store.ensure(conn, guild_id, now=self.clock.now())
            if slug == self.catalog.builtin.id:
                await guild_store.update_settings(conn, guild_id, builtin_pack_enabled=enabled)
            elif not await pack_store.set_enabled(conn, guild_id, slug, enabled):
                raise NotFound("There is no pack with that id here: pick one from the list.")
            info = next(i for i in await self.catalog.packs(conn, guild_id) if i.slug == slug)
        return info

    async def remove_pack(self, guild_id: int, slug: str) -> None:
        if slug == self.catalog.builtin.id:
            raise UserError("The built-in pack can't be removed; `/pack disable` turns it off.")
        async with self.db.write() as conn:
            if not await pack_store.remove(conn, guild_id, slug):
                raise NotFound("There is no pack with that id here: pick one from the list.")

    async def pack_infos(self, guild_id: int) -> list[PackInfo]:
        async with self.db.read() as conn:
            return await self.catalog.packs(conn, guild_id)

    async def prompt_key_of(self, conn: AsyncConnection, guild_id: int, key: str) -> str:
        """``key`` if it names a prompt of one of the server's packs; NotFound otherwise."""
        if len(key) > 140 or await self.catalog.find(conn, guild_id, key) is None:
            raise NotFound(
                "There is no prompt with that id in this server's packs: pick one from the list as you type "
                "(`/debate prompts` shows them)."
            )
        return key

    async def skip_prompt(self, guild_id: int, key: str) -> bool:
        """Take one prompt out of this server's rotation; False if it was skipped already."""
        now = self.clock.now()
        async with self.db.write() as conn:
            await guild_store.ensure(conn, guild_id, now=now)
            return await pack_store.skip_prompt(conn, guild_id, await self.prompt_key_of(conn, guild_id, key), now=now)

    async def unskip_prompt(self, guild_id: int, key: str) -> bool:
        """Put a skipped prompt back into the rotation; False if it was not skipped."""
        async with self.db.write() as conn:
            if await pack_store.unskip_prompt(conn, guild_id, key):
                return True
            await self.prompt_key_of(conn, guild_id, key)  # an unknown key is NotFound, not "wasn't skipped"
            return False

    async def prompt_flags(self, guild_id: int) -> tuple[set[str], bool]:
        """The server's skipped prompt keys, and whether sensitive prompts join its rotation."""
        async with self.db.read() as conn:
            skipped = await pack_store.skipped_prompts(conn, guild_id)
            settings = await guild_store.get(conn, guild_id)
        return skipped, bool(settings and settings.sensitive_prompts)

    async def set_sensitive(self, guild_id: int, include: bool) -> int:
        """Include (or leave out) prompts marked sensitive; returns how many the active packs hold."""
        now = self.clock.now()
        async with self.db.write() as conn:
            await guild_store.ensure(conn, guild_id, now=now)
            await guild_store.update_settings(conn, guild_id, sensitive_prompts=include)
            active = await self.catalog.active(conn, guild_id)
        return sum(1 for p in active.values() if p.sensitive)

    async def active_prompts(self, guild_id: int) -> list[tuple[str, str, Prompt]]:
        """``(pack name, key, prompt)`` over the enabled packs, in pack then file order."""
        async with self.db.read() as conn:
            infos = await self.catalog.packs(conn, guild_id)
        return [(i.name, f"{i.slug}/{p.id}", p) for i in infos if i.enabled for p in i.prompts]
