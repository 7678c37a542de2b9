"""Feature sets: fusion, and the cross-validated choice among candidates."""

from __future__ import annotations

import numpy as np
import pytest

from ml.features import best_feature_set, compare_feature_sets, fuse, fused_name, l2_normalise


def two_class_problem(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, a (n, 8) informative feature set and a (n, 32) pure-noise one."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.array(["a", "b"]), n // 2)
    informative = rng.normal(size=(n, 8)) + np.where(y == "a", 2.0, -2.0)[:, None]
    noise = rng.normal(size=(n, 32))
    return y, informative, noise


def test_fuse_gives_equal_weight_to_each_part_and_keeps_zero_rows_zero():
    rng = np.random.default_rng(0)
    wide, narrow = rng.normal(size=(5, 100)) * 50, rng.normal(size=(5, 3))
    narrow[2] = 0.0
    fused = fuse([wide, narrow])
    assert fused.shape == (5, 103) and fused.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fused[:, :100], axis=1), np.sqrt(0.5), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(fused[[0, 1, 3, 4], 100:], axis=1), np.sqrt(0.5), rtol=1e-5)
    assert not fused[2, 100:].any(), "an image without text keeps a zero text part"
    np.testing.assert_allclose(np.linalg.norm(fused[[0, 1, 3, 4]], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(fuse([wide]), l2_normalise(wide), rtol=1e-6)


def test_fuse_refuses_parts_of_different_lengths():
    with pytest.raises(ValueError, match="different numbers of rows"):
        fuse([np.ones((3, 2)), np.ones((4, 2))])
    with pytest.raises(ValueError, match="at least one part"):
        fuse([])


def test_the_informative_feature_set_wins_and_fusing_it_with_noise_scores_between():
    y, informative, noise = two_class_problem()
    candidates = {
        "noise": noise,
        "informative": informative,
        fused_name(["informative", "noise"]): fuse([informative, noise]),
    }
    scores = compare_feature_sets(candidates, y)
    assert list(scores) == list(candidates)
    assert best_feature_set(scores) == "informative"
    assert scores["informative"]["balanced_accuracy"] > 0.95
    assert scores["noise"]["balanced_accuracy"] < 0.75
    assert scores["noise"]["log_loss"] > scores["informative+noise"]["log_loss"] > scores["informative"]["log_loss"]
    assert all(s["folds"] == 5 and s["n"] == 60 for s in scores.values())
    assert scores["informative"]["dim"] == 8 and scores["informative+noise"]["dim"] == 40


def test_comparison_is_deterministic_and_samples_large_label_sets():
    y, informative, noise = two_class_problem(n=200)
    first = compare_feature_sets({"i": informative, "n": noise}, y, max_rows=80)
    again = compare_feature_sets({"i": informative, "n": noise}, y, max_rows=80)
    assert first == again
    assert first["i"]["n"] == 80


def test_comparison_needs_two_labels_of_two_classes_and_aligned_rows():
    y, informative, _ = two_class_problem()
    with pytest.raises(ValueError, match="two classes with two labels"):
        compare_feature_sets({"i": informative[:3]}, np.array(["a", "a", "b"]))
    with pytest.raises(ValueError, match="has 59 rows"):
        compare_feature_sets({"i": informative[:59]}, y)
    ties = {"first": informative, "second": informative.copy()}
    assert best_feature_set(compare_feature_sets(ties, y)) == "first", "ties go to the earlier candidate"
