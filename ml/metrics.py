"""Evaluation metrics for the linear head and the label-efficiency benchmark.

Pure functions over numpy arrays. `evaluate` bundles everything a retraining round
stores into one JSON-serialisable dict; the helpers it is built from are public so
callers and tests can use them on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
)

MAX_PR_POINTS = 101


def _native(value: Any) -> Any:
    """A numpy scalar as the matching Python scalar; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _check_scores(y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> None:
    if proba.ndim != 2 or proba.shape != (y_true.shape[0], classes.shape[0]):
        raise ValueError(
            f"proba must have shape (len(y_true), len(classes)) = "
            f"({y_true.shape[0]}, {classes.shape[0]}), got {proba.shape}."
        )
    unknown = np.setdiff1d(y_true, classes)
    if unknown.size:
        raise ValueError(f"y_true holds labels missing from classes: {unknown.tolist()}.")


def recall_at_precision(y_true_binary: np.ndarray, scores: np.ndarray, precision: float) -> float:
    """Highest recall reachable by thresholding `scores` while keeping precision ≥ target.

    An item is predicted positive when its score is at or above the threshold; every
    distinct score is tried as a threshold.

    Parameters
    ----------
    y_true_binary:
        Shape (n,), truthy for positives.
    scores:
        Shape (n,), higher means more likely positive.
    precision:
        Target precision in [0, 1].

    Returns
    -------
    The recall in [0, 1]; 0.0 when no threshold reaches the target or there are no
    positives.
    """
    y = np.asarray(y_true_binary).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if y.shape != scores.shape or y.ndim != 1:
        raise ValueError(f"y_true_binary and scores must be 1-D of equal length, got {y.shape} and {scores.shape}.")
    if not y.any():
        return 0.0
    precisions, recalls, _ = precision_recall_curve(y, scores)
    return float(recalls[precisions >= precision].max())


def neutral_false_positive_rate(y_true: np.ndarray, y_pred: np.ndarray, neutral: Any = "neutral") -> float | None:
    """Share of truly-neutral items predicted as any other (violating) class.

    Parameters
    ----------
    y_true, y_pred:
        Labels, shape (n,).
    neutral:
        The label of the neutral class.

    Returns
    -------
    The rate in [0, 1], or ``None`` when no item is truly neutral.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {y_true.shape} vs {y_pred.shape}.")
    is_neutral = y_true == neutral
    if not is_neutral.any():
        return None
    return float(np.mean(y_pred[is_neutral] != neutral))


def _downsample(n_points: int, max_points: int) -> np.ndarray:
    """Indices of at most `max_points` evenly spread points out of `n_points`, ends kept."""
    if n_points <= max_points:
        return np.arange(n_points)
    return np.unique(np.linspace(0, n_points - 1, max_points).round().astype(np.int64))


def pr_curves(
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[Any],
    *,
    max_points: int = MAX_PR_POINTS,
) -> dict[str, dict[str, list[float]] | None]:
    """One-vs-rest precision-recall curve per class, downsampled for storage and plots.

    Parameters
    ----------
    y_true:
        Labels, shape (n,).
    proba:
        Scores, shape (n, k), column j for ``classes[j]``.
    classes:
        The k labels in column order.
    max_points:
        Largest number of points kept per curve (at least 2); both ends are kept.

    Returns
    -------
    ``{str(label): {"precision": [...], "recall": [...], "thresholds": [...]}}`` in
    scikit-learn's `precision_recall_curve` order (recall decreasing; ``thresholds``
    one element shorter, the last point being precision 1 at recall 0), or ``None``
    for a class without positives, whose curve is undefined.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}.")
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(classes)
    _check_scores(y_true, proba, labels)
    curves: dict[str, dict[str, list[float]] | None] = {}
    for j, label in enumerate(labels):
        positives = y_true == label
        if not positives.any():
            curves[str(label)] = None
            continue
        precisions, recalls, thresholds = precision_recall_curve(positives, proba[:, j])
        keep = _downsample(precisions.size, max_points)
        curves[str(label)] = {
            "precision": precisions[keep].tolist(),
            "recall": recalls[keep].tolist(),
            "thresholds": thresholds[keep[:-1]].tolist(),
        }
    return curves


