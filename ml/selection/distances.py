"""Blocked float32 squared-distance kernels over rows of ``X`` (n, d), which may be a memmap."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ml.selection.checks import FloatArray, IndexArray

_BLOCK_ROWS = 2048  # rows per distance block: a float32 block of 384-d rows fits in L2
_CENTER_BLOCK = 1024  # centers per distance block

_STREAM_ROWS = 1 << 16  # rows per block when streaming over all rows once


def _take(X: np.ndarray, rows: IndexArray) -> FloatArray:
    """Rows of ``X`` as float32, shape (len(rows), d); a view for a contiguous float32 run."""
    if rows.size > 1 and rows[-1] - rows[0] == rows.size - 1 and np.all(np.diff(rows) == 1):
        block = X[rows[0] : rows[-1] + 1]
    elif rows.size == 1:
        block = X[rows[0] : rows[0] + 1]
    else:
        block = X[rows]
    return np.asarray(block, dtype=np.float32)


def _sq_norms(X: np.ndarray, rows: IndexArray) -> FloatArray:
    """Squared L2 norms of ``X[rows]``, shape (len(rows),); rejects non-finite rows."""
    out = np.empty(rows.size, dtype=np.float32)
    for start in range(0, rows.size, _STREAM_ROWS):
        block = _take(X, rows[start : start + _STREAM_ROWS])
        out[start : start + block.shape[0]] = np.einsum("ij,ij->i", block, block)
    if not np.isfinite(out).all():
        bad = int(rows[np.flatnonzero(~np.isfinite(out))[0]])
        raise ValueError(f"`X` holds NaN or infinite values (row {bad}).")
    return out


def _sq_dists(A: FloatArray, A_sq: FloatArray, B: FloatArray, B_sq: FloatArray) -> FloatArray:
    """Squared Euclidean distances between rows, shape (len(A), len(B)), in float32.

    ``A`` is (a, d) with squared norms ``A_sq`` (a,); ``B`` is (b, d) with ``B_sq`` (b,).
    Uses ||a||^2 + ||b||^2 - 2 a.b so the work is one matrix product.
    """
    out = A @ B.T
    out *= -2.0
    out += A_sq[:, None]
    out += B_sq[None, :]
    np.maximum(out, 0.0, out=out)
    return out


def _min_sq_dists(X: np.ndarray, rows: IndexArray, rows_sq: FloatArray, centers: IndexArray) -> FloatArray:
    """Squared distance from each of ``X[rows]`` to its nearest of ``X[centers]``, (len(rows),).

    +inf when ``centers`` is empty.
    """
    out = np.full(rows.size, np.inf, dtype=np.float32)
    for c0 in range(0, centers.size, _CENTER_BLOCK):
        C = _take(X, centers[c0 : c0 + _CENTER_BLOCK])
        C_sq = np.einsum("ij,ij->i", C, C)
        for start in range(0, rows.size, _BLOCK_ROWS):
            block = slice(start, start + _BLOCK_ROWS)
            R = _take(X, rows[block])
            d = _sq_dists(R, rows_sq[block], C, C_sq).min(axis=1)
            np.minimum(out[block], d, out=out[block])
    return out


def _knn_mean_dist(
    Q: FloatArray, Q_sq: FloatArray, R: FloatArray, R_sq: FloatArray, k: int, self_pos: IndexArray
) -> NDArray[np.float64]:
    """Mean Euclidean distance from each query row to its ``k`` nearest reference rows.

    ``Q`` is (q, d), ``R`` is (r, d); ``self_pos`` (q,) gives each query's own position in
    ``R`` (-1 when absent), which is skipped. Returns shape (q,).
    """
    out = np.empty(Q.shape[0], dtype=np.float64)
    for start in range(0, Q.shape[0], _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, Q.shape[0])
        D = _sq_dists(Q[start:stop], Q_sq[start:stop], R, R_sq)
        own = self_pos[start:stop]
        present = np.flatnonzero(own >= 0)
        D[present, own[present]] = np.inf
        nearest = np.partition(D, k - 1, axis=1)[:, :k]
        out[start:stop] = np.sqrt(nearest, dtype=np.float64).mean(axis=1)
    return out
