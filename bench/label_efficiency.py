"""Label efficiency: accuracy per label spent, by selection strategy and by feature type.

    python -m bench.label_efficiency --data DIR [--minutes 10] [--out FILE.json]
        [--cache bench/out] [--skip-pretrain | --retrain] [--features-only]

Simulated annotators reveal a true label only for the images a strategy selects. The
benchmark pretrains the ``tiny`` MSN ViT on the pool for a CPU budget, embeds pool and
test images, then draws learning curves at 10, 20, 50, 100, 200 and 500 labels:

- ``random``: uniform sampling, mean and spread over 5 seeds (the baseline);
- ``diversity``: k-center greedy, seeded with the labels so far;
- ``typicality``: TypiClust, the density-aware cold start;
- ``active``: the loop the product runs. A typicality cold start up to
  ``--cold-start-labels``, then rounds of at most ``--round-size`` labels, each fitting
  the head on the labels so far, predicting the pool and adding the most uncertain
  images kept diverse and away from outliers (``combined`` selection).

Every strategy is run with the same 5 seeds (random draws, k-means, density samples and
k-center's dense start depend on them); tables, plots and ratios use the mean curve, and
the JSON keeps every seed's curve.

Every curve uses the same head (``ml.head.LinearHead``) on the same MSN features and is
scored on the dataset's own held-out split: accuracy and macro-F1, and for a binary set
the recall at 80% precision. The feature comparison repeats the random curves on
downsampled raw pixels and on the random-init ViT that MSN starts from.

The head is fitted with ``calibrate=False``. Calibration is refitted without class
weights, so it pulls ``predict`` back toward frequent classes, and it only switches on
once every class has ``cv`` labels: a strategy that happens to reach that count earlier
would get a different decision rule, so curves would differ for a reason other than
which images were chosen. The uncalibrated, class-balanced regression is one decision
rule at every budget for every strategy; recall at a precision is rank-based and
unaffected.

Area under a curve is ``ml.metrics.learning_curve_auc`` of accuracy over log(budget)
(the average accuracy, each doubling of the budget weighted equally); macro-F1 areas
are reported too. Each strategy's ratio is its area over the mean random area. The run
prints a table, writes a JSON file and a PNG plot, and ends with one JSON line.

Dataset folders hold ``<class>/`` folders (the benchmark then makes a fixed stratified
25% test split) or ``<split>/<class>/`` folders (the split named ``test``, else
``validation`` or ``val``, case-insensitive, is the test split; the others form the
pool). Pretraining output and embeddings are cached under ``--cache``, keyed by dataset,
minutes and config, so re-running the curves does not retrain.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / "bench" / "out"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
TEST_SPLIT_NAMES = ("test", "validation", "val")
"""Split folder names that make the test split, in order of preference (case-insensitive)."""
TEST_FRACTION = 0.25
SPLIT_SEED = 0
BUDGETS = (10, 20, 50, 100, 200, 500)
SEEDS = (0, 1, 2, 3, 4)
"""Every curve is drawn once per seed; tables and ratios use the mean curve."""
PRECISION_TARGET = 0.8
RAW_PIXELS_SIZE = 16
NEGATIVE_PREFIXES = ("not_", "not-", "non_", "non-", "no_", "no-")

MSN_OVERRIDES: dict[str, Any] = {"batch_size": 32, "focal_views": 2, "ema_base": 0.97, "lr": 1e-3}
"""The recipe on top of ``MSNConfig.preset("tiny")``; the tiny architecture is kept.

