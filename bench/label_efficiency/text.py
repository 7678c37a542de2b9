"""The text inside the images: read once by OCR, cached, embedded when a set carries text."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.label_efficiency.cache import _cached_array, _files_digest, _write_json, cache_key
from bench.label_efficiency.config import TEXT_MIN_FRACTION, TEXT_SAMPLE, TEXT_SEED
from bench.label_efficiency.datasets import LabeledImages
from ml import text as ml_text
from ml.text import TEXT_BACKBONE


def ocr_cache_path(data: LabeledImages, cache: Path) -> Path:
    """The JSON file of OCR text for ``data``, keyed by its files and the OCR settings."""
    settings = {
        "detect_side": ml_text.DETECT_SIDE,
        "decode_side": ml_text.DECODE_SIDE,
        "max_side": ml_text.MAX_SIDE,
        "min_line_score": ml_text.MIN_LINE_SCORE,
        "min_line_chars": ml_text.MIN_LINE_CHARS,
    }
    return cache / f"{data.name}-ocr-{cache_key(files=_files_digest(data), ocr=settings)}.json"


def read_texts(
    data: LabeledImages,
    paths: Sequence[Path],
    *,
    cache_file: Path,
    threads: int,
    read: Callable[..., list[str]] | None = None,
) -> list[str]:
    """The OCR text of each of ``paths`` ("" without text), read once and cached.

    ``cache_file`` maps paths relative to the dataset to their text; only the paths it
    lacks are read (with ``read``, default ``ml.text.read_text``), and the file is
    rewritten after every 100 images read.
    """
    if read is None:
        read = ml_text.read_text
    known: dict[str, str] = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    keys = [str(Path(p).relative_to(data.root)) for p in paths]
    missing = [key for key in dict.fromkeys(keys) if key not in known]
    if missing:
        bar = tqdm(total=len(missing), desc="OCR", unit="img", leave=False)
        for start in range(0, len(missing), 100):
            chunk = missing[start : start + 100]
            found = read([data.root / key for key in chunk], threads=threads)
            known.update(zip(chunk, found, strict=True))
            _write_json(cache_file, known)
            bar.update(len(chunk))
        bar.close()
    return [known[key] for key in keys]


def text_sample(pool_size: int, size: int = TEXT_SAMPLE, seed: int = TEXT_SEED) -> np.ndarray:
    """A seeded sample of ``min(size, pool_size)`` pool indices, sorted (int64)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(pool_size, size=min(size, pool_size), replace=False)).astype(np.int64)


def use_text(mode: str, fraction: float | None, threshold: float = TEXT_MIN_FRACTION) -> bool:
    """Whether to build the fused image+text features: ``mode`` "on" or "off" decides;
    "auto" uses them when at least ``threshold`` of the sample has text."""
    if mode == "on":
        return True
    if mode == "off":
        return False
    if mode != "auto":
        raise ValueError(f"text mode must be auto, on or off, got {mode!r}")
    return fraction is not None and fraction >= threshold


def text_features(
    data: LabeledImages, *, cache: Path, mode: str, threads: int
) -> tuple[dict[str, np.ndarray] | None, dict[str, Any]]:
    """The text in the images, embedded, if the set carries text (see :func:`use_text`).

    Returns ``({"pool": (n_pool, 384), "test": (n_test, 384)} or None, summary)``; an
    image without text has an all-zero row.
    """
    ocr_file = ocr_cache_path(data, cache)
    summary: dict[str, Any] = {"mode": mode, "min_fraction": TEXT_MIN_FRACTION}
    fraction = None
    if mode != "off":
        sample = text_sample(len(data.pool_paths))
        texts = read_texts(data, [data.pool_paths[i] for i in sample], cache_file=ocr_file, threads=threads)
        with_text = sum(bool(t.strip()) for t in texts)
        fraction = with_text / max(len(texts), 1)
        summary.update(sample=len(texts), sample_with_text=with_text, sample_fraction=fraction)
    summary["used"] = use_text(mode, fraction)
    if not summary["used"]:
        return None, summary

    def compute() -> dict[str, np.ndarray]:
        embedder = ml_text.text_embedder()
        out = {}
        for split, paths in (("pool", data.pool_paths), ("test", data.test_paths)):
            out[split] = embedder.embed(read_texts(data, paths, cache_file=ocr_file, threads=threads))
        return out

    key = cache_key(files=_files_digest(data), ocr=ocr_file.name, text=TEXT_BACKBONE)
    embedded = _cached_array(cache / f"{data.name}-text-{TEXT_BACKBONE}-{key}.npz", compute)
    summary.update(
        ocr_cache=str(ocr_file),
        text_backbone=TEXT_BACKBONE,
        pool_with_text=int(np.count_nonzero(np.abs(embedded["pool"]).sum(axis=1))),
        test_with_text=int(np.count_nonzero(np.abs(embedded["test"]).sum(axis=1))),
    )
    return embedded, summary
