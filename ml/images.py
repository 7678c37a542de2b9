"""Images to RGB pixels: the one decoding every consumer shares.

Moderators see thumbnails and previews derived from :func:`to_rgb`'s output at import;
the embedding backbones, MSN pretraining, OCR and the exported classifier read images
through :func:`open_rgb`, which applies the same :func:`to_rgb`. So a file shows the
same pixels to people and to the model.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
from PIL import Image, ImageOps

ImageInput = str | os.PathLike[str] | bytes | Image.Image
"""One image: a file path, the encoded file's bytes, or a decoded PIL image."""

ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
"""Pillow modes that carry an alpha channel."""

_WHITE = (255, 255, 255, 255)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB version of a decoded frame (the frame itself when it is RGB already).

    Integer greys (``I``, ``I;16*``, as 16-bit PNGs decode) are scaled from 0..65535 to
    0..255, transparent pictures (alpha modes, and palette or grey images with a
    ``transparency`` entry) are composed over white, and everything else (CMYK, palette,
    1-bit, YCbCr) goes through Pillow's ``convert``.
    """
    if image.mode == "RGB" and "transparency" not in image.info:
        return image
    if image.mode == "I" or image.mode.startswith("I;16"):
        levels = np.clip(np.asarray(image), 0, 65535).astype(np.uint16) >> 8
        return Image.fromarray(levels.astype(np.uint8)).convert("RGB")
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        background = Image.new("RGBA", image.size, _WHITE)
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def open_rgb(item: ImageInput, *, label: str, draft_size: int | None = None) -> Image.Image:
    """Decodes ``item`` into an upright RGB PIL image (EXIF orientation, then :func:`to_rgb`).

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
        return to_rgb(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot read image {label}: {error}") from error


def describe_item(item: Any, index: int) -> str:
    """A human label for an image input: its path when it has one, else its index."""
    if isinstance(item, str | os.PathLike):
        return os.fspath(item)
    return f"#{index}"
