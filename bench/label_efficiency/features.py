"""Feature sets: raw pixels, the default backbone, a random and an MSN-pretrained ViT, image+text."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.label_efficiency.cache import _cached_array, _files_digest, cache_key
from bench.label_efficiency.config import DEFAULT_FEATURES, RAW_PIXELS_SIZE, TEXT_FEATURES
from bench.label_efficiency.datasets import LabeledImages
from bench.label_efficiency.text import text_features
from ml.backbones import DEFAULT_BACKBONE, embed, load_image_backbone
from ml.embed import embed_images, eval_transform
from ml.features import fuse
from ml.images import open_rgb
from ml.msn import MSNConfig, build_msn, load_backbone, pretrain


def raw_pixels(paths: Sequence[Path], size: int = RAW_PIXELS_SIZE) -> np.ndarray:
    """Downsampled raw pixels: shorter side to ``size``, centre crop, flattened RGB.

    Returns float32 of shape (len(paths), 3 * size * size), ImageNet-normalised.
    """
    transform = eval_transform(size)
    out = np.empty((len(paths), 3 * size * size), dtype=np.float32)
    for i, path in enumerate(paths):
        out[i] = transform(open_rgb(path, label=str(path), draft_size=size)).numpy().ravel()
    return out


def _embed(backbone: Any, paths: Sequence[Path], config: Any, desc: str) -> np.ndarray:
    with tqdm(total=len(paths), desc=desc, unit="img", leave=False) as bar:
        return embed_images(
            backbone,
            [str(p) for p in paths],
            image_size=config.image_size,
            pooling=config.pooling,
            progress=lambda done, _total: bar.update(done - bar.n),
        )


def embed_with_backbone(name: str, paths: Sequence[Path]) -> np.ndarray:
    """``paths`` embedded by the registered backbone ``name`` (``ml.backbones``):
    float32 (len(paths), dim), unit-length rows."""
    backbone = load_image_backbone(name)
    with tqdm(total=len(paths), desc=f"embed {name}", unit="img", leave=False) as bar:
        return embed(
            backbone,
            [str(p) for p in paths],
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
    text: str = "auto",
    threads: int = 1,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Pool and test features of every set, with what it took to make them.

    Returns ``({feature: {"pool": (n_pool, d), "test": (n_test, d)}}, info)`` where
    ``info`` holds ``"pretrain"`` (the MSN run summary) and ``"text"`` (the OCR
    decision, :func:`text_features`). The fused text set is absent when not used.
    """
    config = MSNConfig.preset("tiny", **overrides)
    files = _files_digest(data)
    run_dir = cache / f"{data.name}-{cache_key(files=files, minutes=minutes, config=config.to_dict())}"
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
    features[DEFAULT_FEATURES] = _cached_array(
        cache / f"{data.name}-{DEFAULT_BACKBONE}-{cache_key(files=files, backbone=DEFAULT_BACKBONE)}.npz",
        lambda: split_features(lambda ps: embed_with_backbone(DEFAULT_BACKBONE, ps)),
    )
    summary = pretrain_msn(data, config, minutes=minutes, run_dir=run_dir, skip=skip_pretrain, workers=workers)
    summary["run_dir"] = str(run_dir)
    summary["overrides"] = overrides
    backbone = load_backbone(run_dir / "msn" / "backbone.pt")
    features["msn"] = _cached_array(
        run_dir / "features-msn.npz",
        lambda: split_features(lambda ps: _embed(backbone, ps, config, "embed MSN")),
    )
    embedded_text, text_summary = text_features(data, cache=cache, mode=text, threads=threads)
    if embedded_text is not None:
        default = features[DEFAULT_FEATURES]
        features[TEXT_FEATURES] = {split: fuse([default[split], embedded_text[split]]) for split in ("pool", "test")}
    return features, {"pretrain": summary, "text": text_summary}
