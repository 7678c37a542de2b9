"""Diversity: k-center greedy (coreset) selection, accelerated and exact, and the covering radius."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from threadpoolctl import threadpool_limits

from ml.selection.checks import (
    FloatArray,
    IndexArray,
    RandomState,
    _as_count,
    _as_embeddings,
    _as_indices,
    _remaining,
)
from ml.selection.distances import (
    _BLOCK_ROWS,
    _CENTER_BLOCK,
    _STREAM_ROWS,
    _knn_mean_dist,
    _min_sq_dists,
    _sq_dists,
    _sq_norms,
    _take,
)

_FIRST_CENTER_BLOCK = 64  # nearest centers tried first when refreshing bounds

_DENSE_START_SAMPLE = 1000  # rows sampled to find a dense starting point
_DENSE_START_NEIGHBORS = 20


def _kcenter_inputs(
    X: ArrayLike, budget: int, labeled: ArrayLike, candidates: ArrayLike | None
) -> tuple[np.ndarray, int, IndexArray, IndexArray]:
    """Checked ``X``, budget, labeled rows and the pool: candidate rows that are not labeled."""
    X = _as_embeddings(X)
    n = X.shape[0]
    budget = _as_count(budget, "budget")
    labeled = _as_indices(labeled, n, "labeled")
    if candidates is None:
        pool = _remaining(n, labeled)
    else:
        pool = np.setdiff1d(_as_indices(candidates, n, "candidates"), labeled, assume_unique=True)
    return X, budget, labeled, pool


def _dense_start(X: np.ndarray, pool: IndexArray, rng: np.random.Generator) -> int:
    """Position in ``pool`` of a dense, central row to start k-center greedy from.

    Among a seeded sample of up to 1,000 pool rows, the row with the smallest mean
    distance to its 20 nearest sampled neighbours. Starting from an arbitrary row risks
    an outlier; the greedy reaches the outliers on its own anyway.
    """
    m = min(pool.size, _DENSE_START_SAMPLE)
    if m == 1:
        return 0
    sample = np.sort(rng.choice(pool.size, size=m, replace=False))
    rows = _take(X, pool[sample])
    rows_sq = np.einsum("ij,ij->i", rows, rows)
    k = min(_DENSE_START_NEIGHBORS, m - 1)
    spread = _knn_mean_dist(rows, rows_sq, rows, rows_sq, k, np.arange(m))
    return int(sample[np.argmin(spread)])


def kcenter_greedy_exact(
    X: ArrayLike,
    budget: int,
    *,
    labeled: ArrayLike = (),
    candidates: ArrayLike | None = None,
    random_state: RandomState = 0,
) -> IndexArray:
    """Reference k-center greedy: one full pass over the pool per chosen row.

    Same contract and same choices as `kcenter_greedy` (up to float32 rounding between
    near-equal distances), in O(budget * n * d) memory-bound work. Kept simple on purpose
    as the baseline for tests and benchmarks.

    ``X``: (n, d). Returns int64 indices, shape (min(budget, pool size),).
    """
    X, budget, labeled, pool = _kcenter_inputs(X, budget, labeled, candidates)
    if budget == 0 or pool.size == 0:
        return np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(random_state)
    pool_sq = _sq_norms(X, pool)
    min_sq = _min_sq_dists(X, pool, pool_sq, labeled)
    position = _dense_start(X, pool, rng) if labeled.size == 0 else int(np.argmax(min_sq))
    chosen: list[int] = []
    while True:
        chosen.append(position)
        center = _take(X, pool[position : position + 1])
        center_sq = np.einsum("ij,ij->i", center, center)
        for start in range(0, pool.size, _STREAM_ROWS):
            block = slice(start, start + _STREAM_ROWS)
            d = _sq_dists(_take(X, pool[block]), pool_sq[block], center, center_sq)[:, 0]
            np.minimum(min_sq[block], d, out=min_sq[block])
        min_sq[position] = -np.inf
        if len(chosen) == min(budget, pool.size):
            return pool[np.asarray(chosen, dtype=np.int64)]
        position = int(np.argmax(min_sq))


class _CoverBounds:
    """Upper bounds on each pool row's squared distance to its nearest center.

    ``bound[j]`` accounts for at least the centers ``[0, version[j])``, each applied or
    shown by the triangle inequality unable to come closer, so it is an upper bound on
    the true value (more centers can only lower it), and exact once ``version[j]``
    equals the number of centers. Chosen rows hold -inf.

    Pool rows are grouped into cells by k-means on a sample; arrays are indexed by
    position in ``rows``, the pool sorted by cell. A center at distance D from a cell's
    centroid is at least D - radius from every row of the cell, so it is skipped for a
    block of rows when that exceeds all their bounds; the others are tried nearest to
    the centroid first, so that rows which only need to fall below a threshold stop
    early.
    """

    def __init__(
        self,
        X: np.ndarray,
        pool: IndexArray,
        seeds: IndexArray,
        capacity: int,
        rng: np.random.Generator,
    ) -> None:
        """Cells for ``pool`` and bounds for the first centers ``X[seeds]``.

        Bounds are exact from the start for up to 64 seeds, computed in the same pass
        over the rows as the cells; for more they start at +inf and fill in lazily.
        """
        self.X = X
        self.centroids = _cell_centroids(X, pool, capacity, rng)
        self.centroids_sq = np.einsum("ij,ij->i", self.centroids, self.centroids)
        m = self.centroids.shape[0]
        self.centers = np.empty((capacity, X.shape[1]), dtype=np.float32)
        self.centers_sq = np.empty(capacity, dtype=np.float32)
        self.center_dist = np.empty((m, capacity), dtype=np.float32)
        self.n_centers = 0
        for start in range(0, seeds.size, _CENTER_BLOCK):
            self.add_centers(_take(X, seeds[start : start + _CENTER_BLOCK]))
        exact = self.n_centers <= _FIRST_CENTER_BLOCK
        targets = np.concatenate([self.centroids, self.centers[: self.n_centers if exact else 0]])
        targets_sq = np.einsum("ij,ij->i", targets, targets)

        sq = np.empty(pool.size, dtype=np.float32)
        cell = np.empty(pool.size, dtype=np.int32)
        radius_sq = np.empty(pool.size, dtype=np.float32)
        bound = np.full(pool.size, np.inf, dtype=np.float32)
        for start in range(0, pool.size, _BLOCK_ROWS):
            block = slice(start, start + _BLOCK_ROWS)
            rows = _take(X, pool[block])
            sq[block] = np.einsum("ij,ij->i", rows, rows)
            d = _sq_dists(rows, sq[block], targets, targets_sq)
            cell[block] = d[:, :m].argmin(axis=1)
            radius_sq[block] = d[:, :m].min(axis=1)
            if targets.shape[0] > m:
                bound[block] = d[:, m:].min(axis=1)
        if not np.isfinite(sq).all():
            bad = int(pool[np.flatnonzero(~np.isfinite(sq))[0]])
            raise ValueError(f"`X` holds NaN or infinite values (row {bad}).")

        order = np.argsort(cell, kind="stable")
        self.rows = pool[order]
        self.sq = sq[order]
        self.cell = cell[order]
        starts = np.flatnonzero(np.diff(self.cell, prepend=-1))
        self.cell_radius = np.zeros(m, dtype=np.float32)
        self.cell_radius[self.cell[starts]] = np.sqrt(np.maximum.reduceat(radius_sq[order], starts))
        self.slack = 1e-3 * math.sqrt(float(sq.max()))
        self.bound = bound[order]
        self.version = np.full(pool.size, self.n_centers if exact else 0, dtype=np.int32)
        self.active = np.arange(pool.size)
        self.floor = -np.inf

    def add_centers(self, rows: FloatArray) -> None:
        """Append center vectors, shape (m, d)."""
        stop = self.n_centers + rows.shape[0]
        rows_sq = np.einsum("ij,ij->i", rows, rows)
        self.centers[self.n_centers : stop] = rows
        self.centers_sq[self.n_centers : stop] = rows_sq
        d = _sq_dists(self.centroids, self.centroids_sq, rows, rows_sq)
        self.center_dist[:, self.n_centers : stop] = np.sqrt(d)
        self.n_centers = stop

    def shortlist(self, size: int) -> tuple[IndexArray, float]:
        """Rows with exact bounds of at least ``tau``, and ``tau``; all other bounds are lower.

        ``tau`` starts as the ``size``-th largest bound. Stale rows above it are
        refreshed, and most fall below it; while fewer than ``size / 4`` rows stay above,
        ``tau`` is lowered to the 4x larger rank and the refresh repeated. Every bound
        above the final ``tau`` is exact, so ``tau`` is then raised back to the
        ``size``-th largest bound. It is -inf when all live rows are shortlisted.
        """
        rank = size
        while True:
            tau = self._rank_value(rank)
            bound = self.bound[self.active]
            stale = self.active[(bound >= tau) & (bound > -np.inf) & (self.version[self.active] < self.n_centers)]
            cells = self.cell[stale]
            for group in np.split(stale, np.flatnonzero(np.diff(cells)) + 1):
                if group.size:
                    self._refresh_cell(group, tau)
            bound = self.bound[self.active]
            above = np.count_nonzero((bound >= tau) & (bound > -np.inf))
            if tau == -np.inf or 4 * above >= size:
                tau = max(tau, self._rank_value(size))
                bound = self.bound[self.active]
                return self.active[(bound >= tau) & (bound > -np.inf)], tau
            rank *= 4

    def _rank_value(self, rank: int) -> float:
        """The ``rank``-th largest live bound (-inf if there are fewer live rows).

        Looks only at ``active``: rows whose bounds were at least ``floor`` when it was
        formed (all other bounds are below ``floor`` and never change). It is narrowed to
        the 16 * ``rank`` largest bounds when over 64 times ``rank``, so that the
        per-round work does not scale with the pool, and widened back to every live row
        when the answer would fall below ``floor``.
        """
        bound = self.bound[self.active]
        live = bound[bound > -np.inf]
        value = -np.inf
        if live.size > rank:
            value = float(np.partition(live, live.size - rank)[live.size - rank])
        if value < self.floor:
            self.active, self.floor = np.flatnonzero(self.bound > -np.inf), -np.inf
            return self._rank_value(rank)
        if live.size > 64 * rank:
            split = live.size - 16 * rank
            self.floor = float(np.partition(live, split)[split])
            self.active = self.active[bound >= self.floor]
        return value

    def _refresh_cell(self, group: IndexArray, tau: float) -> None:
        """Make the bounds of ``group`` (positions in one cell) exact, except for rows
        whose bound falls below ``tau``, which stop there."""
        t = self.n_centers
        distances = self.center_dist[self.cell[group[0]]]
        radius = float(self.cell_radius[self.cell[group[0]]]) + self.slack
        group = group[np.argsort(self.version[group], kind="stable")]
        for start in range(0, group.size, _BLOCK_ROWS):
            block = group[start : start + _BLOCK_ROWS]
            v0 = int(self.version[block[0]])
            bound = self.bound[block]
            reach = math.sqrt(float(bound.max())) + radius
            useful = v0 + np.flatnonzero(distances[v0:t] < reach)
            useful = useful[np.argsort(distances[useful], kind="stable")]
            rows = _take(self.X, self.rows[block])
            rows_sq = self.sq[block]
            c0, width = 0, _FIRST_CENTER_BLOCK
            while c0 < useful.size:
                centers = useful[c0 : c0 + width]
                d = _sq_dists(rows, rows_sq, self.centers[centers], self.centers_sq[centers])
                np.minimum(bound, d.min(axis=1), out=bound)
                c0, width = c0 + width, min(2 * width, _CENTER_BLOCK)
                below = bound < tau
                if c0 < useful.size and below.any():
                    self.bound[block[below]] = bound[below]
                    keep = ~below
                    block, rows, rows_sq, bound = (
                        block[keep],
                        rows[keep],
                        rows_sq[keep],
                        bound[keep],
                    )
                    if block.size == 0:
                        break
            self.bound[block] = bound
            self.version[block] = t


def _cell_centroids(X: np.ndarray, pool: IndexArray, n_centers: int, rng: np.random.Generator) -> FloatArray:
    """Centroids of the cells of `_CoverBounds`, shape (m, d).

    One cell per 64 centers to place (at most 256 and sqrt(pool size)): more centers
    mean a smaller covering radius, which finer cells can exploit. K-means on a seeded
    sample of up to 10,000 pool rows. Cells only decide which distances are computed,
    never which rows are chosen.
    """
    from sklearn.cluster import KMeans

    m = int(np.clip(round(n_centers / 64), 1, min(256, math.isqrt(pool.size))))
    sample = np.sort(rng.choice(pool.size, size=min(pool.size, 10_000), replace=False))
    rows = _take(X, pool[sample])
    if m == 1:
        return rows.mean(axis=0, keepdims=True)
    seed = int(rng.integers(2**31 - 1))
    model = KMeans(n_clusters=m, init="random", n_init=1, max_iter=10, random_state=seed)
    return model.fit(rows).cluster_centers_.astype(np.float32)


def _greedy_on_shortlist(
    cover: _CoverBounds, shortlist: IndexArray, tau: float, budget: int, chosen: list[int]
) -> None:
    """Exact greedy steps on ``shortlist`` while its best row reaches ``tau``.

    ``shortlist`` holds live pool positions with exact bounds of at least ``tau``; every
    other bound is below ``tau``, so while the best shortlisted row reaches ``tau`` it is
    the farthest row of the pool. Appends chosen positions to ``chosen``. Chosen rows
    and rows that fall below ``tau`` leave the working set as soon as they are the
    majority, so its best row always reaches ``tau``.
    """
    rows = _take(cover.X, cover.rows[shortlist])
    rows_sq = cover.sq[shortlist]
    bound = cover.bound[shortlist]
    while len(chosen) < budget and bound.size:
        j = int(np.argmax(bound))
        chosen.append(int(shortlist[j]))
        cover.add_centers(rows[j : j + 1])
        d = _sq_dists(rows, rows_sq, rows[j : j + 1], rows_sq[j : j + 1])
        np.minimum(bound, d[:, 0], out=bound)
        bound[j] = -np.inf
        keep = (bound >= tau) & (bound > -np.inf)
        if 2 * np.count_nonzero(keep) < bound.size:
            cover.bound[shortlist] = bound
            cover.version[shortlist] = cover.n_centers
            shortlist, rows, rows_sq, bound = (
                shortlist[keep],
                rows[keep],
                rows_sq[keep],
                bound[keep],
            )
    cover.bound[shortlist] = bound
    cover.version[shortlist] = cover.n_centers


def kcenter_greedy(
    X: ArrayLike,
    budget: int,
    *,
    labeled: ArrayLike = (),
    candidates: ArrayLike | None = None,
    random_state: RandomState = 0,
    shortlist_size: int = 8192,
) -> IndexArray:
    """Diversity by k-center greedy (Sener & Savarese, 2018): farthest row first.

    Each step chooses the pool row farthest from its nearest center, where the centers
    are the ``labeled`` rows and the rows chosen so far. This greedily minimises the
    covering radius (the largest distance from a pool row to its nearest center) within
    a factor of 2 of the optimum. With no labeled rows the first choice is a dense,
    central row rather than an arbitrary one (which could be an outlier): among a seeded
    sample of up to 1,000 pool rows, the one with the smallest mean distance to its 20
    nearest sampled neighbours.

    The pool is ``candidates`` (all rows by default) minus ``labeled``; only pool rows
    are chosen and only pool rows count towards the radius.

    The choices are those of `kcenter_greedy_exact` (up to float32 rounding between
    near-equal distances), found with far less work. Every row keeps an upper bound on
    its distance to the nearest center. The rows whose bounds are among the
    ``shortlist_size`` largest are brought up to date in blocked float32 matrix
    products, and exact greedy steps run on them for as long as the best of them is
    farther than every bound outside; then the next shortlist is formed. Rows far from
    the frontier are never brought up to date, and the triangle inequality over a
    k-means partition skips centers that cannot come closer. Extra memory is
    O(n + (budget + len(labeled) + shortlist_size) * d) float32. BLAS runs on one
    thread meanwhile: the products are many and small, where OpenBLAS threads cost
    more than they give (several times slower on a busy 2-core machine).

    ``shortlist_size`` only trades memory (``shortlist_size * d`` float32) for the
    number of refresh rounds; it never changes the result.

    ``X``: (n, d). Returns int64 indices, shape (min(budget, pool size),), in the
    order chosen.
    """
    X, budget, labeled, pool = _kcenter_inputs(X, budget, labeled, candidates)
    shortlist_size = _as_count(shortlist_size, "shortlist_size")
    if shortlist_size == 0:
        raise ValueError("`shortlist_size` must be at least 1.")
    budget = min(budget, pool.size)
    if budget == 0:
        return np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(random_state)
    with threadpool_limits(limits=1, user_api="blas"):
        if labeled.size:
            seeds = labeled
        else:
            seeds = pool[[_dense_start(X, pool, rng)]]
        cover = _CoverBounds(X, pool, seeds, labeled.size + budget, rng)
        chosen: list[int] = []
        if labeled.size == 0:
            first = int(np.flatnonzero(cover.rows == seeds[0])[0])
            chosen.append(first)
            cover.bound[first] = -np.inf
        while len(chosen) < budget:
            shortlist, tau = cover.shortlist(shortlist_size)
            _greedy_on_shortlist(cover, shortlist, tau, budget, chosen)
    return cover.rows[np.asarray(chosen, dtype=np.int64)]


def covering_radius(
    X: ArrayLike,
    selected: ArrayLike,
    *,
    labeled: ArrayLike = (),
    candidates: ArrayLike | None = None,
) -> float:
    """Largest Euclidean distance from a pool row to its nearest selected or labeled row.

    The pool is ``candidates`` (all rows by default). ``X``: (n, d). Returns +inf when
    there are no centers, 0.0 for an empty pool.
    """
    X = _as_embeddings(X)
    n = X.shape[0]
    centers = np.union1d(_as_indices(selected, n, "selected"), _as_indices(labeled, n, "labeled"))
    pool = np.arange(n) if candidates is None else _as_indices(candidates, n, "candidates")
    if pool.size == 0:
        return 0.0
    min_sq = _min_sq_dists(X, pool, _sq_norms(X, pool), centers.astype(np.int64))
    return math.sqrt(float(min_sq.max()))
