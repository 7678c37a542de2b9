"""Masked Siamese Networks (MSN) pretraining of a Vision Transformer, through lightly.

MSN [Assran et al., 2022] learns image embeddings from unlabeled images. Each image is
augmented into one *target* view, ``anchor_views`` random *anchor* views of the same size
and ``focal_views`` small crops. The target view goes through an EMA copy of the network;
the anchor views go, with a random ``mask_ratio`` of their patch tokens dropped, through
the trained network. Both outputs are softly assigned to learnable prototypes, and the
anchor assignments are trained to match the sharpened target assignments, with a
mean-entropy (or, with ``loss="pmsn"``, power-law) regulariser that spreads the pool
over the prototypes.

Three deliberate departures from lightly's own MSN example:

- the loss gets the prototypes *parameter* (``self.prototypes.weight``), not ``.data``,
  so the prototypes receive gradients and learn;
- the token mask is drawn over ``backbone.sequence_length`` tokens (class token plus
  every patch; index 0, the class token, is always kept), so every patch, the last one
  included, can be kept;
- the EMA momentum ramps linearly from ``ema_base`` (0.996) to 1.0 over the run.

As in the official implementation (facebookresearch/msn), only the full-size anchor
views are token-masked; the focal views are small crops and are already a form of
masking.

Randomness never touches the global generators' visible state: weights are initialised
under a forked RNG, data order and augmentations are pure functions of
``(config.seed, epoch, image index)``, and token masks come from a dedicated generator
whose state is checkpointed. A run is therefore repeatable on CPU for a given seed and
image list, whatever ``num_workers`` is, and a resumed run continues exactly as the
uninterrupted run would have.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightly.loss import MSNLoss, PMSNLoss
from lightly.models.modules import MaskedVisionTransformerTorchvision
from lightly.models.modules.heads import MSNProjectionHead
from lightly.models.utils import (
    deactivate_requires_grad,
    get_weight_decay_parameters,
    update_momentum,
)
from lightly.transforms import MSNTransform
from lightly.utils.scheduler import cosine_schedule, cosine_warmup_schedule
from PIL import Image, ImageOps
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.models.vision_transformer import VisionTransformer

ImageInput = str | os.PathLike[str] | bytes | Image.Image
"""One image: a file path, the encoded file's bytes, or a decoded PIL image."""

ProgressCallback = Callable[[int, int | None, float], None]
"""``progress(steps_done, total_steps, loss)``; ``total_steps`` is None while unknown."""

CHECKPOINT_FORMAT = "veil.msn.checkpoint"
BACKBONE_FORMAT = "veil.msn.backbone"
CHECKPOINT_FILENAME = "checkpoint.pt"
BACKBONE_FILENAME = "backbone.pt"

PROBE_STEPS = 5
"""Steps timed to size the schedule when only ``max_minutes`` bounds a run."""

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


def headless_vit(config: MSNConfig) -> VisionTransformer:
    """Returns a torchvision VisionTransformer shaped by ``config``, without classifier.

    ``heads`` is an ``nn.Identity``, so ``state_dict()`` holds the backbone only.
    """
    vit = VisionTransformer(
        image_size=config.image_size,
        patch_size=config.patch_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        hidden_dim=config.hidden_dim,
        mlp_dim=config.mlp_dim,
    )
    vit.heads = nn.Identity()
    return vit


def random_keep_indices(
    batch_size: int, sequence_length: int, mask_ratio: float, generator: torch.Generator
) -> Tensor:
    """Draws which tokens each masked anchor keeps.

    ``sequence_length`` counts the class token (index 0) and all patches
    (``backbone.sequence_length``). The class token is always kept; of the
    ``sequence_length - 1`` patches, ``int((sequence_length - 1) * (1 - mask_ratio))``
    are kept, uniformly at random and independently per row, so any patch, the last
    one included, can be kept.

    Returns:
        Long tensor of shape (batch_size, 1 + num_kept_patches) on the CPU; column 0
        is 0 (the class token).
    """
    n_patches = sequence_length - 1
    n_keep = max(1, int(n_patches * (1.0 - mask_ratio)))
    noise = torch.rand(batch_size, n_patches, generator=generator)
    patches = torch.argsort(noise, dim=1)[:, :n_keep] + 1
    class_token = torch.zeros(batch_size, 1, dtype=patches.dtype)
    return torch.cat([class_token, patches], dim=1)


