"""The labeling loop's selection rule, shared by the product's rounds and the benchmarks.

One function decides which rows a round adds, so that ``bench.label_efficiency``
measures exactly what ``labeling.services.rounds`` runs:

- before a head exists (no probabilities, or labels of fewer than two classes), the
  cold start: the prototypes of k-means clusters of the embeddings
  (:func:`ml.selection.prototypes`);
- afterwards the project's strategy, over the current head's probabilities where the
  strategy needs them.

Shapes as in :mod:`ml.selection`: ``X`` (n, d), ``proba`` (n, k), index arrays 1-D.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ml.selection import IndexArray, RandomState, select

COLD_START = "prototypes"
"""The round-0 strategy: the row nearest the centre of each k-means cluster, clusters of
the pool visited largest first (a TypiClust walk that takes the centre of a cluster, not
its densest knot; see :func:`ml.selection.prototypes` for the measurements)."""

NEEDS_PROBA = ("uncertainty", "balance", "combined")
"""Strategies that rank rows by the head's probabilities."""


def strategy_for(strategy: str, *, has_proba: bool, cold_start: str = COLD_START) -> str:
    """The strategy a round actually runs: ``cold_start`` while a strategy that needs
    probabilities has none."""
    if strategy in NEEDS_PROBA and not has_proba:
        return cold_start
    return strategy


def choose_batch(
    strategy: str,
    *,
    X: ArrayLike,
    budget: int,
    labeled: ArrayLike = (),
    exclude: ArrayLike = (),
    proba: ArrayLike | None = None,
    cold_start: str = COLD_START,
    random_state: RandomState = 0,
    **params: Any,
) -> tuple[IndexArray, str]:
    """Rows of ``X`` for the next round, and the strategy that chose them.

    ``labeled`` rows seed diversity and are never returned, nor are ``exclude`` rows.
    ``proba`` is the current head's (n, k) probabilities, or None before there is a
    head; ``params`` go to the strategy (for example ``method="entropy"``).

    Returns ``(indices, strategy_used)``: int64 row indices, most wanted first, shape
    (min(budget, available),).
    """
    used = strategy_for(strategy, has_proba=proba is not None, cold_start=cold_start)
    picked = select(
        used,
        X=X,
        proba=proba if used in NEEDS_PROBA else None,
        budget=budget,
        labeled=labeled,
        exclude=exclude,
        random_state=random_state,
        **(params if used == strategy else {}),
    )
    return np.asarray(picked, dtype=np.int64), used
