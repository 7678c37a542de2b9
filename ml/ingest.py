"""Everything the importer needs to know about one file, computed in one pass.

:func:`analyse` is pure (bytes in, an :class:`Analysis` out, no global state), so the
caller may run it in a thread or process pool. Duplicates are the caller's business: it
compares ``sha256`` and ``phash`` with what the project already holds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ml.derivatives import blurred, encode_jpeg, thumbnail
from ml.hashing import phash64, sha256_hex
from ml.quality import Decoded, QualityConfig, decode_image, quality_score


@dataclass(frozen=True)
class Analysis:
    """The outcome of :func:`analyse` for one file.

    ``reason`` is ``None`` when the file passed the quality checks, else a code from
    ``ml.quality.REASONS``; ``detail`` explains it to a human. ``format``, ``width`` and
    ``height`` (pixels, EXIF orientation applied) are set whenever the file decoded, also
    for ``low_resolution`` and ``blank`` rejections. ``quality_score``, ``phash`` and the
    two JPEG derivatives (thumbnail, blurred preview) are set for accepted files only.
    ``thumbnail_is_original`` says that the file is its own thumbnail: ``thumbnail_jpeg``
    is then the input bytes themselves.
    """

    name: str
    size_bytes: int
    sha256: str
    reason: str | None
    detail: str
    format: str | None
    width: int | None
    height: int | None
    quality_score: float | None
    phash: int | None
    thumbnail_jpeg: bytes | None
    blurred_jpeg: bytes | None
    thumbnail_is_original: bool = False


def analyse(
    data: bytes,
    *,
    name: str,
    config: QualityConfig,
    thumb_side: int = 384,
    blur_radius: float | None = None,
) -> Analysis:
    """Check, hash and derive one file's bytes.

    The file is decoded once (JPEGs at the smallest DCT scale that still covers the
    thumbnail). The thumbnail (longer side at most ``thumb_side``) is the base of the
    rest: the perceptual hash and the quality score are computed on its grey levels, so
    they do not depend on the original's size, and the blurred preview is
    ``blurred(thumbnail, radius=blur_radius)`` (``blur_radius`` in thumbnail pixels),
    smaller than the thumbnail: show it scaled to the thumbnail's box. A file that is
    already a small upright RGB or grey JPEG is its own thumbnail (same bytes).
    """
    decoded, reason, detail = decode_image(data, config=config, max_side=thumb_side)
    analysis = Analysis(
        name=name,
        size_bytes=len(data),
        sha256=sha256_hex(data),
        reason=reason,
        detail=detail,
        format=decoded.format if decoded else None,
        width=decoded.width if decoded else None,
        height=decoded.height if decoded else None,
        quality_score=None,
        phash=None,
        thumbnail_jpeg=None,
        blurred_jpeg=None,
    )
    if decoded is None or reason is not None:
        return analysis
    thumb = thumbnail(decoded.image, max_side=thumb_side)
    grey = decoded.grey if thumb is decoded.image else thumb.convert("L")
    reuse = _is_web_ready_jpeg(decoded, data, thumb_side)
    return replace(
        analysis,
        quality_score=quality_score(grey, original_size=(decoded.width, decoded.height)),
        phash=phash64(grey),
        thumbnail_jpeg=data if reuse else encode_jpeg(thumb),
        blurred_jpeg=encode_jpeg(blurred(thumb, radius=blur_radius)),
        thumbnail_is_original=reuse,
    )


_REUSE_MAX_BYTES_PER_PIXEL = 2.0


def _is_web_ready_jpeg(decoded: Decoded, data: bytes, thumb_side: int) -> bool:
    """Whether the file itself can serve as its thumbnail, saving a re-encode.

    True for a single-frame RGB or grey JPEG that already fits the thumbnail, needs no
    EXIF rotation and weighs at most 2 bytes per pixel.
    """
    return (
        decoded.format == "JPEG"
        and decoded.source_mode in ("RGB", "L")
        and decoded.frames == 1
        and not decoded.orientation_applied
        and max(decoded.width, decoded.height) <= thumb_side
        and len(data) <= _REUSE_MAX_BYTES_PER_PIXEL * decoded.width * decoded.height
    )