A CPU budget of minutes buys a few hundred steps, so the recipe trades views per image
for steps: half the batch and two focal views instead of six cost about a third of the
tokens per step, for three times the updates. The EMA target starts at momentum 0.97
instead of 0.996, which would leave the target (the backbone that is embedded) more
than half its initial weights after a few hundred steps; the peak learning rate is
doubled for the short schedule. Class-token pooling: mean pooling was not better.
"""

FEATURES = ("raw_pixels", "random_vit", "msn")
FEATURE_TITLES = {
    "raw_pixels": f"raw pixels {RAW_PIXELS_SIZE}x{RAW_PIXELS_SIZE}",
    "random_vit": "random-init ViT",
    "msn": "MSN ViT",
}
STRATEGIES = ("random", "diversity", "typicality", "active")


# ------------------------------------------------------------------------ datasets


@dataclass
class LabeledImages:
    """A benchmark dataset: a pool to select from and a held-out test split.

    ``pool_labels``/``test_labels`` are int64 indices into ``classes`` (sorted names).
    """

    name: str
    root: Path
    classes: list[str]
    pool_paths: list[Path]
    pool_labels: np.ndarray
    test_paths: list[Path]
    test_labels: np.ndarray
    layout: str
    test_split: str | None = None
    pool_splits: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: layout, splits, sizes and per-class counts."""
        return {
            "name": self.name,
            "path": str(self.root),
            "layout": self.layout,
            "test_split": self.test_split,
            "pool_splits": self.pool_splits,
            "classes": self.classes,
            "pool_size": len(self.pool_paths),
            "test_size": len(self.test_paths),
            "pool_counts": np.bincount(self.pool_labels, minlength=len(self.classes)).tolist(),
            "test_counts": np.bincount(self.test_labels, minlength=len(self.classes)).tolist(),
        }


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_test_split(names: Sequence[str]) -> str | None:
    """The split folder that holds the test images: ``test``, else ``validation``, else
    ``val`` (case-insensitive); None when there is none of them."""
    by_lower = {name.lower(): name for name in names}
    for wanted in TEST_SPLIT_NAMES:
        if wanted in by_lower:
            return by_lower[wanted]
    return None


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed stratified split of ``range(len(labels))`` into pool and test indices.

    Each class sends ``round(fraction * count)`` of its items to the test split, at least
    one and never all of them (a class of one item stays in the pool). Which items go is
    drawn from ``seed`` alone, so the split is the same on every run.

    Returns:
        ``(pool, test)``: sorted int64 index arrays that partition the items.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test: list[np.ndarray] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n_test = min(max(1, round(fraction * members.size)), members.size - 1)
        test.append(rng.permutation(members)[:n_test])
    test_idx = np.sort(np.concatenate(test)).astype(np.int64) if test else np.empty(0, np.int64)
    pool_idx = np.setdiff1d(np.arange(labels.size), test_idx).astype(np.int64)
    return pool_idx, test_idx


