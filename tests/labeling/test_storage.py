"""Local media storage: a file appears whole under its name, or not at all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from labeling.services import media
from labeling.storage import WholeFileSystemStorage

ROOT = Path(__file__).resolve().parents[2]

# Starts writing a file of 1000 "x" and one more chunk through a storage class, says so,
# and waits to be killed before the last chunk.
KILLED_WRITER = """
import sys, time
from django.conf import settings
settings.configure()
from django.core.files.base import File
from django.utils.module_loading import import_string

class Slow(File):
    def __init__(self):
        super().__init__(None, name="slow")
        self.size = 2000
    def chunks(self, chunk_size=None):
        yield b"x" * 1000
        print("writing", flush=True)
        time.sleep(60)
        yield b"y" * 1000

storage = import_string(sys.argv[1])(location=sys.argv[2])
storage.save("originals/ab/cd/name.jpg", Slow())
"""


def kill_while_writing(backend: str, root: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, backend, str(root)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait(timeout=30)


def test_a_writer_killed_mid_write_leaves_nothing_under_the_name(tmp_path):
    kill_while_writing("labeling.storage.WholeFileSystemStorage", tmp_path / "whole")
    assert not (tmp_path / "whole/originals/ab/cd/name.jpg").exists()
    # Django's own storage leaves a torn file there, which an import would trust.
    kill_while_writing("django.core.files.storage.FileSystemStorage", tmp_path / "django")
    torn = tmp_path / "django/originals/ab/cd/name.jpg"
    assert torn.exists() and torn.stat().st_size < 2000


def test_save_writes_the_whole_file_and_leaves_no_partial_file(tmp_path):
    storage = WholeFileSystemStorage(location=tmp_path)
    assert storage.save("a/b/c.jpg", ContentFile(b"picture")) == "a/b/c.jpg"
    assert (tmp_path / "a/b/c.jpg").read_bytes() == b"picture"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["c.jpg"]


def test_a_taken_name_keeps_its_file_and_the_next_free_name_is_used(tmp_path):
    storage = WholeFileSystemStorage(location=tmp_path)
    storage.save("a/c.jpg", ContentFile(b"first"))
    other = storage.save("a/c.jpg", ContentFile(b"second"))
    assert other != "a/c.jpg" and other.startswith("a/c_")
    assert (tmp_path / "a/c.jpg").read_bytes() == b"first"
    assert (tmp_path / other).read_bytes() == b"second"
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 2


def test_a_write_that_fails_leaves_no_file(tmp_path):
    storage = WholeFileSystemStorage(location=tmp_path)

    class Failing(ContentFile):
        def chunks(self, chunk_size=None):
            yield b"part"
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        storage.save("a/c.jpg", Failing(b"never"))
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_files_get_the_permissions_django_gives_them(tmp_path):
    storage = WholeFileSystemStorage(location=tmp_path, file_permissions_mode=0o640)
    storage.save("a/c.jpg", ContentFile(b"picture"))
    assert (tmp_path / "a/c.jpg").stat().st_mode & 0o777 == 0o640


def test_media_write_stores_once_and_reports_whether_it_wrote(settings, media_root):
    assert media.media_write("originals/ab/cd/x.jpg", b"picture") is True
    assert media.media_write("originals/ab/cd/x.jpg", b"other") is False
    assert (media_root / "originals/ab/cd/x.jpg").read_bytes() == b"picture"
    assert [p.name for p in media_root.rglob("*") if p.is_file()] == ["x.jpg"]
