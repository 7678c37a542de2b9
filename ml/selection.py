"""Selection strategies: which unlabeled items moderators should label next.

Every strategy is a pure, deterministic function: arrays in, row indices out, randomness
only through ``random_state`` (passed to ``np.random.default_rng``).

Shapes and conventions used throughout:

- ``X``: embeddings, shape (n, d), float16, float32 or float64, usually L2-normalised.
  It may be an ``np.memmap``. It is never copied whole or converted whole to float64:
  the work happens on float32 blocks of rows.
- ``proba``: class probabilities from the current head, shape (n, k), rows summing to 1.
- ``labeled``, ``exclude``, ``candidates``: 1-D integer row indices into ``X``/``proba``.

Every strategy returns a 1-D int64 array of distinct row indices, most wanted first,
that never contains a ``labeled`` or ``exclude`` index and has length
``min(budget, number of rows available)``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from numbers import Integral
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from threadpoolctl import threadpool_limits

IndexArray = NDArray[np.int64]
FloatArray = NDArray[np.float32]
RandomState = int | np.random.Generator | None
UncertaintyMethod = Literal["margin", "entropy", "least_confidence"]

STRATEGIES = ("random", "diversity", "typicality", "prototypes", "uncertainty", "balance", "combined")
UNCERTAINTY_METHODS = ("margin", "entropy", "least_confidence")

_BLOCK_ROWS = 2048  # rows per distance block: a float32 block of 384-d rows fits in L2
_CENTER_BLOCK = 1024  # centers per distance block
_FIRST_CENTER_BLOCK = 64  # nearest centers tried first when refreshing bounds
_STREAM_ROWS = 1 << 16  # rows per block when streaming over all rows once
_DENSE_START_SAMPLE = 1000  # rows sampled to find a dense starting point
_DENSE_START_NEIGHBORS = 20
_KMEANS_FULL_MAX_ROWS = 20_000  # above this, MiniBatchKMeans on a sample
_TYPICALITY_SAMPLE_ROWS = 100_000  # larger pools are subsampled for typicality
_TYPICALITY_MAX_ROWS = 4096  # per-cluster cap on reference rows and on ranked rows
_DENSITY_REFERENCE_ROWS = 10_000


# ----------------------------------------------------------------------------- checks


def _as_embeddings(X: ArrayLike) -> np.ndarray:
    """``X`` as an array of shape (n, d), without copying an array (or memmap) given."""
    array = X if isinstance(X, np.ndarray) else np.asarray(X)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(
            f"`X` must be a 2-D array of shape (n, d) with n, d >= 1; got shape {array.shape}."
        )
    if array.dtype.kind != "f":
        raise ValueError(f"`X` must hold floating-point numbers; got dtype {array.dtype}.")
    return array


def _as_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer; got {value!r}.")
    return int(value)


def _as_indices(indices: ArrayLike, n: int, name: str) -> IndexArray:
    """Sorted unique int64 row indices, checked against ``n`` rows."""
    array = np.asarray(indices)
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise ValueError(
            f"`{name}` must be a 1-D sequence of integer row indices; "
            f"got shape {array.shape} and dtype {array.dtype}."
        )
    if array.min() < 0 or array.max() >= n:
        raise ValueError(f"`{name}` holds row indices outside [0, {n}).")
    return np.unique(array.astype(np.int64))


def _as_proba(proba: ArrayLike, n_rows: int | None = None) -> NDArray[np.float64]:
    """Class probabilities as float64, shape (n, k); ``n_rows`` is the row count of ``X``."""
    array = np.asarray(proba)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] < 2:
        raise ValueError(
            "`proba` must be a 2-D array of shape (n, k) with n >= 1 rows and k >= 2 "
            f"classes; got shape {array.shape}."
        )
    if n_rows is not None and array.shape[0] != n_rows:
        raise ValueError(f"`proba` has {array.shape[0]} rows but `X` has {n_rows}.")
    if array.dtype.kind != "f":
        raise ValueError(f"`proba` must hold floating-point numbers; got dtype {array.dtype}.")
    p = array.astype(np.float64)
    if (
        not np.isfinite(p).all()
        or p.min() < -1e-6
        or p.max() > 1 + 1e-6
        or np.abs(p.sum(axis=1) - 1).max() > 1e-2
    ):
        raise ValueError("`proba` must hold probabilities: finite, in [0, 1], rows summing to 1.")
    return p


def _remaining(n: int, *taken: IndexArray) -> IndexArray:
    """The rows of ``range(n)`` in none of ``taken``, ascending."""
    keep = np.ones(n, dtype=bool)
    for indices in taken:
        keep[indices] = False
    return np.flatnonzero(keep).astype(np.int64)


# ------------------------------------------------------------------- distance kernels


def _take(X: np.ndarray, rows: IndexArray) -> FloatArray:
    """Rows of ``X`` as float32, shape (len(rows), d); a view for a contiguous float32 run."""
    if rows.size > 1 and rows[-1] - rows[0] == rows.size - 1 and np.all(np.diff(rows) == 1):
        block = X[rows[0] : rows[-1] + 1]
    elif rows.size == 1:
        block = X[rows[0] : rows[0] + 1]
    else:
        block = X[rows]
    return np.asarray(block, dtype=np.float32)


def _sq_norms(X: np.ndarray, rows: IndexArray) -> FloatArray:
    """Squared L2 norms of ``X[rows]``, shape (len(rows),); rejects non-finite rows."""
    out = np.empty(rows.size, dtype=np.float32)
    for start in range(0, rows.size, _STREAM_ROWS):
        block = _take(X, rows[start : start + _STREAM_ROWS])
        out[start : start + block.shape[0]] = np.einsum("ij,ij->i", block, block)
    if not np.isfinite(out).all():
        bad = int(rows[np.flatnonzero(~np.isfinite(out))[0]])
        raise ValueError(f"`X` holds NaN or infinite values (row {bad}).")
    return out


def _sq_dists(A: FloatArray, A_sq: FloatArray, B: FloatArray, B_sq: FloatArray) -> FloatArray:
    """Squared Euclidean distances between rows, shape (len(A), len(B)), in float32.

    ``A`` is (a, d) with squared norms ``A_sq`` (a,); ``B`` is (b, d) with ``B_sq`` (b,).
    Uses ||a||^2 + ||b||^2 - 2 a.b so the work is one matrix product.
    """
    out = A @ B.T
    out *= -2.0
    out += A_sq[:, None]
    out += B_sq[None, :]
    np.maximum(out, 0.0, out=out)
    return out


def _min_sq_dists(
    X: np.ndarray, rows: IndexArray, rows_sq: FloatArray, centers: IndexArray
) -> FloatArray:
    """Squared distance from each of ``X[rows]`` to its nearest of ``X[centers]``, (len(rows),).

    +inf when ``centers`` is empty.
    """
    out = np.full(rows.size, np.inf, dtype=np.float32)
    for c0 in range(0, centers.size, _CENTER_BLOCK):
        C = _take(X, centers[c0 : c0 + _CENTER_BLOCK])
        C_sq = np.einsum("ij,ij->i", C, C)
        for start in range(0, rows.size, _BLOCK_ROWS):
            block = slice(start, start + _BLOCK_ROWS)
            R = _take(X, rows[block])
            d = _sq_dists(R, rows_sq[block], C, C_sq).min(axis=1)
            np.minimum(out[block], d, out=out[block])
    return out


def _knn_mean_dist(
    Q: FloatArray, Q_sq: FloatArray, R: FloatArray, R_sq: FloatArray, k: int, self_pos: IndexArray
) -> NDArray[np.float64]:
    """Mean Euclidean distance from each query row to its ``k`` nearest reference rows.

    ``Q`` is (q, d), ``R`` is (r, d); ``self_pos`` (q,) gives each query's own position in
    ``R`` (-1 when absent), which is skipped. Returns shape (q,).
    """
    out = np.empty(Q.shape[0], dtype=np.float64)
    for start in range(0, Q.shape[0], _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, Q.shape[0])
        D = _sq_dists(Q[start:stop], Q_sq[start:stop], R, R_sq)
        own = self_pos[start:stop]
        present = np.flatnonzero(own >= 0)
        D[present, own[present]] = np.inf
        nearest = np.partition(D, k - 1, axis=1)[:, :k]
        out[start:stop] = np.sqrt(nearest, dtype=np.float64).mean(axis=1)
    return out


def _positions_in(sorted_reference: IndexArray, queries: IndexArray) -> IndexArray:
    """Position of each query in ``sorted_reference``, or -1 where it is absent; (len(queries),)."""
    pos = np.searchsorted(sorted_reference, queries)
    clipped = np.minimum(pos, sorted_reference.size - 1)
    return np.where(sorted_reference[clipped] == queries, clipped, -1).astype(np.int64)


# -------------------------------------------------------------------------- random


def random_selection(
    n: int, budget: int, *, exclude: ArrayLike = (), random_state: RandomState = 0
) -> IndexArray:
    """Uniformly random rows of ``range(n)`` outside ``exclude``.

    Returns int64 indices, shape (min(budget, n - len(exclude)),), in draw order.
    """
    n = _as_count(n, "n")
    budget = _as_count(budget, "budget")
    available = _remaining(n, _as_indices(exclude, n, "exclude"))
    rng = np.random.default_rng(random_state)
    return rng.choice(available, size=min(budget, available.size), replace=False).astype(np.int64)


# ------------------------------------------------------------------- k-center greedy


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
            stale = self.active[
                (bound >= tau) & (bound > -np.inf) & (self.version[self.active] < self.n_centers)
            ]
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


def _cell_centroids(
    X: np.ndarray, pool: IndexArray, n_centers: int, rng: np.random.Generator
) -> FloatArray:
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


# ---------------------------------------------------------------------- typicality


def _kmeans_plusplus(rows: FloatArray, k: int, rng: np.random.Generator) -> FloatArray:
    """k-means++ seeding (D^2 sampling) of ``k`` centroids among ``rows`` (m, d); (k, d).

    One candidate per step in float32: scikit-learn's version tries 2 + log(k) and
    upcasts to float64, which takes seconds for a thousand clusters.
    """
    rows_sq = np.einsum("ij,ij->i", rows, rows)
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = rng.integers(rows.shape[0])
    closest = _sq_dists(rows, rows_sq, rows[chosen[:1]], rows_sq[chosen[:1]])[:, 0]
    for i in range(1, k):
        cumulative = np.cumsum(closest, dtype=np.float64)
        if cumulative[-1] > 0:
            chosen[i] = np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")
        else:
            chosen[i] = rng.integers(rows.shape[0])
        d = _sq_dists(rows, rows_sq, rows[chosen[i : i + 1]], rows_sq[chosen[i : i + 1]])
        np.minimum(closest, d[:, 0], out=closest)
    return rows[chosen]


def _cluster_labels(
    X: np.ndarray, rows: IndexArray, n_clusters: int, rng: np.random.Generator
) -> IndexArray:
    """K-means cluster of each of ``X[rows]``, shape (len(rows),).

    Seeded by k-means++; Lloyd's KMeans on up to 20,000 rows; above that,
    MiniBatchKMeans fitted on a seeded sample of 20,000 rows (at least 20 per cluster),
    then each row goes to its nearest centroid.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if rows.size <= _KMEANS_FULL_MAX_ROWS:
        data = _take(X, rows)
        init = _kmeans_plusplus(data, n_clusters, rng)
        model = KMeans(n_clusters=n_clusters, init=init, n_init=1, max_iter=30)
        return model.fit(data).labels_.astype(np.int64)
    sample_size = min(rows.size, max(_KMEANS_FULL_MAX_ROWS, 20 * n_clusters))
    data = _take(X, np.sort(rng.choice(rows, size=sample_size, replace=False)))
    init = _kmeans_plusplus(data, n_clusters, rng)
    seed = int(rng.integers(2**31 - 1))
    model = MiniBatchKMeans(
        n_clusters=n_clusters,
        init=init,
        n_init=1,
        batch_size=4096,
        compute_labels=False,
        random_state=seed,
    )
    centroids = model.fit(data).cluster_centers_.astype(np.float32)
    centroids_sq = np.einsum("ij,ij->i", centroids, centroids)
    labels = np.empty(rows.size, dtype=np.int64)
    for start in range(0, rows.size, _BLOCK_ROWS):
        block = _take(X, rows[start : start + _BLOCK_ROWS])
        scores = block @ centroids.T
        scores *= -2.0
        scores += centroids_sq[None, :]
        labels[start : start + block.shape[0]] = scores.argmin(axis=1)
    return labels