def discover_dataset(root: str | os.PathLike[str]) -> LabeledImages:
    """Reads a dataset folder: ``<class>/<image>`` or ``<split>/<class>/<image>``.

    A top-level folder that holds images directly is a class; one that holds folders is
    a split. With splits, the test split is chosen by :func:`find_test_split` and every
    other split joins the pool. With classes, a fixed stratified 25% of each class is
    the test split (:func:`stratified_split`).

    Raises:
        ValueError: the folder mixes the two layouts, has no test split among its
            splits, has fewer than two classes, or holds no images.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    top = _subfolders(root)
    splits = [folder for folder in top if _subfolders(folder)]
    class_dirs = [folder for folder in top if _images_in(folder)]
    if splits and class_dirs:
        raise ValueError(
            f"{root}: mixes class folders with images ({class_dirs[0].name}) and split "
            f"folders with class folders ({splits[0].name}); use one layout"
        )
    if splits:
        test_name = find_test_split([s.name for s in splits])
        if test_name is None:
            raise ValueError(
                f"{root}: split folders {[s.name for s in splits]} include no test split "
                f"(one named {', '.join(TEST_SPLIT_NAMES)}, case-insensitive)"
            )
        per_split = {
            s.name: {c.name: _images_in(c) for c in _subfolders(s) if _images_in(c)} for s in splits
        }
        classes = sorted({c for found in per_split.values() for c in found})
        pool_splits = [s.name for s in splits if s.name != test_name]
        if not pool_splits:
            raise ValueError(f"{root}: only a test split ({test_name}), no pool")
        pool = [(p, c) for s in pool_splits for c, ps in per_split[s].items() for p in ps]
        test = [(p, c) for c, ps in per_split[test_name].items() for p in ps]
        layout = "splits"
    else:
        classes = sorted(c.name for c in class_dirs)
        items = [(p, c.name) for c in class_dirs for p in _images_in(c)]
        labels = np.asarray([classes.index(c) for _, c in items], dtype=np.int64)
        pool_idx, test_idx = stratified_split(labels, TEST_FRACTION)
        pool = [items[i] for i in pool_idx]
        test = [items[i] for i in test_idx]
        test_name, pool_splits, layout = None, [], "classes"
    if len(classes) < 2:
        raise ValueError(f"{root}: needs at least 2 classes, found {classes}")
    if not pool or not test:
        raise ValueError(f"{root}: no images in the pool or in the test split")
    index = {c: i for i, c in enumerate(classes)}
    return LabeledImages(
        name=root.resolve().name,
        root=root,
        classes=classes,
        pool_paths=[p for p, _ in pool],
        pool_labels=np.asarray([index[c] for _, c in pool], dtype=np.int64),
        test_paths=[p for p, _ in test],
        test_labels=np.asarray([index[c] for _, c in test], dtype=np.int64),
        layout=layout,
        test_split=test_name,
        pool_splits=pool_splits,
    )


def positive_class(classes: Sequence[str], override: str | None = None) -> int | None:
    """Index of the positive class of a binary set (None for more than two classes).

    ``override`` names it; otherwise, when exactly one name starts with a negation
    (``not_``, ``non_``, ``no_``, also with ``-``), the other class is positive; else the
    second class in sorted order.
    """
    if override is not None:
        if override not in classes:
            raise ValueError(f"positive class {override!r} is not one of {list(classes)}")
        return list(classes).index(override)
    if len(classes) != 2:
        return None
    negated = [c.lower().startswith(NEGATIVE_PREFIXES) for c in classes]
    if sum(negated) == 1:
        return negated.index(False)
    return 1


def budgets_for(pool_size: int, budgets: Sequence[int] = BUDGETS) -> list[int]:
    """The budgets a pool of ``pool_size`` images can afford (at least two of them)."""
    usable = [b for b in budgets if b <= pool_size]
    if len(usable) < 2:
        raise ValueError(f"a pool of {pool_size} images is too small for budgets {budgets}")
    return usable


# ------------------------------------------------------------------- curve areas


def auc(budgets: Sequence[int], scores: Sequence[float]) -> float:
    """``learning_curve_auc``: mean score over log(budget)."""
    from ml.metrics import learning_curve_auc

    return learning_curve_auc(budgets, scores)


def auc_ratio(budgets: Sequence[int], scores: Sequence[float], baseline: Sequence[float]) -> float:
    """Area under ``scores`` over the area under ``baseline`` (both over log(budget))."""
    return auc(budgets, scores) / auc(budgets, baseline)


# -------------------------------------------------------------------------- cache


def cache_key(**parts: Any) -> str:
    """A short stable hash of JSON-serialisable ``parts``."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _files_digest(data: LabeledImages) -> str:
    rel = [str(p.relative_to(data.root)) for p in [*data.pool_paths, *data.test_paths]]
    return cache_key(files=rel, pool=len(data.pool_paths))


