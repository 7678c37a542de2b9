"""Image import: folder or zip in, Image rows and stored files out.

The CPU work per file (decode, checks, hashes, derivatives) is ``ml.ingest.analyse``,
run in a pool of worker processes while this process decides duplicates, writes rows
and files, and reports progress. Where this process may not start processes (a
daemonic Celery prefork child, a platform without ``fork``), the pool is made of threads
instead: Pillow, hashlib and numpy release the GIL for the heavy parts, but the
Python-level work of the analysis then competes with the writing for the GIL.

Every input file ends as an ``Image`` row (accepted, rejected with a reason, or a
duplicate pointing at what it duplicates) or as an ``ImportIssue`` row. Rows are written
a batch at a time inside one transaction, together with the batch's files; if the batch
fails, its rows roll back and its newly written files are deleted, so an interrupted
import leaves only whole batches behind.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from django.core.files.storage import default_storage
from django.db import transaction

from labeling import permissions
from labeling.errors import ApplicationError
from labeling.models import Category, Image, ImportIssue, Job, Project
from labeling.services import media
from labeling.services.jobs import job_create, job_progress, job_start, job_succeed
from labeling.services.pipeline import after_import
from labeling.services.sources import ImportSource, RefusedFile, SourceFile
from labeling.services.uploads import upload_problem
from ml.hashing import HashIndex, from_signed64, hamming, to_signed64
from ml.ingest import Analysis, analyse
from ml.outcomes import ImportOutcome
from ml.quality import QualityConfig

logger = logging.getLogger(__name__)

BATCH_SIZE = 64

ProgressCallback = Callable[[int, int, dict], None]


@dataclass
class ImportSummary:
    total: int = 0
    counts: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"total": self.total, **{outcome.value: self.counts.get(outcome, 0) for outcome in ImportOutcome}}


def images_import(
    *,
    project: Project,
    paths: Sequence[Path | str],
    source: str = "",
    labels_from_folders: bool = False,
    job: Job,
    progress: ProgressCallback | None = None,
    workers: int = 2,
) -> ImportSummary:
    """Import every file under ``paths`` (folder trees, ``.zip`` archives or single files)."""
    config = QualityConfig.from_dict(project.quality)
    categories = {c.key.lower(): c for c in project.categories.all()} if labels_from_folders else {}
    state = _DuplicateState.load(project)
    summary = ImportSummary()
    sources = [ImportSource(path) for path in paths]
    try:
        with analysis_pool(workers) as pool:
            _import_sources(project, sources, pool, config, state, categories, source, job, summary, progress)
    finally:
        for entries in sources:
            entries.close()
    return summary


@contextmanager
def analysis_pool(workers: int) -> Iterator[Executor]:
    """An executor of ``workers`` analysis workers: processes if this process may fork.

    Worker processes are forked, so they start in milliseconds and share the parent's
    loaded modules; they only run ``ml.ingest.analyse`` and never touch the database
    connections they inherit. On Linux they are killed when this process dies, even by
    SIGKILL, so an interrupted import leaves none behind. When forking is unavailable or
    refused (a daemonic process may not have children), the workers are threads.
    """
    workers = max(1, workers)
    pool: Executor | None = None
    if "fork" in multiprocessing.get_all_start_methods():
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
        )
        try:
            pool.submit(int).result()
        except (AssertionError, OSError, BrokenProcessPool) as exc:
            logger.info("analysis in threads: worker processes cannot start here (%s)", exc)
            pool.shutdown(wait=True, cancel_futures=True)
            pool = None
    if pool is None:
        pool = ThreadPoolExecutor(max_workers=workers)
    with pool:
        yield pool


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Pool worker start-up: ask Linux to kill this worker when ``parent`` dies.

    Linux sends the signal when the thread that forked the worker ends, not only the
    process: that is the thread inside ``analysis_pool``'s ``with`` block, which the pool
    never outlives. Elsewhere (no ``prctl``) this does nothing; the worker then outlives a
    parent killed by SIGKILL, idle, as ``concurrent.futures`` workers do.
    """
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    if prctl is None or prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        return
    if os.getppid() != parent:
        os._exit(1)  # the parent died before the request took effect


