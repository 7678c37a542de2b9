"""Exports of labeled images: JSONL, CSV, ImageFolder zip, Hugging Face imagefolder,
Label Studio JSON.

Rows are produced a chunk of images at a time (final labels computed per chunk), so an
export runs in constant memory whatever the project's size; archives are written to a
temporary file and then stored. Small exports stream straight into the HTTP response.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
from collections import namedtuple
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from xml.sax.saxutils import quoteattr

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import QuerySet

from labeling import permissions
from labeling.errors import ApplicationError
from labeling.models import Image, Job, Project, QueueItem
from labeling.selectors.flags import open_flag_notes
from labeling.selectors.images import image_metadata
from labeling.selectors.labels import LabelSource, final_labels_walk, labeled_images
from labeling.services.jobs import job_create, job_progress, job_start, job_succeed
from labeling.services.media import media_open

FORMATS = ("jsonl", "csv", "imagefolder", "huggingface", "labelstudio")
ARCHIVE_FORMATS = ("imagefolder", "huggingface")
CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv",
    "labelstudio": "application/json",
    "imagefolder": "application/zip",
    "huggingface": "application/zip",
}
EXTENSIONS = {"jsonl": "jsonl", "csv": "csv", "labelstudio": "json", "imagefolder": "zip", "huggingface": "zip"}
CHUNK = 2000
COLUMNS = (
    "image_id",
    "file_name",
    "label",
    "label_source",
    "agreement",
    "annotators",
    "category",
    "source",
    "resolution",
    "file_size",
    "file_size_bytes",
    "date_collected",
    "verified",
    "quality_score",
    "split",
    "sha256",
    "text",
    "flagged",
    "flag_notes",
)


@dataclass(frozen=True)
class ExportFilters:
    categories: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    min_agreement: float | None = None
    round: int | None = None
    split: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None

    @classmethod
    def from_dict(cls, project: Project, data: dict) -> ExportFilters:
        """Validated filters; a bad value raises an error naming the field."""
        keys = set(project.categories.values_list("key", flat=True))
        categories = tuple(data.get("categories") or ())
        unknown = [c for c in categories if c not in keys]
        if unknown:
            raise ApplicationError(f"Unknown categories: {', '.join(unknown)}.", extra={"field": "categories"})
        sources = tuple(data.get("sources") or ())
        bad = [s for s in sources if s not in LabelSource.ALL]
        if bad:
            raise ApplicationError(
                f"Unknown label sources: {', '.join(bad)}; use {', '.join(LabelSource.ALL)}.",
                extra={"field": "sources"},
            )
        agreement = data.get("min_agreement")
        if agreement is not None:
            try:
                agreement = float(agreement)
            except (TypeError, ValueError):
                raise ApplicationError(
                    f"min_agreement must be a number, not {str(agreement)[:40]!r}.", extra={"field": "min_agreement"}
                ) from None
            if not 0.0 <= agreement <= 1.0:
                raise ApplicationError("min_agreement must be between 0 and 1.", extra={"field": "min_agreement"})
        split = data.get("split") or None
        if split not in (None, *Image.Split.values):
            raise ApplicationError(f"Unknown split {split!r}.", extra={"field": "split"})
        return cls(
            categories=categories,
            sources=sources,
            min_agreement=None if agreement is None else float(agreement),
            round=data.get("round"),
            split=split,
            date_from=_as_datetime(data.get("date_from"), "date_from"),
            date_to=_as_datetime(data.get("date_to"), "date_to"),
        )

    def to_dict(self) -> dict:
        return {
            "categories": list(self.categories),
            "sources": list(self.sources),
            "min_agreement": self.min_agreement,
            "round": self.round,
            "split": self.split,
            "date_from": self.date_from.isoformat() if self.date_from else None,
            "date_to": self.date_to.isoformat() if self.date_to else None,
        }


def _as_datetime(value, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise ApplicationError(
            f"{name} must be an ISO 8601 date or date-time, not {value!r}.", extra={"field": name}
        ) from exc


def _images(project: Project, filters: ExportFilters) -> QuerySet[Image]:
    images = labeled_images(project=project)
    if filters.split:
        images = images.filter(split=filters.split)
    if filters.round is not None:
        images = images.filter(
            pk__in=QueueItem.objects.filter(round__project=project, round__number=filters.round).values("image_id")
        )
    if filters.date_from:
        images = images.filter(date_collected__gte=filters.date_from)
    if filters.date_to:
        images = images.filter(date_collected__lte=filters.date_to)
    return images.order_by("pk")


IMAGE_FIELDS = (
    "pk",
    "original",
    "width",
    "height",
    "size_bytes",
    "source",
    "date_collected",
    "quality_score",
    "split",
    "sha256",
    "model_label_id",
    "source_label_id",
    "ocr_text",
)
ImageRow = namedtuple("ImageRow", IMAGE_FIELDS)


@dataclass
class ExportRow:
    image: ImageRow
    label: str
    source: str
    agreement: float | None
    annotators: int
    votes: dict = field(default_factory=dict)
    flag_notes: list[str] | None = None
    """The notes of the image's open flags for policy review; None when it has none."""

    @property
    def file_name(self) -> str:
        original = self.image.original
        dot = original.rfind(".")
        return f"{self.image.pk}{original[dot:] if dot > original.rfind('/') else '.jpg'}"

    def record(self) -> dict:
        """The seed dataset's metadata record plus the final label, its source and agreement."""
        image = self.image
        return {
            **image_metadata(image, label=self.label, label_source=self.source),
            "file_name": self.file_name,
            "label": self.label,
            "agreement": None if self.agreement is None else round(self.agreement, 4),
            "annotators": self.annotators,
            "split": image.split,
            "sha256": image.sha256,
            "text": image.ocr_text,
            "flagged": self.flag_notes is not None,
            "flag_notes": "\n".join(self.flag_notes or ()),
        }