def ema_momentum(step: int, total_steps: int, base: float) -> float:
    """Momentum of the target (EMA) network at 0-based ``step`` of ``total_steps``.

    Linear from ``base`` at step 0 to 1.0 at the last step (``total_steps - 1``).
    """
    if total_steps <= 1:
        return 1.0
    return base + (1.0 - base) * min(1.0, step / (total_steps - 1))


class MSN(nn.Module):
    """Anchor and target (EMA) ViT backbones with MSN projection heads and prototypes.

    Backbones are lightly ``MaskedVisionTransformerTorchvision`` wrappers around a
    torchvision ``VisionTransformer``; heads map the class token (hidden_dim) to
    ``out_dim``; ``prototypes.weight`` has shape (n_prototypes, out_dim).
    """

    def __init__(self, config: MSNConfig) -> None:
        super().__init__()
        self.config = config
        self.anchor_backbone = MaskedVisionTransformerTorchvision(vit=headless_vit(config))
        self.anchor_head = MSNProjectionHead(
            input_dim=config.hidden_dim,
            hidden_dim=config.proj_hidden_dim,
            output_dim=config.out_dim,
        )
        self.target_backbone = copy.deepcopy(self.anchor_backbone)
        self.target_head = copy.deepcopy(self.anchor_head)
        deactivate_requires_grad(self.target_backbone)
        deactivate_requires_grad(self.target_head)
        self.prototypes = nn.Linear(config.out_dim, config.n_prototypes, bias=False)

    def forward_target(self, images: Tensor) -> Tensor:
        """Target projections: images (B, 3, H, W) -> (B, out_dim), without gradient."""
        with torch.no_grad():
            return self.target_head(self.target_backbone(images=images))

    def forward_anchor(self, images: Tensor, idx_keep: Tensor | None = None) -> Tensor:
        """Anchor projections: images (B, 3, H, W), idx_keep (B, K) -> (B, out_dim)."""
        return self.anchor_head(self.anchor_backbone(images=images, idx_keep=idx_keep))

    def forward_views(
        self, views: Sequence[Tensor], mask_generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Projects one batch of multi-view images.

        Args:
            views: ``[target, anchor_1..anchor_A, focal_1..focal_F]``, each of shape
                (B, 3, size, size) with size ``image_size`` or ``focal_size``.
            mask_generator: CPU generator for the anchors' token masks.

        Returns:
            ``(anchors, targets)`` of shapes (B * (A + F), out_dim) and (B, out_dim);
            anchors are ordered view by view, as ``MSNLoss`` expects.
        """
        n_anchor = self.config.anchor_views
        targets = self.forward_target(views[0])
        anchors = torch.cat(list(views[1 : 1 + n_anchor]))
        idx_keep = random_keep_indices(
            anchors.shape[0],
            self.anchor_backbone.sequence_length,
            self.config.mask_ratio,
            mask_generator,
        ).to(anchors.device)
        outputs = [self.forward_anchor(anchors, idx_keep=idx_keep)]
        if len(views) > 1 + n_anchor:
            outputs.append(self.forward_anchor(torch.cat(list(views[1 + n_anchor :]))))
        return torch.cat(outputs), targets

    def update_target(self, momentum: float) -> None:
        """EMA step: target <- momentum * target + (1 - momentum) * anchor."""
        update_momentum(self.anchor_backbone, self.target_backbone, m=momentum)
        update_momentum(self.anchor_head, self.target_head, m=momentum)

    def trainable_modules(self) -> list[nn.Module]:
        """The modules the optimiser updates (anchor side; prototypes separately)."""
        return [self.anchor_backbone, self.anchor_head]

    def start_from(self, vit: VisionTransformer) -> None:
        """Copies ``vit``'s weights into both backbones (classifier ``heads.*`` ignored).

        Raises:
            ValueError: ``vit`` does not fit the config (see :func:`check_backbone_fits`).
        """
        check_backbone_fits(vit, self.config)
        state = {k: v for k, v in vit.state_dict().items() if not k.startswith("heads.")}
        with torch.no_grad():
            self.anchor_backbone.vit.load_state_dict(state)
            self.target_backbone.vit.load_state_dict(state)


def vit_architecture(vit: VisionTransformer) -> dict[str, int]:
    """The architecture fields of :class:`MSNConfig` that a torchvision ViT fixes."""
    return {
        "image_size": int(vit.image_size),
        "patch_size": int(vit.patch_size),
        "num_layers": len(vit.encoder.layers),
        "num_heads": int(vit.encoder.layers[0].num_heads),
        "hidden_dim": int(vit.hidden_dim),
        "mlp_dim": int(vit.mlp_dim),
    }


def check_backbone_fits(
    vit: VisionTransformer, config: MSNConfig, *, name: str = "backbone"
) -> None:
    """Raises ValueError naming ``name`` and every field where ``vit`` and ``config`` differ.

    Compared: image_size, patch_size, num_layers, num_heads, hidden_dim and mlp_dim
    (``hidden_dim * mlp_ratio``).
    """
    found = vit_architecture(vit)
    expected = {key: int(getattr(config, key)) for key in found}
    mismatches = [
        f"{key} {found[key]} (config {expected[key]})"
        for key in found
        if found[key] != expected[key]
    ]
    if mismatches:
        raise ValueError(
            f"{name}: ViT does not fit MSN config {config.name!r}: " + ", ".join(mismatches)
        )


def build_msn(config: MSNConfig) -> MSN:
    """Builds an :class:`MSN` with weights drawn from ``config.seed``.

    The global torch RNG is forked, so its state is the same before and after.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_derived_seed(config.seed, _SEED_MODEL))
        return MSN(config)


