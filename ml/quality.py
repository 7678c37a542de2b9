"""Decoding and quality checks for uploaded image files.

A rejected file is data, not an exception: :func:`decode_image` returns a reason code
from :data:`REASONS` (values of :class:`ml.outcomes.ImportOutcome`) and a human-readable
detail. The checks run in this order, and the first failure decides the reason:

1. ``too_small``: fewer bytes than ``min_bytes`` (an empty file always).
2. ``unsupported``: not a file Pillow identifies as one of the allowed ``formats``.
3. ``too_many_pixels``: the header promises more than ``max_pixels`` pixels (or more than
   Pillow's own ``Image.MAX_IMAGE_PIXELS``); decided before any pixel is decoded.
4. ``corrupt``: ``verify()`` or the full decode fails (a truncated JPEG, bad CRCs).
5. ``low_resolution``: narrower than ``min_width`` or lower than ``min_height`` once
   the EXIF orientation is applied.
6. ``blank``: grey levels with a standard deviation under ``blank_std``.

Files are identified by calling Pillow's format plugins directly rather than
``Image.open``: that skips the decompression-bomb check inside ``Image.open``, which
warns through the process-wide ``warnings`` machinery, and replaces it with the explicit
pixel limit of step 3. Nothing here touches global state, so decoding is safe in threads.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageFile

from ml.images import to_rgb
from ml.outcomes import QUALITY_REASONS, ImportOutcome

REASONS = QUALITY_REASONS

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)
_IDENTIFY_ERRORS = (*_DECODE_ERRORS, TypeError)

_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIDEWAYS_ORIENTATIONS = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the quality checks; one per project, stored as :meth:`to_dict`.

    ``min_bytes``: file size in bytes. ``min_width`` / ``min_height``: pixels, after the
    EXIF orientation. ``max_pixels``: width times height from the header.
    ``blank_std``: grey levels (0..255). ``formats``: Pillow format names, any case.
    """

    min_bytes: int = 10 * 1024
    min_width: int = 224
    min_height: int = 224
    max_pixels: int = 50_000_000
    blank_std: float = 3.0
    formats: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")

    def __post_init__(self) -> None:
        for name in ("min_bytes", "min_width", "min_height", "max_pixels"):
            if getattr(self, name) < 0:
                raise ValueError(f"quality config {name} must be >= 0, got {getattr(self, name)}")
        if self.blank_std < 0:
            raise ValueError(f"quality config blank_std must be >= 0, got {self.blank_std}")
        if isinstance(self.formats, str):
            raise ValueError(f"quality config formats must be a list of names, got {self.formats!r}")
        object.__setattr__(self, "formats", tuple(str(f).upper() for f in self.formats))
        Image.init()
        unknown = [f for f in self.formats if f not in Image.OPEN]
        if unknown or not self.formats:
            raise ValueError(
                f"quality config formats must be Pillow format names; unknown: {unknown or '(none given)'}"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> QualityConfig:
        """Config from a mapping of field names; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        for key in d:
            if key not in known:
                raise ValueError(f"unknown quality config key {key!r}; expected one of {sorted(known)}")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (``formats`` as a list) that :meth:`from_dict` reads back."""
        d = asdict(self)
        d["formats"] = list(self.formats)
        return d


@dataclass(frozen=True)
class Decoded:
    """A decoded picture and what was learnt about the file.

    ``image`` is 8-bit RGB with the EXIF orientation applied, the first frame of an
    animation. ``grey`` is the same picture in mode ``L``. ``width`` and ``height`` are
    the picture's full size in pixels after orientation; ``image`` has that size unless
    :func:`decode_image` was asked for a reduced decode, when it may be smaller.
    ``format`` is the allowed format the file was read as, ``source_mode`` Pillow's mode
    for its pixels before conversion (``RGB``, ``CMYK``, ``P``, ``I;16``...), ``frames``
    its frame count.
    """

    image: Image.Image
    grey: Image.Image
    format: str
    source_mode: str
    width: int
    height: int
    frames: int
    orientation_applied: bool


def decode_image(
    data: bytes, *, config: QualityConfig, max_side: int | None = None
) -> tuple[Decoded | None, str | None, str]:
    """Run the quality checks on a file's bytes and decode it.

    Returns ``(decoded, reason, detail)``. ``reason`` is ``None`` when the file passes
    every check, else one of :data:`REASONS`. ``decoded`` is set whenever the full decode
    succeeded, so also for ``low_resolution`` and ``blank`` rejections.

    ``max_side``: when given, a JPEG may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's
    DCT scaling, which still reads every byte of the file) as long as the result still
    covers a ``max_side`` x ``max_side`` thumbnail; the blank check then runs at that scale.
    """
    if not data or len(data) < config.min_bytes:
        return None, ImportOutcome.TOO_SMALL, f"{len(data)} bytes; at least {max(config.min_bytes, 1)} needed"

    try:
        opened = _identify(data, config.formats)
    except Image.DecompressionBombError as error:
        return None, ImportOutcome.TOO_MANY_PIXELS, str(error)
    if opened is None:
        return None, ImportOutcome.UNSUPPORTED, _unsupported_detail(data, config.formats)
    image, fmt = opened

    width, height = image.size
    limit = _pixel_limit(config)
    if width * height > limit:
        return None, ImportOutcome.TOO_MANY_PIXELS, f"{width}x{height} is {width * height} pixels; at most {limit}"

    try:
        image, frames = _load(data, fmt, image, max_side)
    except Image.DecompressionBombError as error:
        return None, ImportOutcome.TOO_MANY_PIXELS, str(error)
    except _DECODE_ERRORS as error:
        return None, ImportOutcome.CORRUPT, f"{fmt} data cannot be decoded: {error}"

    decoded = _oriented(image, fmt, frames, (width, height))
    reason, detail = _picture_problem(decoded, config)
    return decoded, reason, detail


def _load(data: bytes, fmt: str, image: ImageFile.ImageFile, max_side: int | None) -> tuple[ImageFile.ImageFile, int]:
    """Verify and fully decode the first frame; returns the loaded image and frame count."""
    image = _verify_and_reopen(data, fmt, image)
    if max_side is not None and fmt == "JPEG":
        image.draft("RGB", _fit(image.size, max_side))
    frames = getattr(image, "n_frames", 1)
    image.load()
    return image, frames


def _oriented(image: ImageFile.ImageFile, fmt: str, frames: int, size: tuple[int, int]) -> Decoded:
    """RGB and grey copies of a loaded frame, upright per its EXIF orientation.

    ``size``: the (width, height) in the header, before orientation.
    """
    orientation = _orientation(image)
    rgb = to_rgb(image)
    if orientation in _TRANSPOSE_FOR_ORIENTATION:
        rgb = rgb.transpose(_TRANSPOSE_FOR_ORIENTATION[orientation])
    width, height = size[::-1] if orientation in _SIDEWAYS_ORIENTATIONS else size
    return Decoded(
        image=rgb,
        grey=rgb.convert("L"),
        format=fmt,
        source_mode=image.mode,
        width=width,
        height=height,
        frames=frames,
        orientation_applied=orientation in _TRANSPOSE_FOR_ORIENTATION,
    )


def _picture_problem(decoded: Decoded, config: QualityConfig) -> tuple[str | None, str]:
    """The ``low_resolution`` / ``blank`` verdict on a decoded picture, with its detail."""
    width, height = decoded.width, decoded.height
    if width < config.min_width or height < config.min_height:
        need = f"{config.min_width}x{config.min_height}"
        return ImportOutcome.LOW_RESOLUTION, f"{width}x{height} pixels; at least {need} needed"
    std = grey_std(decoded.grey)
    if std < config.blank_std:
        return ImportOutcome.BLANK, f"near-constant picture: grey-level std {std:.2f} < {config.blank_std}"
    return None, f"{decoded.format} {width}x{height}"


def grey_std(grey: Image.Image) -> float:
    """Standard deviation of an ``L`` image's grey levels (0..255), from its histogram."""
    counts = np.asarray(grey.histogram(), dtype=np.float64)
    total = counts.sum()
    mean = counts @ _LEVELS / total
    return math.sqrt(max(counts @ _LEVELS_SQUARED / total - mean * mean, 0.0))


_LEVELS = np.arange(256, dtype=np.float64)
_LEVELS_SQUARED = _LEVELS**2
_SHARPNESS_HALF = 300.0
_CONTRAST_FULL = 64.0
_LOW_PIXELS = 224 * 224
_HIGH_PIXELS = 2_000_000
_QUALITY_SIDE = 192


def quality_score(image: Image.Image, *, original_size: tuple[int, int] | None = None) -> float:
    """A 0..1 heuristic of how usable a picture is for labeling; deterministic.

    ``0.5 * sharpness + 0.25 * contrast + 0.25 * resolution``, measured on the grey
    levels (0..255) of ``image`` sampled every ``s``-th row and column, ``s`` the smallest
    integer that brings the longer side to at most 192 samples, so that pictures of any
    size are judged at one scale:

    - sharpness is ``v / (v + 300)`` for ``v`` the variance of the 4-neighbour Laplacian;
    - contrast is the grey-level standard deviation over 64, capped at 1;
    - resolution grows with log(pixels) from 0 at 224x224 to 1 at 2 megapixels, counted
      on ``original_size`` (width, height) when ``image`` is a reduced copy.
    """
    grey = image if image.mode == "L" else image.convert("L")
    width, height = original_size or grey.size
    step = math.ceil(max(grey.size) / _QUALITY_SIDE)
    levels = np.asarray(grey)[::step, ::step].astype(np.int16)
    variance = _laplacian_variance(levels)
    sharpness = variance / (variance + _SHARPNESS_HALF)
    contrast = min(float(levels.std(dtype=np.float64)) / _CONTRAST_FULL, 1.0)
    span = math.log(_HIGH_PIXELS / _LOW_PIXELS)
    resolution = math.log(max(width * height, 1) / _LOW_PIXELS) / span
    resolution = min(max(resolution, 0.0), 1.0)
    return 0.5 * sharpness + 0.25 * contrast + 0.25 * resolution


def _laplacian_variance(levels: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian over the interior of a 2-D int16 array."""
    if levels.shape[0] < 3 or levels.shape[1] < 3:
        return 0.0
    lap = levels[1:-1, 1:-1] * 4
    for neighbour in (levels[:-2, 1:-1], levels[2:, 1:-1], levels[1:-1, :-2], levels[1:-1, 2:]):
        lap -= neighbour
    return float(lap.var(dtype=np.float64))


def _identify(data: bytes, formats: tuple[str, ...]) -> tuple[ImageFile.ImageFile, str] | None:
    """Open ``data`` with the first allowed format plugin that accepts it.

    Mirrors ``Image.open`` (prefix test, then the plugin's factory) without its global
    decompression-bomb warning. Returns the lazily opened image and the format name.
    """
    Image.init()
    prefix = data[:16]
    for fmt in formats:
        plugin = Image.OPEN.get(fmt)
        if plugin is None:
            continue
        factory, accept = plugin
        if accept is not None:
            verdict = accept(prefix)
            if not verdict or isinstance(verdict, str):
                continue
        try:
            return factory(io.BytesIO(data), ""), fmt
        except _IDENTIFY_ERRORS:
            continue
    return None


def _unsupported_detail(data: bytes, allowed: tuple[str, ...]) -> str:
    """Explain why no allowed format read ``data``, naming a recognised other format."""
    prefix = data[:16]
    for fmt, (_, accept) in Image.OPEN.items():
        if fmt not in allowed and accept is not None:
            verdict = accept(prefix)
            if verdict and not isinstance(verdict, str):
                return f"looks like {fmt}, which is not an allowed format ({', '.join(allowed)})"
    return f"not a readable image in an allowed format ({', '.join(allowed)})"


def _verify_and_reopen(data: bytes, fmt: str, image: ImageFile.ImageFile) -> ImageFile.ImageFile:
    """Run the plugin's ``verify()``, then open afresh for decoding.

    Only plugins that implement ``verify`` (PNG's checks every chunk's CRC) are run; for
    the others it is a no-op, and ``image`` is returned as it is.
    """
    if type(image).verify is ImageFile.ImageFile.verify:
        return image
    image.verify()
    reopened = _identify(data, (fmt,))
    if reopened is None:
        raise SyntaxError(f"{fmt} header unreadable after verify")
    return reopened[0]


def _pixel_limit(config: QualityConfig) -> int:
    if Image.MAX_IMAGE_PIXELS is None:
        return config.max_pixels
    return min(config.max_pixels, int(Image.MAX_IMAGE_PIXELS))


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(width, height) of ``size`` scaled down to fit a ``max_side`` square; never up."""
    width, height = size
    scale = min(1.0, max_side / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _orientation(image: Image.Image) -> int:
    """EXIF Orientation tag (1..8) of a loaded image; 1 when absent or unreadable."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except _DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) else 1