def _import_sources(project, sources, pool, config, state, categories, source, job, summary, progress) -> None:
    """Analyse batch k+1 in the pool while batch k's rows and files are written."""
    summary.total = sum(len(entries) for entries in sources)
    done = 0
    pending = None
    for batch in _batches(sources):
        readable = [e for e in batch if isinstance(e, SourceFile)]
        submitted = [_read_and_submit(pool, e, config, project.blur_radius) for e in readable]
        if pending is not None:
            done += _import_batch(project, *pending, state, categories, source, job, summary)
            if progress:
                progress(done, summary.total, summary.as_dict())
        pending = (batch, submitted)
    if pending is not None:
        done += _import_batch(project, *pending, state, categories, source, job, summary)
    if progress:
        progress(done, summary.total, summary.as_dict())


def _batches(sources: Sequence[ImportSource]) -> Iterable[list[SourceFile | RefusedFile]]:
    batch: list[SourceFile | RefusedFile] = []
    for entries in sources:
        for entry in entries:
            batch.append(entry)
            if len(batch) >= BATCH_SIZE:
                yield batch
                batch = []
    if batch:
        yield batch


@dataclass
class _DuplicateState:
    """What earlier files decided: hashes of the project's accepted images."""

    project: Project
    index: HashIndex
    new_shas: dict[str, Image]

    @classmethod
    def load(cls, project: Project) -> _DuplicateState:
        index = HashIndex(radius=project.near_duplicate_radius)
        rows = Image.objects.filter(project=project, status=Image.Status.ACCEPTED, phash__isnull=False).values_list(
            "pk", "phash"
        )
        pks, hashes = [], []
        for pk, phash in rows.iterator(chunk_size=10_000):
            pks.append(pk)
            hashes.append(from_signed64(phash))
        if pks:
            index.add_many(hashes, pks)
        return cls(project=project, index=index, new_shas={})


def _read_and_submit(
    pool: Executor, entry: SourceFile, config: QualityConfig, blur_radius: float
) -> tuple[bytes, Future] | OSError:
    """Read a file here and queue its analysis: ``(bytes, future)``, or the read error."""
    try:
        data = entry.read()
    except OSError as exc:
        return exc
    return data, pool.submit(_analyse_for_import, data, entry.name, config, blur_radius)


def _analyse_for_import(data: bytes, name: str, config: QualityConfig, blur_radius: float) -> Analysis:
    """``analyse`` as a pool worker runs it; a file that is its own thumbnail is not sent back."""
    result = analyse(data, name=name, config=config, blur_radius=blur_radius or None)
    return replace(result, thumbnail_jpeg=None) if result.thumbnail_is_original else result


def _import_batch(
    project: Project,
    batch: Sequence[SourceFile | RefusedFile],
    submitted: Sequence[tuple[bytes, Future] | OSError],
    state: _DuplicateState,
    categories: dict[str, Category],
    source: str,
    job: Job,
    summary: ImportSummary,
) -> int:
    results = [(read[0], read[1].result()) if isinstance(read, tuple) else read for read in submitted]
    existing = dict(
        Image.objects.filter(
            project=project,
            status=Image.Status.ACCEPTED,
            sha256__in=[r[1].sha256 for r in results if isinstance(r, tuple) and not r[1].reason],
        ).values_list("sha256", "pk")
    )

    hashed = [r[1].phash for r in results if isinstance(r, tuple) and not r[1].reason]
    stored_near = iter(state.index.nearest_many(hashed))
    batch_hashes: list[tuple[int, Image]] = []

    accepted: list[Image] = []
    others: list[Image] = []
    issues: list[ImportIssue] = []
    files: list[tuple[str, bytes]] = []
    outcomes: Counter = Counter()
    next_result = iter(results)
    for entry in batch:
        if isinstance(entry, RefusedFile):
            issues.append(ImportIssue(job=job, name=entry.name, reason=entry.reason, detail=entry.detail))
            outcomes[entry.reason] += 1
            continue
        read = next(next_result)
        if isinstance(read, OSError):
            issues.append(
                ImportIssue(job=job, name=entry.name, reason=ImportOutcome.UNREADABLE, detail=f"{entry.name}: {read}")
            )
            outcomes[ImportOutcome.UNREADABLE] += 1
            continue
        data, result = read
        image = _image_row(project, entry, result, source, job, categories)
        if not result.reason:
            near = _nearest(next(stored_near), result.phash, batch_hashes, state.index.radius)
        if result.reason:
            image.status, image.reason, image.detail = Image.Status.REJECTED, result.reason, result.detail[:500]
            others.append(image)
        elif result.sha256 in existing or result.sha256 in state.new_shas:
            image.status, image.reason = Image.Status.DUPLICATE, ImportOutcome.DUPLICATE
            _point_at(image, existing.get(result.sha256) or state.new_shas[result.sha256], 0)
            image.detail = f"{entry.name}: same bytes as an image already in the project"
            others.append(image)
        elif near is not None:
            image.status, image.reason = Image.Status.DUPLICATE, ImportOutcome.NEAR_DUPLICATE
            _point_at(image, near[0], near[1])
            image.detail = f"{entry.name}: pHash within {near[1]} bits of an image already in the project"
            others.append(image)
        else:
            image.status = Image.Status.ACCEPTED
            image.original = media.original_name(result.sha256, result.format)
            image.thumbnail = media.thumbnail_name(result.sha256)
            image.blurred = media.blurred_name(result.sha256, project.blur_radius)
            image.sketch = media.sketch_name(result.sha256)
            if result.thumbnail_is_original:
                image.thumbnail = image.original
            files += [(image.original, data), (image.blurred, result.blurred_jpeg)]
            if image.thumbnail != image.original:
                files.append((image.thumbnail, result.thumbnail_jpeg))
            batch_hashes.append((result.phash, image))
            state.new_shas[result.sha256] = image
            accepted.append(image)
        outcomes[image.reason or ImportOutcome.ACCEPTED] += 1

    if batch_hashes:
        state.index.add_many([h for h, _ in batch_hashes], [image for _, image in batch_hashes])

    written: list[str] = []
    committed = False
    try:
        with transaction.atomic():
            Image.objects.bulk_create(accepted)
            for image in others:
                if image.duplicate_of is not None:
                    image.duplicate_of_id = image.duplicate_of.pk
            Image.objects.bulk_create(others)
            ImportIssue.objects.bulk_create(issues)
            for name, data in files:
                if media.media_write(name, data):
                    written.append(name)
        committed = True
    finally:
        if not committed:  # the batch's rows rolled back: its new files go too
            media.media_delete(written)
    summary.counts.update(outcomes)
    return len(batch)