def make_criterion(config: MSNConfig) -> MSNLoss:
    """Returns lightly's MSNLoss, or PMSNLoss (power-law prior) for long-tailed pools."""
    if config.loss == "pmsn":
        return PMSNLoss(
            temperature=config.temperature,
            sinkhorn_iterations=config.sinkhorn_iterations,
            regularization_weight=config.regularization_weight,
            power_law_exponent=config.power_law_exponent,
        )
    return MSNLoss(
        temperature=config.temperature,
        sinkhorn_iterations=config.sinkhorn_iterations,
        regularization_weight=config.regularization_weight,
    )


def msn_loss(
    model: MSN,
    criterion: MSNLoss,
    views: Sequence[Tensor],
    mask_generator: torch.Generator,
    *,
    autocast: bool = False,
) -> Tensor:
    """Scalar MSN loss of one batch of views (see :meth:`MSN.forward_views`).

    The networks run under fp16 autocast when ``autocast`` is set; the loss itself is
    computed in fp32 against the prototypes parameter, so the prototypes get gradients.
    """
    device_type = views[0].device.type
    with torch.autocast(device_type=device_type, dtype=torch.float16, enabled=autocast):
        anchors, targets = model.forward_views(views, mask_generator)
    return criterion(
        anchors.float(),
        targets.float(),
        model.prototypes.weight,
        target_sharpen_temperature=model.config.sharpen_temperature,
    )


