"""Checks on uploaded files before an import job is created for them.

An uploaded file that cannot be imported at all (empty, neither an image nor a zip, an
unreadable zip, a zip entry that would leave the archive) gets a reason code and a
message naming it, and is not stored; the other files of the same upload are imported
(see :func:`labeling.services.ingest.import_job_create`). Problems with a picture itself
(corrupt, too small, blank) are the import's business and become rejected image rows.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from typing import NamedTuple

from PIL import Image as PILImage

from labeling.services.sources import unsafe_member_reason
from ml.outcomes import ImportOutcome

UPLOAD_NAME_MAX = 200  # bytes of UTF-8: stored as "uploads/<job>/<nnnn>-<name>", under the usual 255


class UploadProblem(NamedTuple):
    """Why an uploaded file cannot be imported: a reason code and a message naming it."""

    reason: ImportOutcome
    message: str


def upload_problem(upload, formats: Sequence[str]) -> UploadProblem | None:
    """Why ``upload`` cannot be imported at all, or None. Reads the header and, for a zip
    archive, its directory; the file is left at its start."""
    name = upload.name or "(unnamed)"
    if len(name.encode()) > UPLOAD_NAME_MAX:
        return UploadProblem(
            ImportOutcome.UNREADABLE, f"{name[:40]}...: the file name is longer than {UPLOAD_NAME_MAX} bytes."
        )
    try:
        head = upload.read(16)
        if not head:
            return UploadProblem(ImportOutcome.UNREADABLE, f"{name} is empty.")
        if zipfile.is_zipfile(upload):
            return _archive_problem(upload, name)
        if name.lower().endswith(".zip") or head.startswith(b"PK"):
            return UploadProblem(ImportOutcome.UNREADABLE, f"{name} is not a readable zip archive.")
        if not _is_image(head, formats):
            return UploadProblem(
                ImportOutcome.UNSUPPORTED, f"{name} is neither an image ({', '.join(formats)}) nor a zip archive."
            )
        return None
    finally:
        upload.seek(0)


def _archive_problem(upload, name: str) -> UploadProblem | None:
    try:
        with zipfile.ZipFile(upload) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        return UploadProblem(ImportOutcome.UNREADABLE, f"{name} is not a readable zip archive ({exc}).")
    for entry in entries:
        reason = unsafe_member_reason(entry.filename)
        if reason:
            return UploadProblem(ImportOutcome.UNSAFE_PATH, f"{name}: entry {entry.filename!r} is refused: {reason}.")
    return None


def _is_image(head: bytes, formats: Sequence[str]) -> bool:
    """Whether ``head`` starts a file of one of ``formats``, by Pillow's signature checks."""
    PILImage.init()
    for fmt in formats:
        plugin = PILImage.OPEN.get(fmt.upper())
        if plugin is not None and plugin[1] is not None:
            verdict = plugin[1](head)
            if verdict and not isinstance(verdict, str):
                return True
    return False
