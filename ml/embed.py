"""Image embeddings from a Vision Transformer backbone.

Any torchvision ``VisionTransformer`` works as a backbone: one pretrained by
:mod:`ml.msn`, a torchvision ViT state dict (for example ``vit_b_16().state_dict()``
saved with ``torch.save``), or an official MSN checkpoint (facebookresearch/msn),
whose DeiT-style weights are converted to torchvision's layout. Embeddings are the
final-norm class token (``pooling="cls"``) or the mean of the final-norm patch tokens
(``pooling="mean"``), L2-normalised.

Files are read with ``torch.load(weights_only=True)``: a file that would need
arbitrary unpickling is refused, never executed.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from lightly.models.modules import MaskedVisionTransformerTorchvision
from lightly.transforms.utils import IMAGENET_NORMALIZE
from PIL import Image
from torch import Tensor, nn
from torchvision import transforms as T
from torchvision.models.vision_transformer import VisionTransformer

from ml.images import ImageInput
from ml.msn import (
    BACKBONE_FORMAT,
    CHECKPOINT_FORMAT,
    load_backbone,
    load_torch_file,
)

Pooling = Literal["cls", "mean"]
StateDict = Mapping[str, Tensor]

DEFAULT_NUM_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16}
"""Attention heads of the standard ViT/DeiT widths (Ti, S, B, L, H)."""

_TORCHVISION_KEYS = (
    "class_token",
    "conv_proj.weight",
    "encoder.pos_embedding",
    "encoder.ln.weight",
)
_DEIT_KEYS = ("cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight")
_DEIT_BLOCK_MAP = {
    "norm1": "ln_1",
    "attn.qkv.weight": "self_attention.in_proj_weight",
    "attn.qkv.bias": "self_attention.in_proj_bias",
    "attn.proj": "self_attention.out_proj",
    "norm2": "ln_2",
    "mlp.fc1": "mlp.0",
    "mlp.fc2": "mlp.3",
}


def eval_transform(image_size: int) -> Callable[[Image.Image], Tensor]:
    """Deterministic preprocessing: PIL image -> float tensor (3, image_size, image_size).

    Resizes the shorter side to ``image_size`` (bilinear, antialiased), center-crops a
    square, and applies ImageNet normalisation. Cropping only the longer side keeps as
    much of the image as a square input allows.
    """
    return T.Compose(
        [
            T.Resize(image_size),
            T.CenterCrop(image_size),
            T.ToTensor(),
            T.Normalize(mean=IMAGENET_NORMALIZE["mean"], std=IMAGENET_NORMALIZE["std"]),
        ]
    )


def as_masked_vit(backbone: nn.Module) -> MaskedVisionTransformerTorchvision:
    """Wraps a torchvision ViT in lightly's masked ViT, sharing its weights.

    The wrapper interpolates position embeddings, so images of any multiple of the patch
    size can be encoded. A wrapper passed in is returned as is.
    """
    if isinstance(backbone, MaskedVisionTransformerTorchvision):
        return backbone
    if isinstance(backbone, VisionTransformer):
        return MaskedVisionTransformerTorchvision(
            vit=backbone, weight_initialization="skip", pos_embed_initialization="skip"
        )
    raise TypeError(f"expected a torchvision VisionTransformer, got {type(backbone).__name__}")


def backbone_features(backbone: nn.Module, images: Tensor, *, pooling: Pooling = "cls") -> Tensor:
    """Un-normalised features of a batch.

    Args:
        backbone: torchvision ``VisionTransformer`` or lightly
            ``MaskedVisionTransformerTorchvision``.
        images: (B, 3, H, W) with H and W multiples of the patch size.
        pooling: ``"cls"``: class token after the final norm; ``"mean"``: mean of the
            patch tokens after the final norm.

    Returns:
        (B, hidden_dim) tensor in the dtype the backbone computes in.
    """
    tokens = as_masked_vit(backbone).encode(images)
    if pooling == "cls":
        return tokens[:, 0]
    if pooling == "mean":
        return tokens[:, 1:].mean(dim=1)
    raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")


def embed_images(
    backbone: nn.Module,
    images: Sequence[ImageInput],
    *,
    image_size: int,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    pooling: Pooling = "cls",
    progress: Callable[[int, int], None] | None = None,
    num_workers: int = 0,
) -> np.ndarray:
    """Embeds images with ``backbone`` through :func:`ml.backbones.embed`.

    Preprocessing is :func:`eval_transform` at ``image_size``. Batches run under
    ``torch.inference_mode`` (fp16 autocast on CUDA). The backbone is moved to
    ``device`` (default: CUDA when available) and put back in its previous train/eval
    mode afterwards.

    Args:
        images: file paths, encoded bytes or PIL images.
        image_size: input side in pixels, a multiple of the patch size (see
            :func:`eval_transform`).
        progress: called after every batch as ``progress(images_done, total)``.

    Returns:
        float32 array of shape (len(images), hidden_dim) with unit-length rows.

    Raises:
        ValueError: an image cannot be decoded (the message names it).
    """
    from ml.backbones import ImageBackbone, ViTFeatures, embed, vit_preprocess

    model = as_masked_vit(backbone)
    was_training = backbone.training
    try:
        return embed(
            ImageBackbone(
                name="vit",
                dim=model.vit.hidden_dim,
                preprocess=vit_preprocess(image_size),
                module=ViTFeatures(model, pooling=pooling),
            ),
            images,
            batch_size=batch_size,
            device=device,
            num_workers=num_workers,
            progress=progress,
        )
    finally:
        backbone.train(was_training)


def default_num_heads(hidden_dim: int) -> int:
    """Heads of the standard ViT of that width, else ``hidden_dim // 64`` (at least 1)."""
    return DEFAULT_NUM_HEADS.get(hidden_dim, max(1, hidden_dim // 64))


def load_torchvision_vit(
    source: str | os.PathLike[str] | StateDict, *, num_heads: int | None = None
) -> VisionTransformer:
    """Builds a torchvision ViT from its state dict, inferring the architecture.

    Patch size and width come from ``conv_proj.weight`` (hidden_dim, 3, p, p), depth
    from the ``encoder_layer_N`` keys, MLP width from ``mlp.0.weight`` and image size
    from ``encoder.pos_embedding`` (1, 1 + (image_size / p) ** 2, hidden_dim). The head
    count is not recorded in the weights: pass ``num_heads`` or get
    :func:`default_num_heads`. Classifier weights (``heads.*``) are dropped.

    Returns:
        A headless ``VisionTransformer`` in eval mode, on the CPU.
    """
    return _vit_from_torchvision(_load_mapping(source), num_heads, _source_name(source))


def load_msn_checkpoint(
    source: str | os.PathLike[str] | Mapping[str, Any], *, num_heads: int | None = None
) -> VisionTransformer:
    """Converts an official MSN checkpoint's ``target_encoder`` into a torchvision ViT.

    The facebookresearch/msn layout (``src/deit.py``) maps as follows, after dropping
    the ``module.`` prefix and the projection head ``fc.*``:

    - ``cls_token`` -> ``class_token``; ``pos_embed`` -> ``encoder.pos_embedding``
    - ``patch_embed.proj`` -> ``conv_proj``
    - ``blocks.N.norm1``/``norm2`` -> ``encoder.layers.encoder_layer_N.ln_1``/``ln_2``
    - ``blocks.N.attn.qkv`` -> ``...self_attention.in_proj_weight``/``in_proj_bias``
      (both stack q, k, v with heads contiguous; zero bias when ``qkv_bias=False``)
    - ``blocks.N.attn.proj`` -> ``...self_attention.out_proj``
    - ``blocks.N.mlp.fc1``/``fc2`` -> ``...mlp.0``/``mlp.3``; ``norm`` -> ``encoder.ln``

    Both models use LayerNorm eps 1e-6, exact GELU and pre-norm blocks, so outputs match.
    The architecture is inferred as in :func:`load_torchvision_vit`.

    Returns:
        A headless ``VisionTransformer`` in eval mode, on the CPU.
    """
    return _vit_from_msn(_load_mapping(source), num_heads, _source_name(source))


def load_backbone_file(path: str | os.PathLike[str], *, num_heads: int | None = None) -> VisionTransformer:
    """Loads a backbone file of any supported layout, detected from its contents.

    Layouts: Veil's own ``backbone.pt``/``checkpoint.pt`` (:mod:`ml.msn`), a torchvision
    ViT state dict, or an official MSN checkpoint. ``num_heads`` applies to the last
    two (Veil's files record their config).

    Raises:
        ValueError: naming ``path`` when the file is none of these.
    """
    name = os.fspath(path)
    data = load_torch_file(path)
    if isinstance(data, Mapping):
        if data.get("format") in (BACKBONE_FORMAT, CHECKPOINT_FORMAT):
            return load_backbone(data)
        if "target_encoder" in data:
            return _vit_from_msn(data, num_heads, name)
        if _has_keys(_strip_prefix(data), _TORCHVISION_KEYS):
            return _vit_from_torchvision(data, num_heads, name)
    raise ValueError(
        f"{name}: not a Veil MSN backbone, a torchvision ViT state dict or an MSN (facebookresearch/msn) checkpoint"
    )


def _vit_from_torchvision(data: Mapping[str, Any], num_heads: int | None, name: str) -> VisionTransformer:
    state_dict = _strip_prefix(data)
    if not _has_keys(state_dict, _TORCHVISION_KEYS):
        raise ValueError(f"{name}: not a torchvision VisionTransformer state dict")
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith("heads.")}
    return _build_vit(state_dict, num_heads=num_heads, name=name)


def _vit_from_msn(checkpoint: Mapping[str, Any], num_heads: int | None, name: str) -> VisionTransformer:
    encoder = checkpoint.get("target_encoder")
    if not isinstance(encoder, Mapping):
        raise ValueError(f"{name}: no 'target_encoder' state dict (MSN checkpoint layout)")
    deit = _strip_prefix(encoder)
    if not _has_keys(deit, _DEIT_KEYS):
        raise ValueError(f"{name}: 'target_encoder' is not a DeiT VisionTransformer")
    return _build_vit(_deit_to_torchvision(deit), num_heads=num_heads, name=name)


def _source_name(source: Any) -> str:
    return os.fspath(source) if isinstance(source, str | os.PathLike) else "state dict"


def _load_mapping(source: str | os.PathLike[str] | Mapping[str, Any]) -> Mapping[str, Any]:
    data = load_torch_file(source) if isinstance(source, str | os.PathLike) else source
    if not isinstance(data, Mapping):
        raise ValueError(f"{_source_name(source)}: expected a dict, got {type(data).__name__}")
    return data


def _strip_prefix(state_dict: Mapping[str, Any], prefix: str = "module.") -> dict[str, Any]:
    """Drops a DistributedDataParallel ``module.`` prefix when every key has it."""
    keys = [k for k in state_dict if isinstance(k, str)]
    if keys and all(k.startswith(prefix) for k in keys):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _has_keys(state_dict: Mapping[str, Any], keys: Sequence[str]) -> bool:
    return all(isinstance(state_dict.get(k), Tensor) for k in keys)


def _deit_to_torchvision(deit: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Renames DeiT (msn ``src/deit.py``) keys to torchvision ``VisionTransformer`` keys."""
    converted = {
        "class_token": deit["cls_token"],
        "encoder.pos_embedding": deit["pos_embed"],
        "conv_proj.weight": deit["patch_embed.proj.weight"],
        "conv_proj.bias": deit["patch_embed.proj.bias"],
        "encoder.ln.weight": deit["norm.weight"],
        "encoder.ln.bias": deit["norm.bias"],
    }
    block_key = re.compile(r"blocks\.(\d+)\.(.+)")
    for key, value in deit.items():
        match = block_key.fullmatch(key)
        if match is None:
            continue
        index, rest = match.groups()
        for old, new in _DEIT_BLOCK_MAP.items():
            if rest == old or rest.startswith(old + "."):
                converted[f"encoder.layers.encoder_layer_{index}.{new}{rest[len(old) :]}"] = value
                break
    for key in [k for k in converted if k.endswith("self_attention.in_proj_weight")]:
        bias_key = key.replace("in_proj_weight", "in_proj_bias")
        converted.setdefault(bias_key, converted[key].new_zeros(converted[key].shape[0]))
    return converted


def _build_vit(state_dict: Mapping[str, Tensor], *, num_heads: int | None, name: str) -> VisionTransformer:
    """Builds a headless torchvision ViT whose shape fits ``state_dict`` and loads it."""
    hidden_dim, _, patch_size, _ = state_dict["conv_proj.weight"].shape
    layer_ids = {int(m.group(1)) for k in state_dict if (m := re.match(r"encoder\.layers\.encoder_layer_(\d+)\.", k))}
    n_patches = state_dict["encoder.pos_embedding"].shape[1] - 1
    grid = math.isqrt(n_patches)
    mlp_weight = state_dict.get("encoder.layers.encoder_layer_0.mlp.0.weight")
    if not layer_ids or grid * grid != n_patches or mlp_weight is None:
        raise ValueError(f"{name}: cannot infer the ViT architecture from its tensors")
    heads = num_heads or default_num_heads(hidden_dim)
    if hidden_dim % heads:
        raise ValueError(f"{name}: hidden dim {hidden_dim} is not divisible by {heads} heads")
    vit = VisionTransformer(
        image_size=grid * patch_size,
        patch_size=patch_size,
        num_layers=len(layer_ids),
        num_heads=heads,
        hidden_dim=hidden_dim,
        mlp_dim=mlp_weight.shape[0],
    )
    vit.heads = nn.Identity()
    try:
        vit.load_state_dict(state_dict)
    except RuntimeError as error:
        raise ValueError(f"{name}: weights do not fit a torchvision ViT: {error}") from error
    return vit.eval()