def _most_typical_first(
    X: np.ndarray,
    members: IndexArray,
    queries: IndexArray,
    n_neighbors: int,
    rng: np.random.Generator,
) -> IndexArray:
    """``queries`` (rows of one cluster) ordered from most to least typical.

    Typicality is the inverse mean distance to the ``min(n_neighbors, size // 2)``
    nearest other rows of the cluster (``members``, sorted). For clusters over 4,096
    rows both the neighbours and the ranked queries are a seeded sample of 4,096.
    """
    if members.size > _TYPICALITY_MAX_ROWS:
        reference = np.sort(rng.choice(members, size=_TYPICALITY_MAX_ROWS, replace=False))
    else:
        reference = members
    if queries.size > _TYPICALITY_MAX_ROWS:
        queries = np.sort(rng.choice(queries, size=_TYPICALITY_MAX_ROWS, replace=False))
    k = min(n_neighbors, members.size // 2, reference.size - 1)
    if k < 1:
        return queries
    R = _take(X, reference)
    Q = _take(X, queries)
    spread = _knn_mean_dist(
        Q,
        np.einsum("ij,ij->i", Q, Q),
        R,
        np.einsum("ij,ij->i", R, R),
        k,
        _positions_in(reference, queries),
    )
    return queries[np.argsort(spread, kind="stable")]


def typicality(
    X: ArrayLike,
    budget: int,
    *,
    labeled: ArrayLike = (),
    exclude: ArrayLike = (),
    n_neighbors: int = 20,
    min_cluster_size: int = 5,
    max_clusters: int = 2000,
    random_state: RandomState = 0,
) -> IndexArray:
    """TypiClust cold start (Hacohen et al., 2022): the most typical row of each new cluster.

    The labeled and available rows are clustered by k-means into ``len(labeled) +
    budget`` clusters, at most ``max_clusters`` (TypiClust caps at 500: k-means cost
    grows with the number of clusters, and the method is meant for small budgets; past
    the cap, clusters take several rows each). Clusters are visited with those holding the fewest
    labeled-or-chosen rows first and, among equals, the largest first; from each the
    most typical available row is taken, where typicality is the inverse mean distance
    to the ``n_neighbors`` nearest rows of the same cluster. So rows come from dense
    regions, never from outliers, and every labeled-free cluster gets one before any
    gets a second. Clusters under ``min_cluster_size`` rows (usually outliers) are
    visited only after all others. Excluded rows play no part.

    Beyond 100,000 available rows (or 20 per cluster, if more), a seeded sample of them
    stands for the pool: a cold-start budget needs far fewer rows than that to find its
    clusters and their densest points.

    ``X``: (n, d). Returns int64 indices, shape (min(budget, available),), in the order
    chosen.
    """
    n_neighbors = _as_count(n_neighbors, "n_neighbors")
    if n_neighbors == 0:
        raise ValueError("`n_neighbors` must be at least 1.")

    def rank(X: np.ndarray, members: IndexArray, queries: IndexArray, rng: np.random.Generator) -> IndexArray:
        return _most_typical_first(X, members, queries, n_neighbors, rng)

    return _cluster_representatives(
        X, budget, rank, labeled=labeled, exclude=exclude, min_cluster_size=min_cluster_size,
        max_clusters=max_clusters, random_state=random_state,
    )


def prototypes(
    X: ArrayLike,
    budget: int,
    *,
    labeled: ArrayLike = (),
    exclude: ArrayLike = (),
    min_cluster_size: int = 5,
    max_clusters: int = 2000,
    random_state: RandomState = 0,
) -> IndexArray:
    """The row nearest the centre of each new k-means cluster: the cluster's prototype.

    As `typicality` in everything (clusters, their order, sampling of large pools,
    small clusters last) except the row taken from a cluster: the available row nearest
    the mean of the cluster's rows, rather than the one with the densest neighbourhood.
    The density of a neighbourhood of ``n_neighbors`` rows depends on how big the pool
    is and can favour a tight knot at a cluster's edge; the centre stands for the whole
    cluster. On the product's default embeddings it gave the better cold start of the
    two on a binary set with look-alike negatives (smoker: 0.85 against 0.71 accuracy at
    10 labels) and the same on a 10-class set (clothing-small: 0.59 at 10 labels),
    ``python -m bench.label_efficiency``.

    ``X``: (n, d). Returns int64 indices, shape (min(budget, available),), in the order
    chosen.
    """
    return _cluster_representatives(
        X, budget, _nearest_centre_first, labeled=labeled, exclude=exclude,
        min_cluster_size=min_cluster_size, max_clusters=max_clusters, random_state=random_state,
    )


def _nearest_centre_first(
    X: np.ndarray, members: IndexArray, queries: IndexArray, rng: np.random.Generator
) -> IndexArray:
    """``queries`` (rows of one cluster) ordered by distance to the mean of ``members``.

    For clusters over 4,096 rows the mean is taken over a seeded sample of 4,096.
    """
    if members.size > _TYPICALITY_MAX_ROWS:
        members = np.sort(rng.choice(members, size=_TYPICALITY_MAX_ROWS, replace=False))
    centre = _take(X, members).mean(axis=0, dtype=np.float64).astype(np.float32)
    order = np.empty(0, dtype=np.int64)
    distances = []
    for start in range(0, queries.size, _BLOCK_ROWS):
        block = _take(X, queries[start : start + _BLOCK_ROWS]) - centre
        distances.append(np.einsum("ij,ij->i", block, block))
    if distances:
        order = np.argsort(np.concatenate(distances), kind="stable")
    return queries[order]


def _cluster_representatives(
    X: ArrayLike,
    budget: int,
    rank,
    *,
    labeled: ArrayLike,
    exclude: ArrayLike,
    min_cluster_size: int,
    max_clusters: int,
    random_state: RandomState,
) -> IndexArray:
    """The cold starts' common walk: k-means clusters of the labeled and available rows,
    visited fewest-covered first (largest first among equals, clusters under
    ``min_cluster_size`` last), one row each by ``rank(X, members, queries, rng)``
    (queries ordered best first)."""
    X = _as_embeddings(X)
    n = X.shape[0]
    budget = _as_count(budget, "budget")
    labeled = _as_indices(labeled, n, "labeled")
    exclude = _as_indices(exclude, n, "exclude")
    min_cluster_size = _as_count(min_cluster_size, "min_cluster_size")
    max_clusters = _as_count(max_clusters, "max_clusters")
    if max_clusters == 0:
        raise ValueError("`max_clusters` must be at least 1.")
    available = _remaining(n, labeled, exclude)
    budget = min(budget, available.size)
    if budget == 0:
        return np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(random_state)
    n_clusters = min(labeled.size + budget, max_clusters)
    sample_size = max(_TYPICALITY_SAMPLE_ROWS, 20 * n_clusters)
    if available.size > sample_size:
        available = np.sort(rng.choice(available, size=sample_size, replace=False))
    rows = np.union1d(labeled, available)
    n_clusters = min(n_clusters, rows.size)
    with threadpool_limits(limits=1):
        labels = _cluster_labels(X, rows, n_clusters, rng)
        sizes = np.bincount(labels, minlength=n_clusters)
        covered = np.bincount(labels[np.searchsorted(rows, labeled)], minlength=n_clusters)
        members = np.split(rows[np.argsort(labels, kind="stable")], np.cumsum(sizes)[:-1])
        is_available = np.zeros(n, dtype=bool)
        is_available[available] = True
        heap = [
            (int(sizes[c] < min_cluster_size), int(covered[c]), -int(sizes[c]), c)
            for c in range(n_clusters)
            if is_available[members[c]].any()
        ]
        heapq.heapify(heap)
        ranked: dict[int, list[int]] = {}
        chosen: list[int] = []
        while len(chosen) < budget:
            small, count, neg_size, c = heapq.heappop(heap)
            if not ranked.get(c):
                queries = members[c][is_available[members[c]]]
                order = rank(X, members[c], queries, rng)
                ranked[c] = order.tolist()[::-1]
            row = ranked[c].pop()
            chosen.append(row)
            is_available[row] = False
            if ranked[c] or is_available[members[c]].any():
                heapq.heappush(heap, (small, count + 1, neg_size, c))
    return np.asarray(chosen, dtype=np.int64)




# --------------------------------------------------------------------- uncertainty


def _uncertainty_scores(p: NDArray[np.float64], method: str) -> NDArray[np.float64]:
    """Per-row uncertainty, shape (n,), larger meaning more uncertain."""
    if method == "margin":
        top2 = np.partition(p, -2, axis=1)[:, -2:]
        return top2[:, 0] - top2[:, 1]
    if method == "entropy":
        return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1)
    if method == "least_confidence":
        return 1.0 - p.max(axis=1)
    raise ValueError(f"`method` must be one of {', '.join(UNCERTAINTY_METHODS)}; got {method!r}.")


