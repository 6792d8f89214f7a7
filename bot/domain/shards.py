"""Which servers a process owns: Discord's sharding formula, shard ranges, and a process's share.

Discord routes a server's events to shard ``(guild_id >> 22) % shard_count`` (discord-api-docs,
Gateway, "Sharding Formula"). A process (a *cluster*) holds some of the shards and owns exactly the
servers on them: their jobs, their reconciliation. Work that belongs to no server (retention sweeps,
backups) belongs to the cluster holding shard 0, where Discord sends guild-less events too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Discord closes a connection holding more than this many servers with 4011 (G1).
MAX_GUILDS_PER_SHARD = 2500
MAX_SHARD_COUNT = 100_000


class ShardSpecError(ValueError):
    """A shard range that cannot be used; the message names the value and the fix."""


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard that receives a server's events."""
    return (guild_id >> 22) % shard_count


def parse_shards(text: str) -> tuple[int, ...]:
    """``"0-7"``, ``"3"`` or ``"0-3,8-11"`` → sorted unique shard ids. Raises :class:`ShardSpecError`."""
    ids: set[int] = set()
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise ShardSpecError(f"{text!r} is not a shard range; write e.g. 0-7, or 0-3,8-11")
    for part in parts:
        low_text, dash, high_text = part.partition("-")
        try:
            low = int(low_text.strip())
            high = int(high_text.strip()) if dash else low
        except ValueError:
            raise ShardSpecError(f"{text!r} is not a shard range; write e.g. 0-7, or 0-3,8-11") from None
        if low < 0 or high < low:
            raise ShardSpecError(f"{part!r} is not a range of shard ids; write the lower id first, e.g. 0-7")
        if high - low >= MAX_SHARD_COUNT:
            raise ShardSpecError(f"{part!r} names more than {MAX_SHARD_COUNT} shards")
        ids.update(range(low, high + 1))
    return tuple(sorted(ids))


def format_shards(ids: Iterable[int]) -> str:
    """The inverse of :func:`parse_shards`: ``(0, 1, 2, 5)`` → ``"0-2,5"``."""
    runs: list[list[int]] = []
    for i in sorted(set(ids)):
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)


@dataclass(frozen=True)
class ShardScope:
    """The shards one process holds: ``ids`` of ``count``; ``count=None`` means every server (one
    process, however many shards it runs)."""

    count: int | None = None
    ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.count is None:
            if self.ids is not None:
                raise ShardSpecError("shard ids need a shard count")
            return
        if not 1 <= self.count <= MAX_SHARD_COUNT:
            raise ShardSpecError(f"shard count {self.count} is out of range; use 1 to {MAX_SHARD_COUNT}")
        if self.ids is not None:
            if not self.ids:
                raise ShardSpecError("a cluster needs at least one shard")
            bad = [i for i in self.ids if not 0 <= i < self.count]
            if bad:
                raise ShardSpecError(
                    f"shard {bad[0]} does not exist when there are {self.count} shards (ids run 0-{self.count - 1})"
                )

    @property
    def everything(self) -> bool:
        """True when this process owns every server."""
        return self.count is None or self.ids is None or len(self.ids) == self.count

    @property
    def held(self) -> tuple[int, ...]:
        if self.count is None:
            return (0,)
        return self.ids if self.ids is not None else tuple(range(self.count))

    @property
    def owns_global_work(self) -> bool:
        """Work that belongs to no server runs only in the process holding shard 0."""
        return 0 in self.held

    def owns(self, guild_id: int | None) -> bool:
        if guild_id is None:
            return self.owns_global_work
        if self.everything:
            return True
        assert self.count is not None
        return shard_of(guild_id, self.count) in self.held

    def only(self, shard_ids: Iterable[int]) -> ShardScope:
        """The part of this scope made of ``shard_ids`` (one shard re-identified, say)."""
        if self.count is None:
            return self
        wanted = tuple(sorted(set(shard_ids) & set(self.held)))
        return ShardScope(self.count, wanted or None) if wanted else self

    def describe(self) -> str:
        if self.count is None:
            return "every shard"
        if self.everything:
            return f"all {self.count} shards"
        return f"shards {format_shards(self.held)} of {self.count}"


def rest_share(total_per_second: float, scope: ShardScope, *, shared_proxy: bool = False) -> float | None:
    """This process's part of the bot's global REST budget (50 requests/s per bot, across processes).

    In proportion to the shards it holds; ``None`` (no budget of its own) when every process talks to
    Discord through one shared REST proxy, which then keeps the whole bot under the limit.
    """
    if shared_proxy:
        return None
    if scope.everything:
        return total_per_second
    assert scope.count is not None
    return total_per_second * len(scope.held) / scope.count
