"""The on-disk cache of embeddings, pretraining and OCR text, keyed by the dataset's files."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.label_efficiency.datasets import LabeledImages


def cache_key(**parts: Any) -> str:
    """A short stable hash of JSON-serialisable ``parts``."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _files_digest(data: LabeledImages) -> str:
    rel = [str(p.relative_to(data.root)) for p in [*data.pool_paths, *data.test_paths]]
    return cache_key(files=rel, pool=len(data.pool_paths))


def _cached_array(path: Path, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if path.exists():
        with np.load(path) as stored:
            return {k: stored[k] for k in stored.files}
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.json")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)
