"""The rounds' selection rule: the cold start until a head exists, then the strategy."""

from __future__ import annotations

import numpy as np
import pytest

from ml.loop import COLD_START, choose_batch, strategy_for


@pytest.fixture
def pool() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 5
    X = (centres[np.repeat(np.arange(3), 30)] + rng.normal(size=(90, 8))).astype(np.float32)
    proba = rng.dirichlet(np.ones(3), size=90)
    return X, proba


@pytest.mark.parametrize("strategy", ["uncertainty", "balance", "combined"])
def test_strategies_that_need_a_head_fall_back_to_the_cold_start_without_one(pool, strategy):
    X, _ = pool
    picked, used = choose_batch(strategy, X=X, budget=6, random_state=3)
    assert used == COLD_START == "prototypes"
    expected, _ = choose_batch(COLD_START, X=X, budget=6, random_state=3)
    np.testing.assert_array_equal(picked, expected)


def test_with_a_head_the_strategy_runs_on_its_probabilities(pool):
    X, proba = pool
    picked, used = choose_batch("uncertainty", X=X, proba=proba, budget=5, labeled=[0, 1])
    assert used == "uncertainty"
    margin = np.sort(proba, axis=1)[:, -1] - np.sort(proba, axis=1)[:, -2]
    margin[[0, 1]] = np.inf
    np.testing.assert_array_equal(np.sort(picked), np.sort(np.argsort(margin)[:5]))


def test_never_returns_labeled_or_excluded_rows(pool):
    X, proba = pool
    labeled, exclude = np.arange(0, 90, 3), np.arange(1, 90, 3)
    for strategy in ("random", "diversity", "typicality", "prototypes", "combined"):
        picked, _ = choose_batch(strategy, X=X, proba=proba, budget=20, labeled=labeled, exclude=exclude)
        assert len(picked) == 20 and len(set(picked.tolist())) == 20
        assert not set(picked.tolist()) & (set(labeled.tolist()) | set(exclude.tolist()))


def test_strategy_for_names_what_a_round_runs():
    assert strategy_for("combined", has_proba=False) == "prototypes"
    assert strategy_for("combined", has_proba=True) == "combined"
    assert strategy_for("diversity", has_proba=False) == "diversity"
    assert strategy_for("uncertainty", has_proba=False, cold_start="random") == "random"
