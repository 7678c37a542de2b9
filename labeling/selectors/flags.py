"""Flags for policy review: which are open, the admins' queue of flagged images, and
what exports and the dashboard say about them.

A flag is open until a resolution covers it: a :class:`~labeling.models.FlagResolution`
of its image whose ``flag`` is this flag or a later one. A flag raised after the image's
last resolution is open again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import F, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from labeling import permissions
from labeling.models import Annotation, FlagResolution, Project
from labeling.selectors.images import image_get_for_user
from labeling.selectors.labels import FinalLabel, final_labels_of
from labeling.selectors.projects import project_get_for_user


def open_flags(*, project: Project) -> QuerySet[Annotation]:
    """The project's flag annotations no resolution covers."""
    resolved_up_to = (
        FlagResolution.objects.filter(image=OuterRef("image_id")).order_by("-flag_id").values("flag_id")[:1]
    )
    return (
        Annotation.objects.filter(image__project=project, kind=Annotation.Kind.FLAG)
        .annotate(resolved_up_to=Coalesce(Subquery(resolved_up_to, output_field=IntegerField()), Value(0)))
        .filter(pk__gt=F("resolved_up_to"))
    )


def open_flag_counts(*, project: Project) -> dict[str, int]:
    """``{"flags": open flags, "images": images with an open flag}``."""
    flags = open_flags(project=project)
    return {"flags": flags.count(), "images": flags.values("image_id").distinct().count()}


def open_flag_notes(*, project: Project, image_ids: Iterable[int]) -> dict[int, list[str]]:
    """``{image_id: [note, ...]}`` for the project's images among ``image_ids`` with an open
    flag; the notes in the order the flags came, empty notes left out (the list may be empty)."""
    ids = list(image_ids)
    notes: dict[int, list[str]] = {}
    if not ids:
        return notes
    rows = open_flags(project=project).filter(image_id__in=ids).order_by("pk").values_list("image_id", "note")
    for image_id, note in rows:
        notes.setdefault(image_id, [])
        if note:
            notes[image_id].append(note)
    return notes


@dataclass(frozen=True)
class FlagRow:
    id: int
    user: str
    created: datetime
    note: str


@dataclass(frozen=True)
class FlaggedImage:
    image_id: int
    flags: list[FlagRow]
    final_label: FinalLabel | None

    @property
    def first_flagged(self) -> datetime:
        return self.flags[0].created


def flag_queue(*, project: Project, limit: int | None = None) -> list[FlaggedImage]:
    """Images with open flags, the longest waiting first, each with its open flags (who,
    when, the note) and its current final label."""
    rows = open_flags(project=project).select_related("user").order_by("pk")
    by_image: dict[int, list[FlagRow]] = {}
    for flag in rows.iterator():
        if limit is not None and flag.image_id not in by_image and len(by_image) >= limit:
            continue
        by_image.setdefault(flag.image_id, []).append(FlagRow(flag.pk, flag.user.username, flag.created, flag.note))
    labels = final_labels_of(project=project, image_ids=by_image)
    return [FlaggedImage(image_id, flags, labels.get(image_id)) for image_id, flags in by_image.items()]


def flag_queue_for_user(*, user, slug: str, limit: int | None = None) -> tuple[Project, list[FlaggedImage]]:
    """The project and its flag queue, for an admin who may resolve flags."""
    project = project_get_for_user(user=user, slug=slug, rule=permissions.can_resolve_flags)
    return project, flag_queue(project=project, limit=limit)


def flag_resolutions_for_user(*, user, image_id: int) -> QuerySet[FlagResolution]:
    """The history of an image's flag resolutions, for an admin who may resolve flags."""
    image = image_get_for_user(user=user, image_id=image_id)
    permissions.require(permissions.can_resolve_flags, user=user, project=image.project)
    return (
        FlagResolution.objects.filter(image=image)
        .select_related("resolved_by", "category", "flag")
        .order_by("created", "pk")
    )
