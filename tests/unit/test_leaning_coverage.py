"""Do the 95 % intervals cover the true leaning 95 % of the time? A seeded simulation.

Per poll: the true distribution of a poll's votes over its options is drawn at random (2-5 options
laid out as in the packs; shares from a Dirichlet, alpha 0.3 = skewed, one option takes most votes,
up to alpha 3 = balanced), n votes are drawn from it, and the interval is checked against the true
mean position. Per period: a week's polls are dilemmas drawn from a population of dilemmas (the
random-effects model ``combine`` assumes), and the interval is checked against the population's
mean leaning.

Coverage of any interval computed from discrete votes is a saw-tooth in n and in the true shares
(Brown, Cai & DasGupta 2001): no fixed rule gives 95 % at every single point. The bar is therefore
on coverage averaged over many random polls in each cell (sample size × skew), 93-97 %; the default
run is seeded and quick, the ``soak`` run (``pytest -m soak tests/unit/test_leaning_coverage.py``) uses 10-25 times more
draws per cell and prints the table.
"""

from __future__ import annotations

import numpy as np
import pytest

from bot.domain.leaning import Moments, combine, poll_leaning

LAYOUTS = {2: (-1.0, 1.0), 3: (-1.0, 0.0, 1.0), 4: (-1.0, -0.5, 0.5, 1.0), 5: (-1.0, -0.5, 0.0, 0.5, 1.0)}
SIZES = (5, 10, 20, 50, 100, 200, 500)
ALPHAS = (0.3, 1.0, 3.0)


def poll_coverage(n: int, alpha: float, reps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        positions = np.array(LAYOUTS[int(rng.integers(2, 6))])
        shares = rng.dirichlet([alpha] * len(positions))
        truth = float(positions @ shares)
        counts = rng.multinomial(n, shares)
        lean = poll_leaning(list(zip(positions.tolist(), counts.tolist(), strict=True)))
        hits += lean.low - 1e-12 <= truth <= lean.high + 1e-12
    return hits / reps


def period_coverage(polls: int, mean_voters: int, concentration: float, reps: int, seed: int) -> float:
    """Polls of a period drawn from a population of dilemmas: a layout, then shares around a base
    (the server's tendency on that layout) with ``concentration`` (small = dilemmas differ a lot)."""
    rng = np.random.default_rng(seed)
    base = {k: np.array([3.0, *([1.0] * (k - 2)), 1.5]) for k in LAYOUTS}
    base = {k: w / w.sum() for k, w in base.items()}
    truth = float(np.mean([np.array(LAYOUTS[k]) @ base[k] for k in LAYOUTS]))  # layouts equally likely
    hits = 0
    for _ in range(reps):
        moments = []
        for _ in range(polls):
            k = int(rng.integers(2, 6))
            shares = rng.dirichlet(concentration * base[k])
            n = 1 + int(rng.poisson(mean_voters - 1))
            counts = rng.multinomial(n, shares)
            moments.append(Moments.from_counts(list(zip(LAYOUTS[k], counts.tolist(), strict=True))))
        lean = combine(moments)
        hits += lean.low - 1e-12 <= truth <= lean.high + 1e-12
    return hits / reps


@pytest.mark.parametrize("n", SIZES)
def test_poll_intervals_cover_95_percent(n: int) -> None:
    cells = [poll_coverage(n, alpha, 400, seed=1000 * n + i) for i, alpha in enumerate(ALPHAS)]
    assert 0.93 <= sum(cells) / len(cells) <= 0.97, cells
    assert all(0.91 <= c <= 0.99 for c in cells), cells  # each cell: 400 draws, sampling error ±0.02


@pytest.mark.parametrize(("polls", "voters"), [(3, 10), (3, 50), (7, 10), (7, 50)])
def test_period_intervals_cover_95_percent(polls: int, voters: int) -> None:
    cells = [
        period_coverage(polls, voters, c, 250, seed=97 * polls + voters + i) for i, c in enumerate((10, 100, 10_000))
    ]
    assert 0.93 <= sum(cells) / len(cells) <= 0.97, cells
    assert all(0.90 <= c <= 0.99 for c in cells), cells


@pytest.mark.soak
@pytest.mark.timeout(900)
@pytest.mark.parametrize("n", SIZES)
def test_poll_coverage_soak(n: int, capsys: pytest.CaptureFixture[str]) -> None:
    cells = {alpha: poll_coverage(n, alpha, 10_000, seed=7 * n + int(alpha * 10)) for alpha in ALPHAS}
    with capsys.disabled():
        print("\n" + "  ".join(f"poll n={n:3d} alpha={a:3.1f}: {c:.3f}" for a, c in cells.items()))
    assert all(0.93 <= c <= 0.97 for c in cells.values()), cells


@pytest.mark.soak
@pytest.mark.timeout(900)
@pytest.mark.parametrize("polls", [3, 5, 7])
def test_period_coverage_soak(polls: int, capsys: pytest.CaptureFixture[str]) -> None:
    cells = {
        (voters, conc): period_coverage(polls, voters, conc, 2_500, seed=polls * 1000 + voters + conc)
        for voters in (10, 30, 100)
        for conc in (10, 100, 10_000)
    }
    with capsys.disabled():
        for (voters, conc), c in cells.items():
            print(f"\nperiod polls={polls} voters~{voters:3d} concentration={conc:5d}: {c:.3f}", end="")
    mean = sum(cells.values()) / len(cells)
    assert 0.93 <= mean <= 0.97, cells
    assert all(0.91 <= c <= 0.98 for c in cells.values()), cells