def _nearest(stored: tuple | None, phash: int, batch: list[tuple[int, Image]], radius: int) -> tuple | None:
    """The closest earlier image within ``radius``: from the index (images of earlier
    batches and imports) or accepted earlier in this batch; on a tie, the earlier one."""
    best = stored
    for other_hash, other in batch:
        distance = hamming(phash, other_hash)
        if distance <= radius and (best is None or distance < best[1]):
            best = (other, distance)
    return best


def _image_row(
    project: Project,
    entry: SourceFile,
    result: Analysis,
    source: str,
    job: Job,
    categories: dict[str, Category],
) -> Image:
    return Image(
        project=project,
        job=job,
        name=entry.name[:1024],
        source=source,
        sha256=result.sha256,
        phash=to_signed64(result.phash) if result.phash is not None else None,
        width=result.width,
        height=result.height,
        size_bytes=result.size_bytes,
        format=result.format or "",
        quality_score=result.quality_score,
        source_label=_folder_label(entry.folders, categories),
        date_collected=entry.modified,
    )


def _point_at(image: Image, target: Image | int, distance: int) -> None:
    if isinstance(target, Image):
        image.duplicate_of = target
    else:
        image.duplicate_of_id = target
    image.duplicate_distance = distance


def _folder_label(folders: Iterable[str], categories: dict[str, Category]) -> Category | None:
    """The category named by the nearest enclosing folder, if any."""
    for folder in reversed(tuple(folders)):
        category = categories.get(folder.lower())
        if category is not None:
            return category
    return None