def _most_uncertain_first(p: NDArray[np.float64], method: str) -> IndexArray:
    """Row order of ``p`` (n, k), most uncertain first, ties to the lower row."""
    return np.argsort(-_uncertainty_scores(p, method), kind="stable").astype(np.int64)


def uncertainty(
    proba: ArrayLike,
    budget: int,
    *,
    method: UncertaintyMethod = "margin",
    exclude: ArrayLike = (),
) -> IndexArray:
    """The rows the current head is least sure about.

    ``method``: "margin" takes the smallest gap between the two most probable classes,
    "entropy" the largest entropy, "least_confidence" the smallest top probability.
    Ties go to the lower row index.

    ``proba``: (n, k). Returns int64 indices, shape (min(budget, available),), most
    uncertain first.
    """
    p = _as_proba(proba)
    budget = _as_count(budget, "budget")
    available = _remaining(p.shape[0], _as_indices(exclude, p.shape[0], "exclude"))
    order = _most_uncertain_first(p[available], method)
    return available[order[:budget]]


# ------------------------------------------------------------------------- balance


def _as_target(target: Mapping[int, float] | ArrayLike | None, k: int) -> NDArray[np.float64]:
    """Target class fractions, shape (k,), normalised to sum to 1."""
    if target is None:
        return np.full(k, 1.0 / k)
    if isinstance(target, Mapping):
        fractions = np.zeros(k)
        for label, share in target.items():
            if isinstance(label, bool) or not isinstance(label, Integral) or not 0 <= label < k:
                raise ValueError(f"`target` keys must be class indices in [0, {k}); got {label!r}.")
            fractions[int(label)] = share
    else:
        fractions = np.asarray(target, dtype=np.float64)
        if fractions.shape != (k,):
            raise ValueError(
                f"`target` must have one fraction per class, shape ({k},); got {fractions.shape}."
            )
    if not np.isfinite(fractions).all() or fractions.min() < 0 or fractions.sum() <= 0:
        raise ValueError("`target` fractions must be finite, non-negative and not all zero.")
    return fractions / fractions.sum()