def make_optimizer(model: MSN, config: MSNConfig) -> torch.optim.AdamW:
    """AdamW over the anchor side and prototypes.

    Norm layers, biases and prototypes get no weight decay; the decayed group is marked
    ``scheduled_wd`` for the weight-decay schedule.
    """
    decay, no_decay = get_weight_decay_parameters(model.trainable_modules())
    decay = [p for p in decay if p.requires_grad]
    no_decay = [p for p in no_decay if p.requires_grad]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay, "scheduled_wd": True},
            {
                "params": [*no_decay, model.prototypes.weight],
                "weight_decay": 0.0,
                "scheduled_wd": False,
            },
        ],
        lr=config.start_lr,
    )


def schedule_values(
    step: int, total_steps: int | None, config: MSNConfig
) -> tuple[float, float, float]:
    """``(lr, weight_decay, ema_momentum)`` at 0-based ``step``.

    While ``total_steps`` is unknown (the timing probe of a time-bounded run) the
    values of step 0 are used: ``start_lr``, ``weight_decay`` and ``ema_base``.
    """
    if total_steps is None:
        return config.start_lr, config.weight_decay, config.ema_base
    warmup = min(total_steps, round(config.warmup_fraction * total_steps))
    step = min(step, total_steps - 1)
    lr = cosine_warmup_schedule(
        step=step,
        max_steps=total_steps,
        start_value=config.lr,
        end_value=config.final_lr,
        warmup_steps=warmup,
        warmup_start_value=config.start_lr,
        warmup_end_value=config.lr,
    )
    wd = cosine_schedule(step, total_steps, config.weight_decay, config.final_weight_decay)
    return lr, wd, ema_momentum(step, total_steps, config.ema_base)


def open_rgb(item: ImageInput, *, label: str, draft_size: int | None = None) -> Image.Image:
    """Decodes ``item`` into an upright RGB PIL image.

    ``draft_size`` lets JPEG decoding shrink by a power of two while keeping both sides
    at least that many pixels. Undecodable input raises ValueError naming ``label``.
    """
    try:
        if isinstance(item, Image.Image):
            image = item
        elif isinstance(item, bytes | bytearray | memoryview):
            image = Image.open(io.BytesIO(item))
        else:
            image = Image.open(os.fspath(item))
        if draft_size is not None:
            image.draft("RGB", (draft_size, draft_size))
        return ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot read image {label}: {error}") from error


def describe_item(item: Any, index: int) -> str:
    """A human label for an image input: its path when it has one, else its index."""
    if isinstance(item, str | os.PathLike):
        return os.fspath(item)
    return f"#{index}"


def _unwrap_item(item: Any) -> Any:
    """Dataset items may be ``(image, target)`` pairs; returns the image part."""
    return item[0] if isinstance(item, tuple | list) else item


