"""Files: training checkpoints and the backbone file Veil embeds with."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torchvision.models.vision_transformer import VisionTransformer

from ml.msn.config import MSNConfig
from ml.msn.model import headless_vit

CHECKPOINT_FORMAT = "veil.msn.checkpoint"
BACKBONE_FORMAT = "veil.msn.backbone"
CHECKPOINT_FILENAME = "checkpoint.pt"
BACKBONE_FILENAME = "backbone.pt"


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
        raise ValueError(f"{os.fspath(path)}: not a loadable weights-only torch file ({error})") from error


def _atomic_save(obj: Any, path: Path) -> None:
    """Writes ``obj`` to a temporary file beside ``path``, fsyncs, then renames."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
