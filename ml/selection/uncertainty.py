"""Uncertainty sampling from the current head's class probabilities."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.selection.checks import IndexArray, _as_count, _as_indices, _as_proba, _remaining

UncertaintyMethod = Literal["margin", "entropy", "least_confidence"]

UNCERTAINTY_METHODS = ("margin", "entropy", "least_confidence")


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
