"""Opinion groups, in the manner of Pol.is: who votes alike, and where the groups agree.

Pure computation with numpy and scikit-learn (k-means, silhouette score; threadpoolctl, one of its
dependencies, keeps k-means on one thread); no discord, no database, no asyncio. Callers run it off
the event loop (``asyncio.to_thread``); the first call in a process pays ~1-2 s of scikit-learn
import and start-up.

Method
    1. Input: a members x polls matrix of chosen positions, NaN where a member did not vote.
    2. Keep members with at least ``MIN_VOTES`` votes (fewer says too little about a person's pattern
       and, after imputation, would pile them up in the middle of the map).
    3. Impute a missing vote with that poll's mean among the kept members. After centring each poll
       this puts a missing vote at 0, i.e. "no information", so it neither pulls a member towards
       nor away from anyone on that poll (the usual choice in Pol.is-style maps; the threshold in 2
       keeps the share of imputed cells bounded).
    4. Project to 2 dimensions with PCA (SVD of the centred matrix). Axis 1 is oriented so that
       right means a higher average position (towards "the community first").
    5. k-means for k = 2..5 (``n_init=10``, fixed ``random_state``) on the 2-D points; keep the k with
       the best silhouette score among those giving at least two groups of ``MIN_GROUP`` members.
    6. k-means always splits, even a single cloud of points, so the split must beat chance: its
       silhouette must exceed ``MIN_SILHOUETTE`` (0.25, Kaufman & Rousseeuw's "no substantial
       structure") and the best of ``NULL_DRAWS`` silhouettes that the same k reaches on a single
       Gaussian cloud of the same size and spread (a parametric-bootstrap reference; a 2:1 cloud
       scores about 0.45 at k = 2). Otherwise: no distinct groups.
    7. Only groups of at least ``MIN_GROUP`` members are reported; members of smaller clusters are
       drawn on the map unlabelled. Fewer than two reportable groups: ``groups=[]`` and a reason.

Consensus polls: every group has votes on the poll, all group means lie on the same side (all above
0, all below 0, or all within the "both equally" band) and the range of group means is at most
``CONSENSUS_TOLERANCE``. Divisive polls: the widest range of group means, at least
``DIVISIVE_MIN_SPREAD``. A group mean on a poll counts only with ``MIN_GROUP_POLL_VOTES`` votes.

The result carries no user ids except ``member_labels``, an internal mapping the caller may drop
(``result.without_members()``); the map points are sorted so their order does not reveal who is who.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from bot.domain.leaning import Leaning, Moments, combine

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "CONSENSUS_TOLERANCE",
    "DIVISIVE_MIN_SPREAD",
    "MIN_GROUP",
    "MIN_GROUP_POLL_VOTES",
    "MIN_SILHOUETTE",
    "MIN_VOTES",
    "NULL_DRAWS",
    "Group",
    "GroupsResult",
    "PollContrast",
    "matrix_from_votes",
    "opinion_groups",
]

MIN_VOTES = 7
MIN_GROUP = 5
K_RANGE = range(2, 6)
MIN_SILHOUETTE = 0.25
NULL_DRAWS = 8
CONSENSUS_TOLERANCE = 0.4
DIVISIVE_MIN_SPREAD = 0.5
MIN_GROUP_POLL_VOTES = 3
_MIDDLE = 0.2  # the "both equally" band of bot.domain.leaning.label_for


@dataclass(frozen=True)
class Group:
    """One reported group: its letter, size, overall leaning and mean position per poll."""

    label: str  # "A", "B", ... by size, largest first
    size: int
    leaning: Leaning  # over the group's actual votes (never the imputed ones)
    poll_means: Mapping[Hashable, float | None]  # None where fewer than MIN_GROUP_POLL_VOTES votes
    poll_votes: Mapping[Hashable, int]

    @property
    def name(self) -> str:
        return f"Group {self.label} (n={self.size})"


@dataclass(frozen=True)
class PollContrast:
    """How the groups sat on one poll: their means in group order and the range between them."""

    poll: Hashable
    means: tuple[float, ...]
    spread: float  # max - min of the group means


@dataclass(frozen=True)
class GroupsResult:
    groups: list[Group]
    consensus: list[PollContrast]  # most agreed first
    divisive: list[PollContrast]  # widest spread first
    coords_for_map: list[tuple[float, float, str | None]]  # (x, y, group label or None); no ids
    reason: str | None = None  # why there are no groups, when groups == []
    members_considered: int = 0  # members with at least MIN_VOTES votes
    members_excluded: int = 0  # members who voted, but fewer than MIN_VOTES times
    k: int | None = None
    silhouette: float | None = None
    explained: tuple[float, float] = (0.0, 0.0)  # share of variance on each map axis
    member_labels: Mapping[Hashable, str | None] = field(default_factory=dict, repr=False, compare=False)

    def without_members(self) -> GroupsResult:
        """The same result without the member -> group mapping."""
        return replace(self, member_labels={})


def matrix_from_votes(
    votes: Iterable[tuple[Hashable, Hashable, float]],
) -> tuple[np.ndarray, list[Hashable], list[Hashable]]:
    """``(matrix, members, polls)`` from ``(member, poll, position)`` rows; later rows win."""
    import numpy as np

    cells: dict[tuple[Hashable, Hashable], float] = {}
    members: dict[Hashable, int] = {}
    polls: dict[Hashable, int] = {}
    for member, poll, position in votes:
        members.setdefault(member, len(members))
        polls.setdefault(poll, len(polls))
        cells[(member, poll)] = float(position)
    matrix = np.full((len(members), len(polls)), np.nan)
    for (member, poll), position in cells.items():
        matrix[members[member], polls[poll]] = position
    return matrix, list(members), list(polls)


def _empty(
    reason: str, considered: int, excluded: int, coords: Any = (), member_labels: Any = None, **kw: Any
) -> GroupsResult:
    return GroupsResult(
        groups=[],
        consensus=[],
        divisive=[],
        coords_for_map=sorted(coords, key=_map_order),
        reason=reason,
        members_considered=considered,
        members_excluded=excluded,
        member_labels=member_labels or {},
        **kw,
    )


def _map_order(point: tuple[float, float, str | None]) -> tuple[float, float, str]:
    return point[0], point[1], point[2] or ""


def _project(x: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """2-D PCA of an imputed matrix; axis 1 oriented towards higher mean position."""
    import numpy as np

    centred = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    coords = np.zeros((x.shape[0], 2))
    k = min(2, s.size)
    coords[:, :k] = u[:, :k] * s[:k]
    total = float((s**2).sum())
    explained = tuple(float(s[i] ** 2 / total) if i < s.size and total > 0 else 0.0 for i in range(2))
    # Signs of principal components are arbitrary; fix them so the map is stable and readable.
    member_mean = x.mean(axis=1)
    for i in range(k):
        c = coords[:, i]
        if i == 0:
            corr = float(np.dot(c - c.mean(), member_mean - member_mean.mean()))
            flip = corr < 0
        else:
            loading = vt[i]
            flip = loading[int(np.argmax(np.abs(loading)))] < 0
        if flip:
            coords[:, i] = -c
    coords[np.abs(coords) < 1e-12] = 0.0
    return coords, explained  # type: ignore[return-value]


def _cluster(coords: np.ndarray, seed: int) -> tuple[int, np.ndarray, float] | None:
    """Best (k, labels, silhouette) with at least two clusters of MIN_GROUP, or None."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = coords.shape[0]
    distinct = np.unique(np.round(coords, 9), axis=0).shape[0]
    best = None
    for k in K_RANGE:
        if k >= distinct or k >= n:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning on duplicate points
            labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(coords)
        sizes = np.bincount(labels, minlength=k)
        if (sizes >= MIN_GROUP).sum() < 2 or len(set(labels.tolist())) < 2:
            continue
        score = float(silhouette_score(coords, labels))
        if best is None or score > best[2] + 1e-12:
            best = (k, labels, score)
    return best


