"""Real image files, as bytes, for tests.

Every function is deterministic: the same arguments give the same bytes. Photo-like
pictures come from :func:`photo`, which mixes smooth random colour fields, a few flat
shapes and fine grain, so that JPEGs of the default size weigh well over 10 KB and
pictures from different seeds hash far apart.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw

DEFAULT_SIZE = (320, 240)


def photo(seed: int, size: tuple[int, int] = DEFAULT_SIZE) -> Image.Image:
    """A photo-like RGB picture of ``size`` (width, height) drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    width, height = size
    field = np.zeros((height, width, 3), dtype=np.float32)
    for cells, amplitude in ((3, 80.0), (7, 35.0)):
        grid = rng.integers(0, 256, size=(cells, cells, 3), dtype=np.uint8)
        smooth = Image.fromarray(grid).resize(size, Image.Resampling.BICUBIC)
        field += (np.asarray(smooth, dtype=np.float32) - 127.5) / 127.5 * amplitude
    field += rng.uniform(70, 190, size=3).astype(np.float32)
    picture = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))

    draw = ImageDraw.Draw(picture)
    for _ in range(int(rng.integers(4, 8))):
        x0, y0 = rng.uniform(-0.1, 0.9, size=2) * (width, height)
        w, h = rng.uniform(0.1, 0.45, size=2) * (width, height)
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        else:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)

    grain = rng.normal(0.0, 5.0, size=(height, width, 3))
    pixels = np.asarray(picture, dtype=np.float32) + grain
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    """``image`` saved in ``fmt`` with Pillow's save ``params``."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def jpeg_bytes(seed: int, size: tuple[int, int] = DEFAULT_SIZE, quality: int = 90) -> bytes:
    """A JPEG of :func:`photo` (over 10 KB at the default size and quality)."""
    return encode(photo(seed, size), "JPEG", quality=quality)


def truncated_jpeg(seed: int = 0) -> bytes:
    """The first half of a 640x480 JPEG: a valid header, the scan cut short."""
    data = jpeg_bytes(seed, size=(640, 480))
    return data[: len(data) // 2]


def empty_file() -> bytes:
    """Zero bytes."""
    return b""


def text_as_jpg() -> bytes:
    """About 20 KB of plain text, as if someone had named a text file ``.jpg``."""
    return b"This is a plain text file, not a picture.\n" * 500


def png_1x1() -> bytes:
    """A valid 1x1 RGB PNG (a few dozen bytes)."""
    return encode(Image.new("RGB", (1, 1), (200, 30, 30)), "PNG")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def huge_header_png(width: int = 30_000, height: int = 30_000, padding: int = 12_000) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` 8-bit RGB pixels.

    Written chunk by chunk, so nothing of that size is ever allocated: the pixel data is
    a single zlib-compressed row. An ancillary private chunk of ``padding`` bytes keeps
    the file above the minimum byte count.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"vlPd", bytes(padding)),
            _png_chunk(b"IDAT", zlib.compress(bytes(3 * width + 1))),
            _png_chunk(b"IEND", b""),
        )
    )


def solid_colour_jpeg(colour: tuple[int, int, int] = (90, 140, 120), size: tuple[int, int] = (1600, 1200)) -> bytes:
    """A JPEG of one flat colour, large enough in pixels to weigh over 10 KB."""
    return encode(Image.new("RGB", size, colour), "JPEG", quality=95)


def cmyk_jpeg(seed: int = 0, size: tuple[int, int] = DEFAULT_SIZE) -> bytes:
    """A CMYK JPEG of :func:`photo` (Pillow writes Adobe-style CMYK)."""
    return encode(photo(seed, size).convert("CMYK"), "JPEG", quality=90)


def png_16bit(seed: int = 0, size: tuple[int, int] = DEFAULT_SIZE) -> bytes:
    """A 16-bit greyscale PNG whose levels are :func:`photo`'s grey levels times 257."""
    grey = np.asarray(photo(seed, size).convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(grey), "PNG")


