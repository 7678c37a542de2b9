"""Local media storage whose files appear whole or not at all."""

from __future__ import annotations

import os
import secrets

from django.core.files.storage import FileSystemStorage
from django.utils._os import safe_makedirs


class WholeFileSystemStorage(FileSystemStorage):
    """:class:`FileSystemStorage` that never leaves a torn file under a file's name.

    Django's writes a file in place, so a process killed while writing leaves part of
    the file under its final name. Media names are content-addressed and an import
    trusts a file that is already there (:func:`labeling.services.media.media_write`),
    so such a file would stay torn for good. Here the content is written under a
    temporary name in the same folder (``.partial-...``, which no image refers to) and
    then hard-linked to its name. Linking, like Django's exclusive open, fails when the
    name is taken; the next free name is tried then, as Django does.
    """

    def _save(self, name: str, content) -> str:
        full_path = self.path(name)
        partial = os.path.join(os.path.dirname(full_path), f".partial-{secrets.token_hex(8)}")
        try:
            handle = self._create(partial)
            with handle:
                for chunk in content.chunks():
                    handle.write(chunk if isinstance(chunk, bytes) else chunk.encode())
            if self.file_permissions_mode is not None:
                os.chmod(partial, self.file_permissions_mode)
            while True:
                try:
                    os.link(partial, full_path)
                    break
                except FileExistsError:
                    if self._allow_overwrite:
                        os.replace(partial, full_path)
                        break
                    name = self.get_available_name(name)
                    full_path = self.path(name)
        finally:
            if os.path.lexists(partial):
                os.remove(partial)
        return str(name).replace("\\", "/")

    def _create(self, path: str):
        """``path`` opened for writing; it must not exist. Creates its folders as needed."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        try:
            return os.fdopen(os.open(path, flags, 0o666), "wb")
        except FileNotFoundError:
            folder = os.path.dirname(path)
            if self.directory_permissions_mode is not None:
                safe_makedirs(folder, self.directory_permissions_mode, exist_ok=True)
            else:
                os.makedirs(folder, exist_ok=True)
            return os.fdopen(os.open(path, flags, 0o666), "wb")
