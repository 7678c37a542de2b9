"""Behaviour tests for the selection strategies in `ml.selection`."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from ml.selection import (
    STRATEGIES,
    balance,
    combined,
    covering_radius,
    kcenter_greedy,
    kcenter_greedy_exact,
    random_selection,
    select,
    typicality,
    uncertainty,
)


@pytest.fixture(scope="module", autouse=True)
def single_threaded_blas() -> Iterator[None]:
    """Tiny products: thread pools waiting for a busy core only slow them down."""
    with threadpool_limits(limits=1):
        yield


def unit_rows(X: np.ndarray) -> np.ndarray:
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def blobs(sizes: list[int], *, dim: int = 16, spread: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised Gaussian blobs around random directions, shuffled.

    Returns X (n, dim) float32 and the blob of each row (n,).
    """
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng.standard_normal((len(sizes), dim)))
    X = np.concatenate([c + spread * rng.standard_normal((size, dim)) for c, size in zip(centres, sizes, strict=True)])
    blob = np.repeat(np.arange(len(sizes)), sizes)
    order = rng.permutation(blob.size)
    return unit_rows(X[order]), blob[order]


def probabilities(n: int, k: int = 4, *, seed: int = 0) -> np.ndarray:
    """Random class probabilities, (n, k), rows summing to 1."""
    logits = 2.0 * np.random.default_rng(seed).standard_normal((n, k))
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def mean_knn_dist(X: np.ndarray, k: int) -> np.ndarray:
    """Brute-force mean distance from every row to its k nearest other rows, (n,)."""
    X64 = X.astype(np.float64)
    d = np.linalg.norm(X64[:, None, :] - X64[None, :, :], axis=2)
    return np.sort(d, axis=1)[:, 1 : k + 1].mean(axis=1)