def animated_gif(seeds: tuple[int, ...] = (0, 1, 2), size: tuple[int, int] = DEFAULT_SIZE) -> bytes:
    """An animated GIF with one frame per seed, each frame a different :func:`photo`."""
    frames = [photo(seed, size).quantize(128, Image.Quantize.FASTOCTREE) for seed in seeds]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def exif_rotated_jpeg(seed: int = 0, orientation: int = 6, size: tuple[int, int] = DEFAULT_SIZE) -> bytes:
    """A JPEG of ``photo(seed, size)`` stored sideways with EXIF Orientation 6 or 8.

    The stored pixels are ``size`` transposed; a viewer that honours the tag shows the
    same upright picture as ``jpeg_bytes(seed, size)``.
    """
    stored_rotation = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    if orientation not in stored_rotation:
        raise ValueError(f"orientation must be 6 or 8, not {orientation}")
    stored = photo(seed, size).transpose(stored_rotation[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=90, exif=exif.tobytes())


def _decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def resized(data: bytes, scale: float = 0.5, quality: int = 90) -> bytes:
    """``data`` decoded, resized by ``scale`` on both sides, and saved as JPEG."""
    image = _decode(data)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return encode(image.resize(size, Image.Resampling.LANCZOS), "JPEG", quality=quality)


def recompressed(data: bytes, quality: int = 40) -> bytes:
    """``data`` decoded and saved again as a JPEG of lower ``quality``."""
    return encode(_decode(data), "JPEG", quality=quality)


def cropped(data: bytes, fraction: float = 0.03, quality: int = 90) -> bytes:
    """``data`` with ``fraction`` of its width and of its height cut off, as JPEG.

    The cut is shared equally by opposite edges (0.03: 1.5 % off each edge).
    """
    image = _decode(data)
    dx, dy = round(image.width * fraction / 2), round(image.height * fraction / 2)
    box = (dx, dy, image.width - dx, image.height - dy)
    return encode(image.crop(box), "JPEG", quality=quality)


PATTERNS = ("stripes", "discs")


def pattern_photo(pattern: str, seed: int, size: tuple[int, int] = DEFAULT_SIZE) -> Image.Image:
    """A picture of one of two visually distinct kinds, for tests that need a model to
    learn something: ``"stripes"`` (bold parallel bars) or ``"discs"`` (scattered round
    blobs), each in seeded colours and positions over grain, so every seed differs."""
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")
    rng = np.random.default_rng(seed)
    width, height = size
    background = np.asarray(photo(seed + 7919, size), dtype=np.float32) * 0.35 + 150
    picture = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    colour = tuple(int(c) for c in rng.integers(0, 110, size=3))
    if pattern == "stripes":
        step = int(rng.integers(18, 40))
        slant = int(rng.integers(-height // 2, height // 2))
        for x in range(-height + int(rng.integers(0, step)), width + height, step):
            draw.polygon(
                [(x, 0), (x + step // 2, 0), (x + step // 2 + slant, height), (x + slant, height)], fill=colour
            )
    else:
        for _ in range(int(rng.integers(6, 12))):
            r = int(rng.integers(12, 40))
            x, y = rng.integers(0, width), rng.integers(0, height)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    grain = rng.normal(0.0, 6.0, size=(height, width, 3))
    pixels = np.asarray(picture, dtype=np.float32) + grain
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def pattern_jpeg(pattern: str, seed: int, size: tuple[int, int] = DEFAULT_SIZE) -> bytes:
    return encode(pattern_photo(pattern, seed, size), "JPEG", quality=90)


def meme_jpeg(caption: str, seed: int = 0, size: tuple[int, int] = (480, 360)) -> bytes:
    """A :func:`photo` with ``caption`` across its top in large white letters with a black
    outline, as memes are captioned."""
    from PIL import ImageFont

    picture = photo(seed, size)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", size=size[1] // 9)
    ImageDraw.Draw(picture).text(
        (size[0] // 2, size[1] // 12),
        caption,
        font=font,
        fill="white",
        stroke_width=3,
        stroke_fill="black",
        anchor="mt",
    )
    return encode(picture, "JPEG", quality=92)
