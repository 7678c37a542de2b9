"""Images, their metadata, and per-project reports."""

from __future__ import annotations

from collections import Counter

from django.db.models import Count, QuerySet

from labeling.errors import NotFound
from labeling.models import Annotation, Category, Image, Job, Project
from labeling.selectors.projects import project_role
from ml.outcomes import ImportOutcome


def image_get_for_user(*, user, image_id: int) -> Image:
    image = Image.objects.select_related("project", "source_label").filter(pk=image_id).first()
    if image is None or project_role(user=user, project=image.project) is None:
        raise NotFound(f"Image {image_id} not found.")
    return image


def images_of_project(*, project: Project) -> QuerySet[Image]:
    return Image.objects.filter(project=project).select_related("source_label").order_by("id")


def consensus_labels(*, project: Project, image_ids=None) -> dict[int, Category]:
    """Majority label per image over its moderators' current labels.

    A label retracted by an undo no longer counts. Ties go to the category that comes
    first in the taxonomy.
    """
    annotations = Annotation.objects.filter(image__project=project)
    if image_ids is not None:
        annotations = annotations.filter(image_id__in=image_ids)
    retracted = set(
        annotations.filter(kind=Annotation.Kind.RETRACT).values_list("supersedes_id", flat=True)
    )
    votes: dict[int, Counter] = {}
    for pk, image_id, category_id in annotations.filter(kind=Annotation.Kind.LABEL).values_list(
        "pk", "image_id", "category_id"
    ):
        if pk not in retracted:
            votes.setdefault(image_id, Counter())[category_id] += 1
    categories = {c.pk: c for c in project.categories.all()}
    order = {pk: c.order for pk, c in categories.items()}
    return {
        image_id: categories[max(counter, key=lambda c: (counter[c], -order[c]))]
        for image_id, counter in votes.items()
    }


def image_metadata(image: Image, *, consensus: Category | None = None) -> dict:
    """The per-image metadata record, in the shape the seed dataset used."""
    label = consensus or image.source_label
    return {
        "image_id": image.pk,
        "category": label.key if label else None,
        "source": image.source,
        "resolution": image.resolution,
        "file_size": human_size(image.size_bytes),
        "file_size_bytes": image.size_bytes,
        "date_collected": image.date_collected.isoformat() if image.date_collected else None,
        "verified": consensus is not None,
        "quality_score": None if image.quality_score is None else round(image.quality_score, 4),
    }


def human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f}MB"
    return f"{round(size / 1024)}KB"


def class_balance(*, project: Project) -> dict:
    """Counts per category from import pre-labels and from human consensus.

    ``imbalance_ratio`` is the largest count over the smallest non-zero count, taking
    for each image its consensus label when there is one, else its pre-label.
    """
    accepted = Image.objects.filter(project=project, status=Image.Status.ACCEPTED)
    pre = Counter(dict(
        accepted.filter(source_label__isnull=False)
        .values_list("source_label").annotate(n=Count("id")).values_list("source_label", "n")
    ))
    consensus = consensus_labels(project=project)
    human = Counter(c.pk for c in consensus.values())
    combined = Counter()
    for image_id, label_id in accepted.values_list("pk", "source_label"):
        chosen = consensus[image_id].pk if image_id in consensus else label_id
        if chosen is not None:
            combined[chosen] += 1
    rows = [
        {
            "key": c.key, "name": c.name,
            "source_labels": pre.get(c.pk, 0),
            "consensus": human.get(c.pk, 0),
            "total": combined.get(c.pk, 0),
        }
        for c in project.categories.all()
    ]
    nonzero = [r["total"] for r in rows if r["total"]]
    for row in rows:
        row["share"] = round(100 * row["total"] / max(nonzero), 1) if nonzero else 0.0
    return {
        "categories": rows,
        "labeled": sum(combined.values()),
        "unlabeled": accepted.count() - sum(combined.values()),
        "imbalance_ratio": round(max(nonzero) / min(nonzero), 3) if nonzero else None,
    }


def import_summary(*, project: Project) -> dict:
    """Counts per outcome over every file imported into the project, and the latest jobs."""
    counts = Counter()
    for status, reason, n in (
        Image.objects.filter(project=project).values_list("status", "reason").annotate(n=Count("id"))
        .values_list("status", "reason", "n")
    ):
        counts[reason or status] += n
    for reason, n in (
        Job.objects.filter(project=project, kind=Job.Kind.IMPORT)
        .values_list("import_issues__reason").annotate(n=Count("import_issues"))
        .values_list("import_issues__reason", "n")
    ):
        if reason:
            counts[reason] += n
    jobs = Job.objects.filter(project=project, kind=Job.Kind.IMPORT).order_by("-created")[:10]
    return {
        "counts": {outcome.value: counts.get(outcome, 0) for outcome in ImportOutcome},
        "total": sum(counts.values()),
        "jobs": [
            {"id": j.pk, "status": j.status, "created": j.created.isoformat(), "done": j.done,
             "total": j.total, "counts": j.counts, "error": j.error}
            for j in jobs
        ],
    }