def _cached_array(
    path: Path, compute: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    if path.exists():
        with np.load(path) as stored:
            return {k: stored[k] for k in stored.files}
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays


# ----------------------------------------------------------------------- features


def raw_pixels(paths: Sequence[Path], size: int = RAW_PIXELS_SIZE) -> np.ndarray:
    """Downsampled raw pixels: shorter side to ``size``, centre crop, flattened RGB.

    Returns float32 of shape (len(paths), 3 * size * size), ImageNet-normalised.
    """
    from ml.embed import eval_transform
    from ml.msn import open_rgb

    transform = eval_transform(size)
    out = np.empty((len(paths), 3 * size * size), dtype=np.float32)
    for i, path in enumerate(paths):
        out[i] = transform(open_rgb(path, label=str(path), draft_size=size)).numpy().ravel()
    return out


def _embed(backbone: Any, paths: Sequence[Path], config: Any, desc: str) -> np.ndarray:
    from tqdm import tqdm

    from ml.embed import embed_images

    with tqdm(total=len(paths), desc=desc, unit="img", leave=False) as bar:
        return embed_images(
            backbone,
            [str(p) for p in paths],
            image_size=config.image_size,
            pooling=config.pooling,
            progress=lambda done, _total: bar.update(done - bar.n),
        )


def pretrain_msn(
    data: LabeledImages,
    config: Any,
    *,
    minutes: float,
    run_dir: Path,
    skip: bool,
    workers: int,
) -> dict[str, Any]:
    """Pretrains (or reuses) the MSN backbone of ``run_dir``; returns its run summary."""
    from tqdm import tqdm

    from ml.msn import pretrain

    summary_path = run_dir / "pretrain.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        summary["cached"] = True
        return summary
    if skip:
        raise SystemExit(f"--skip-pretrain: no pretrained backbone cached in {run_dir}")
    bar = tqdm(desc=f"MSN pretraining ({minutes:g} min)", unit="step")

    def progress(step: int, total: int | None, loss: float) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{loss:.3f}")

    try:
        result = pretrain(
            [str(p) for p in data.pool_paths],
            config=config,
            out_dir=run_dir / "msn",
            max_minutes=minutes,
            resume=False,
            progress=progress,
            num_workers=workers,
        )
    finally:
        bar.close()
    losses = [loss for _, loss in result.loss_curve]
    tail = losses[-max(1, len(losses) // 20) :]
    summary = {
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "seconds_per_step": round(result.seconds / max(result.steps, 1), 3),
        "first_loss": losses[0] if losses else None,
        "final_loss": float(np.mean(tail)) if tail else None,
        "backbone": str(result.backbone_path),
        "config": config.to_dict(),
    }
    summary_path.write_text(json.dumps(summary, indent=2))
    summary["cached"] = False
    return summary


def compute_features(
    data: LabeledImages,
    *,
    minutes: float,
    cache: Path,
    overrides: dict[str, Any],
    skip_pretrain: bool,
    retrain: bool,
    workers: int,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Pool and test features of every type, and the pretraining summary.

    Returns ``({feature: {"pool": (n_pool, d), "test": (n_test, d)}}, pretrain_summary)``.
    """
    import shutil

    from ml.msn import MSNConfig, build_msn, load_backbone

    config = MSNConfig.preset("tiny", **overrides)
    files = _files_digest(data)
    run_dir = (
        cache / f"{data.name}-{cache_key(files=files, minutes=minutes, config=config.to_dict())}"
    )
    if retrain and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    init_fields = ("image_size", "patch_size", "num_layers", "num_heads", "hidden_dim")
    arch = {k: getattr(config, k) for k in (*init_fields, "mlp_ratio", "pooling", "seed")}

    def split_features(fn: Callable[[Sequence[Path]], np.ndarray]) -> dict[str, np.ndarray]:
        return {"pool": fn(data.pool_paths), "test": fn(data.test_paths)}

    features = {
        "raw_pixels": _cached_array(
            cache / f"{data.name}-raw{RAW_PIXELS_SIZE}-{cache_key(files=files)}.npz",
            lambda: split_features(raw_pixels),
        )
    }
    random_vit = build_msn(config).target_backbone.vit.eval()
    features["random_vit"] = _cached_array(
        cache / f"{data.name}-randomvit-{cache_key(files=files, config=arch)}.npz",
        lambda: split_features(lambda ps: _embed(random_vit, ps, config, "embed random ViT")),
    )
    summary = pretrain_msn(
        data, config, minutes=minutes, run_dir=run_dir, skip=skip_pretrain, workers=workers
    )
    summary["run_dir"] = str(run_dir)
    summary["overrides"] = overrides
    backbone = load_backbone(run_dir / "msn" / "backbone.pt")
    features["msn"] = _cached_array(
        run_dir / "features-msn.npz",
        lambda: split_features(lambda ps: _embed(backbone, ps, config, "embed MSN")),
    )
    return features, summary


# ------------------------------------------------------------------------- curves


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
    from ml.head import LinearHead

    return LinearHead(calibrate=calibrate, random_state=0)


def fit_proba(
    X: np.ndarray, y: np.ndarray, X_eval: np.ndarray, n_classes: int, calibrate: bool
) -> np.ndarray:
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
    from ml.metrics import evaluate, recall_at_precision

    result = evaluate(y_test, proba, list(range(proba.shape[1])), precision_target=PRECISION_TARGET)
    scores = {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}
    if positive is not None:
        scores["recall_at_80p"] = recall_at_precision(
            y_test == positive, proba[:, positive], PRECISION_TARGET
        )
    return scores


Chooser = Callable[[SimulatedAnnotator, int], np.ndarray]


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
    """Selection without a model: each budget's increment from ``strategy``."""
    from ml.selection import select

    def choose(annotator: SimulatedAnnotator, target: int) -> np.ndarray:
        need = target - len(annotator.revealed)
        picked = select(strategy, X=X, budget=need, labeled=annotator.labeled, random_state=seed)
        annotator.reveal(picked)
        return picked

    return choose


def active_chooser(
    X: np.ndarray,
    *,
    cold_start: str,
    cold_start_labels: int,
    round_size: int,
    method: str,
    selection: str,
    calibrate: bool,
    seed: int,
) -> Chooser:
    """The active loop: a ``cold_start`` selection up to ``cold_start_labels``, then rounds
    of at most ``round_size`` that fit the head on the labels so far, predict the pool
    and add the next images by ``selection`` ("combined" or "uncertainty").

    Falls back to the cold start while fewer than two classes are labeled.
    """
    from ml.selection import select

    def choose(annotator: SimulatedAnnotator, target: int) -> np.ndarray:
        while len(annotator.revealed) < target:
            labeled = annotator.labeled
            if len(labeled) < cold_start_labels or np.unique(annotator.labels).size < 2:
                need = min(target, max(cold_start_labels, len(labeled) + 1)) - len(labeled)
                picked = select(cold_start, X=X, budget=need, labeled=labeled, random_state=seed)
            else:
                need = min(target - len(labeled), round_size)
                head = make_head(calibrate).fit(X[labeled], annotator.labels)
                params = {"method": method}
                picked = select(
                    selection,
                    X=X,
                    proba=head.predict_proba(X),
                    budget=need,
                    labeled=labeled,
                    random_state=seed,
                    **params,
                )
            annotator.reveal(picked)
        return annotator.labeled

    return choose


def summarise_seeds(runs: list[dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    """``{metric: {"mean": [...], "std": [...], "min", "max", "seeds": [[...]]}}``."""
    out: dict[str, dict[str, Any]] = {}
    for metric in runs[0]:
        values = np.asarray([run[metric] for run in runs])
        out[metric] = {
            "mean": values.mean(axis=0).tolist(),
            "std": values.std(axis=0, ddof=1).tolist()
            if len(runs) > 1
            else [0.0] * values.shape[1],
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


# ------------------------------------------------------------------------ report


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def format_table(result: dict[str, Any]) -> str:
    """The printed table: one block per metric, one row per curve, AUC and ratio."""
    budgets = result["budgets"]
    lines = []
    metrics = ["accuracy", "macro_f1"] + (
        ["recall_at_80p"] if result["positive_class"] is not None else []
    )
    n_seeds = len(result["seeds"])
    head = (
        f"{'curve':<34}"
        + "".join(f"{b:>8}" for b in budgets)
        + f"{'AUC':>8}{'ratio':>8}{'± seeds':>9}"
    )
    for metric in metrics:
        lines += [
            "",
            f"{metric} ({result['dataset']['name']}, test n={result['dataset']['test_size']})",
            head,
        ]
        random_auc = result["auc"]["random"][metric]
        for name in STRATEGIES:
            curve = result["strategies"][name][metric]
            label = f"{name} (MSN, mean of {n_seeds})"
            row = f"{label:<34}" + "".join(f"{v:>8.3f}" for v in curve["mean"])
            area = result["auc"][name][metric]
            spread = result["auc_ratio_std"][name][metric]
            lines.append(row + f"{area:>8.3f}{area / random_auc:>8.3f}{spread:>9.3f}")
            if name == "random":
                std = curve["std"]
                lines.append(
                    f"{'  random ± std over seeds':<34}" + "".join(f"{v:>8.3f}" for v in std)
                )
        for name in FEATURES:
            curve = result["features"][name]["random"][metric]
            area = result["features"][name]["auc"][metric]
            label = f"random, {FEATURE_TITLES[name]}"
            lines.append(
                f"{label:<34}" + "".join(f"{v:>8.3f}" for v in curve["mean"]) + f"{area:>8.3f}"
            )
    lines += [
        "",
        "full-pool linear probe (all pool labels): "
        + ", ".join(
            f"{FEATURE_TITLES[n]} acc {_fmt(result['features'][n]['full_pool']['accuracy'])}"
            for n in FEATURES
        ),
    ]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Learning curves (accuracy, macro-F1, recall@80%P when binary) and the features."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = result["budgets"]
    metrics = ["accuracy", "macro_f1"] + (
        ["recall_at_80p"] if result["positive_class"] is not None else []
    )
    n_cols = 2
    n_rows = math.ceil((len(metrics) + 1) / n_cols)
    fig, grid = plt.subplots(n_rows, n_cols, figsize=(6 * n_cols, 4.5 * n_rows), squeeze=False)
    axes = grid.ravel()
    for ax in axes[len(metrics) + 1 :]:
        ax.axis("off")
    for ax, metric in zip(axes, metrics, strict=False):
        for name in STRATEGIES:
            curve = result["strategies"][name][metric]
            mean, std = np.asarray(curve["mean"]), np.asarray(curve["std"])
            if name == "random":
                ax.plot(budgets, mean, "k--", label=f"random (mean of {len(result['seeds'])})")
                ax.fill_between(budgets, mean - std, mean + std, color="k", alpha=0.12)
            else:
                ratio = result["auc_ratio"][name][metric]
                (line,) = ax.plot(budgets, mean, marker="o", label=f"{name} (AUC ×{ratio:.3f})")
                ax.fill_between(budgets, mean - std, mean + std, color=line.get_color(), alpha=0.08)
        ax.set(xscale="log", xlabel="labels", ylabel=metric, title=f"{metric}, MSN features")
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[len(metrics)]
    for name in FEATURES:
        curve = result["features"][name]["random"]["accuracy"]
        mean, std = np.asarray(curve["mean"]), np.asarray(curve["std"])
        ax.plot(budgets, mean, marker="o", label=FEATURE_TITLES[name])
        ax.fill_between(budgets, mean - std, mean + std, alpha=0.12)
    ax.set(xscale="log", xlabel="labels", ylabel="accuracy", title="features (random sampling)")
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(f"Label efficiency on {result['dataset']['name']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -------------------------------------------------------------------------- main


def _parse_override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key, tuple(parsed) if isinstance(parsed, list) else parsed


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Features, curves, areas and targets for one dataset; see the module docstring.

    Torch and the BLAS/OpenMP pools (scikit-learn, numpy) run on ``args.threads``
    threads: on a busy 2-core machine, many small solves and matrix products are
    several times faster single-threaded than contending for both cores.
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        return _run_benchmark(args)


def _run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    started = time.perf_counter()
    data = discover_dataset(args.data)
    budgets = budgets_for(len(data.pool_paths))
    positive = positive_class(data.classes, args.positive)
    overrides = {**MSN_OVERRIDES, **dict(args.override)}
    features, pretrain_summary = compute_features(
        data,
        minutes=args.minutes,
        cache=args.cache,
        overrides=overrides,
        skip_pretrain=args.skip_pretrain,
        retrain=args.retrain,
        workers=args.workers,
    )
    result: dict[str, Any] = {
        "dataset": data.describe(),
        "positive_class": None if positive is None else data.classes[positive],
        "budgets": budgets,
        "seeds": list(SEEDS),
        "auc_definition": "ml.metrics.learning_curve_auc over log(budget); ratio = area / random mean area",
        "head": {
            "class": "ml.head.LinearHead",
            "calibrate": args.calibrate,
            "C": "cross-validated",
        },
        "pretrain": pretrain_summary,
        "minutes": args.minutes,
    }
    if args.features_only:
        return result

    n_classes = len(data.classes)
    y, y_test = data.pool_labels, data.test_labels
    common = {"positive": positive, "calibrate": args.calibrate, "n_classes": n_classes}
    jobs = [("feature", name, seed) for name in FEATURES for seed in SEEDS] + [
        ("strategy", name, seed) for name in STRATEGIES if name != "random" for seed in SEEDS
    ]
    random_runs: dict[str, list[dict[str, list[float]]]] = {name: [] for name in FEATURES}
    strategy_runs: dict[str, list[dict[str, list[float]]]] = {name: [] for name in STRATEGIES}
    for kind, name, seed in tqdm(jobs, desc="learning curves", unit="curve"):
        X = features["msn" if kind == "strategy" else name]["pool"]
        X_test = features["msn" if kind == "strategy" else name]["test"]
        if kind == "feature":
            chooser = strategy_chooser("random", X, seed)
        elif name == "active":
            chooser = active_chooser(
                X,
                cold_start=args.cold_start,
                cold_start_labels=args.cold_start_labels,
                round_size=args.round_size,
                method=args.uncertainty,
                selection=args.active_selection,
                calibrate=args.calibrate,
                seed=seed,
            )
        else:
            chooser = strategy_chooser(name, X, seed)
        curve = run_curve(X, y, X_test, y_test, budgets, chooser, **common)
        (random_runs if kind == "feature" else strategy_runs)[name].append(curve)

    result["features"] = {}
    for name in FEATURES:
        summary = summarise_seeds(random_runs[name])
        result["features"][name] = {
            "dim": int(features[name]["pool"].shape[1]),
            "random": summary,
            "auc": {m: auc(budgets, s["mean"]) for m, s in summary.items()},
            "full_pool": full_pool_probe(
                features[name]["pool"], y, features[name]["test"], y_test, **common
            ),
        }
    strategy_runs["random"] = random_runs["msn"]
    result["strategies"] = {name: summarise_seeds(strategy_runs[name]) for name in STRATEGIES}
    result["auc"] = {
        name: {m: auc(budgets, s["mean"]) for m, s in result["strategies"][name].items()}
        for name in STRATEGIES
    }
    result["auc_ratio"] = {
        name: {m: result["auc"][name][m] / result["auc"]["random"][m] for m in result["auc"][name]}
        for name in STRATEGIES
    }
    result["auc_ratio_std"] = {
        name: {
            m: float(
                np.std(
                    [
                        auc(budgets, run[m]) / result["auc"]["random"][m]
                        for run in strategy_runs[name]
                    ],
                    ddof=1,
                )
            )
            for m in result["auc"][name]
        }
        for name in STRATEGIES
    }
    result["active_loop"] = {
        "cold_start": args.cold_start,
        "cold_start_labels": args.cold_start_labels,
        "round_size": args.round_size,
        "selection": args.active_selection,
        "uncertainty": args.uncertainty,
    }
    result["targets"] = check_targets(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def check_targets(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each with the measured value and whether it is met."""
    budgets = result["budgets"]
    random_acc = result["strategies"]["random"]["accuracy"]["mean"]
    at20 = budgets.index(20) if 20 in budgets else None
    cold = result["active_loop"]["cold_start"]
    cold_curve = (
        result["strategies"][cold]["accuracy"]["mean"] if cold in result["strategies"] else None
    )
    msn = result["features"]["msn"]["random"]["accuracy"]["mean"]
    margins = {
        str(b): min(
            msn[i] - result["features"][other]["random"]["accuracy"]["mean"][i]
            for other in FEATURES
            if other != "msn"
        )
        for i, b in enumerate(budgets)
        if b >= 50
    }
    targets: dict[str, Any] = {
        "active_auc_ratio": {
            "value": result["auc_ratio"]["active"]["accuracy"],
            "target": 1.05,
        },
        "msn_beats_baselines_from_50": {
            "min_margin_per_budget": margins,
            "target": "> 0 at every budget >= 50",
        },
    }
    targets["active_auc_ratio"]["met"] = targets["active_auc_ratio"]["value"] >= 1.05
    targets["msn_beats_baselines_from_50"]["met"] = all(m > 0 for m in margins.values())
    if at20 is not None:
        gains = {
            "active_at_20": result["strategies"]["active"]["accuracy"]["mean"][at20]
            - random_acc[at20]
        }
        if cold_curve is not None:
            gains[f"{cold}_at_20"] = cold_curve[at20] - random_acc[at20]
        targets["cold_start_gain_at_20"] = {
            "value": gains.get(f"{cold}_at_20", gains["active_at_20"]),
            "gains": gains,
            "target": 0.03,
        }
        targets["cold_start_gain_at_20"]["met"] = targets["cold_start_gain_at_20"]["value"] >= 0.03
    return targets


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="dataset folder")
    parser.add_argument("--minutes", type=float, default=10.0, help="MSN pretraining budget")
    parser.add_argument("--out", type=Path, help="JSON output (PNG beside it)")
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help="pretraining and embeddings"
    )
    parser.add_argument(
        "--skip-pretrain", action="store_true", help="fail unless a backbone is cached"
    )
    parser.add_argument("--retrain", action="store_true", help="discard the cached backbone first")
    parser.add_argument(
        "--features-only", action="store_true", help="pretrain and embed, no curves"
    )
    parser.add_argument(
        "--override",
        action="append",
        type=_parse_override,
        default=[],
        metavar="KEY=VALUE",
        help="MSNConfig override on top of the recipe (repeatable)",
    )
    parser.add_argument("--positive", help="positive class of a binary set")
    parser.add_argument(
        "--cold-start", default="typicality", choices=["typicality", "diversity", "random"]
    )
    parser.add_argument("--cold-start-labels", type=int, default=20)
    parser.add_argument("--round-size", type=int, default=25)
    parser.add_argument(
        "--active-selection", default="combined", choices=["combined", "uncertainty"]
    )
    parser.add_argument(
        "--uncertainty", default="margin", choices=["margin", "entropy", "least_confidence"]
    )
    parser.add_argument(
        "--calibrate", action="store_true", help="calibrated head (see the docstring)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--workers", type=int, default=2, help="pretraining DataLoader workers")
    args = parser.parse_args(argv)
    if args.skip_pretrain and args.retrain:
        parser.error("--skip-pretrain and --retrain exclude each other")
    try:
        result = run_benchmark(args)
    except ValueError as error:
        parser.error(str(error))

    name = result["dataset"]["name"]
    out = args.out or args.cache / f"label_efficiency-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.features_only:
        print(json.dumps({"dataset": name, "pretrain": result["pretrain"]}))
        return result
    png = out.with_suffix(".png")
    result["outputs"] = {"json": str(out), "png": str(png)}
    out.write_text(json.dumps(result, indent=2))
    plot(result, png)
    print(format_table(result))
    pre = result["pretrain"]
    print(
        f"\nMSN: {pre['steps']} steps in {pre['seconds']:.0f} s "
        f"({'cached' if pre['cached'] else 'trained now'}), overrides {pre['overrides']}"
    )
    for key, target in result["targets"].items():
        print(f"target {key}: {'met' if target['met'] else 'MISSED'} ({json.dumps(target)})")
    ratios = result["auc_ratio"]
    line = {
        "dataset": name,
        "active_auc_ratio": round(ratios["active"]["accuracy"], 4),
        "diversity_auc_ratio": round(ratios["diversity"]["accuracy"], 4),
        "typicality_auc_ratio": round(ratios["typicality"]["accuracy"], 4),
        "active_macro_f1_auc_ratio": round(ratios["active"]["macro_f1"], 4),
        "diversity_macro_f1_auc_ratio": round(ratios["diversity"]["macro_f1"], 4),
        "typicality_macro_f1_auc_ratio": round(ratios["typicality"]["macro_f1"], 4),
        "random_auc": round(result["auc"]["random"]["accuracy"], 4),
        "cold_start_gain_at_20": round(result["targets"]["cold_start_gain_at_20"]["value"], 4)
        if "cold_start_gain_at_20" in result["targets"]
        else None,
        "msn_beats_baselines_from_50": result["targets"]["msn_beats_baselines_from_50"]["met"],
        "pretrain_steps": pre["steps"],
        "json": str(out),
        "png": str(png),
    }
    print(json.dumps(line))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