def _null_silhouette(coords: np.ndarray, k: int, seed: int) -> float:
    """Best silhouette k-means reaches on single Gaussian clouds shaped like ``coords``."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    scale = coords.std(axis=0)  # PCA axes are uncorrelated, so a diagonal covariance suffices
    best = -1.0
    for draw in range(NULL_DRAWS):
        z = rng.standard_normal(coords.shape) * scale
        labels = KMeans(n_clusters=k, n_init=3, random_state=seed + draw).fit_predict(z)
        if len(set(labels.tolist())) > 1:
            best = max(best, float(silhouette_score(z, labels)))
    return best


def _same_side(means: Sequence[float]) -> bool:
    return all(m > 0 for m in means) or all(m < 0 for m in means) or all(abs(m) <= _MIDDLE for m in means)


def opinion_groups(
    matrix: np.ndarray | Sequence[Sequence[float]],
    members: Sequence[Hashable] | None = None,
    polls: Sequence[Hashable] | None = None,
    *,
    seed: int = 0,
) -> GroupsResult:
    """Opinion groups of a members x polls matrix of positions (NaN = did not vote); see the module doc."""
    import numpy as np

    x = np.asarray(matrix, dtype=float)
    if x.ndim != 2:
        x = x.reshape(0, 0) if x.size == 0 else np.atleast_2d(x)
    n_members, n_polls = x.shape
    members = list(members) if members is not None else list(range(n_members))
    polls = list(polls) if polls is not None else list(range(n_polls))
    if len(members) != n_members or len(polls) != n_polls:
        raise ValueError("members and polls must match the matrix shape")

    voted = ~np.isnan(x)
    counts = voted.sum(axis=1)
    keep = counts >= MIN_VOTES
    considered = int(keep.sum())
    excluded = int(((counts > 0) & ~keep).sum())
    kept_members = [m for m, k in zip(members, keep, strict=True) if k]
    if considered < 2 * MIN_GROUP:
        return _empty(
            f"not enough members with at least {MIN_VOTES} votes to find groups "
            f"({considered}; at least {2 * MIN_GROUP} needed)",
            considered,
            excluded,
            member_labels=dict.fromkeys(kept_members),
        )

    x = x[keep]
    voted = voted[keep]
    cols = voted.any(axis=0)
    x, voted = x[:, cols], voted[:, cols]
    poll_keys = [p for p, c in zip(polls, cols, strict=True) if c]
    poll_mean = np.nanmean(x, axis=0)
    imputed = np.where(voted, x, poll_mean)

    coords, explained = _project(imputed)
    no_groups = dict.fromkeys(kept_members)
    unlabelled = [(float(a), float(b), None) for a, b in coords]
    if not np.any(coords):
        return _empty(
            "no distinct groups: everyone voted alike",
            considered,
            excluded,
            unlabelled,
            no_groups,
            explained=explained,
        )
    # One thread: on small inputs OpenMP start-up costs more than it saves (~10x on 2 cores), and
    # the bot must leave the other core to the event loop.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        best = _cluster(coords, seed)
        beaten = best is not None and best[2] <= _null_silhouette(coords, best[0], seed)
    if best is None:
        return _empty(
            f"no distinct groups: no split gives two groups of at least {MIN_GROUP}",
            considered,
            excluded,
            unlabelled,
            no_groups,
            explained=explained,
        )
    k, labels, score = best
    if score < MIN_SILHOUETTE or beaten:
        return _empty(
            "no distinct groups: the map looks like one cloud of members, not separate groups",
            considered,
            excluded,
            unlabelled,
            no_groups,
            k=k,
            silhouette=score,
            explained=explained,
        )

    # Reportable clusters, lettered by size (largest first), ties by mean position.
    clusters = []
    for c in range(k):
        rows = labels == c
        size = int(rows.sum())
        if size >= MIN_GROUP:
            clusters.append((-size, float(np.nanmean(x[rows])), c))
    clusters.sort()
    letter = {c: chr(ord("A") + i) for i, (_, _, c) in enumerate(clusters)}

    groups = []
    for _, _, c in clusters:
        rows = labels == c
        sub, sub_voted = x[rows], voted[rows]
        per_poll = [Moments.of(sub[sub_voted[:, j], j]) for j in range(len(poll_keys))]
        means = {
            p: (m.total / m.n if m.n >= MIN_GROUP_POLL_VOTES else None)
            for p, m in zip(poll_keys, per_poll, strict=True)
        }
        groups.append(
            Group(
                label=letter[c],
                size=int(rows.sum()),
                leaning=combine(per_poll),
                poll_means=means,
                poll_votes={p: m.n for p, m in zip(poll_keys, per_poll, strict=True)},
            )
        )

    consensus, divisive = [], []
    for p in poll_keys:
        found = [g.poll_means[p] for g in groups]
        values = [m for m in found if m is not None]
        if len(values) < len(found):
            continue
        spread = max(values) - min(values)
        contrast = PollContrast(p, tuple(float(m) for m in values), float(spread))
        if spread <= CONSENSUS_TOLERANCE and _same_side(values):
            consensus.append(contrast)
        elif spread >= DIVISIVE_MIN_SPREAD:
            divisive.append(contrast)
    consensus.sort(key=lambda c: (c.spread, -abs(sum(c.means) / len(c.means))))
    divisive.sort(key=lambda c: -c.spread)

    coords_for_map = sorted(
        ((float(a), float(b), letter.get(int(lab))) for (a, b), lab in zip(coords, labels, strict=True)),
        key=_map_order,
    )
    member_labels = {m: letter.get(int(lab)) for m, lab in zip(kept_members, labels, strict=True)}
    return GroupsResult(
        groups=groups,
        consensus=consensus,
        divisive=divisive,
        coords_for_map=coords_for_map,
        reason=None,
        members_considered=considered,
        members_excluded=excluded,
        k=k,
        silhouette=score if not math.isnan(score) else None,
        explained=explained,
        member_labels=member_labels,
    )
