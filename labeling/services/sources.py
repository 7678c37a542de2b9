"""Input files for an import: a folder tree of any depth, or a zip archive.

Archive members are read into memory, never extracted, so an entry named
``../../etc/passwd`` or ``/tmp/x`` cannot write anywhere; such entries are refused
and reported.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from ml.outcomes import ImportOutcome

MAX_MEMBER_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class SourceFile:
    """One input file. ``name`` is its path relative to the imported folder or archive."""

    name: str
    read: Callable[[], bytes]
    modified: datetime | None

    @property
    def folders(self) -> tuple[str, ...]:
        return PurePosixPath(self.name).parts[:-1]


@dataclass(frozen=True)
class RefusedFile:
    name: str
    reason: ImportOutcome
    detail: str


class ImportSource:
    """The entries under a path, in a stable order. Use as a context manager."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._archive: zipfile.ZipFile | None = None
        if self.path.is_dir():
            self._entries: list[SourceFile | RefusedFile] = list(_walk(self.path))
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            self._archive = zipfile.ZipFile(self.path)
            members = [info for info in self._archive.infolist() if not info.is_dir()]
            self._entries = [_zip_entry(self._archive, info) for info in members]
        elif self.path.is_file():
            self._entries = [_file_entry(self.path, self.path.name)]
        else:
            raise FileNotFoundError(f"{self.path}: no such file or folder")

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[SourceFile | RefusedFile]:
        return iter(self._entries)

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()

    def __enter__(self) -> ImportSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _walk(root: Path) -> list[SourceFile]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for filename in sorted(filenames):
            full = Path(dirpath) / filename
            found.append(_file_entry(full, full.relative_to(root).as_posix()))
    return found


def _file_entry(full: Path, name: str) -> SourceFile:
    try:
        modified = datetime.fromtimestamp(full.stat().st_mtime, tz=UTC)
    except OSError:
        modified = None
    return SourceFile(name=name, read=full.read_bytes, modified=modified)


def unsafe_member_reason(name: str) -> str | None:
    """Why an archive member name is refused, or None if it is a plain relative path."""
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(normalised).parts:
        return "path leaves the archive (..)"
    if "\x00" in normalised:
        return "NUL byte in name"
    return None


def _zip_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> SourceFile | RefusedFile:
    reason = unsafe_member_reason(info.filename)
    if reason:
        return RefusedFile(info.filename, ImportOutcome.UNSAFE_PATH, f"{info.filename}: {reason}; not imported")
    if info.file_size > MAX_MEMBER_BYTES:
        return RefusedFile(
            info.filename,
            ImportOutcome.FILE_TOO_LARGE,
            f"{info.filename}: {info.file_size} bytes uncompressed, over {MAX_MEMBER_BYTES}",
        )
    try:
        modified = datetime(*info.date_time, tzinfo=UTC)
    except ValueError:
        modified = None
    return SourceFile(
        name=info.filename.replace("\\", "/"),
        read=lambda: archive.read(info),
        modified=modified,
    )