def min_dists(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Brute-force distance from every row to its nearest center, (n,)."""
    X64 = X.astype(np.float64)
    return np.linalg.norm(X64[:, None, :] - X64[centers][None, :, :], axis=2).min(axis=1)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    X, _ = blobs([60, 40, 30, 20, 10], dim=16, spread=0.3)
    return X, probabilities(X.shape[0], seed=1)


def run(strategy: str, X: np.ndarray, proba: np.ndarray, budget: int, **kwargs) -> np.ndarray:
    return select(strategy, X=X, proba=proba, budget=budget, **kwargs)


# ----------------------------------------------------------------- shared contract


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_result_is_distinct_int64_and_never_labeled_or_excluded(strategy, data):
    X, proba = data
    labeled, exclude = np.arange(0, 40, 2), np.arange(1, 30, 3)
    chosen = run(strategy, X, proba, 25, labeled=labeled, exclude=exclude)
    assert chosen.dtype == np.int64 and chosen.ndim == 1
    assert chosen.size == 25 == np.unique(chosen).size
    assert not np.isin(chosen, np.union1d(labeled, exclude)).any()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_budget_larger_than_pool_returns_every_available_row(strategy, data):
    X, proba = data
    labeled, exclude = np.arange(100), np.arange(100, 150)
    chosen = run(strategy, X, proba, 1000, labeled=labeled, exclude=exclude)
    assert np.array_equal(np.sort(chosen), np.arange(150, X.shape[0]))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_zero_budget_and_empty_pool_give_empty_results(strategy, data):
    X, proba = data
    assert run(strategy, X, proba, 0).size == 0
    assert run(strategy, X, proba, 5, exclude=np.arange(X.shape[0])).size == 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_seed_same_result(strategy, data):
    X, proba = data
    first = run(strategy, X, proba, 12, labeled=[3, 5], random_state=7)
    assert np.array_equal(first, run(strategy, X, proba, 12, labeled=[3, 5], random_state=7))


@pytest.mark.parametrize("strategy", ["random", "balance"])
def test_another_seed_draws_differently(strategy, data):
    X, proba = data
    assert not np.array_equal(run(strategy, X, proba, 12), run(strategy, X, proba, 12, random_state=1))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_read_only_and_memory_mapped_inputs_are_left_alone(strategy, data, tmp_path):
    X, proba = data
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    frozen = proba.copy()
    frozen.setflags(write=False)
    chosen = run(strategy, mapped, frozen, 10, labeled=[1, 2])
    assert np.array_equal(chosen, run(strategy, X, proba, 10, labeled=[1, 2]))


def test_dispatcher_rejects_unknown_strategy_by_name(data):
    X, proba = data
    with pytest.raises(ValueError, match="'coreset'"):
        select("coreset", X=X, proba=proba, budget=3)


@pytest.mark.parametrize(
    ("strategy", "missing"),
    [
        ("diversity", "`X`"),
        ("typicality", "`X`"),
        ("uncertainty", "`proba`"),
        ("combined", "`proba`"),
    ],
)
def test_dispatcher_names_the_missing_input(strategy, missing, data):
    X, _ = data
    with pytest.raises(ValueError, match=missing):
        select(strategy, X=X if missing != "`X`" else None, budget=3)


def test_dispatcher_passes_strategy_parameters_through(data):
    _, proba = data
    assert np.array_equal(
        select("uncertainty", proba=proba, budget=5, method="entropy"),
        uncertainty(proba, 5, method="entropy"),
    )


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda X, p: kcenter_greedy(X[0], 3), "`X`"),
        (lambda X, p: kcenter_greedy(X.astype(np.int32), 3), "`X`"),
        (lambda X, p: kcenter_greedy(X, -1), "`budget`"),
        (lambda X, p: kcenter_greedy(X, 2.5), "`budget`"),
        (lambda X, p: kcenter_greedy(X, 3, labeled=[X.shape[0]]), "`labeled`"),
        (lambda X, p: kcenter_greedy(X, 3, candidates=[[1, 2]]), "`candidates`"),
        (lambda X, p: kcenter_greedy_exact(X, 3, labeled=[0.5]), "`labeled`"),
        (lambda X, p: typicality(X, 3, exclude=[-1]), "`exclude`"),
        (lambda X, p: typicality(X, 3, n_neighbors=0), "`n_neighbors`"),
        (lambda X, p: uncertainty(p[:, :1], 3), "`proba`"),
        (lambda X, p: uncertainty(p[0], 3), "`proba`"),
        (lambda X, p: uncertainty(2 * p, 3), "`proba`"),
        (lambda X, p: uncertainty(p, 3, method="margins"), "`method`"),
        (lambda X, p: balance(p, 3, target=[0.5, 0.5]), "`target`"),
        (lambda X, p: balance(p, 3, target={7: 1.0}), "`target`"),
        (lambda X, p: combined(X, p[:-1], 3), "`proba`"),
        (lambda X, p: random_selection(-3, 1), "`n`"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, name, data):
    X, proba = data
    with pytest.raises(ValueError, match=name):
        call(X, proba)


def test_non_finite_embeddings_are_rejected(data):
    X = data[0].copy()
    X[4, 2] = np.nan
    with pytest.raises(ValueError, match="row 4"):
        kcenter_greedy(X, 3)


# -------------------------------------------------------------------------- random


def test_random_selection_draws_uniformly_outside_exclude():
    exclude = np.arange(0, 100, 2)
    counts = np.bincount(
        np.concatenate([random_selection(100, 10, exclude=exclude, random_state=s) for s in range(400)]),
        minlength=100,
    )
    assert counts[exclude].sum() == 0
    assert counts[1::2].min() > 40 and counts[1::2].max() < 130  # mean 80


# ------------------------------------------------------------------- k-center greedy


KCENTER: list[Callable[..., np.ndarray]] = [kcenter_greedy, kcenter_greedy_exact]


@pytest.mark.parametrize("kcenter", KCENTER)
def test_each_choice_is_the_row_farthest_from_the_centers_so_far(kcenter):
    X, _ = blobs([30, 20, 10], dim=5, spread=0.4, seed=3)
    labeled = np.array([0, 1])
    chosen = kcenter(X, 12, labeled=labeled)
    for step, row in enumerate(chosen):
        d = min_dists(X, np.concatenate([labeled, chosen[:step]]))
        assert d[row] == pytest.approx(d.max(), abs=1e-5)


@pytest.mark.parametrize("kcenter", KCENTER)
def test_greedy_radius_is_within_twice_the_best_possible_on_tiny_sets(kcenter):
    for seed in range(5):
        X = unit_rows(np.random.default_rng(seed).standard_normal((9, 3)))
        for budget in (2, 3, 4):
            best = min(min_dists(X, np.array(c)).max() for c in itertools.combinations(range(9), budget))
            radius = min_dists(X, kcenter(X, budget)).max()
            assert best <= radius + 1e-6 and radius <= 2 * best + 1e-6


@pytest.mark.parametrize("kcenter", KCENTER)
def test_without_labels_the_first_choice_is_dense_and_the_outlier_comes_next(kcenter):
    X, _ = blobs([80, 40], dim=8, spread=0.2, seed=4)
    X[17] = unit_rows(-X[:80].mean(axis=0, keepdims=True))[0]  # far from every blob
    chosen = kcenter(X, 3)
    assert chosen[1] == 17
    spread = mean_knn_dist(X, 10)
    assert spread[chosen[0]] < np.quantile(spread, 0.25)


def test_labeled_rows_seed_the_cover(data):
    X, _ = data
    labeled = np.arange(0, X.shape[0], 3)
    first = kcenter_greedy(X, 1, labeled=labeled)[0]
    assert first == np.argmax(np.where(np.isin(np.arange(X.shape[0]), labeled), -1, min_dists(X, labeled)))


def test_candidates_limit_both_the_choices_and_the_rows_covered(data):
    X, _ = data
    candidates = np.arange(50, 120)
    chosen = kcenter_greedy(X, 10, candidates=candidates, labeled=[55, 150])
    assert np.isin(chosen, candidates).all() and 55 not in chosen
    assert np.array_equal(chosen, kcenter_greedy_exact(X, 10, candidates=candidates, labeled=[55, 150]))


@pytest.mark.parametrize(("labeled", "shortlist_size"), [((), 8192), ((), 8), (tuple(range(0, 400, 5)), 16), ((5,), 1)])
def test_fast_kcenter_makes_the_exact_choices(labeled, shortlist_size):
    """Small shortlists force many refreshes of stale bounds; 150 picks use several cells."""
    X, _ = blobs([150, 120, 90, 60, 40, 20, 10], dim=12, spread=0.35, seed=5)
    labeled = np.array(labeled, dtype=np.int64)
    fast = kcenter_greedy(X, 150, labeled=labeled, shortlist_size=shortlist_size)
    exact = kcenter_greedy_exact(X, 150, labeled=labeled)
    assert np.array_equal(fast, exact)


def test_float16_embeddings_give_the_same_choices_as_their_float32_copy(data):
    X16 = data[0].astype(np.float16)
    assert np.array_equal(kcenter_greedy(X16, 20), kcenter_greedy(X16.astype(np.float32), 20))


def test_covering_radius_matches_brute_force(data):
    X, _ = data
    chosen, labeled = np.array([3, 40, 90]), np.array([7])
    expected = min_dists(X, np.concatenate([chosen, labeled])).max()
    assert covering_radius(X, chosen, labeled=labeled) == pytest.approx(expected, abs=1e-5)
    assert covering_radius(X, []) == np.inf


# ---------------------------------------------------------------------- typicality


def test_typicality_takes_one_dense_row_per_blob_and_never_the_outliers():
    X, blob = blobs([50, 40, 30, 25], dim=8, spread=0.2, seed=6)
    outliers = np.array([0, 1])
    X[outliers] = unit_rows(np.random.default_rng(9).standard_normal((2, 8)))
    blob[outliers] = -1
    chosen = typicality(X, 4, n_neighbors=10)
    assert not np.isin(chosen, outliers).any()
    assert sorted(blob[chosen]) == [0, 1, 2, 3]
    for row in chosen:
        mates = np.flatnonzero(blob == blob[row])
        spread = mean_knn_dist(X[mates], 10)
        assert spread[mates == row][0] <= np.quantile(spread, 0.1)


def test_typicality_with_fewer_clusters_than_picks_spreads_them_evenly():
    X, blob = blobs([50, 40, 30], dim=8, spread=0.2, seed=6)
    chosen = typicality(X, 6, max_clusters=3)
    assert np.bincount(blob[chosen]).tolist() == [2, 2, 2]


def test_typicality_fills_blobs_without_labels_first():
    X, blob = blobs([50, 40, 30, 25], dim=8, spread=0.2, seed=6)
    labeled = np.flatnonzero(blob == 0)[:3]
    chosen = typicality(X, 3, labeled=labeled)
    assert sorted(blob[chosen]) == [1, 2, 3]


# --------------------------------------------------------------------- uncertainty


def test_uncertainty_methods_follow_their_scores(data):
    _, proba = data
    top2 = np.sort(proba, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    entropy = -(proba * np.log(proba)).sum(axis=1)
    confidence = proba.max(axis=1)
    assert np.array_equal(uncertainty(proba, 15), np.argsort(margin, kind="stable")[:15])
    assert np.array_equal(uncertainty(proba, 15, method="entropy"), np.argsort(-entropy, kind="stable")[:15])
    assert np.array_equal(
        uncertainty(proba, 15, method="least_confidence"),
        np.argsort(confidence, kind="stable")[:15],
    )


def test_uncertainty_skips_excluded_rows_and_breaks_ties_by_row():
    proba = np.array([[0.5, 0.5], [0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.5, 0.5]])
    assert uncertainty(proba, 3, exclude=[2]).tolist() == [0, 4, 3]


# ------------------------------------------------------------------------- balance


def test_balance_hits_uniform_target_fractions(data):
    _, proba = data
    predicted = proba.argmax(axis=1)
    chosen = balance(proba, 40)
    assert np.bincount(predicted[chosen], minlength=4).tolist() == [10, 10, 10, 10]


@pytest.mark.parametrize("target", [{0: 0.5, 2: 0.3, 3: 0.2}, [0.5, 0.0, 0.3, 0.2]])
def test_balance_hits_given_target_fractions(target, data):
    _, proba = data
    chosen = balance(proba, 20, target=target)
    assert np.bincount(proba[chosen].argmax(axis=1), minlength=4).tolist() == [10, 0, 6, 4]


def test_balance_gives_a_short_class_all_it_has_and_shares_the_rest():
    proba = np.tile([[0.7, 0.1, 0.1, 0.1]], (100, 1))
    proba[:3] = [0.1, 0.7, 0.1, 0.1]  # class 1 has only 3 rows
    proba[3:40] = [0.1, 0.1, 0.7, 0.1]
    proba[40:80] = [0.1, 0.1, 0.1, 0.7]
    chosen = balance(proba, 40, target={0: 0.25, 1: 0.25, 2: 0.25, 3: 0.25})
    assert np.bincount(proba[chosen].argmax(axis=1), minlength=4).tolist() == [13, 3, 12, 12]


def test_balance_prefix_stays_balanced(data):
    _, proba = data
    chosen = balance(proba, 80)
    assert np.bincount(proba[chosen[:40]].argmax(axis=1), minlength=4).min() >= 5


# ------------------------------------------------------------------------ combined


def test_combined_picks_diverse_rows_among_the_uncertain_candidates():
    X, blob = blobs([100, 100, 100], dim=8, spread=0.25, seed=7)
    proba = probabilities(X.shape[0], seed=2)
    chosen = combined(X, proba, 6, pool_factor=5)
    candidates = uncertainty(proba, 30)
    assert np.isin(chosen, candidates).all()
    assert len(set(blob[chosen])) == 3
    radius = covering_radius(X, chosen, candidates=candidates)
    assert radius < 0.9 * covering_radius(X, candidates[:6], candidates=candidates)


def test_combined_avoids_an_uncertain_outlier_that_plain_kcenter_takes():
    X, _ = blobs([120, 120], dim=8, spread=0.25, seed=8)
    X[5] = unit_rows(-X.mean(axis=0, keepdims=True))[0]
    proba = probabilities(X.shape[0], k=2, seed=3)
    proba[5] = [0.5, 0.5]  # the most uncertain row of all
    labeled = np.arange(10, 20)
    assert 5 not in combined(X, proba, 5, labeled=labeled)
    assert 5 in combined(X, proba, 5, labeled=labeled, density_weight=0.0)


def test_prototypes_take_the_row_nearest_each_cluster_centre():
    from ml.selection import prototypes

    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    X = np.concatenate([c + rng.normal(size=(30, 2)) for c in centres]).astype(np.float32)
    # A tight knot off-centre in the first cluster: density would pick it, the centre does not.
    X[:5] = centres[0] + np.array([2.4, 2.4]) + rng.normal(scale=0.01, size=(5, 2))
    picked = prototypes(X, 3, random_state=0)
    assert sorted(int(i) // 30 for i in picked) == [0, 1, 2], "one row per cluster"
    for i in picked:
        members = X[(int(i) // 30) * 30 : (int(i) // 30 + 1) * 30]
        nearest = np.argmin(((members - members.mean(axis=0)) ** 2).sum(axis=1))
        assert int(i) % 30 == nearest
    assert not set(picked.tolist()) & set(range(5))
    again = prototypes(X, 3, labeled=picked[:1], random_state=0)
    assert picked[0] not in again.tolist() and len(again) == 3
