"""Tests for `ml.metrics`, checked against scikit-learn and brute force."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from ml.metrics import (
    MAX_PR_POINTS,
    evaluate,
    learning_curve_auc,
    neutral_false_positive_rate,
    pr_curves,
    recall_at_precision,
)

CLASSES = ["drugs", "neutral", "nsfw", "violence"]


def random_scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels of shape (n,) and noisy but informative probabilities of shape (n, 4)."""
    rng = np.random.default_rng(seed)
    y_true = rng.choice(CLASSES, size=n, p=[0.2, 0.5, 0.1, 0.2])
    logits = rng.normal(size=(n, len(CLASSES)))
    logits[np.arange(n), np.searchsorted(CLASSES, y_true)] += 1.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y_true, proba


def brute_force_recall_at_precision(y: np.ndarray, scores: np.ndarray, target: float) -> float:
    best = 0.0
    for threshold in np.unique(scores):
        predicted = scores >= threshold
        tp = int(np.sum(predicted & y))
        if tp / predicted.sum() >= target:
            best = max(best, tp / y.sum())
    return best


@pytest.fixture(scope="module", params=[0, 1, 2])
def scored(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray]:
    return random_scores(400, seed=request.param)


@pytest.fixture(scope="module")
def report(scored: tuple[np.ndarray, np.ndarray]) -> dict:
    return evaluate(*scored, CLASSES)


def test_evaluate_agrees_with_scikit_learn(scored: tuple[np.ndarray, np.ndarray], report: dict) -> None:
    y_true, proba = scored
    y_pred = np.asarray(CLASSES)[proba.argmax(axis=1)]
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=CLASSES, zero_division=0)
    assert report["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert report["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert report["confusion_matrix"] == {
        "labels": CLASSES,
        "matrix": confusion_matrix(y_true, y_pred, labels=CLASSES).tolist(),
    }
    for j, label in enumerate(CLASSES):
        row = report["per_class"][label]
        assert row["precision"] == pytest.approx(precision[j])
        assert row["recall"] == pytest.approx(recall[j])
        assert row["f1"] == pytest.approx(f1[j])
        assert row["support"] == support[j]
        assert row["average_precision"] == pytest.approx(average_precision_score(y_true == label, proba[:, j]))


def test_evaluate_recall_at_precision_matches_brute_force(scored: tuple[np.ndarray, np.ndarray], report: dict) -> None:
    y_true, proba = scored
    assert report["precision_target"] == 0.8
    for j, label in enumerate(CLASSES):
        expected = brute_force_recall_at_precision(y_true == label, proba[:, j], 0.8)
        assert report["per_class"][label]["recall_at_precision"] == pytest.approx(expected)


def test_evaluate_is_json_serialisable(report: dict) -> None:
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def test_evaluate_with_integer_labels_is_json_serialisable() -> None:
    y_true, proba = random_scores(50, seed=3)
    y_int = np.searchsorted(CLASSES, y_true)
    report = evaluate(y_int, proba, np.arange(4), neutral=1)
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text)["classes"] == [0, 1, 2, 3]
    assert report["neutral_fpr"] == neutral_false_positive_rate(y_int, proba.argmax(axis=1), 1)


def test_evaluate_neutral_fpr(scored: tuple[np.ndarray, np.ndarray], report: dict) -> None:
    y_true, proba = scored
    y_pred = np.asarray(CLASSES)[proba.argmax(axis=1)]
    neutral = y_true == "neutral"
    assert report["neutral_fpr"] == pytest.approx(np.mean(y_pred[neutral] != "neutral"))


def test_evaluate_neutral_fpr_none_without_neutral_class_or_items() -> None:
    y_true, proba = random_scores(60, seed=4)
    assert evaluate(y_true, proba, CLASSES, neutral="benign")["neutral_fpr"] is None
    kept = y_true != "neutral"
    assert evaluate(y_true[kept], proba[kept], CLASSES)["neutral_fpr"] is None


def test_evaluate_class_absent_from_y_true() -> None:
    y_true, proba = random_scores(80, seed=5)
    kept = y_true != "nsfw"
    report = evaluate(y_true[kept], proba[kept], CLASSES)
    nsfw = report["per_class"]["nsfw"]
    assert nsfw["support"] == 0
    assert nsfw["average_precision"] is None
    assert nsfw["recall_at_precision"] == 0.0
    assert report["pr_curves"]["nsfw"] is None
    y_pred = np.asarray(CLASSES)[proba[kept].argmax(axis=1)]
    present = ["drugs", "neutral", "violence"]
    assert report["macro_f1"] == pytest.approx(
        f1_score(y_true[kept], y_pred, labels=present, average="macro", zero_division=0)
    )


