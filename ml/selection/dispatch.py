"""One entry point: :func:`select` runs a strategy by name."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ml.selection.balance import balance
from ml.selection.baseline import random_selection
from ml.selection.checks import (
    IndexArray,
    RandomState,
    _as_embeddings,
    _as_indices,
    _as_proba,
    _remaining,
)
from ml.selection.combined import combined
from ml.selection.kcenter import kcenter_greedy
from ml.selection.typicality import prototypes, typicality
from ml.selection.uncertainty import uncertainty

STRATEGIES = ("random", "diversity", "typicality", "prototypes", "uncertainty", "balance", "combined")


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
        raise ValueError(f"Unknown selection strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}.")

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
        return kcenter_greedy(X, budget, labeled=labeled, candidates=candidates, random_state=random_state, **params)
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