def evaluate(
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[Any],
    *,
    neutral: Any = "neutral",
    precision_target: float = 0.8,
) -> dict[str, Any]:
    """Every metric a retraining round records, as a JSON-serialisable dict.

    Predictions are the arg-max of `proba`.

    Parameters
    ----------
    y_true:
        True labels, shape (n,), each one of `classes`.
    proba:
        Predicted probabilities, shape (n, k), column j for ``classes[j]``.
    classes:
        The k labels in column order.
    neutral:
        Label of the neutral (non-violating) class.
    precision_target:
        Precision at which each class's recall is reported.

    Returns
    -------
    A dict with keys

    - ``n``, ``classes`` (labels in column order), ``precision_target``;
    - ``accuracy``;
    - ``macro_f1``: mean F1 over the classes present in `y_true` (a class absent from
      the evaluation set has no meaningful F1 and is left out of the mean);
    - ``per_class``: ``{str(label): {precision, recall, f1, support, average_precision,
      recall_at_precision}}``; undefined precision/recall/F1 are 0, and
      ``average_precision`` is ``None`` for a class without positives;
    - ``confusion_matrix``: ``{"labels": [...], "matrix": [[...]]}``, rows true labels,
      columns predicted labels, both in ``labels`` order;
    - ``pr_curves``: see `pr_curves`;
    - ``neutral_fpr``: see `neutral_false_positive_rate`; ``None`` when `neutral` is
      not among `classes` or no item is truly neutral.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(classes)
    _check_scores(y_true, proba, labels)
    y_pred = labels[np.argmax(proba, axis=1)]

    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class: dict[str, dict[str, Any]] = {}
    for j, label in enumerate(labels):
        positives = y_true == label
        per_class[str(label)] = {
            "precision": float(precision[j]),
            "recall": float(recall[j]),
            "f1": float(f1[j]),
            "support": int(support[j]),
            "average_precision": (float(average_precision_score(positives, proba[:, j])) if positives.any() else None),
            "recall_at_precision": recall_at_precision(positives, proba[:, j], precision_target),
        }
    present = support > 0
    return {
        "n": int(y_true.shape[0]),
        "classes": [_native(label) for label in labels],
        "precision_target": float(precision_target),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": per_class,
        "confusion_matrix": {
            "labels": [_native(label) for label in labels],
            "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        },
        "pr_curves": pr_curves(y_true, proba, labels),
        "neutral_fpr": (neutral_false_positive_rate(y_true, y_pred, neutral) if neutral in labels.tolist() else None),
    }


def learning_curve_auc(budgets: Sequence[float], scores: Sequence[float]) -> float:
    """Normalised area under a learning curve, integrated over log(budget).

    The x-axis is the natural log of the labeling budget, so each doubling of the
    budget spans the same width: a strategy that is good with few labels gets as much
    credit as one that is good with many. The trapezoid area is divided by the log
    range, so the result is the curve's average score, on the scale of `scores`
    (a constant curve at s has area s).

    Parameters
    ----------
    budgets:
        Label counts, shape (m,), positive and distinct, m ≥ 2; any order.
    scores:
        Metric at each budget, shape (m,).

    Returns
    -------
    The normalised area.
    """
    x = np.asarray(budgets, dtype=np.float64)
    y = np.asarray(scores, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"budgets and scores must be 1-D of equal length, got {x.shape} and {y.shape}.")
    if x.size < 2 or np.unique(x).size != x.size:
        raise ValueError(f"budgets must hold at least 2 distinct values, got {x.tolist()}.")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("budgets and scores must be finite.")
    if np.any(x <= 0):
        raise ValueError(f"budgets must be positive to take their log, got {x.tolist()}.")
    order = np.argsort(x)
    log_x = np.log(x[order])
    y = y[order]
    area = np.sum(np.diff(log_x) * (y[1:] + y[:-1]) / 2.0)
    return float(area / (log_x[-1] - log_x[0]))
