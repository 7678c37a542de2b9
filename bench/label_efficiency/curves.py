"""Learning curves: simulated annotators, the scoring head, areas, and choosers without a head."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bench.label_efficiency.config import PRECISION_TARGET
from ml import loop
from ml.head import LinearHead
from ml.metrics import evaluate, learning_curve_auc, recall_at_precision


def auc(budgets: Sequence[int], scores: Sequence[float]) -> float:
    """``learning_curve_auc``: mean score over log(budget)."""
    return learning_curve_auc(budgets, scores)


def auc_ratio(budgets: Sequence[int], scores: Sequence[float], baseline: Sequence[float]) -> float:
    """Area under ``scores`` over the area under ``baseline`` (both over log(budget))."""
    return auc(budgets, scores) / auc(budgets, baseline)


class SimulatedAnnotator:
    """Holds the true pool labels and reveals one only when its index is selected."""

    def __init__(self, labels: np.ndarray) -> None:
        self._labels = np.asarray(labels)
        self.revealed: list[int] = []

    def reveal(self, indices: Sequence[int] | np.ndarray) -> None:
        indices = [int(i) for i in indices]
        if len(set(indices)) != len(indices) or set(indices) & set(self.revealed):
            raise ValueError("a selection repeated an index that is already labeled")
        self.revealed.extend(indices)

    @property
    def labeled(self) -> np.ndarray:
        return np.asarray(self.revealed, dtype=np.int64)

    @property
    def labels(self) -> np.ndarray:
        return self._labels[self.labeled]


def make_head(calibrate: bool) -> Any:
    """The scoring head of every curve (see the module docstring on calibration)."""
    return LinearHead(calibrate=calibrate, random_state=0)


def product_head() -> Any:
    """The head as the product's rounds fit it (``labeling.services.rounds.retrain_fit``):
    ``LinearHead(random_state=0)``, cross-validated C, calibrated once every class has
    ``cv`` labels. The active loop ranks images with its probabilities."""
    return LinearHead(random_state=0)


def fit_proba(X: np.ndarray, y: np.ndarray, X_eval: np.ndarray, n_classes: int, calibrate: bool) -> np.ndarray:
    """Fits the head on ``(X, y)`` and returns probabilities over all ``n_classes``.

    Classes not yet labeled get probability 0; with a single labeled class every item is
    predicted as it. Returns shape (len(X_eval), n_classes).
    """
    proba = np.zeros((X_eval.shape[0], n_classes))
    present = np.unique(y)
    if present.size == 1:
        proba[:, present[0]] = 1.0
        return proba
    head = make_head(calibrate).fit(X, y)
    proba[:, head.classes_] = head.predict_proba(X_eval)
    return proba


def score(y_test: np.ndarray, proba: np.ndarray, positive: int | None) -> dict[str, float]:
    """Accuracy, macro-F1 and (binary sets) recall at 80% precision of the positive class."""
    result = evaluate(y_test, proba, list(range(proba.shape[1])), precision_target=PRECISION_TARGET)
    scores = {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}
    if positive is not None:
        scores["recall_at_80p"] = recall_at_precision(y_test == positive, proba[:, positive], PRECISION_TARGET)
    return scores


Chooser = Callable[[SimulatedAnnotator, int], Any]


def run_curve(
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    budgets: Sequence[int],
    choose: Chooser,
    *,
    positive: int | None,
    calibrate: bool,
    n_classes: int,
) -> dict[str, list[float]]:
    """Grows one labeled set through ``budgets`` with ``choose`` and scores each size.

    ``choose(annotator, target)`` reveals labels until ``target`` are known (it may use
    only the labels the annotator has revealed). Returns ``{metric: [score per budget]}``.
    """
    annotator = SimulatedAnnotator(y)
    curve: dict[str, list[float]] = {}
    for budget in budgets:
        choose(annotator, budget)
        if len(annotator.revealed) != budget:
            raise AssertionError(f"{len(annotator.revealed)} labels revealed, budget {budget}")
        proba = fit_proba(X[annotator.labeled], annotator.labels, X_test, n_classes, calibrate)
        for metric, value in score(y_test, proba, positive).items():
            curve.setdefault(metric, []).append(value)
    return curve


def strategy_chooser(strategy: str, X: np.ndarray, seed: int) -> Chooser:
    """Selection without a head: each budget's increment from
    ``ml.loop.choose_batch(strategy, ...)``, seeded with the labels so far.

    Raises:
        ValueError: ``strategy`` needs a head's probabilities (use :class:`ActiveLoop`).
    """
    if strategy in loop.NEEDS_PROBA:
        raise ValueError(f"strategy {strategy!r} needs a head; run it in ActiveLoop")

    def choose(annotator: SimulatedAnnotator, target: int) -> np.ndarray:
        need = target - len(annotator.revealed)
        picked, _ = loop.choose_batch(strategy, X=X, budget=need, labeled=annotator.labeled, random_state=seed)
        annotator.reveal(picked)
        return picked

    return choose


def summarise_seeds(runs: list[dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    """``{metric: {"mean": [...], "std": [...], "min", "max", "seeds": [[...]]}}``."""
    out: dict[str, dict[str, Any]] = {}
    for metric in runs[0]:
        values = np.asarray([run[metric] for run in runs])
        out[metric] = {
            "mean": values.mean(axis=0).tolist(),
            "std": values.std(axis=0, ddof=1).tolist() if len(runs) > 1 else [0.0] * values.shape[1],
            "min": values.min(axis=0).tolist(),
            "max": values.max(axis=0).tolist(),
            "seeds": values.tolist(),
        }
    return out


def full_pool_probe(
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    positive: int | None,
    calibrate: bool,
    n_classes: int,
) -> dict[str, float]:
    """Scores of the head fitted on every pool label (the ceiling of the curves)."""
    return score(y_test, fit_proba(X, y, X_test, n_classes, calibrate), positive)