@pytest.mark.parametrize(
    ("y_true", "proba", "match"),
    [
        (np.array(["drugs", "neutral"]), np.full((2, 3), 1 / 3), "shape"),
        (np.array(["drugs", "weapons"]), np.full((2, 4), 0.25), "weapons"),
    ],
)
def test_evaluate_rejects_inconsistent_input(y_true: np.ndarray, proba: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        evaluate(y_true, proba, CLASSES)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("target", [0.5, 0.8, 0.95])
def test_recall_at_precision_matches_brute_force(seed: int, target: float) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(60) < 0.3
    scores = np.round(rng.random(60) + 0.6 * y, 1)
    assert recall_at_precision(y, scores, target) == pytest.approx(brute_force_recall_at_precision(y, scores, target))


def test_recall_at_precision_edge_cases() -> None:
    y = np.array([0, 0, 1, 1])
    assert recall_at_precision(y, np.array([0.1, 0.2, 0.8, 0.9]), 1.0) == 1.0
    assert recall_at_precision(y, np.array([0.9, 0.8, 0.2, 0.1]), 0.8) == 0.0
    assert recall_at_precision(np.zeros(4), np.array([0.1, 0.2, 0.3, 0.4]), 0.5) == 0.0
    with pytest.raises(ValueError, match="equal length"):
        recall_at_precision(y, np.zeros(3), 0.5)


def test_neutral_false_positive_rate_hand_made() -> None:
    y_true = np.array(["neutral", "neutral", "neutral", "neutral", "drugs", "violence"])
    y_pred = np.array(["neutral", "drugs", "violence", "neutral", "neutral", "drugs"])
    assert neutral_false_positive_rate(y_true, y_pred, "neutral") == 0.5
    assert neutral_false_positive_rate(y_true[4:], y_pred[4:], "neutral") is None
    with pytest.raises(ValueError, match="shape"):
        neutral_false_positive_rate(y_true, y_pred[:3], "neutral")


def test_pr_curves_downsampled_with_ends_kept() -> None:
    y_true, proba = random_scores(2000, seed=6)
    curves = pr_curves(y_true, proba, CLASSES)
    for curve in curves.values():
        n_points = len(curve["precision"])
        assert 2 <= n_points <= MAX_PR_POINTS
        assert len(curve["recall"]) == n_points
        assert len(curve["thresholds"]) == n_points - 1
        assert curve["recall"][0] == 1.0
        assert (curve["precision"][-1], curve["recall"][-1]) == (1.0, 0.0)
        assert np.all(np.diff(curve["recall"]) <= 0)
        assert np.all(np.diff(curve["thresholds"]) > 0)


def test_pr_curves_small_input_kept_whole() -> None:
    y_true = np.array(["a", "b", "a", "b"])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3], [0.2, 0.8]])
    curves = pr_curves(y_true, proba, ["a", "b"])
    assert curves["a"] == {
        "precision": [0.5, pytest.approx(2 / 3), 1.0, 1.0, 1.0],
        "recall": [1.0, 1.0, 1.0, 0.5, 0.0],
        "thresholds": [0.2, 0.4, 0.7, 0.9],
    }
    with pytest.raises(ValueError, match="max_points"):
        pr_curves(y_true, proba, ["a", "b"], max_points=1)


def test_learning_curve_auc_constant_and_linear_in_log_budget() -> None:
    assert learning_curve_auc([10, 100, 1000], [0.7, 0.7, 0.7]) == pytest.approx(0.7)
    assert learning_curve_auc([1000, 10, 100], [0.9, 0.5, 0.7]) == pytest.approx(0.7)


def test_learning_curve_auc_weights_each_decade_equally() -> None:
    budgets = [10, 100, 1000]
    early = learning_curve_auc(budgets, [0.8, 0.8, 0.8])
    late = learning_curve_auc(budgets, [0.2, 0.8, 0.8])
    assert late == pytest.approx(0.65)
    assert early > late
    assert learning_curve_auc(budgets, [0.2, 0.8, 0.8]) == pytest.approx(learning_curve_auc(budgets, [0.8, 0.8, 0.2]))


@pytest.mark.parametrize(
    ("budgets", "scores", "match"),
    [
        ([10], [0.5], "at least 2"),
        ([10, 10], [0.5, 0.6], "distinct"),
        ([0, 10], [0.5, 0.6], "positive"),
        ([10, 100], [0.5], "equal length"),
        ([10, 100], [0.5, np.nan], "finite"),
    ],
)
def test_learning_curve_auc_rejects_bad_input(budgets: list, scores: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        learning_curve_auc(budgets, scores)