class MultiViewDataset(Dataset):
    """MSN views of a pool of images, indexed by ``(epoch, image_index)``.

    Each item is a list ``[target, anchor_1..A, focal_1..F]`` of float tensors of shape
    (3, image_size, image_size) or (3, focal_size, focal_size). The augmentation of an
    item is a pure function of ``(config.seed, epoch, image_index)``: it runs under a
    forked torch RNG and a swapped numpy RNG, so it neither depends on nor changes the
    process's global random state.
    """

    def __init__(self, images: Sequence[ImageInput] | Dataset, config: MSNConfig) -> None:
        self.images = images
        self.seed = config.seed
        self.transform = MSNTransform(
            random_size=config.image_size,
            focal_size=config.focal_size,
            random_views=1 + config.anchor_views,
            focal_views=config.focal_views,
            random_crop_scale=config.random_crop_scale,
            focal_crop_scale=config.focal_crop_scale,
            cj_strength=config.color_jitter,
        )

    def __len__(self) -> int:
        return len(self.images)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> list[Tensor]:
        epoch, index = key
        item = _unwrap_item(self.images[index])
        image = open_rgb(item, label=describe_item(item, index))
        torch_seed, numpy_seed = np.random.SeedSequence(
            [self.seed, _SEED_VIEWS, epoch, index]
        ).generate_state(2)
        numpy_state = np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch_seed))
                np.random.seed(int(numpy_seed))
                return self.transform(image)
        finally:
            np.random.set_state(numpy_state)


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Endless batches of ``(epoch, index)`` keys, starting at global step ``start_step``.

    Every epoch is a permutation of the pool drawn from ``(seed, epoch)``; the last
    incomplete batch of an epoch is dropped, so step ``s`` always holds the same images.
    """

    def __init__(self, n_images: int, batch_size: int, seed: int, start_step: int = 0) -> None:
        self.n_images = n_images
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step

    @property
    def steps_per_epoch(self) -> int:
        return self.n_images // self.batch_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, first_batch = divmod(self.start_step, self.steps_per_epoch)
        while True:
            generator = torch.Generator().manual_seed(_derived_seed(self.seed, _SEED_ORDER, epoch))
            order = torch.randperm(self.n_images, generator=generator).tolist()
            for batch in range(first_batch, self.steps_per_epoch):
                start = batch * self.batch_size
                yield [(epoch, i) for i in order[start : start + self.batch_size]]
            epoch, first_batch = epoch + 1, 0


@dataclass
class PretrainResult:
    """Outcome of :func:`pretrain`.

    ``loss_curve`` holds ``(step, loss)`` for every step of the run so far (resumed
    steps included), ``step`` counting from 1. ``seconds`` is this call's wall time.
    """

    backbone_path: Path
    checkpoint_path: Path
    loss_curve: list[tuple[int, float]]
    steps: int
    total_steps: int
    seconds: float
    device: str
    resumed_from: int
    config: MSNConfig
    init_backbone: str | None = None
    """Where the backbones' initial weights came from (see ``pretrain``), else None."""


BackboneInit = str | os.PathLike[str] | VisionTransformer
"""A ViT to start from: a file :func:`ml.embed.load_backbone_file` reads, or a model."""