def export_size(*, project: Project, filters: ExportFilters) -> int:
    """Images the export walks through (an upper bound on its rows)."""
    return _images(project, filters).count()


def export_rows(*, project: Project, filters: ExportFilters) -> Iterator[ExportRow]:
    """Labeled images passing ``filters``, in id order, a chunk at a time."""
    rows = (
        ImageRow(*values) for values in _images(project, filters).values_list(*IMAGE_FIELDS).iterator(chunk_size=CHUNK)
    )
    # Without image filters a chunk is every image in its id range.
    by_range = not (filters.split or filters.round is not None or filters.date_from or filters.date_to)
    walk = final_labels_walk(project=project, images=rows, by_range=by_range, chunk=CHUNK)
    while batch := list(islice(walk, CHUNK)):
        flags = open_flag_notes(project=project, image_ids=[image.pk for image, final in batch if final is not None])
        for image, final in batch:
            if final is None:
                continue
            if filters.categories and final.category.key not in filters.categories:
                continue
            if filters.sources and final.source not in filters.sources:
                continue
            if filters.min_agreement is not None and (
                final.agreement is None or final.agreement < filters.min_agreement
            ):
                continue
            yield ExportRow(
                image,
                final.category.key,
                final.source,
                final.agreement,
                final.annotators,
                final.votes,
                flags.get(image.pk),
            )


def jsonl_lines(rows: Iterator[ExportRow]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row.record(), ensure_ascii=False) + "\n"


def csv_lines(rows: Iterator[ExportRow]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.record())
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def labelstudio_config(project: Project) -> str:
    """The Label Studio labeling config that Veil's Label Studio export matches."""
    choices = "".join(
        f"<Choice value={quoteattr(c.key)} hint={quoteattr(c.guideline[:200])}/>" for c in project.categories.all()
    )
    return (
        '<View><Image name="image" value="$image"/>'
        f'<Choices name="label" toName="image" choice="single" showInLine="true">{choices}</Choices></View>'
    )