def _allocate(total: int, fractions: NDArray[np.float64], capacity: IndexArray) -> IndexArray:
    """Per-class counts summing to ``total`` that follow ``fractions`` within ``capacity``.

    Largest-remainder rounding; what a full class cannot take goes to the others in
    proportion to their fractions, and to zero-fraction classes only when nothing else
    is left. ``total`` must not exceed ``capacity.sum()``.
    """
    counts = np.zeros(fractions.size, dtype=np.int64)
    remaining = total
    while remaining > 0:
        open_classes = capacity > counts
        weights = np.where(open_classes, fractions, 0.0)
        if weights.sum() == 0:
            weights = open_classes.astype(np.float64)
        share = remaining * weights / weights.sum()
        add = np.floor(share).astype(np.int64)
        leftover = remaining - int(add.sum())
        add[np.argsort(add - share, kind="stable")[:leftover]] += 1
        add = np.minimum(add, capacity - counts)
        counts += add
        remaining -= int(add.sum())
    return counts


def balance(
    proba: ArrayLike,
    budget: int,
    *,
    target: Mapping[int, float] | ArrayLike | None = None,
    exclude: ArrayLike = (),
    random_state: RandomState = 0,
) -> IndexArray:
    """Rows whose predicted classes follow ``target`` fractions, e.g. to reach rare classes.

    ``target``: None for uniform, a mapping ``{class index: fraction}`` (missing classes
    get 0) or an array of shape (k,); fractions are normalised to sum to 1. The count per
    predicted class (argmax of ``proba``) is rounded by largest remainder; a class with
    too few rows gives all it has and the rest of its share goes to the other target
    classes in proportion. Within a class, rows are drawn at random (seeded); the result
    is shuffled so that any prefix is balanced too.

    ``proba``: (n, k). Returns int64 indices, shape (min(budget, available),).
    """
    p = _as_proba(proba)
    n, k = p.shape
    budget = _as_count(budget, "budget")
    fractions = _as_target(target, k)
    available = _remaining(n, _as_indices(exclude, n, "exclude"))
    predicted = p[available].argmax(axis=1)
    capacity = np.bincount(predicted, minlength=k)
    counts = _allocate(min(budget, available.size), fractions, capacity)
    rng = np.random.default_rng(random_state)
    parts = [
        rng.choice(available[predicted == c], size=int(counts[c]), replace=False)
        for c in range(k)
        if counts[c]
    ]
    chosen = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    return rng.permutation(chosen).astype(np.int64)


