"""Derived pictures: the thumbnail and the blurred preview moderators see first."""

from __future__ import annotations

import io

from PIL import Image, ImageFilter, ImageOps

DEFAULT_BLUR_FRACTION = 1 / 16
"""Default blur strength: Gaussian sigma as a fraction of the picture's longer side.

On a 384-pixel thumbnail that is a sigma of 24 pixels, which leaves colour masses and
rough layout but no faces, text or body detail.
"""

_PIXELATE_SIGMA = 3.0
_SKETCH_EDGE_LEVEL = 80


def thumbnail(image: Image.Image, *, max_side: int = 384) -> Image.Image:
    """``image`` scaled down to fit a ``max_side`` square, aspect ratio kept.

    Returns ``image`` itself when it already fits. Shrinks with Pillow's box filter
    (each output pixel the mean of the input area it covers), after an integer
    reduction as ``Image.thumbnail`` does (``reducing_gap``): the cheapest filter that
    does not alias.
    """
    if max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX, reducing_gap=2.0)


def blurred(image: Image.Image, *, radius: float | None = None) -> Image.Image:
    """A strongly Gaussian-blurred copy of ``image``, returned at a reduced size.

    ``radius``: the Gaussian sigma in pixels of ``image``; ``None`` means
    :data:`DEFAULT_BLUR_FRACTION` of the longer side (24 pixels on a 384-pixel
    thumbnail). The picture is first box-reduced (pixelated) by ``k = radius // 3``,
    then blurred there with sigma ``radius / k`` (at least 3 pixels), and returned at
    that size, about ``1/k`` of each side (48 x 36 for a 384 x 288 thumbnail): a picture
    blurred that much holds nothing that more pixels would show, so the viewer scales it
    up to the thumbnail's box, which only smooths it further. The stored preview thus
    cannot be sharpened back either.
    """
    sigma = max(image.size) * DEFAULT_BLUR_FRACTION if radius is None else radius
    factor = max(1, min(int(sigma / _PIXELATE_SIGMA), image.width, image.height))
    small = image.reduce(factor) if factor > 1 else image
    return small.filter(ImageFilter.GaussianBlur(sigma / factor))


def sketch(image: Image.Image, *, max_side: int = 256) -> Image.Image:
    """A line drawing of ``image``: dark edges on white, grey levels only.

    A step between the blurred preview and the original: shapes and layout are legible,
    colour, skin tone, texture and fine detail are not. The picture is reduced to fit
    ``max_side`` and smoothed before edge detection so that noise and small detail do
    not survive as lines.
    """
    grey = thumbnail(image.convert("L"), max_side=max_side)
    edges = grey.filter(ImageFilter.GaussianBlur(2.0)).filter(ImageFilter.FIND_EDGES)
    edges = ImageOps.autocontrast(edges, cutoff=2)
    return edges.point(lambda v: 0 if v > _SKETCH_EDGE_LEVEL else 255)


def encode_jpeg(image: Image.Image, *, quality: int = 85) -> bytes:
    """Baseline JPEG bytes of an RGB or L ``image``, without metadata."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