def pretrain(
    images: Sequence[ImageInput] | Dataset,
    *,
    config: MSNConfig,
    out_dir: str | os.PathLike[str],
    max_steps: int | None = None,
    max_minutes: float | None = None,
    epochs: int | None = None,
    checkpoint_every: int = 100,
    resume: bool = True,
    progress: ProgressCallback | None = None,
    device: str | torch.device | None = None,
    num_workers: int | None = None,
    init_backbone: BackboneInit | None = None,
) -> PretrainResult:
    """Pretrains an MSN backbone on ``images`` and writes it to ``out_dir``.

    Args:
        images: file paths, encoded bytes or PIL images, or a torch Dataset whose items
            are one of those or ``(image, target)`` pairs.
        config: model and optimisation settings; ``config.seed`` fixes initial weights,
            data order, augmentations and masks.
        out_dir: receives ``checkpoint.pt`` (full training state, written atomically
            every ``checkpoint_every`` steps and at the end) and ``backbone.pt`` (the
            target backbone for :func:`load_backbone`).
        max_steps, epochs: length of the schedule; with both, the smaller wins.
        max_minutes: wall-time budget of this call; the run stops at the last step
            boundary that fits. When it is the only bound, the schedule (cosine lr,
            weight decay, EMA ramp) is sized from the speed of the first
            ``PROBE_STEPS`` steps: those run at step-0 values (``start_lr``,
            ``ema_base``); the steps after the first (which carries start-up costs) are
            timed and ``total = steps_done + remaining_seconds / seconds_per_step``.
        resume: continue from ``out_dir/checkpoint.pt`` when one exists. The checkpoint
            must come from the same config and pool size; its schedule length is kept
            unless ``max_steps``/``epochs`` set a new one.
        progress: called after every step as ``progress(step, total_steps, loss)``.
        device: defaults to CUDA when available (fp16 autocast with a GradScaler),
            else CPU in fp32.
        num_workers: DataLoader worker processes; default ``min(2, cpu_count)``, or 0
            inside a daemonic process, which may not start children.
        init_backbone: start the anchor and target backbones from these weights
            instead of ``config.seed``'s random ones (the projection heads and
            prototypes stay random): a torchvision ``VisionTransformer`` or a file of
            any layout :func:`ml.embed.load_backbone_file` reads (Veil backbone or
            checkpoint, torchvision ViT state dict, official MSN checkpoint; the last
            two are read with ``config.num_heads`` heads). Its architecture must equal
            the config's (see :func:`check_backbone_fits`); the config is never
            changed to fit. Recorded as ``init_backbone`` in the result, the checkpoint
            and ``backbone.pt``. A resumed run continues from its checkpoint, which
            must have been started from the same ``init_backbone``.

    Raises:
        ValueError: no bound given, fewer than 2 images, an undecodable image (named),
            an ``init_backbone`` that cannot be read or does not fit the config (named,
            with the mismatched fields), or a checkpoint in ``out_dir`` that does not
            match this run.
        FloatingPointError: the loss stopped being finite (the last checkpoint stays).
    """
    if max_steps is None and epochs is None and max_minutes is None:
        raise ValueError("pretrain needs max_steps, epochs or max_minutes")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
    started = time.perf_counter()
    run_device = _resolve_device(device)
    amp = run_device.type == "cuda"
    dataset = MultiViewDataset(images, config)
    n_images = len(dataset)
    if n_images < 2:
        raise ValueError(f"MSN pretraining needs at least 2 images, got {n_images}")
    batch_size = min(config.batch_size, n_images)
    planned_steps = _planned_steps(max_steps, epochs, n_images // batch_size)
    init_name, init_vit = _initial_backbone(init_backbone, config)

    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_path / CHECKPOINT_FILENAME
    backbone_path = out_path / BACKBONE_FILENAME

    model = build_msn(config)
    if init_vit is not None:
        model.start_from(init_vit)
    model = model.to(run_device)
    model.train()
    run = _Run(
        config=config,
        n_images=n_images,
        model=model,
        optimizer=make_optimizer(model, config),
        scaler=torch.amp.GradScaler(run_device.type, enabled=amp),
        mask_generator=torch.Generator().manual_seed(_derived_seed(config.seed, _SEED_MASK)),
        state=_RunState(total_steps=planned_steps, momentum=config.ema_base),
        init_backbone=init_name,
    )
    if resume and checkpoint_path.exists():
        run.restore(checkpoint_path)
        if planned_steps is not None:
            run.state.total_steps = planned_steps
    state = run.state
    resumed_from = state.step

    loader = DataLoader(
        dataset,
        batch_sampler=StepBatchSampler(n_images, batch_size, config.seed, state.step),
        num_workers=_resolve_workers(num_workers),
        pin_memory=amp,
        generator=torch.Generator(),
    )
    criterion = make_criterion(config)
    budget = None if max_minutes is None else max_minutes * 60.0
    timer = _StepTimer()
    last_saved = state.step
    batches = iter(loader)
    while state.total_steps is None or state.step < state.total_steps:
        if budget is not None and timer.would_exceed(time.perf_counter() - started, budget):
            break
        views = [v.to(run_device, non_blocking=True) for v in next(batches)]
        loss_value = run.step(criterion, views, amp=amp)
        timer.lap()
        if state.total_steps is None and budget is not None and timer.laps == PROBE_STEPS:
            remaining = budget - (time.perf_counter() - started)
            state.total_steps = state.step + int(remaining / max(timer.seconds_per_step(), 1e-9))
        if progress is not None:
            progress(state.step, state.total_steps, loss_value)
        if state.step % checkpoint_every == 0:
            run.save(checkpoint_path)
            last_saved = state.step

    if state.total_steps is None:
        state.total_steps = state.step
    if state.step != last_saved or not checkpoint_path.exists():
        run.save(checkpoint_path)
    save_backbone(model.target_backbone.vit, config, backbone_path, step=state.step, init_backbone=init_name)
    return PretrainResult(
        backbone_path=backbone_path,
        checkpoint_path=checkpoint_path,
        loss_curve=list(state.loss_curve),
        steps=state.step,
        total_steps=state.total_steps,
        seconds=time.perf_counter() - started,
        device=str(run_device),
        resumed_from=resumed_from,
        config=config,
        init_backbone=init_name,
    )


def load_backbone(
    source: str | os.PathLike[str] | Mapping[str, Any], config: MSNConfig | None = None
) -> VisionTransformer:
    """Loads a pretrained MSN target backbone for embedding.

    Args:
        source: a ``backbone.pt`` or ``checkpoint.pt`` written by :func:`pretrain`
            (path or loaded dict), or a bare torchvision ViT state dict.
        config: architecture; read from the file when omitted (required for a bare
            state dict).

    Returns:
        A headless torchvision ``VisionTransformer`` in eval mode, on the CPU.
    """
    data = load_torch_file(source) if isinstance(source, str | os.PathLike) else source
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: not a backbone or checkpoint dict")
    if data.get("format") == BACKBONE_FORMAT:
        state_dict = data["state_dict"]
    elif data.get("format") == CHECKPOINT_FORMAT:
        prefix = "target_backbone.vit."
        state_dict = {k[len(prefix) :]: v for k, v in data["model"].items() if k.startswith(prefix)}
    else:
        state_dict = data
    if config is None:
        if "config" not in data:
            raise ValueError("load_backbone needs a config for a bare state dict")
        config = MSNConfig.from_dict(data["config"])
    vit = headless_vit(config)
    vit.load_state_dict(state_dict)
    return vit.eval()


def save_backbone(
    vit: VisionTransformer,
    config: MSNConfig,
    path: str | os.PathLike[str],
    *,
    step: int | None = None,
    init_backbone: str | None = None,
) -> None:
    """Writes ``vit`` as Veil's backbone file (what :func:`load_backbone` reads), atomically."""
    _atomic_save(
        {
            "format": BACKBONE_FORMAT,
            "version": 1,
            "config": config.to_dict(),
            "step": step,
            "init_backbone": init_backbone,
            "state_dict": vit.state_dict(),
        },
        Path(path),
    )


def load_torch_file(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` with ``weights_only=True`` onto the CPU.

    Files that need arbitrary unpickling are refused rather than executed: a
    ValueError names the file.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise ValueError(
            f"{os.fspath(path)}: not a loadable weights-only torch file ({error})"
        ) from error


@dataclass
class _RunState:
    """Training progress that is checkpointed besides the module and optimiser states."""

    step: int = 0
    total_steps: int | None = None
    momentum: float = 0.996
    loss_curve: list[tuple[int, float]] = field(default_factory=list)


class _StepTimer:
    """Times the steps of one call; the first (worker start-up, warm-up) is not averaged."""

    def __init__(self) -> None:
        self.laps = 0
        self._start = time.perf_counter()
        self._first_end = self._start
        self._last = self._start

    def lap(self) -> None:
        self._last = time.perf_counter()
        self.laps += 1
        if self.laps == 1:
            self._first_end = self._last

    def seconds_per_step(self) -> float:
        if self.laps == 0:
            return 0.0
        if self.laps == 1:
            return self._first_end - self._start
        return (self._last - self._first_end) / (self.laps - 1)

    def would_exceed(self, elapsed: float, budget: float) -> bool:
        """Whether one more step, at the measured speed, would overrun ``budget``."""
        return elapsed + self.seconds_per_step() > budget


def _initial_backbone(
    source: BackboneInit | None, config: MSNConfig
) -> tuple[str | None, VisionTransformer | None]:
    """``(name, vit)`` of ``pretrain``'s ``init_backbone``, checked against ``config``."""
    if source is None:
        return None, None
    if isinstance(source, VisionTransformer):
        name, vit = f"<{type(source).__name__} object>", source
    elif isinstance(source, str | os.PathLike):
        from ml.embed import load_backbone_file

        name = os.fspath(source)
        vit = load_backbone_file(source, num_heads=config.num_heads)
    else:
        raise TypeError(
            f"init_backbone must be a path or a VisionTransformer, got {type(source).__name__}"
        )
    check_backbone_fits(vit, config, name=name)
    return name, vit


def _derived_seed(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _resolve_workers(num_workers: int | None) -> int:
    if num_workers is not None:
        return num_workers
    if multiprocessing.current_process().daemon:
        return 0
    return min(2, os.cpu_count() or 1)


def _planned_steps(max_steps: int | None, epochs: int | None, steps_per_epoch: int) -> int | None:
    bounds = [
        b
        for b in (max_steps, None if epochs is None else epochs * steps_per_epoch)
        if b is not None
    ]
    return min(bounds) if bounds else None


def _atomic_save(obj: Any, path: Path) -> None:
    """Writes ``obj`` to a temporary file beside ``path``, fsyncs, then renames."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@dataclass
class _Run:
    """Everything a training step changes, with checkpoint save and restore."""

    config: MSNConfig
    n_images: int
    model: MSN
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    mask_generator: torch.Generator
    state: _RunState
    init_backbone: str | None = None

    def step(self, criterion: MSNLoss, views: Sequence[Tensor], *, amp: bool) -> float:
        """One optimisation step and EMA update on ``views``; returns the loss."""
        state, config = self.state, self.config
        lr, wd, momentum = schedule_values(state.step, state.total_steps, config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
            if group["scheduled_wd"]:
                group["weight_decay"] = wd
        self.optimizer.zero_grad(set_to_none=True)
        loss = msn_loss(self.model, criterion, views, self.mask_generator, autocast=amp)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"MSN loss is {loss_value} at step {state.step + 1}")
        self.scaler.scale(loss).backward()
        if config.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            anchor_params = [
                p for m in self.model.trainable_modules() for p in m.parameters() if p.requires_grad
            ]
            nn.utils.clip_grad_norm_(anchor_params, config.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.model.update_target(momentum)
        state.step += 1
        state.momentum = momentum
        state.loss_curve.append((state.step, loss_value))
        return loss_value

    def save(self, path: Path) -> None:
        _atomic_save(
            {
                "format": CHECKPOINT_FORMAT,
                "version": 1,
                "config": self.config.to_dict(),
                "n_images": self.n_images,
                "step": self.state.step,
                "total_steps": self.state.total_steps,
                "ema_momentum": self.state.momentum,
                "loss_curve": [[s, v] for s, v in self.state.loss_curve],
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "mask_rng": self.mask_generator.get_state(),
                "init_backbone": self.init_backbone,
            },
            path,
        )

    def restore(self, path: Path) -> None:
        data = load_torch_file(path)
        if data.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: not a Veil MSN training checkpoint")
        if MSNConfig.from_dict(data["config"]) != self.config:
            raise ValueError(f"{path}: written with a different MSNConfig; use another out_dir")
        if data["n_images"] != self.n_images:
            raise ValueError(f"{path}: written for {data['n_images']} images, not {self.n_images}")
        if data.get("init_backbone") != self.init_backbone:
            raise ValueError(
                f"{path}: started from init_backbone {data.get('init_backbone')!r}, "
                f"not {self.init_backbone!r}; use another out_dir"
            )
        self.model.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.scaler.load_state_dict(data["scaler"])
        self.mask_generator.set_state(data["mask_rng"])
        self.state = _RunState(
            step=data["step"],
            total_steps=data["total_steps"],
            momentum=data["ema_momentum"],
            loss_curve=[(int(s), float(v)) for s, v in data["loss_curve"]],
        )
