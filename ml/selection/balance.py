"""Class-balanced selection toward a target class distribution."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.selection.checks import (
    IndexArray,
    RandomState,
    _as_count,
    _as_indices,
    _as_proba,
    _remaining,
)


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
            raise ValueError(f"`target` must have one fraction per class, shape ({k},); got {fractions.shape}.")
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
    parts = [rng.choice(available[predicted == c], size=int(counts[c]), replace=False) for c in range(k) if counts[c]]
    chosen = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    return rng.permutation(chosen).astype(np.int64)
