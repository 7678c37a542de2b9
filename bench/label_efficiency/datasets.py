"""Dataset folders: the pool and test split, the positive class and the budgets that fit."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.label_efficiency.config import (
    BUDGETS,
    IMAGE_SUFFIXES,
    NEGATIVE_PREFIXES,
    SPLIT_SEED,
    TEST_FRACTION,
    TEST_SPLIT_NAMES,
)


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


def stratified_split(labels: np.ndarray, fraction: float, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
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
        per_split = {s.name: {c.name: _images_in(c) for c in _subfolders(s) if _images_in(c)} for s in splits}
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