# ------------------------------------------------------------------------ combined


def _density_weights(
    X: np.ndarray, rows: IndexArray, n_neighbors: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Weights in (0, 1] for ``X[rows]``, shape (len(rows),): 1 at or above the median
    local density of these rows, less in proportion for sparser ones.

    Local density is the inverse mean distance to the ``n_neighbors`` nearest rows of a
    seeded sample of up to 10,000 rows of ``X``.
    """
    n = X.shape[0]
    reference = np.sort(rng.choice(n, size=min(n, _DENSITY_REFERENCE_ROWS), replace=False))
    k = min(n_neighbors, reference.size - 1)
    if k < 1:
        return np.ones(rows.size)
    R = _take(X, reference)
    Q = _take(X, rows)
    spread = _knn_mean_dist(
        Q,
        np.einsum("ij,ij->i", Q, Q),
        R,
        np.einsum("ij,ij->i", R, R),
        k,
        _positions_in(reference, rows),
    )
    typical = float(np.median(spread))
    return np.minimum(1.0, (typical + 1e-12) / (spread + 1e-12))


def combined(
    X: ArrayLike,
    proba: ArrayLike,
    budget: int,
    *,
    labeled: ArrayLike = (),
    exclude: ArrayLike = (),
    pool_factor: int = 5,
    method: UncertaintyMethod = "margin",
    density_weight: float = 1.0,
    n_neighbors: int = 10,
    random_state: RandomState = 0,
) -> IndexArray:
    """Uncertain rows, kept diverse and away from outliers.

    1. Candidates: the ``pool_factor * budget`` most uncertain available rows (see
       `uncertainty`).
    2. Density weight ``w`` per candidate: 1 for candidates at least as dense as the
       median candidate, proportionally less for sparser ones, where density is the
       inverse mean distance to the ``n_neighbors`` nearest rows of a seeded sample of
       up to 10,000 rows of ``X``.
    3. Weighted k-center greedy over the candidates, seeded with ``labeled``: each step
       takes the candidate maximising ``distance to nearest labeled-or-chosen row *
       w ** density_weight``. ``density_weight=0`` is plain k-center, which tends to pick
       outliers because they are far from everything. With nothing labeled, the first
       choice is the most uncertain candidate of full weight.

    ``X``: (n, d), ``proba``: (n, k). Returns int64 indices, a subset of the candidates,
    shape (min(budget, available),), in the order chosen.
    """
    X = _as_embeddings(X)
    n = X.shape[0]
    p = _as_proba(proba, n_rows=n)
    budget = _as_count(budget, "budget")
    pool_factor = _as_count(pool_factor, "pool_factor")
    n_neighbors = _as_count(n_neighbors, "n_neighbors")
    if pool_factor == 0:
        raise ValueError("`pool_factor` must be at least 1.")
    if n_neighbors == 0:
        raise ValueError("`n_neighbors` must be at least 1.")
    if not math.isfinite(density_weight) or density_weight < 0:
        raise ValueError(
            f"`density_weight` must be finite and non-negative; got {density_weight!r}."
        )
    labeled = _as_indices(labeled, n, "labeled")
    available = _remaining(n, labeled, _as_indices(exclude, n, "exclude"))
    order = _most_uncertain_first(p[available], method)
    budget = min(budget, available.size)
    if budget == 0:
        return np.empty(0, dtype=np.int64)
    candidates = available[order[: pool_factor * budget]]
    rng = np.random.default_rng(random_state)
    with threadpool_limits(limits=1, user_api="blas"):
        rows_sq = _sq_norms(X, candidates)
        weight = _density_weights(X, candidates, n_neighbors, rng) ** density_weight
        rows = _take(X, candidates)
        min_sq = _min_sq_dists(X, candidates, rows_sq, labeled)
        taken = np.zeros(candidates.size, dtype=bool)
        chosen: list[int] = []
        position = int(np.argmax(weight >= 1.0)) if labeled.size == 0 else None
        while len(chosen) < budget:
            if position is None:
                score = np.sqrt(min_sq) * weight
                score[taken] = -np.inf
                position = int(np.argmax(score))
            chosen.append(position)
            taken[position] = True
            d = _sq_dists(
                rows, rows_sq, rows[position : position + 1], rows_sq[position : position + 1]
            )
            np.minimum(min_sq, d[:, 0], out=min_sq)
            position = None
    return candidates[np.asarray(chosen, dtype=np.int64)]


# ---------------------------------------------------------------------- dispatcher


def select(
    strategy: str,
    *,
    X: ArrayLike | None = None,
    proba: ArrayLike | None = None,
    budget: int,
    labeled: ArrayLike = (),
    exclude: ArrayLike = (),
    random_state: RandomState = 0,
    **params: Any,
) -> IndexArray:
    """Run the named strategy; ``params`` go to its function.

    ``strategy``: "random", "diversity" (`kcenter_greedy`), "typicality", "prototypes",
    "uncertainty", "balance" or "combined". ``X`` (n, d) is needed by diversity,
    typicality, prototypes and combined; ``proba`` (n, k) by uncertainty, balance and combined; random needs either.
    Rows in ``labeled`` or ``exclude`` are never returned. Returns int64 indices, shape
    (min(budget, available),).
    """
    if strategy not in STRATEGIES:
        raise ValueError(
            f"Unknown selection strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}."
        )

    def need(value: ArrayLike | None, name: str) -> ArrayLike:
        if value is None:
            raise ValueError(f"Strategy {strategy!r} needs `{name}`.")
        return value

    if strategy == "random":
        if X is None and proba is None:
            raise ValueError("Strategy 'random' needs `X` or `proba` to know the number of rows.")
        n = _as_embeddings(X).shape[0] if X is not None else _as_proba(proba).shape[0]
        taken = np.union1d(_as_indices(labeled, n, "labeled"), _as_indices(exclude, n, "exclude"))
        return random_selection(n, budget, exclude=taken, random_state=random_state, **params)
    if strategy == "diversity":
        X = _as_embeddings(need(X, "X"))
        n = X.shape[0]
        excluded = _as_indices(exclude, n, "exclude")
        candidates = _remaining(n, excluded) if excluded.size else None
        return kcenter_greedy(
            X, budget, labeled=labeled, candidates=candidates, random_state=random_state, **params
        )
    if strategy in ("typicality", "prototypes"):
        return (typicality if strategy == "typicality" else prototypes)(
            need(X, "X"),
            budget,
            labeled=labeled,
            exclude=exclude,
            random_state=random_state,
            **params,
        )
    if strategy in ("uncertainty", "balance"):
        p = need(proba, "proba")
        n = _as_proba(p).shape[0]
        taken = np.union1d(_as_indices(labeled, n, "labeled"), _as_indices(exclude, n, "exclude"))
        if strategy == "uncertainty":
            return uncertainty(p, budget, exclude=taken, **params)
        return balance(p, budget, exclude=taken, random_state=random_state, **params)
    return combined(
        need(X, "X"),
        need(proba, "proba"),
        budget,
        labeled=labeled,
        exclude=exclude,
        random_state=random_state,
        **params,
    )
