"""What became of one imported file: the one list of import outcomes.

The quality checks (:mod:`ml.quality`) produce the rejection reasons; the importer adds
duplicates and the files it refuses before any decoding. The Django models store these
values (``Image.reason``, ``ImportIssue.reason``) and the import summaries count them,
in this order.
"""

from __future__ import annotations

from enum import StrEnum


class ImportOutcome(StrEnum):
    """One file's outcome; every value but ``accepted`` is a reason code."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    NEAR_DUPLICATE = "near_duplicate"
    TOO_SMALL = "too_small"
    UNSUPPORTED = "unsupported"
    TOO_MANY_PIXELS = "too_many_pixels"
    CORRUPT = "corrupt"
    LOW_RESOLUTION = "low_resolution"
    BLANK = "blank"
    FILE_TOO_LARGE = "file_too_large"
    UNSAFE_PATH = "unsafe_path"
    UNREADABLE = "unreadable"

    @property
    def label(self) -> str:
        """A short human description."""
        return _LABELS[self]


_LABELS = {
    ImportOutcome.ACCEPTED: "Accepted",
    ImportOutcome.DUPLICATE: "Exact duplicate",
    ImportOutcome.NEAR_DUPLICATE: "Near duplicate",
    ImportOutcome.TOO_SMALL: "File too small",
    ImportOutcome.UNSUPPORTED: "Unsupported format",
    ImportOutcome.TOO_MANY_PIXELS: "Too many pixels",
    ImportOutcome.CORRUPT: "Corrupt",
    ImportOutcome.LOW_RESOLUTION: "Resolution too low",
    ImportOutcome.BLANK: "Blank",
    ImportOutcome.FILE_TOO_LARGE: "File too large",
    ImportOutcome.UNSAFE_PATH: "Unsafe archive path",
    ImportOutcome.UNREADABLE: "Unreadable",
}

REASONS: tuple[ImportOutcome, ...] = tuple(o for o in ImportOutcome if o is not ImportOutcome.ACCEPTED)
"""Every reason a file was not accepted."""

QUALITY_REASONS: tuple[ImportOutcome, ...] = (
    ImportOutcome.TOO_SMALL,
    ImportOutcome.UNSUPPORTED,
    ImportOutcome.TOO_MANY_PIXELS,
    ImportOutcome.CORRUPT,
    ImportOutcome.LOW_RESOLUTION,
    ImportOutcome.BLANK,
)
"""The reasons :func:`ml.quality.decode_image` gives, in the order its checks run."""
