"""The random baseline every strategy is measured against."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ml.selection.checks import IndexArray, RandomState, _as_count, _as_indices, _remaining


def random_selection(n: int, budget: int, *, exclude: ArrayLike = (), random_state: RandomState = 0) -> IndexArray:
    """Uniformly random rows of ``range(n)`` outside ``exclude``.

    Returns int64 indices, shape (min(budget, n - len(exclude)),), in draw order.
    """
    n = _as_count(n, "n")
    budget = _as_count(budget, "budget")
    available = _remaining(n, _as_indices(exclude, n, "exclude"))
    rng = np.random.default_rng(random_state)
    return rng.choice(available, size=min(budget, available.size), replace=False).astype(np.int64)
