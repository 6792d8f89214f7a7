"""Prompt rotation: no prompt repeats in a server until every prompt of its active packs was used.

Each cycle has its own order, seeded per server and cycle, so tests (and curious moderators) can
predict it. The order ranks every prompt key by a hash of ``"<guild>:<cycle>:<key>"`` rather than
shuffling the current list, so adding or removing a pack mid-cycle does not reshuffle the prompts
already queued: new prompts simply take their place in this cycle's order, and prompts of a removed
pack drop out. A cycle ends when every *currently active* prompt has been used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass

__all__ = ["Pick", "RotationState", "cycle_order", "pick_next", "record_use"]


@dataclass(frozen=True)
class RotationState:
    """Where a server is: its cycle number and the prompt keys used in that cycle (in order)."""

    cycle: int = 0
    used: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pick:
    key: str
    state: RotationState


def _rank(guild_id: int, cycle: int, key: str) -> bytes:
    return hashlib.blake2b(f"{guild_id}:{cycle}:{key}".encode(), digest_size=16).digest()


def cycle_order(guild_id: int, cycle: int, keys: Iterable[str]) -> list[str]:
    """The order in which ``keys`` come up in ``cycle`` for this server (stable under set changes)."""
    return sorted(set(keys), key=lambda k: (_rank(guild_id, cycle, k), k))


def pick_next(guild_id: int, state: RotationState, available: Collection[str]) -> Pick:
    """The next prompt and the state after using it. ``available``: keys of the active packs' prompts.

    When every available prompt has been used this cycle, a new cycle starts in a new order; its first
    prompt is never the one just posted (unless it is the only prompt there is).
    """
    if not available:
        raise ValueError("no prompts available: every pack is disabled")
    used = set(state.used)
    for key in cycle_order(guild_id, state.cycle, available):
        if key not in used:
            return Pick(key, RotationState(state.cycle, (*state.used, key)))
    cycle = state.cycle + 1
    order = cycle_order(guild_id, cycle, available)
    last = state.used[-1] if state.used else None
    if len(order) > 1 and order[0] == last:
        order.append(order.pop(0))
    return Pick(order[0], RotationState(cycle, (order[0],)))


def record_use(state: RotationState, key: str) -> RotationState:
    """Note a prompt chosen by hand (``/schedule post-now prompt``) so the rotation does not repeat it.

    If that completes the cycle, the next `pick_next` starts a new one (and avoids this prompt first).
    """
    if key in state.used:
        # Already used this cycle: a deliberate repeat. Keep it last so a new cycle will not open with it.
        return RotationState(state.cycle, (*(k for k in state.used if k != key), key))
    return RotationState(state.cycle, (*state.used, key))
