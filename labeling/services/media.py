"""Where image files live in storage.

Originals are content-addressed (``originals/ab/cd/<sha256>.<ext>``), so the same file
imported twice, or into two projects, is stored once. Derivatives are named after the
original's hash too. Everything goes through Django's default storage, so the
scaled mode can keep media in an S3-compatible bucket.
"""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from ml.derivatives import encode_jpeg
from ml.derivatives import sketch as draw

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}


def original_name(sha256: str, fmt: str) -> str:
    return f"originals/{sha256[:2]}/{sha256[2:4]}/{sha256}.{EXTENSIONS.get(fmt, 'bin')}"


def thumbnail_name(sha256: str) -> str:
    return f"thumbnails/{sha256[:2]}/{sha256}.jpg"


def sketch_name(sha256: str) -> str:
    return f"sketches/{sha256[:2]}/{sha256}.jpg"


def blurred_name(sha256: str, blur_radius: float) -> str:
    strength = "auto" if not blur_radius else f"r{blur_radius:g}"
    return f"blurred/{strength}/{sha256[:2]}/{sha256}.jpg"


def media_write(name: str, data: bytes) -> bool:
    """Store ``data`` under ``name`` unless it is already there; True if written."""
    if default_storage.exists(name):
        return False
    saved = default_storage.save(name, ContentFile(data))
    if saved != name:
        # Another process stored the same content under this name meanwhile.
        default_storage.delete(saved)
        return False
    return True


def media_delete(names: list[str]) -> None:
    for name in names:
        default_storage.delete(name)


def media_open(name: str):
    return default_storage.open(name, "rb")


def sketch_ensure(*, thumbnail: str, sketch: str) -> None:
    """Draw and store the sketch of an image from its thumbnail, the first time it is asked for.

    Sketches are made on demand rather than at import: most images are decided on the
    blurred preview, and drawing one costs more than decoding the file.
    """
    if default_storage.exists(sketch):
        return
    with default_storage.open(thumbnail, "rb") as handle:
        picture = PILImage.open(handle)
        picture.load()
    media_write(sketch, encode_jpeg(draw(picture), quality=80))
