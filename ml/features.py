"""Feature sets for the head: fusing embeddings, and choosing among them by evidence.

A project may hold several embeddings of the same images (the pretrained default
backbone, MSN trained on the pool, a checkpoint, the text found in the image). Which one
the head should use is decided by cross-validation on the labels at hand, never assumed:
:func:`compare_feature_sets` scores every candidate with the head's own preprocessing
and decision rule, and :func:`best_feature_set` names the winner.

Shapes: every candidate is (n, d_i) with the same n rows in the same order; ``y`` (n,).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import balanced_accuracy_score, log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.class_weight import compute_sample_weight

from ml.head import LinearHead

FUSION_SEPARATOR = "+"
"""Joins the names of fused parts: ``"efficientnet-lite0+text"``."""

MAX_COMPARE_ROWS = 2000
"""Labels used for the comparison at most (a stratified sample beyond it)."""


class FeatureScore(TypedDict):
    dim: int
    log_loss: float
    """Mean class-balanced out-of-fold log-loss (lower is better): the criterion."""
    balanced_accuracy: float
    """Mean out-of-fold balanced accuracy, for people to read."""
    folds: int
    n: int


def l2_normalise(X: ArrayLike) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero). (n, d) -> (n, d) float32."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


def fuse(parts: Sequence[ArrayLike]) -> np.ndarray:
    """Concatenation of L2-normalised parts, each weighted ``1 / sqrt(len(parts))``.

    Every part then contributes equally to distances and to the head's input, whatever
    its width, and a row whose parts are all non-zero has unit length. A part's zero row
    (an image with no text) stays zero.

    ``parts``: arrays (n, d_i) with the same n. Returns float32 (n, sum d_i).
    """
    if not parts:
        raise ValueError("fuse needs at least one part")
    rows = {np.asarray(p).shape[0] for p in parts}
    if len(rows) != 1:
        raise ValueError(f"parts have different numbers of rows: {sorted(rows)}")
    weight = np.float32(1.0 / np.sqrt(len(parts)))
    return np.concatenate([l2_normalise(p) * weight for p in parts], axis=1)


def fused_name(names: Sequence[str]) -> str:
    return FUSION_SEPARATOR.join(names)


def compare_feature_sets(
    candidates: Mapping[str, ArrayLike],
    y: ArrayLike,
    *,
    cv: int = 5,
    C: float = 1.0,
    max_rows: int = MAX_COMPARE_ROWS,
    random_state: int = 0,
) -> dict[str, FeatureScore]:
    """Out-of-fold scores of the head on each candidate feature set.

    Every candidate is scored on the same stratified folds with ``LinearHead(C=C,
    calibrate=False)`` (the head's centring, normalisation and class-balanced
    regression), so the comparison differs only in the features. With more than
    ``max_rows`` labels a stratified sample of that size is used.

    Args:
        candidates: name -> (n, d) features of the same labeled rows.
        y: labels, shape (n,), at least two classes with two labels each.

    Returns:
        name -> scores, in the order of ``candidates``.

    Raises:
        ValueError: fewer than two classes with at least two labels each, or
            candidates whose row count differs from ``y``.
    """
    y = np.asarray(y)
    n = y.shape[0]
    for name, X in candidates.items():
        if np.asarray(X).shape[0] != n:
            raise ValueError(f"feature set {name!r} has {np.asarray(X).shape[0]} rows, y has {n}")
    rows = _sample_rows(y, max_rows, random_state)
    y = y[rows]
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2 or counts.min() < 2:
        raise ValueError("comparing feature sets needs at least two classes with two labels each")
    folds = list(
        StratifiedKFold(n_splits=int(min(cv, counts.min())), shuffle=True, random_state=random_state).split(
            np.zeros(len(y)), y
        )
    )
    scores: dict[str, FeatureScore] = {}
    for name, X in candidates.items():
        X = np.asarray(X)[rows]
        losses, accuracies = [], []
        for train, val in folds:
            if np.unique(y[train]).size < 2:
                continue
            head = LinearHead(C=C, calibrate=False, random_state=random_state).fit(X[train], y[train])
            proba = np.zeros((len(val), classes.size))
            proba[:, np.searchsorted(classes, head.classes_)] = head.predict_proba(X[val])
            weights = compute_sample_weight("balanced", y[val])
            losses.append(log_loss(y[val], proba, sample_weight=weights, labels=classes))
            accuracies.append(balanced_accuracy_score(y[val], classes[proba.argmax(axis=1)]))
        scores[name] = FeatureScore(
            dim=int(X.shape[1]),
            log_loss=float(np.mean(losses)),
            balanced_accuracy=float(np.mean(accuracies)),
            folds=len(losses),
            n=len(y),
        )
    return scores


def best_feature_set(scores: Mapping[str, FeatureScore]) -> str:
    """The candidate with the lowest log-loss; ties go to the earlier candidate."""
    if not scores:
        raise ValueError("no feature set was scored")
    return min(scores, key=lambda name: (scores[name]["log_loss"], list(scores).index(name)))


def _sample_rows(y: np.ndarray, max_rows: int, random_state: int) -> np.ndarray:
    """All row indices, or a stratified sample of ``max_rows`` of them, sorted."""
    n = y.shape[0]
    if n <= max_rows:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    keep = []
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        share = max(2, round(max_rows * members.size / n))
        keep.append(rng.choice(members, size=min(share, members.size), replace=False))
    return np.sort(np.concatenate(keep))
