"""Cold-start rules over clusters of the pool: typicality and cluster prototypes."""

from __future__ import annotations

import heapq

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
    _positions_in,
    _remaining,
)
from ml.selection.distances import _BLOCK_ROWS, _knn_mean_dist, _sq_dists, _take

_KMEANS_FULL_MAX_ROWS = 20_000  # above this, MiniBatchKMeans on a sample
_TYPICALITY_SAMPLE_ROWS = 100_000  # larger pools are subsampled for typicality
_TYPICALITY_MAX_ROWS = 4096  # per-cluster cap on reference rows and on ranked rows


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


def _cluster_labels(X: np.ndarray, rows: IndexArray, n_clusters: int, rng: np.random.Generator) -> IndexArray:
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
        X,
        budget,
        rank,
        labeled=labeled,
        exclude=exclude,
        min_cluster_size=min_cluster_size,
        max_clusters=max_clusters,
        random_state=random_state,
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
        X,
        budget,
        _nearest_centre_first,
        labeled=labeled,
        exclude=exclude,
        min_cluster_size=min_cluster_size,
        max_clusters=max_clusters,
        random_state=random_state,
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
