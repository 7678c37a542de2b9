"""Images, their metadata, and per-project reports."""

from __future__ import annotations

from collections import Counter

from django.db.models import Count

from labeling import permissions
from labeling.errors import NotFound
from labeling.models import Image, Job, Project
from labeling.selectors.labels import LabelSource, final_label_counts, labeled_images
from ml.outcomes import ImportOutcome


def image_get_for_user(*, user, image_id: int) -> Image:
    image = Image.objects.select_related("project", "source_label").filter(pk=image_id).first()
    if image is None or not permissions.can_view(user, image.project):
        raise NotFound(f"Image {image_id} not found.")
    return image


def image_metadata(image, *, label: str | None, label_source: str | None) -> dict:
    """The per-image metadata record, in the shape the seed dataset used.

    ``image`` is an ``Image`` or a row with the same fields; ``label`` and ``label_source``
    are its final label's category key and source (``verified`` when a person decided it).
    """
    return {
        "image_id": image.pk,
        "category": label,
        "source": image.source,
        "resolution": f"{image.width}x{image.height}" if image.width and image.height else "",
        "file_size": human_size(image.size_bytes),
        "file_size_bytes": image.size_bytes,
        "date_collected": image.date_collected.isoformat() if image.date_collected else None,
        "verified": label_source in LabelSource.HUMAN,
        "label_source": label_source,
        "quality_score": None if image.quality_score is None else round(image.quality_score, 4),
    }


def human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f}MB"
    return f"{round(size / 1024)}KB"


def class_balance(*, project: Project) -> dict:
    """Counts per category of the accepted images' final labels.

    Per category: ``source_labels`` (import pre-labels, whatever overrides them),
    ``consensus`` (labels a person decided: adjudicated or moderators' consensus),
    ``auto_accepted`` (the head's auto-accepted labels) and ``total`` (every final label,
    each image counted once under the label that wins). ``imbalance_ratio`` is the largest
    total over the smallest non-zero total.
    """
    accepted = labeled_images(project=project)
    pre = Counter(
        dict(
            accepted.filter(source_label__isnull=False)
            .order_by()
            .values_list("source_label__key")
            .annotate(n=Count("id"))
            .values_list("source_label__key", "n")
        )
    )
    by_source = final_label_counts(project=project)
    human = by_source[LabelSource.ADJUDICATED] + by_source[LabelSource.CONSENSUS]
    combined = sum(by_source.values(), Counter())
    rows = [
        {
            "key": c.key,
            "name": c.name,
            "source_labels": pre.get(c.key, 0),
            "consensus": human.get(c.key, 0),
            "auto_accepted": by_source[LabelSource.MODEL].get(c.key, 0),
            "total": combined.get(c.key, 0),
        }
        for c in project.categories.all()
    ]
    nonzero = [r["total"] for r in rows if r["total"]]
    for row in rows:
        row["share"] = round(100 * row["total"] / max(nonzero), 1) if nonzero else 0.0
    labeled = sum(combined.values())
    return {
        "categories": rows,
        "labeled": labeled,
        "human_labeled": sum(human.values()),
        "by_source": {source: sum(counter.values()) for source, counter in by_source.items()},
        "unlabeled": accepted.count() - labeled,
        "imbalance_ratio": round(max(nonzero) / min(nonzero), 3) if nonzero else None,
    }


def import_summary(*, project: Project) -> dict:
    """Counts per outcome over every file imported into the project, and the latest jobs."""
    counts = Counter()
    for status, reason, n in (
        Image.objects.filter(project=project)
        .values_list("status", "reason")
        .annotate(n=Count("id"))
        .values_list("status", "reason", "n")
    ):
        counts[reason or status] += n
    for reason, n in (
        Job.objects.filter(project=project, kind=Job.Kind.IMPORT)
        .values_list("import_issues__reason")
        .annotate(n=Count("import_issues"))
        .values_list("import_issues__reason", "n")
    ):
        if reason:
            counts[reason] += n
    jobs = Job.objects.filter(project=project, kind=Job.Kind.IMPORT).order_by("-created")[:10]
    return {
        "counts": {outcome.value: counts.get(outcome, 0) for outcome in ImportOutcome},
        "total": sum(counts.values()),
        "jobs": [
            {
                "id": j.pk,
                "status": j.status,
                "created": j.created.isoformat(),
                "done": j.done,
                "total": j.total,
                "counts": j.counts,
                "error": j.error,
            }
            for j in jobs
        ],
    }
