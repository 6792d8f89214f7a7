"""Rotation: no repeat within a cycle, a new predictable order each cycle, packs changing mid-cycle."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.rotation import RotationState, cycle_order, pick_next, record_use

KEYS = [f"pack/p{i}" for i in range(10)]


def run(guild_id: int, n: int, keys=KEYS, state: RotationState | None = None) -> tuple[list[str], RotationState]:
    state = state or RotationState()
    picked = []
    for _ in range(n):
        pick = pick_next(guild_id, state, keys)
        picked.append(pick.key)
        state = pick.state
    return picked, state


def test_a_cycle_uses_every_prompt_once_in_the_seeded_order():
    picked, state = run(42, len(KEYS))
    assert sorted(picked) == sorted(KEYS)
    assert picked == cycle_order(42, 0, KEYS)
    assert state.cycle == 0


def test_the_next_cycle_has_a_new_order_and_does_not_open_with_the_last_prompt():
    picked, _ = run(42, 3 * len(KEYS))
    cycles = [picked[i : i + len(KEYS)] for i in range(0, len(picked), len(KEYS))]
    for c in cycles:
        assert sorted(c) == sorted(KEYS)
    assert cycles[0] != cycles[1]
    for a, b in itertools.pairwise(picked):
        assert a != b


def test_orders_are_per_server_and_reproducible():
    assert run(1, 10)[0] == run(1, 10)[0]
    assert run(1, 10)[0] != run(2, 10)[0]


def test_a_pack_added_mid_cycle_joins_without_reshuffling_the_rest():
    first, state = run(7, 4)
    more = [*KEYS, "new/a", "new/b"]
    rest, state = run(7, len(more) - 4, more, state)
    assert sorted(first + rest) == sorted(more)
    # The prompts still queued keep their relative order.
    old_rest = [k for k in rest if k in KEYS]
    assert old_rest == [k for k in cycle_order(7, 0, KEYS) if k not in first]
    assert state.cycle == 0


def test_a_pack_removed_mid_cycle_ends_the_cycle_when_the_remaining_prompts_are_used():
    first, state = run(7, 3)
    fewer = [k for k in KEYS if k not in ("pack/p8", "pack/p9")]
    remaining = [k for k in fewer if k not in first]
    rest, state = run(7, len(remaining), fewer, state)
    assert sorted(rest) == sorted(remaining)
    nxt = pick_next(7, state, fewer)
    assert nxt.state.cycle == 1


def test_a_prompt_chosen_by_hand_is_not_repeated_by_the_rotation():
    state = record_use(RotationState(), "pack/p3")
    picked, _ = run(5, len(KEYS) - 1, state=state)
    assert "pack/p3" not in picked
    assert sorted([*picked, "pack/p3"]) == sorted(KEYS)


def test_a_single_prompt_repeats_every_day():
    picked, _ = run(5, 3, ["only/one"])
    assert picked == ["only/one"] * 3


@given(st.integers(min_value=0, max_value=2**63), st.integers(min_value=1, max_value=30), st.integers(1, 90))
def test_no_repeat_until_every_prompt_was_used(guild_id, size, days):
    keys = [f"k/{i}" for i in range(size)]
    picked, _ = run(guild_id, days, keys)
    for start in range(0, days, size):
        window = picked[start : start + size]
        assert len(window) == len(set(window))