def labelstudio_chunks(rows: Iterator[ExportRow], *, image_url: Callable[[ImageRow], str]) -> Iterator[str]:
    """Label Studio tasks with their annotations (one choices result per moderator vote).

    The labeling config this matches: ``<View><Image name="image" value="$image"/>
    <Choices name="label" toName="image">...</Choices></View>``.
    """
    yield "["
    first = True
    for row in rows:
        results = [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [row.label]}}]
        task = {
            "id": row.image.pk,
            "data": {"image": image_url(row.image), "veil_image_id": row.image.pk},
            "annotations": [
                {
                    "result": results,
                    "ground_truth": row.source == LabelSource.ADJUDICATED,
                    "meta": {"label_source": row.source, "agreement": row.agreement, "annotators": row.annotators},
                }
            ],
            "meta": {"votes": row.votes, "split": row.image.split, "flagged": row.flag_notes is not None},
        }
        yield ("" if first else ",\n") + json.dumps(task, ensure_ascii=False)
        first = False
    yield "]\n"


def write_archive(rows: Iterator[ExportRow], fmt: str, target) -> int:
    """Write an ImageFolder (``<label>/<file>``) or Hugging Face imagefolder zip into ``target``.

    The Hugging Face layout is ``<split>/<file>`` with a ``metadata.jsonl`` per split
    (``train`` for the pool, ``test`` for the evaluation split) whose rows carry
    ``file_name``, ``label`` and the metadata columns.
    """
    count = 0
    metadata: dict[str, list[str]] = {}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for row in rows:
            if fmt == "imagefolder":
                name = f"{row.label}/{row.file_name}"
            else:
                split = "test" if row.image.split == Image.Split.EVAL else "train"
                name = f"{split}/{row.file_name}"
                metadata.setdefault(split, []).append(json.dumps(row.record(), ensure_ascii=False))
            with media_open(row.image.original) as src, archive.open(name, "w") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
            count += 1
        for split, lines in metadata.items():
            archive.writestr(f"{split}/metadata.jsonl", "\n".join(lines) + "\n")
    return count


def export_job_create(*, project: Project, user, fmt: str, filters: dict) -> Job:
    if fmt not in FORMATS:
        raise ApplicationError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.", extra={"field": "format"})
    parsed = ExportFilters.from_dict(project, filters)
    return job_create(
        project=project, kind=Job.Kind.EXPORT, user=user, params={"format": fmt, "filters": parsed.to_dict()}
    )


def export_job_submit(*, actor, project: Project, fmt: str, filters: dict) -> Job:
    """An admin of the project starts an export job, queued once the transaction has committed."""
    from labeling.tasks import export_task

    permissions.require(permissions.can_export, user=actor, project=project)
    with transaction.atomic():
        job = export_job_create(project=project, user=actor, fmt=fmt, filters=filters)
        transaction.on_commit(lambda: export_task.delay(job_id=job.pk))
    return job


def export_run(*, job_id: int, image_url: Callable[[ImageRow], str] | None = None) -> str | None:
    """Write an export job's file to storage; returns the stored name."""
    job = Job.objects.select_related("project").filter(pk=job_id, kind=Job.Kind.EXPORT).first()
    if job is None or job.status == Job.Status.SUCCEEDED:
        return None
    project, fmt = job.project, job.params["format"]
    filters = ExportFilters.from_dict(project, job.params["filters"])
    total = _images(project, filters).count()
    job_start(job=job, total=total)
    counted = {"rows": 0}

    def rows_counted():
        for row in export_rows(project=project, filters=filters):
            counted["rows"] += 1
            if counted["rows"] % 500 == 0:
                job_progress(job=job, done=counted["rows"])
            yield row

    rows = rows_counted()
    url = image_url or (lambda image: f"/images/{image.pk}/original/")
    with tempfile.TemporaryFile() as handle:
        if fmt in ARCHIVE_FORMATS:
            write_archive(rows, fmt, handle)
        else:
            lines = {"jsonl": jsonl_lines, "csv": csv_lines}.get(fmt)
            for chunk in lines(rows) if lines else labelstudio_chunks(rows, image_url=url):
                handle.write(chunk.encode())
        handle.seek(0)
        name = default_storage.save(
            f"exports/{project.slug}/{job.pk}/{project.slug}-{job.pk}.{EXTENSIONS[fmt]}", File(handle)
        )
    job.total = counted["rows"]
    job_succeed(job=job, result={"file": name, "format": fmt, "rows": counted["rows"]})
    return name
