"""The label-efficiency benchmark's pure helpers, on tiny generated folders (no training
beyond a linear head on a few dozen rows)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ml.loop
import ml.text
from bench.label_efficiency import (
    DEFAULT_FEATURES,
    PRODUCT_BATCH_SIZE,
    PRODUCT_STRATEGY,
    TEXT_FEATURES,
    ActiveLoop,
    SimulatedAnnotator,
    auc_ratio,
    budgets_for,
    check_targets,
    discover_dataset,
    find_test_split,
    format_table,
    parse_variant,
    positive_class,
    product_head,
    read_texts,
    run_curve,
    strategy_chooser,
    stratified_split,
    summary_line,
    text_features,
    text_sample,
    use_text,
    variant_name,
)
from bench.label_efficiency import curves as learning_curves
from ml.backbones import DEFAULT_BACKBONE
from ml.head import LinearHead
from ml.metrics import learning_curve_auc


def write_images(folder: Path, count: int, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:03d}.png")


def blobs(n: int, seed: int = 0, k: int = 3, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows around ``k`` well-separated centres: (n, d) float32 and labels (n,)."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).normal(size=(k, d)) * 3
    y = rng.integers(0, k, size=n)
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


def quick_head() -> LinearHead:
    return LinearHead(C=1.0, calibrate=False)


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


# ------------------------------------------------------ the product's selection rule


def test_the_benchmark_runs_the_products_defaults():
    from labeling.models import Project

    assert Project._meta.get_field("strategy").default == PRODUCT_STRATEGY
    assert Project._meta.get_field("batch_size").default == PRODUCT_BATCH_SIZE
    assert DEFAULT_FEATURES == DEFAULT_BACKBONE
    assert TEXT_FEATURES == f"{DEFAULT_BACKBONE}+text"
    assert product_head().get_params() == LinearHead(random_state=0).get_params()


LOOP_ARGUMENTS = {"X", "budget", "labeled", "exclude", "proba", "cold_start", "random_state"}


@pytest.fixture
def recorded_choose_batch(monkeypatch):
    """``ml.loop.choose_batch``, still run, with every call recorded."""
    calls = []
    real = ml.loop.choose_batch

    def recording(strategy, **kwargs):
        picked, used = real(strategy, **kwargs)
        proba = kwargs.get("proba")
        calls.append(
            {
                "strategy": strategy,
                "used": used,
                "budget": kwargs["budget"],
                "labeled": len(kwargs.get("labeled", ())),
                "proba": None if proba is None else np.asarray(proba).shape,
                "params": {k: v for k, v in kwargs.items() if k not in LOOP_ARGUMENTS},
            }
        )
        return picked, used

    monkeypatch.setattr(ml.loop, "choose_batch", recording)
    return calls


def test_active_loop_is_the_cold_start_then_the_product_strategy(recorded_choose_batch):
    X, y = blobs(150)
    loop = ActiveLoop(X, cold_start_labels=20, round_size=25, seed=0, head=quick_head)
    annotator = SimulatedAnnotator(y)

    for target in (10, 20, 50, 100):
        loop(annotator, target)
        assert len(annotator.revealed) == target

    calls = recorded_choose_batch
    assert [c["strategy"] for c in calls] == [PRODUCT_STRATEGY] * 6
    assert [c["used"] for c in calls] == [ml.loop.COLD_START] * 2 + ["combined"] * 4
    assert [c["proba"] for c in calls] == [None, None] + [(150, 3)] * 4
    assert [(c["labeled"], c["budget"]) for c in calls] == [
        (0, 10),
        (10, 10),
        (20, 25),
        (45, 5),
        (50, 25),
        (75, 25),
    ]
    assert loop.rounds == [{"labels": c["labeled"], "size": c["budget"], "strategy": c["used"]} for c in calls]


def test_active_loop_keeps_the_cold_start_until_two_classes_are_labeled(recorded_choose_batch):
    X, _ = blobs(60)
    loop = ActiveLoop(X, cold_start_labels=5, round_size=5, seed=0, head=quick_head)
    annotator = SimulatedAnnotator(np.zeros(60, dtype=np.int64))

    loop(annotator, 15)

    assert [c["proba"] for c in recorded_choose_batch] == [None, None, None]
    assert {c["used"] for c in recorded_choose_batch} == {ml.loop.COLD_START}


def test_active_loop_passes_variant_params_to_the_strategy(recorded_choose_batch):
    X, y = blobs(80)
    loop = ActiveLoop(
        X,
        strategy="uncertainty",
        params={"method": "entropy"},
        cold_start_labels=10,
        round_size=10,
        head=quick_head,
    )
    loop(SimulatedAnnotator(y), 30)
    assert [c["used"] for c in recorded_choose_batch] == [
        ml.loop.COLD_START,
        "uncertainty",
        "uncertainty",
    ]
    assert recorded_choose_batch[-1]["params"] == {"method": "entropy"}


def test_strategy_chooser_goes_through_choose_batch(recorded_choose_batch):
    X, y = blobs(60)
    annotator = SimulatedAnnotator(y)
    choose = strategy_chooser("diversity", X, seed=3)
    choose(annotator, 10)
    choose(annotator, 25)
    assert [(c["strategy"], c["used"], c["labeled"], c["budget"]) for c in recorded_choose_batch] == [
        ("diversity", "diversity", 0, 10),
        ("diversity", "diversity", 10, 15),
    ]
    with pytest.raises(ValueError, match="needs a head"):
        strategy_chooser("combined", X, seed=0)


@pytest.mark.parametrize("strategy", ["random", "active"])
def test_curves_reveal_exactly_the_budget(strategy, monkeypatch):
    monkeypatch.setattr(learning_curves, "make_head", lambda calibrate: LinearHead(C=1.0, calibrate=calibrate))
    X, y = blobs(150)
    X_test, y_test = blobs(40, seed=1)
    if strategy == "random":
        chooser = strategy_chooser("random", X, seed=0)
    else:
        chooser = ActiveLoop(X, cold_start_labels=10, round_size=10, seed=0, head=quick_head)
    curve = run_curve(X, y, X_test, y_test, [10, 20, 50], chooser, positive=None, calibrate=False, n_classes=3)
    assert set(curve) == {"accuracy", "macro_f1"}
    assert len(curve["accuracy"]) == 3
    assert curve["accuracy"][-1] > 0.8


def test_variants_parse_and_name():
    assert parse_variant("uncertainty") == ("uncertainty", {})
    strategy, params = parse_variant("combined:method=entropy,pool_factor=10")
    assert (strategy, params) == ("combined", {"method": "entropy", "pool_factor": 10})
    assert variant_name(strategy, params) == "active[combined:method=entropy,pool_factor=10]"
    assert variant_name("uncertainty", {}) == "active[uncertainty]"
    with pytest.raises(ValueError, match="no strategy"):
        parse_variant(":method=entropy")


# ------------------------------------------------------------------------- text


def test_use_text_follows_the_flag_or_the_sample():
    assert use_text("auto", 0.2) and use_text("auto", 0.9)
    assert not use_text("auto", 0.19) and not use_text("auto", None)
    assert use_text("on", 0.0) and not use_text("off", 1.0)
    with pytest.raises(ValueError, match="auto, on or off"):
        use_text("maybe", 0.5)


def test_text_sample_is_seeded_and_capped():
    sample = text_sample(1000)
    assert sample.size == 100 and np.array_equal(sample, text_sample(1000))
    assert np.all(np.diff(sample) > 0) and sample.max() < 1000
    assert text_sample(30).tolist() == list(range(30))


def test_read_texts_reads_each_image_once_and_caches(tmp_path):
    write_images(tmp_path / "data" / "train" / "a", 3)
    write_images(tmp_path / "data" / "test" / "a", 1)
    write_images(tmp_path / "data" / "test" / "b", 1, seed=1)
    write_images(tmp_path / "data" / "train" / "b", 3, seed=1)
    data = discover_dataset(tmp_path / "data")
    seen = []

    def fake_read(paths, *, threads):
        seen.extend(paths)
        return [f"text of {Path(p).name}" if "a" == Path(p).parent.name else "" for p in paths]

    cache_file = tmp_path / "ocr.json"
    first = read_texts(data, data.pool_paths[:2], cache_file=cache_file, threads=1, read=fake_read)
    again = read_texts(data, data.pool_paths, cache_file=cache_file, threads=1, read=fake_read)

    assert first == ["text of img000.png", "text of img001.png"]
    assert again[:2] == first and again[3:] == ["", "", ""]
    assert len(seen) == len(data.pool_paths) == len(set(seen))
    assert json.loads(cache_file.read_text())["train/a/img002.png"] == "text of img002.png"


class FakeEmbedder:
    def __init__(self):
        self.calls = 0

    def embed(self, texts):
        self.calls += 1
        return np.asarray([[1.0, 0.0] if t else [0.0, 0.0] for t in texts], dtype=np.float32)


@pytest.fixture
def text_set(tmp_path, monkeypatch):
    """A dataset whose 'a' images carry text, with a fake OCR and text embedder."""
    write_images(tmp_path / "data" / "train" / "a", 3)
    write_images(tmp_path / "data" / "train" / "b", 17, seed=1)
    write_images(tmp_path / "data" / "test" / "a", 2, seed=2)
    write_images(tmp_path / "data" / "test" / "b", 2, seed=3)
    ocr_calls = []

    def fake_read(paths, *, threads, progress=None):
        ocr_calls.append(len(paths))
        return ["a caption" if Path(p).parent.name == "a" else "" for p in paths]

    embedder = FakeEmbedder()
    monkeypatch.setattr(ml.text, "read_text", fake_read)
    monkeypatch.setattr(ml.text, "text_embedder", lambda: embedder)
    return discover_dataset(tmp_path / "data"), tmp_path / "cache", ocr_calls, embedder


def test_text_features_are_skipped_below_the_threshold(text_set):
    data, cache, ocr_calls, embedder = text_set

    embedded, summary = text_features(data, cache=cache, mode="auto", threads=1)

    assert embedded is None and summary["used"] is False
    assert summary["sample"] == 20 and summary["sample_with_text"] == 3
    assert summary["sample_fraction"] == pytest.approx(0.15)
    assert embedder.calls == 0
    off, off_summary = text_features(data, cache=cache, mode="off", threads=1)
    assert off is None and "sample" not in off_summary


def test_forced_text_features_are_embedded_once_and_cached(text_set):
    data, cache, ocr_calls, embedder = text_set

    embedded, summary = text_features(data, cache=cache, mode="on", threads=1)
    again, _ = text_features(data, cache=cache, mode="on", threads=1)

    assert embedded["pool"].shape == (20, 2) and embedded["test"].shape == (4, 2)
    assert summary["pool_with_text"] == 3 and summary["test_with_text"] == 2
    assert np.array_equal(again["pool"], embedded["pool"])
    assert embedder.calls == 2
    assert sum(ocr_calls) == 24


# ---------------------------------------------------------------------- report


def fake_result(*, text: bool) -> dict:
    budgets = [10, 20, 50, 100]

    def curves(acc):
        return {
            m: {"mean": list(acc), "std": [0.01] * 4, "min": list(acc), "max": list(acc)}
            for m in ("accuracy", "macro_f1")
        }

    def feature(acc, full):
        return {
            "dim": 4,
            "random": curves(acc),
            "auc": {"accuracy": learning_curve_auc(budgets, acc), "macro_f1": 0.5},
            "full_pool": {"accuracy": full, "macro_f1": full},
        }

    random = [0.40, 0.50, 0.60, 0.70]
    strategies = {
        "random": random,
        "diversity": [0.42, 0.52, 0.62, 0.70],
        "typicality": [0.45, 0.55, 0.61, 0.69],
        "prototypes": [0.47, 0.56, 0.62, 0.70],
        "active": [0.45, 0.55, 0.66, 0.76],
    }
    features = {
        "raw_pixels": feature([0.2, 0.25, 0.3, 0.32], 0.45),
        "msn": feature([0.3, 0.35, 0.4, 0.45], 0.55),
        DEFAULT_FEATURES: feature(random, 0.86),
    }
    if text:
        features[TEXT_FEATURES] = feature(random, 0.88)
    result = {
        "dataset": {"name": "fake", "test_size": 40},
        "positive_class": None,
        "budgets": budgets,
        "seeds": [0, 1],
        "strategy_features": DEFAULT_FEATURES,
        "features": features,
        "strategies": {name: curves(acc) for name, acc in strategies.items()},
        "text": {"used": text, "sample": 100, "sample_with_text": 30 if text else 3},
        "pretrain": {"steps": 120},
        "minutes": 2.0,
        "load_average": {"start": [1.5, 1.2, 1.0], "end": [2.0, 1.6, 1.1]},
        "seconds": 12.0,
    }
    result["auc"] = {
        n: {m: learning_curve_auc(budgets, c[m]["mean"]) for m in c} for n, c in result["strategies"].items()
    }
    result["auc_ratio"] = {
        n: {m: result["auc"][n][m] / result["auc"]["random"][m] for m in result["auc"][n]} for n in result["auc"]
    }
    result["auc_ratio_std"] = {n: {"accuracy": 0.0, "macro_f1": 0.0} for n in result["auc"]}
    return result


def test_targets_hold_their_values():
    result = fake_result(text=False)
    targets = check_targets(result)

    gaps = targets["default_beats_raw"]["gaps"]
    assert gaps == {"at_50": pytest.approx(0.30), "full_pool": pytest.approx(0.41)}
    assert targets["default_beats_raw"]["met"]
    assert targets["active_auc_ratio"]["value"] == pytest.approx(result["auc_ratio"]["active"]["accuracy"])
    assert targets["active_auc_ratio"]["met"] is (targets["active_auc_ratio"]["value"] >= 1.05)
    assert targets["cold_start_gain_at_20"]["value"] == pytest.approx(0.06), "the cold start is prototypes"
    assert targets["cold_start_gain_at_20"]["met"]

    result["features"]["raw_pixels"]["full_pool"]["accuracy"] = 0.80
    assert not check_targets(result)["default_beats_raw"]["met"]


@pytest.mark.parametrize("text", [False, True])
def test_summary_line_and_table(text):
    result = fake_result(text=text)
    result["targets"] = check_targets(result)

    line = summary_line(result)

    assert line["default_full_pool_accuracy"] == 0.86 and line["raw_full_pool_accuracy"] == 0.45
    assert line["default_at_50"] == 0.6 and line["raw_at_50"] == 0.3
    assert line["msn_full_pool_accuracy"] == 0.55 and line["msn_at_50"] == 0.4
    assert line["text_fused_full_pool_accuracy"] == (0.88 if text else None)
    assert line["load_average_start"] == [1.5, 1.2, 1.0] and line["pretrain_steps"] == 120
    assert set(line["targets_met"]) == {
        "default_beats_raw",
        "active_auc_ratio",
        "cold_start_gain_at_20",
    }
    json.dumps(line)
    table = format_table(result)
    assert "efficientnet-lite0 (default)" in table
    assert ("skipped" in table) is (not text)
