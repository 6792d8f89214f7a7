"""Interaction ages under clock skew and latency (I3), and follow-up concurrency from the round trip."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.timing import DEADLINE, TOKEN_MARGIN, TOKEN_TTL, InteractionTiming, WindowMin


def feed(timing: InteractionTiming, *, skew: float, one_way: float, jitter: float, n: int = 200, seed: int = 1):
    """``n`` interactions arriving ``one_way ± jitter`` after creation, read on a clock ``skew`` ahead."""
    rng = random.Random(seed)
    for _ in range(n):
        timing.round_trip(2 * (one_way + rng.uniform(-jitter, jitter)))
        timing.observe(skew + one_way + rng.uniform(-jitter, jitter))


@pytest.mark.parametrize("skew", [-5.0, -1.5, 0.0, 2.0, 5.0])
def test_the_age_is_right_whatever_the_host_clock_says(skew):
    timing = InteractionTiming()
    feed(timing, skew=skew, one_way=0.08, jitter=0.04)
    assert timing.offset == pytest.approx(skew, abs=0.05)
    # A fresh interaction (just the network's delay) is fresh; one the loop picked up 2 s late is 2 s old.
    assert timing.age(skew + 0.08) == pytest.approx(0.08, abs=0.05)
    assert timing.age(skew + 2.08) == pytest.approx(2.08, abs=0.05)


def test_a_host_clock_two_seconds_fast_does_not_make_every_click_late():
    timing = InteractionTiming()
    feed(timing, skew=2.0, one_way=0.08, jitter=0.04)
    observed = 2.0 + 0.1  # what the host reads: 2.1 s "old"
    assert observed > 1.5  # the old rule (defer past 1.5 s of host-clock age) deferred every click
    assert timing.time_left(timing.age(observed)) > 2.5


def test_past_the_deadline_and_past_the_token():
    timing = InteractionTiming()
    feed(timing, skew=-3.0, one_way=0.05, jitter=0.0)
    assert timing.time_left(timing.age(-3.0 + 3.2)) < 0  # picked up 3.2 s after creation: no defer, no answer
    assert timing.time_left(timing.age(-3.0 + 0.5)) > 2
    assert timing.token_left(TOKEN_TTL - TOKEN_MARGIN) < 0
    assert timing.token_left(60.0) > 0
    assert DEADLINE == 3.0


def test_the_first_interaction_counts_as_fresh_and_min_age_is_one_way():
    timing = InteractionTiming()
    assert timing.observe(7.0) == pytest.approx(timing.one_way)  # a host clock 7 s fast, learnt at once
    assert timing.age(6.0) == pytest.approx(timing.one_way)  # never younger than the network allows
    assert timing.age(9.0) == pytest.approx(2.0 + timing.one_way)


def test_followup_concurrency_follows_the_round_trip():
    timing = InteractionTiming()
    for _ in range(50):
        timing.round_trip(0.002)  # localhost
    assert timing.followup_concurrency(1100) == 16
    for _ in range(300):
        timing.round_trip(0.2)  # Discord from far away
    assert timing.followup_concurrency(1100) == 220
    for _ in range(300):
        timing.round_trip(5.0)
    assert timing.followup_concurrency(1100) == 256


@given(st.integers(1, 8), st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=60))
def test_window_min_is_the_minimum_of_the_last_readings(size, readings):
    window = WindowMin(size)
    for n, value in enumerate(readings, 1):
        window.add(value)
        assert window.value == min(readings[max(0, n - size) : n])


def test_a_step_of_the_host_clock_is_followed_at_once_not_after_a_window_of_readings():
    """NTP steps the host's wall clock 3 s forward: every later reading is 3 s larger, and so is the wall
    clock's distance from the monotonic clock (``drift``). The estimate follows at once; before, the window
    kept the old readings' minimum for 512 interactions and took every click for 3 s older (past Discord's
    deadline, not answered)."""
    timing = InteractionTiming()
    rng = random.Random(3)
    for _ in range(200):
        timing.round_trip(0.16 + rng.uniform(-0.08, 0.08))
        timing.observe(2.0 + 0.08 + rng.uniform(-0.04, 0.04), drift=1000.0)
    fresh = timing.observe(2.0 + 3.0 + 0.1, drift=1003.0)  # right after the step: 0.1 s old
    assert fresh == pytest.approx(0.1, abs=0.06)
    assert timing.time_left(fresh) > 2.5
    assert timing.offset == pytest.approx(5.0, abs=0.06)
