"""The label-efficiency benchmark's pure helpers, on tiny generated folders (no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import label_efficiency
from bench.label_efficiency import (
    SimulatedAnnotator,
    active_chooser,
    auc_ratio,
    budgets_for,
    discover_dataset,
    find_test_split,
    positive_class,
    run_curve,
    strategy_chooser,
    stratified_split,
)
from ml.head import LinearHead
from ml.metrics import learning_curve_auc


def write_images(folder: Path, count: int, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:03d}.png")


def test_class_folders_get_a_fixed_stratified_quarter_as_test(tmp_path):
    write_images(tmp_path / "b_cat", 8)
    write_images(tmp_path / "a_dog", 4)
    (tmp_path / "a_dog" / "notes.txt").write_text("not an image")

    data = discover_dataset(tmp_path)

    assert data.layout == "classes" and data.test_split is None
    assert data.classes == ["a_dog", "b_cat"]
    assert np.bincount(data.test_labels).tolist() == [1, 2]
    assert np.bincount(data.pool_labels).tolist() == [3, 6]
    assert not set(data.pool_paths) & set(data.test_paths)
    assert all(p.suffix == ".png" for p in data.pool_paths + data.test_paths)
    again = discover_dataset(tmp_path)
    assert again.test_paths == data.test_paths and again.pool_paths == data.pool_paths


@pytest.mark.parametrize(
    ("splits", "test", "pool"),
    [
        (["Training", "Validation"], "Validation", ["Training"]),
        (["train", "validation", "test"], "test", ["train", "validation"]),
        (["train", "VAL"], "VAL", ["train"]),
        (["extra", "TEST", "val"], "TEST", ["extra", "val"]),
    ],
)
def test_split_folders_choose_test_then_validation_then_val(tmp_path, splits, test, pool):
    for i, split in enumerate(splits):
        write_images(tmp_path / split / "smoking", 2, seed=i)
        write_images(tmp_path / split / "not_smoking", 3, seed=10 + i)

    data = discover_dataset(tmp_path)

    assert data.layout == "splits"
    assert data.test_split == test
    assert data.pool_splits == pool
    assert len(data.test_paths) == 5 and len(data.pool_paths) == 5 * len(pool)
    assert all(p.parent.parent.name == test for p in data.test_paths)
    assert data.classes == ["not_smoking", "smoking"]


def test_find_test_split_is_case_insensitive_and_ordered():
    assert find_test_split(["Val", "Validation", "train"]) == "Validation"
    assert find_test_split(["train", "holdout"]) is None


def test_bad_layouts_are_named(tmp_path):
    write_images(tmp_path / "train" / "a", 2)
    write_images(tmp_path / "train" / "b", 2)
    with pytest.raises(ValueError, match="no test split"):
        discover_dataset(tmp_path)
    write_images(tmp_path / "loose_class", 2)
    with pytest.raises(ValueError, match="mixes"):
        discover_dataset(tmp_path)


def test_stratified_split_keeps_singleton_classes_in_the_pool():
    labels = np.array([0] * 10 + [1] * 3 + [2])
    pool, test = stratified_split(labels, 0.25, seed=0)
    assert np.bincount(labels[test], minlength=3).tolist() == [2, 1, 0]
    assert sorted([*pool, *test]) == list(range(labels.size))
    assert np.array_equal(test, stratified_split(labels, 0.25, seed=0)[1])


def test_positive_class():
    assert positive_class(["not_smoking", "smoking"]) == 1
    assert positive_class(["drugs", "no-drugs"]) == 0
    assert positive_class(["cat", "dog"]) == 1
    assert positive_class(["a", "b", "c"]) is None
    assert positive_class(["not_smoking", "smoking"], "not_smoking") == 0


def test_budgets_fit_the_pool():
    assert budgets_for(940) == [10, 20, 50, 100, 200, 500]
    assert budgets_for(150) == [10, 20, 50, 100]
    with pytest.raises(ValueError, match="too small"):
        budgets_for(15)


def test_auc_ratio_is_area_over_baseline_area():
    budgets = [10, 20, 50, 100, 200, 500]
    assert auc_ratio(budgets, [0.6] * 6, [0.5] * 6) == pytest.approx(1.2)
    curve, base = [0.5, 0.6, 0.7, 0.75, 0.8, 0.82], [0.4, 0.5, 0.65, 0.72, 0.79, 0.82]
    expected = learning_curve_auc(budgets, curve) / learning_curve_auc(budgets, base)
    assert auc_ratio(budgets, curve, base) == pytest.approx(expected)
    assert auc_ratio(budgets, base, base) == pytest.approx(1.0)


def test_annotator_reveals_each_label_once():
    annotator = SimulatedAnnotator(np.array([3, 1, 2]))
    annotator.reveal([2, 0])
    assert annotator.labels.tolist() == [2, 3]
    with pytest.raises(ValueError, match="already labeled"):
        annotator.reveal([0])


@pytest.mark.parametrize("strategy", ["random", "active"])
def test_curves_reveal_exactly_the_budget(strategy, monkeypatch):
    monkeypatch.setattr(
        label_efficiency, "make_head", lambda calibrate: LinearHead(C=1.0, calibrate=calibrate)
    )
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 6)) * 3
    y = rng.integers(0, 3, size=150)
    X = (centers[y] + rng.normal(size=(150, 6))).astype(np.float32)
    y_test = rng.integers(0, 3, size=40)
    X_test = (centers[y_test] + rng.normal(size=(40, 6))).astype(np.float32)
    if strategy == "random":
        chooser = strategy_chooser("random", X, seed=0)
    else:
        chooser = active_chooser(
            X,
            cold_start="typicality",
            cold_start_labels=10,
            round_size=10,
            method="margin",
            selection="combined",
            calibrate=False,
            seed=0,
        )
    curve = run_curve(
        X, y, X_test, y_test, [10, 20, 50], chooser, positive=None, calibrate=False, n_classes=3
    )
    assert set(curve) == {"accuracy", "macro_f1"}
    assert len(curve["accuracy"]) == 3
    assert curve["accuracy"][-1] > 0.8
