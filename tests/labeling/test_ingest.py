"""Image import through the service: outcomes, duplicates, labels, archives, crash safety."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
from django.core.management import call_command
from PIL import Image as PILImage

from labeling.models import Image, ImportIssue, Job
from labeling.selectors.images import import_summary
from labeling.services import ingest, sources
from labeling.services.ingest import import_job_create, import_job_run
from labeling.services.projects import project_create
from labeling.tasks import import_task
from ml.outcomes import ImportOutcome
from tests import imagefiles as f

pytestmark = pytest.mark.django_db


def write(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def run_import(project, path, **kwargs):
    job = import_job_create(project=project, paths=[str(path)], **kwargs)
    summary = import_job_run(job_id=job.pk)
    job.refresh_from_db()
    return summary.as_dict(), job


BAD_AND_GOOD = {
    "good/a.jpg": f.jpeg_bytes(1),
    "good/b.jpg": f.jpeg_bytes(2),
    "good/copy-of-b.jpg": f.jpeg_bytes(2),
    "good/cmyk.jpg": f.cmyk_jpeg(3),
    "good/deep.png": f.png_16bit(4),
    "good/anim.gif": f.animated_gif((5, 6, 7)),
    "good/rotated.jpg": f.exif_rotated_jpeg(8),
    "bad/truncated.jpg": f.truncated_jpeg(9),
    "bad/empty.jpg": f.empty_file(),
    "bad/notes.jpg": f.text_as_jpg(),
    "bad/dot.png": f.png_1x1(),
    "bad/bomb.png": f.huge_header_png(),
    "bad/solid.jpg": f.solid_colour_jpeg(),
    "bad/small.jpg": f.jpeg_bytes(10, size=(200, 300), quality=100),
}


def test_every_file_ends_as_a_row_with_its_outcome(project, tmp_path):
    counts, job = run_import(project, write(tmp_path / "in", BAD_AND_GOOD))

    by_name = {image.name: image for image in Image.objects.filter(project=project)}
    assert len(by_name) == len(BAD_AND_GOOD)
    expected = {
        "bad/truncated.jpg": "corrupt",
        "bad/empty.jpg": "too_small",
        "bad/notes.jpg": "unsupported",
        "bad/dot.png": "too_small",
        "bad/bomb.png": "too_many_pixels",
        "bad/solid.jpg": "blank",
        "bad/small.jpg": "low_resolution",
        "good/copy-of-b.jpg": "duplicate",
    }
    for name, reason in expected.items():
        assert by_name[name].reason == reason, name
        assert by_name[name].status != Image.Status.ACCEPTED
        assert name in by_name[name].detail or reason == "duplicate" or by_name[name].detail
    assert by_name["good/copy-of-b.jpg"].duplicate_of == by_name["good/b.jpg"]
    accepted = {n for n, i in by_name.items() if i.status == Image.Status.ACCEPTED}
    assert accepted == {
        "good/a.jpg",
        "good/b.jpg",
        "good/cmyk.jpg",
        "good/deep.png",
        "good/anim.gif",
        "good/rotated.jpg",
    }
    assert counts["accepted"] == 6 and counts["duplicate"] == 1 and counts["total"] == len(BAD_AND_GOOD)
    for reason in ("corrupt", "unsupported", "too_many_pixels", "blank", "low_resolution"):
        assert counts[reason] == 1, reason
    assert counts["too_small"] == 2
    assert job.status == Job.Status.SUCCEEDED and job.done == job.total == len(BAD_AND_GOOD)
    assert job.counts == counts


def test_accepted_images_are_stored_with_derivatives(project, tmp_path, media_root):
    run_import(project, write(tmp_path / "in", {"a.jpg": f.jpeg_bytes(1), "r.jpg": f.exif_rotated_jpeg(8)}))
    image = Image.objects.get(name="a.jpg")
    assert (media_root / image.original).read_bytes() == f.jpeg_bytes(1)
    assert image.sha256 in image.original
    thumb = PILImage.open(media_root / image.thumbnail)
    assert max(thumb.size) <= 384
    blurred = PILImage.open(media_root / image.blurred)
    assert blurred.width <= thumb.width and blurred.height <= thumb.height
    assert image.blurred != image.thumbnail
    assert image.thumbnail == image.original, "a small upright JPEG serves as its own thumbnail"
    assert (image.width, image.height, image.format) == (320, 240, "JPEG")
    assert 0.0 <= image.quality_score <= 1.0

    rotated = Image.objects.get(name="r.jpg")
    stored = PILImage.open(media_root / rotated.original)
    upright = PILImage.open(media_root / rotated.thumbnail)
    assert stored.size == (240, 320), "the original is kept as it came, sideways with its EXIF tag"
    assert (rotated.width, rotated.height) == (320, 240) and upright.size == (320, 240)
    assert rotated.thumbnail != rotated.original


def test_analysis_runs_in_worker_processes():
    with ingest.analysis_pool(2) as pool:
        assert isinstance(pool, ProcessPoolExecutor)
        pids = {pool.submit(os.getpid).result() for _ in range(8)}
    assert os.getpid() not in pids


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped, does not count)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_analysis_workers_die_with_a_killed_import():
    context = multiprocessing.get_context("fork")
    answers = context.Queue()

    def import_then_hang() -> None:
        with ingest.analysis_pool(2) as pool:
            answers.put(sorted({pool.submit(os.getpid).result() for _ in range(8)} | {os.getpid()}))
            time.sleep(120)

    importer = context.Process(target=import_then_hang)
    importer.start()
    workers = [pid for pid in answers.get(timeout=30) if pid != importer.pid]
    try:
        assert workers and all(_alive(pid) for pid in workers)
        os.kill(importer.pid, signal.SIGKILL)
        importer.join(timeout=30)
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        for pid in filter(_alive, workers):  # left behind: do not let them hold the run's output
            os.kill(pid, signal.SIGKILL)


def test_analysis_falls_back_to_threads_in_a_daemonic_process():
    context = multiprocessing.get_context("fork")
    answers = context.Queue()

    def pool_kind() -> None:
        with ingest.analysis_pool(2) as pool:
            answers.put((type(pool).__name__, pool.submit(os.getpid).result() == os.getpid()))

    child = context.Process(target=pool_kind, daemon=True)
    child.start()
    kind = answers.get(timeout=30)
    child.join(timeout=30)
    assert kind == ("ThreadPoolExecutor", True)


def test_threads_and_processes_store_the_same_rows(tmp_path, monkeypatch):
    folder = write(tmp_path / "in", BAD_AND_GOOD)
    by_processes = project_create(slug="by-processes")
    run_import(by_processes, folder)
    monkeypatch.setattr(ingest.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    with ingest.analysis_pool(2) as pool:
        assert isinstance(pool, ThreadPoolExecutor)
    by_threads = project_create(slug="by-threads")
    run_import(by_threads, folder)

    fields = (
        "name",
        "status",
        "reason",
        "sha256",
        "phash",
        "width",
        "height",
        "format",
        "quality_score",
        "size_bytes",
        "original",
        "thumbnail",
        "blurred",
        "duplicate_of__name",
    )
    rows = [
        list(Image.objects.filter(project=project).order_by("name").values_list(*fields))
        for project in (by_processes, by_threads)
    ]
    assert len(rows[0]) == len(BAD_AND_GOOD) and rows[0] == rows[1]


def test_near_duplicates_are_caught_and_distinct_photos_are_not(project, tmp_path):
    original = f.jpeg_bytes(21, size=(640, 480))
    files = {
        "0-orig.jpg": original,
        "resized.jpg": f.resized(original, scale=0.7),
        "recompressed.jpg": f.recompressed(original, quality=50),
        "cropped.jpg": f.cropped(original, fraction=0.04),
        **{f"other-{seed}.jpg": f.jpeg_bytes(seed, size=(480, 360)) for seed in range(30, 36)},
    }
    counts, _ = run_import(project, write(tmp_path / "in", files))
    orig = Image.objects.get(name="0-orig.jpg")
    for name in ("resized.jpg", "recompressed.jpg", "cropped.jpg"):
        image = Image.objects.get(name=name)
        assert (image.status, image.reason, image.duplicate_of) == ("duplicate", "near_duplicate", orig), name
        assert image.duplicate_distance <= 8
    assert counts["accepted"] == 7 and counts["near_duplicate"] == 3


def test_reimport_adds_no_image_and_reports_duplicates(project, tmp_path):
    folder = write(tmp_path / "in", BAD_AND_GOOD)
    first, _ = run_import(project, folder)
    accepted_before = set(Image.objects.filter(status="accepted").values_list("pk", flat=True))

    second, _ = run_import(project, folder)
    assert set(Image.objects.filter(status="accepted").values_list("pk", flat=True)) == accepted_before
    assert second["accepted"] == 0
    assert second["duplicate"] == first["accepted"] + first["duplicate"]
    second_rows = Image.objects.filter(job__in=Job.objects.order_by("-pk")[:1])
    for image in second_rows.filter(reason="duplicate"):
        assert image.duplicate_of_id in accepted_before


def test_near_duplicate_index_persists_across_imports_and_is_per_project(project, tmp_path):
    original = f.jpeg_bytes(40, size=(640, 480))
    run_import(project, write(tmp_path / "one", {"orig.jpg": original}))
    counts, _ = run_import(project, write(tmp_path / "two", {"again.jpg": f.recompressed(original, 50)}))
    assert counts["near_duplicate"] == 1

    other = project_create(slug="other")
    counts, _ = run_import(other, tmp_path / "two")
    assert counts["accepted"] == 1


def test_labels_from_folders(project, tmp_path):
    folder = write(
        tmp_path / "in",
        {
            "violence/a.jpg": f.jpeg_bytes(1),
            "batch/weapons/x/b.jpg": f.jpeg_bytes(2),
            "WEAPONS/violence/c.jpg": f.jpeg_bytes(3),
            "misc/d.jpg": f.jpeg_bytes(4),
        },
    )
    run_import(project, folder, labels_from_folders=True)
    labels = dict(Image.objects.values_list("name", "source_label__key"))
    assert labels == {
        "violence/a.jpg": "violence",
        "batch/weapons/x/b.jpg": "weapons",
        "WEAPONS/violence/c.jpg": "violence",
        "misc/d.jpg": None,
    }
    assert not project.images.first().annotations.exists()


def test_without_the_flag_folders_do_not_label(project, tmp_path):
    run_import(project, write(tmp_path / "in", {"violence/a.jpg": f.jpeg_bytes(1)}))
    assert Image.objects.get().source_label is None


def test_zip_with_unsafe_entries_writes_nothing_outside(project, tmp_path, media_root):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok/a.jpg", f.jpeg_bytes(1))
        zf.writestr("../escape.jpg", f.jpeg_bytes(2))
        zf.writestr("/tmp/absolute.jpg", f.jpeg_bytes(3))
        zf.writestr("ok/../../../up.jpg", f.jpeg_bytes(4))
    before = {p for p in tmp_path.rglob("*")}
    counts, job = run_import(project, archive)

    assert counts["accepted"] == 1 and counts["unsafe_path"] == 3
    refused = set(ImportIssue.objects.filter(job=job, reason="unsafe_path").values_list("name", flat=True))
    assert refused == {"../escape.jpg", "/tmp/absolute.jpg", "ok/../../../up.jpg"}
    created = {p for p in tmp_path.rglob("*")} - before
    assert all(media_root in p.parents for p in created)
    assert not Path("/tmp/absolute.jpg").exists()


def test_too_many_bytes_and_too_many_pixels_are_distinct_outcomes(project, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_MEMBER_BYTES", 50_000)
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.jpg", f.jpeg_bytes(1))
        zf.writestr("heavy.bin", bytes(60_000))
        zf.writestr("bomb.png", f.huge_header_png())
    counts, job = run_import(project, archive)

    assert (counts["accepted"], counts["file_too_large"], counts["too_many_pixels"]) == (1, 1, 1)
    assert "too_large" not in counts
    issue = ImportIssue.objects.get(job=job)
    assert (issue.name, issue.reason) == ("heavy.bin", ImportOutcome.FILE_TOO_LARGE)
    assert Image.objects.get(name="bomb.png").reason == ImportOutcome.TOO_MANY_PIXELS
    assert import_summary(project=project)["counts"] == {k: v for k, v in counts.items() if k != "total"}
    assert list(counts)[1:] == [outcome.value for outcome in ImportOutcome]


def test_crash_halfway_leaves_whole_batches_and_no_orphan_files(project, tmp_path, media_root, monkeypatch):
    monkeypatch.setattr(ingest, "BATCH_SIZE", 3)
    folder = write(tmp_path / "in", {f"{i:02d}.jpg": f.jpeg_bytes(100 + i) for i in range(9)})
    real_write = ingest.media.media_write
    calls = {"n": 0}

    def failing_write(name, data):
        calls["n"] += 1
        if calls["n"] == 9:  # in the middle of the second batch's files
            raise OSError("disk full")
        return real_write(name, data)

    monkeypatch.setattr(ingest.media, "media_write", failing_write)
    job = import_job_create(project=project, paths=[str(folder)])
    with pytest.raises(OSError, match="disk full"):
        import_task.run_inline(job.pk)

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "disk full" in job.error
    assert sorted(Image.objects.values_list("name", flat=True)) == ["00.jpg", "01.jpg", "02.jpg"]
    referenced = set()
    for image in Image.objects.all():
        referenced |= {image.original, image.thumbnail, image.blurred}
    stored = {p.relative_to(media_root).as_posix() for p in media_root.rglob("*") if p.is_file()}
    assert stored == referenced

    monkeypatch.setattr(ingest.media, "media_write", real_write)
    counts, _ = run_import(project, folder)
    assert counts["accepted"] == 6 and counts["duplicate"] == 3


def test_quality_thresholds_are_per_project(tmp_path):
    lenient = project_create(slug="lenient", quality={"min_width": 100, "min_height": 100})
    counts, _ = run_import(
        lenient, write(tmp_path / "in", {"small.jpg": f.jpeg_bytes(10, size=(200, 300), quality=100)})
    )
    assert counts["accepted"] == 1


def test_command_prints_one_json_summary_and_creates_the_project(tmp_path, capsys):
    folder = write(tmp_path / "in", {"neutral/a.jpg": f.jpeg_bytes(1), "b.jpg": f.empty_file()})
    out = io.StringIO()
    call_command(
        "import_images", str(folder), project="fresh", source="vendor", labels_from_folders=True, json=True, stdout=out
    )
    summary = json.loads(out.getvalue())
    assert summary["accepted"] == 1 and summary["too_small"] == 1 and summary["total"] == 2
    assert {"duplicate", "near_duplicate", "corrupt", "unsupported"} <= set(summary)
    image = Image.objects.get(project__slug="fresh", status="accepted")
    assert (image.source, image.source_label.key) == ("vendor", "neutral")
    keys = list(image.project.categories.values_list("key", flat=True))
    assert keys == ["violence", "drugs", "nsfw", "neutral", "hateful_memes", "weapons"]


def test_command_refuses_a_missing_path(tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no such file"):
        call_command("import_images", str(tmp_path / "nope"), project="x")
