"""Uncertainty weighted by density, kept diverse by a covering term."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from threadpoolctl import threadpool_limits

from ml.selection.checks import (
    IndexArray,
    RandomState,
    _as_count,
    _as_embeddings,
    _as_indices,
    _as_proba,
    _positions_in,
    _remaining,
)
from ml.selection.distances import _knn_mean_dist, _min_sq_dists, _sq_dists, _sq_norms, _take
from ml.selection.uncertainty import UncertaintyMethod, _most_uncertain_first

_DENSITY_REFERENCE_ROWS = 10_000


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
        raise ValueError(f"`density_weight` must be finite and non-negative; got {density_weight!r}.")
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
            d = _sq_dists(rows, rows_sq, rows[position : position + 1], rows_sq[position : position + 1])
            np.minimum(min_sq, d[:, 0], out=min_sq)
            position = None
    return candidates[np.asarray(chosen, dtype=np.int64)]
