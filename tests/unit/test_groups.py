"""Opinion groups: planted clusters are recovered; thresholds and edge cases hold."""

from __future__ import annotations

import numpy as np
import pytest

from bot.domain.groups import MIN_GROUP, GroupsResult, matrix_from_votes, opinion_groups

N_POLLS = 12
CONSENSUS_POLL = 0  # every planted cluster leans community on it
SPLIT_POLL = 1  # cluster 0 at -1, cluster 1 at +1, cluster 2 at 0


def planted(sizes=(10, 10, 10), seed=1, missing=0.15) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array(
        [
            [-1.0] * N_POLLS,
            [1.0] * N_POLLS,
            [1.0, -1.0] * (N_POLLS // 2),
        ]
    )
    centres[:, CONSENSUS_POLL] = 0.75
    centres[:, SPLIT_POLL] = [-1.0, 1.0, 0.0]
    rows = []
    for c, size in zip(centres, sizes, strict=False):
        for _ in range(size):
            row = np.round(np.clip(c + rng.normal(0, 0.2, N_POLLS), -1, 1) * 2) / 2
            gaps = rng.random(N_POLLS) < missing
            gaps[[CONSENSUS_POLL, SPLIT_POLL]] = False
            row[gaps] = np.nan
            rows.append(row)
    return np.array(rows)


def test_three_planted_clusters_are_recovered():
    x = planted()
    members = [f"m{i}" for i in range(len(x))]
    result = opinion_groups(x, members, [f"p{j}" for j in range(N_POLLS)], seed=0)
    assert result.reason is None
    assert result.k == 3
    assert sorted(g.size for g in result.groups) == [10, 10, 10]
    # each planted cluster is exactly one group
    for start in (0, 10, 20):
        labels = {result.member_labels[m] for m in members[start : start + 10]}
        assert len(labels) == 1
    assert result.consensus
    assert result.consensus[0].poll == f"p{CONSENSUS_POLL}"
    divisive_polls = [c.poll for c in result.divisive]
    assert f"p{SPLIT_POLL}" in divisive_polls
    assert f"p{CONSENSUS_POLL}" not in divisive_polls
    assert result.divisive[0].spread >= result.divisive[-1].spread
    assert all(g.name == f"Group {g.label} (n={g.size})" for g in result.groups)
    assert len(result.coords_for_map) == 30


def test_group_leaning_uses_actual_votes():
    x = planted()
    result = opinion_groups(x, seed=0)
    ind = min(result.groups, key=lambda g: g.leaning.mean)
    assert ind.leaning.mean < -0.6
    assert ind.leaning.n == sum(ind.poll_votes.values())


def test_deterministic():
    x = planted(seed=5)
    a, b = opinion_groups(x, seed=3), opinion_groups(x, seed=3)
    assert a == b
    assert a.member_labels == b.member_labels


def test_small_groups_never_reported():
    x = planted(sizes=(12, 12, 3))
    result = opinion_groups(x, seed=0)
    assert all(g.size >= MIN_GROUP for g in result.groups)
    assert sum(g.size for g in result.groups) <= 27
    # the three in the small cluster are on the map, unlabelled
    assert sum(1 for *_, label in result.coords_for_map if label is None) >= 3


def test_members_with_fewer_than_seven_votes_excluded():
    x = planted()
    sparse = np.full((4, N_POLLS), np.nan)
    sparse[:, :6] = 1.0  # six votes each
    members = [f"m{i}" for i in range(34)]
    result = opinion_groups(np.vstack([x, sparse]), members, seed=0)
    assert result.members_considered == 30
    assert result.members_excluded == 4
    assert not set(members[30:]) & set(result.member_labels)
    assert sum(g.size for g in result.groups) == 30


@pytest.mark.parametrize(
    "matrix",
    [
        np.empty((0, 0)),
        np.empty((0, 5)),
        np.full((1, 10), 0.5),
        np.full((8, 10), 0.5),
        np.full((40, 10), np.nan),
    ],
)
def test_too_few_members(matrix):
    result = opinion_groups(matrix)
    assert result.groups == []
    assert "not enough members" in result.reason


def test_all_identical_votes():
    result = opinion_groups(np.full((30, 10), 1.0))
    assert result.groups == []
    assert result.reason.startswith("no distinct groups")
    assert len(result.coords_for_map) == 30


def test_one_cloud_is_not_split():
    rng = np.random.default_rng(2)
    x = np.round(np.clip(rng.normal(0.2, 0.5, (200, 15)), -1, 1) * 2) / 2
    result = opinion_groups(x, seed=0)
    assert result.groups == []
    assert "no distinct groups" in result.reason


def test_no_ids_in_the_public_result():
    x = planted()
    members = [f"secret-{i}" for i in range(30)]
    result = opinion_groups(x, members, seed=0).without_members()
    assert isinstance(result, GroupsResult)
    assert "secret" not in repr(result)
    assert result.member_labels == {}


def test_matrix_from_votes():
    matrix, members, polls = matrix_from_votes([("a", 1, 0.5), ("b", 2, -1.0), ("a", 2, 1.0), ("a", 1, 0.0)])
    assert members == ["a", "b"]
    assert polls == [1, 2]
    assert matrix[0].tolist() == [0.0, 1.0]
    assert np.isnan(matrix[1, 0])
