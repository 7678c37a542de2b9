"""Array types and input checks shared by the selection strategies."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

IndexArray = NDArray[np.int64]
FloatArray = NDArray[np.float32]
RandomState = int | np.random.Generator | None


def _as_embeddings(X: ArrayLike) -> np.ndarray:
    """``X`` as an array of shape (n, d), without copying an array (or memmap) given."""
    array = X if isinstance(X, np.ndarray) else np.asarray(X)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"`X` must be a 2-D array of shape (n, d) with n, d >= 1; got shape {array.shape}.")
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
            f"`{name}` must be a 1-D sequence of integer row indices; got shape {array.shape} and dtype {array.dtype}."
        )
    if array.min() < 0 or array.max() >= n:
        raise ValueError(f"`{name}` holds row indices outside [0, {n}).")
    return np.unique(array.astype(np.int64))


def _as_proba(proba: ArrayLike, n_rows: int | None = None) -> NDArray[np.float64]:
    """Class probabilities as float64, shape (n, k); ``n_rows`` is the row count of ``X``."""
    array = np.asarray(proba)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] < 2:
        raise ValueError(
            f"`proba` must be a 2-D array of shape (n, k) with n >= 1 rows and k >= 2 classes; got shape {array.shape}."
        )
    if n_rows is not None and array.shape[0] != n_rows:
        raise ValueError(f"`proba` has {array.shape[0]} rows but `X` has {n_rows}.")
    if array.dtype.kind != "f":
        raise ValueError(f"`proba` must hold floating-point numbers; got dtype {array.dtype}.")
    p = array.astype(np.float64)
    if not np.isfinite(p).all() or p.min() < -1e-6 or p.max() > 1 + 1e-6 or np.abs(p.sum(axis=1) - 1).max() > 1e-2:
        raise ValueError("`proba` must hold probabilities: finite, in [0, 1], rows summing to 1.")
    return p


def _remaining(n: int, *taken: IndexArray) -> IndexArray:
    """The rows of ``range(n)`` in none of ``taken``, ascending."""
    keep = np.ones(n, dtype=bool)
    for indices in taken:
        keep[indices] = False
    return np.flatnonzero(keep).astype(np.int64)


def _positions_in(sorted_reference: IndexArray, queries: IndexArray) -> IndexArray:
    """Position of each query in ``sorted_reference``, or -1 where it is absent; (len(queries),)."""
    pos = np.searchsorted(sorted_reference, queries)
    clipped = np.minimum(pos, sorted_reference.size - 1)
    return np.where(sorted_reference[clipped] == queries, clipped, -1).astype(np.int64)
