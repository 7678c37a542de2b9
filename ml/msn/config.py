"""MSN hyperparameters (:class:`MSNConfig` and its presets) and the seeds derived from them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

_SEED_MODEL, _SEED_MASK, _SEED_ORDER, _SEED_VIEWS = range(4)


@dataclass(frozen=True)
class MSNConfig:
    """Architecture, augmentation and optimisation settings of one MSN run.

    ``image_size``/``focal_size`` are the global and focal view sizes in pixels;
    ``anchor_views`` full-size masked anchors and ``focal_views`` focal anchors are made
    per image besides the target view ("1+10 views" in the paper is ``anchor_views=1,
    focal_views=10``). ``lr`` is the peak AdamW learning rate reached after a linear
    warm-up from ``start_lr`` over ``warmup_fraction`` of the steps, then decayed with a
    cosine to ``final_lr``; weight decay follows a cosine from ``weight_decay`` to
    ``final_weight_decay``. ``pooling`` is the embedding pooling this backbone is meant
    to be used with (``"cls"`` token or ``"mean"`` of patch tokens).
    """

    name: str = "tiny"
    image_size: int = 64
    focal_size: int = 32
    patch_size: int = 8
    num_layers: int = 4
    num_heads: int = 3
    hidden_dim: int = 192
    mlp_ratio: float = 4.0
    proj_hidden_dim: int = 1024
    out_dim: int = 256
    n_prototypes: int = 256
    anchor_views: int = 1
    focal_views: int = 6
    mask_ratio: float = 0.15
    batch_size: int = 64
    lr: float = 5e-4
    start_lr: float = 1e-4
    final_lr: float = 1e-6
    warmup_fraction: float = 0.05
    weight_decay: float = 0.04
    final_weight_decay: float = 0.1
    clip_grad: float = 3.0
    temperature: float = 0.1
    sharpen_temperature: float = 0.25
    sinkhorn_iterations: int = 3
    regularization_weight: float = 1.0
    power_law_exponent: float = 0.25
    ema_base: float = 0.996
    random_crop_scale: tuple[float, float] = (0.3, 1.0)
    focal_crop_scale: tuple[float, float] = (0.05, 0.3)
    color_jitter: float = 0.5
    loss: Literal["msn", "pmsn"] = "msn"
    pooling: Literal["cls", "mean"] = "cls"
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        for size_field in ("image_size", "focal_size"):
            if getattr(self, size_field) % self.patch_size:
                problems.append(f"{size_field} must be a multiple of patch_size")
        if self.hidden_dim % self.num_heads:
            problems.append("hidden_dim must be a multiple of num_heads")
        if not 0.0 <= self.mask_ratio < 1.0:
            problems.append("mask_ratio must be in [0, 1)")
        if self.loss not in ("msn", "pmsn"):
            problems.append("loss must be 'msn' or 'pmsn'")
        if self.pooling not in ("cls", "mean"):
            problems.append("pooling must be 'cls' or 'mean'")
        if self.batch_size < 2:
            problems.append("batch_size must be at least 2 (batch norm in the heads)")
        if self.anchor_views < 1 or self.focal_views < 0:
            problems.append("anchor_views must be >= 1 and focal_views >= 0")
        if not 0.0 < self.ema_base <= 1.0:
            problems.append("ema_base must be in (0, 1]")
        if problems:
            raise ValueError("invalid MSNConfig: " + "; ".join(problems))

    @property
    def mlp_dim(self) -> int:
        """Hidden width of each transformer block's MLP."""
        return int(self.hidden_dim * self.mlp_ratio)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> MSNConfig:
        """Returns the preset ``"tiny"`` (CPU, minutes) or ``"vit-s16"`` (paper recipe).

        ``"vit-s16"`` follows the paper's ViT-S/16 ImageNet recipe
        (configs/pretrain/msn_vits16.yaml): its learning rate was used with 64 images
        per GPU on 16 GPUs, so scale ``lr`` down for a smaller total batch.
        """
        if name not in _PRESETS:
            raise ValueError(f"unknown MSN preset {name!r}; choose from {sorted(_PRESETS)}")
        return dataclasses.replace(_PRESETS[name], **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Returns the config as JSON-compatible primitives."""
        data = dataclasses.asdict(self)
        data["random_crop_scale"] = list(self.random_crop_scale)
        data["focal_crop_scale"] = list(self.focal_crop_scale)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MSNConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown MSNConfig keys: {', '.join(unknown)}")
        values = dict(data)
        for key in ("random_crop_scale", "focal_crop_scale"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


_PRESETS: dict[str, MSNConfig] = {
    "tiny": MSNConfig(),
    "vit-s16": MSNConfig(
        name="vit-s16",
        image_size=224,
        focal_size=96,
        patch_size=16,
        num_layers=12,
        num_heads=6,
        hidden_dim=384,
        proj_hidden_dim=2048,
        out_dim=256,
        n_prototypes=1024,
        anchor_views=1,
        focal_views=10,
        mask_ratio=0.15,
        batch_size=64,
        lr=1e-3,
        start_lr=2e-4,
        final_lr=1e-6,
        warmup_fraction=15 / 800,
        weight_decay=0.04,
        final_weight_decay=0.4,
        clip_grad=3.0,
        temperature=0.1,
        sharpen_temperature=0.25,
    ),
}


def _derived_seed(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])