def import_job_create(
    *,
    project: Project,
    user=None,
    paths: Sequence[str] = (),
    uploads: Sequence = (),
    source: str = "",
    labels_from_folders: bool = False,
) -> Job:
    """Record an import job; uploaded files are kept in storage until the job has run.

    ``paths`` are folders or archives on the worker's disk; ``uploads`` are Django
    ``UploadedFile`` objects (images or zip archives) from the UI or the API.

    Each uploaded file gets its own outcome: one that cannot be imported at all
    (:func:`labeling.services.uploads.upload_problem`) is not stored and becomes an
    ``ImportIssue`` of the job, named with its reason, and counted in the job's summary;
    the others are imported. Only when no file is left is the whole request refused.
    """
    if not paths and not uploads:
        raise ApplicationError("Nothing to import: give at least one file.", code="no_files", extra={"field": "files"})
    formats = QualityConfig.from_dict(project.quality).formats
    refused = [(upload, problem) for upload in uploads if (problem := upload_problem(upload, formats))]
    if refused and len(refused) == len(uploads) and not paths:
        raise ApplicationError(
            "None of the files can be imported: " + " ".join(problem.message for _, problem in refused),
            code="bad_upload",
            extra={"field": "files", "refused": [upload.name for upload, _ in refused]},
        )
    refused_ids = {id(upload) for upload, _ in refused}
    uploads = [upload for upload in uploads if id(upload) not in refused_ids]
    with transaction.atomic():
        job = job_create(
            project=project,
            kind=Job.Kind.IMPORT,
            user=user,
            params={
                "paths": [str(p) for p in paths],
                "uploads": [],
                "source": source,
                "labels_from_folders": labels_from_folders,
                "refused": [problem.reason.value for _, problem in refused],
            },
        )
        ImportIssue.objects.bulk_create(
            ImportIssue(
                job=job, name=(upload.name or "(unnamed)")[:1024], reason=problem.reason, detail=problem.message[:500]
            )
            for upload, problem in refused
        )
        stored = []
        saved = False
        try:
            for upload in uploads:
                name = f"uploads/{job.pk}/{len(stored):04d}-{Path(upload.name).name}"
                stored.append(default_storage.save(name, upload))
            saved = True
        finally:
            if not saved:  # the job's row rolls back: the files saved so far go too
                media.media_delete(stored)
        job.params["uploads"] = stored
        job.save(update_fields=["params"])
    return job


def import_job_submit(*, actor, project: Project, **kwargs) -> Job:
    """An admin of the project imports files: the job is queued once the transaction has
    committed. ``kwargs`` as for :func:`import_job_create`."""
    from labeling.tasks import import_task

    permissions.require(permissions.can_import, user=actor, project=project)
    with transaction.atomic():
        job = import_job_create(project=project, user=actor, **kwargs)
        transaction.on_commit(lambda: import_task.delay(job_id=job.pk))
    job.refresh_from_db()
    return job


def import_job_run(
    *,
    job_id: int,
    workers: int = 2,
    progress: ProgressCallback | None = None,
    then: str = "queue",
) -> ImportSummary | None:
    """Run an import job: fetch its uploads to local files, import, record the summary.

    Then the loop moves on by itself (:func:`labeling.services.pipeline.after_import`):
    ``then="queue"`` queues the embedding jobs for the workers, ``"inline"`` runs them
    here (the command line, the demo), ``"none"`` leaves them.
    """
    if then not in ("queue", "inline", "none"):
        raise ValueError(f"then must be 'queue', 'inline' or 'none', got {then!r}")
    job = Job.objects.select_related("project").filter(pk=job_id, kind=Job.Kind.IMPORT).first()
    if job is None:
        logger.warning("import job %s vanished; skipped", job_id)
        return None
    if job.status == Job.Status.SUCCEEDED:
        return None
    job_start(job=job)

    def report(done: int, total: int, counts: dict) -> None:
        job_progress(job=job, done=done, total=total, counts=counts)
        if progress:
            progress(done, total, counts)

    summary = _run(job, report, workers)
    job.counts = summary.as_dict()
    job_succeed(job=job, result={"summary": summary.as_dict()})
    media.media_delete(job.params.get("uploads", []))
    if then != "none":
        after_import(project=job.project, inline=then == "inline")
    return summary


def _run(job: Job, report: ProgressCallback, workers: int) -> ImportSummary:
    params = job.params
    with tempfile.TemporaryDirectory(prefix=f"veil-import-{job.pk}-") as tmp:
        paths = [Path(p) for p in params.get("paths", [])]
        for index, name in enumerate(params.get("uploads", [])):
            local = Path(tmp) / f"{index:04d}" / Path(name).name.split("-", 1)[-1]
            local.parent.mkdir(parents=True)
            with default_storage.open(name, "rb") as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst)
            paths.append(local if zipfile.is_zipfile(local) else local.parent)
        summary = images_import(
            project=job.project,
            paths=paths,
            source=params.get("source", ""),
            labels_from_folders=params.get("labels_from_folders", False),
            job=job,
            progress=report,
            workers=workers,
        )
    # The uploaded files refused before the job was created (their ImportIssue rows exist).
    for reason in params.get("refused", []):
        summary.total += 1
        summary.counts[ImportOutcome(reason)] += 1
    return summary
