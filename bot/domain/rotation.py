"""Prompt rotation: no prompt repeats in a server until every prompt of its active packs was used.

Each cycle has its own order, seeded per server and cycle, so tests (and curious moderators) can
predict it. The order ranks every prompt key by a hash of ``"<guild>:<cycle>:<key>"`` rather than
shuffling the current list, so adding or removing a pack mid-cycle does not reshuffle the prompts
already queued: new prompts simply take their place in this cycle's order, and prompts of a removed
pack drop out. A cycle ends when every *currently active* prompt has been used.

Dilemmas: a prompt may carry several. Each time a prompt comes round again in a server it uses the
dilemma that server has seen least often for that prompt (ties broken in a seeded per-server order,
never the one it saw last while another is as fresh), so every dilemma is shown before any repeats,
and one added to a pack later is shown the next time its prompt comes up.

Option order: the options of a debate poll are shown either from the individual to the community
(the axis order) or reversed, so that across a series neither end is always first (first-option bias
would otherwise push every leaning the same way). Within each consecutive pair of a server's polls
exactly one is reversed; a seeded coin decides which, so regulars cannot learn the pattern.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "Pick",
    "RotationState",
    "axis_order",
    "cycle_order",
    "display_order",
    "pick_dilemma",
    "pick_next",
    "record_use",
    "reversed_for",
]


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


# -- dilemmas -----------------------------------------------------------------------------------------


def _dilemma_rank(guild_id: int, prompt_key: str, dilemma_id: str) -> bytes:
    return hashlib.blake2b(f"{guild_id}:{prompt_key}:{dilemma_id}".encode(), digest_size=16).digest()


def pick_dilemma(guild_id: int, prompt_key: str, dilemma_ids: Sequence[str], used: Sequence[str]) -> str:
    """The dilemma to show the next time ``prompt_key`` comes up in this server.

    ``dilemma_ids``: the prompt's dilemmas now (in pack order); ``used``: the dilemma ids this server's
    earlier debates of the prompt used, oldest first (ids no longer in the pack are ignored). The
    least-used dilemma wins; ties go by a seeded per-server order, avoiding the one used last.
    """
    if not dilemma_ids:
        raise ValueError("a prompt has at least one dilemma")
    uses = Counter(d for d in used if d in dilemma_ids)
    last = next((d for d in reversed(used) if d in dilemma_ids), None)
    fewest = min(uses.get(d, 0) for d in dilemma_ids)
    fresh = [d for d in dilemma_ids if uses.get(d, 0) == fewest]
    if len(fresh) > 1 and last in fresh:
        fresh.remove(last)
    return min(fresh, key=lambda d: (_dilemma_rank(guild_id, prompt_key, d), d))


# -- option order -------------------------------------------------------------------------------------


def reversed_for(guild_id: int, ordinal: int) -> bool:
    """Whether the server's ``ordinal``-th varied poll (0-based) shows its options reversed.

    Exactly one poll of each pair (0-1, 2-3, ...) is reversed; a seeded coin per pair picks which.
    """
    if ordinal < 0:
        raise ValueError("ordinal must be >= 0")
    pair = hashlib.blake2b(f"{guild_id}:order:{ordinal // 2}".encode(), digest_size=1).digest()[0] & 1
    return (ordinal % 2) != pair


def axis_order(positions: Sequence[float]) -> list[int]:
    """Option indices from the individual to the community: by position, ties in their given order."""
    return sorted(range(len(positions)), key=lambda i: (positions[i], i))


def display_order(positions: Sequence[float], *, reverse: bool) -> list[int]:
    """The order to show options in: the axis order, or that order reversed."""
    order = axis_order(positions)
    return order[::-1] if reverse else order
