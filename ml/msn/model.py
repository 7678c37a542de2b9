"""The MSN model around a torchvision ViT, its loss, optimiser and schedules."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from lightly.loss import MSNLoss, PMSNLoss
from lightly.models.modules import MaskedVisionTransformerTorchvision
from lightly.models.modules.heads import MSNProjectionHead
from lightly.models.utils import (
    deactivate_requires_grad,
    get_weight_decay_parameters,
    update_momentum,
)
from lightly.utils.scheduler import cosine_schedule, cosine_warmup_schedule
from torch import Tensor, nn
from torchvision.models.vision_transformer import VisionTransformer

from ml.msn.config import _SEED_MODEL, MSNConfig, _derived_seed


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


def random_keep_indices(batch_size: int, sequence_length: int, mask_ratio: float, generator: torch.Generator) -> Tensor:
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

    def forward_views(self, views: Sequence[Tensor], mask_generator: torch.Generator) -> tuple[Tensor, Tensor]:
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


def check_backbone_fits(vit: VisionTransformer, config: MSNConfig, *, name: str = "backbone") -> None:
    """Raises ValueError naming ``name`` and every field where ``vit`` and ``config`` differ.

    Compared: image_size, patch_size, num_layers, num_heads, hidden_dim and mlp_dim
    (``hidden_dim * mlp_ratio``).
    """
    found = vit_architecture(vit)
    expected = {key: int(getattr(config, key)) for key in found}
    mismatches = [f"{key} {found[key]} (config {expected[key]})" for key in found if found[key] != expected[key]]
    if mismatches:
        raise ValueError(f"{name}: ViT does not fit MSN config {config.name!r}: " + ", ".join(mismatches))


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


def schedule_values(step: int, total_steps: int | None, config: MSNConfig) -> tuple[float, float, float]:
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
