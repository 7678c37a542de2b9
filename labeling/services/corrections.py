"""Correcting a past label: a new annotation that supersedes the old one, never an edit.

A moderator corrects their own labels; an admin corrects anyone's. The correction is a
``label`` annotation written by the person correcting (``user`` is who did it, for the
audit trail) whose ``supersedes`` names the corrected label. The final-label rule
(:func:`labeling.selectors.labels.current_votes`) counts it as the vote of the moderator
whose label it corrects, in place of that label: a correction changes one vote and never
adds one, whoever makes it. An admin who wants the last word over every vote adjudicates
instead.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from labeling import permissions
from labeling.errors import ApplicationError, Conflict, NotFound
from labeling.models import Annotation, Category
from labeling.services.wellbeing import activity_record


def annotation_correct(*, actor, annotation_id: int, category_key: str, client_key: str) -> tuple[Annotation, bool]:
    """Correct label ``annotation_id`` to ``category_key``. Returns ``(correction, created)``.

    Idempotent by ``client_key``: a retry returns the first correction. A label the actor
    may not see (another moderator's, or one of a project they are not a member of) is
    "not found"; one already undone or corrected is a conflict naming what replaced it.
    """
    if not client_key or len(client_key) > 64:
        raise ApplicationError("client_key must be 1 to 64 characters.", extra={"field": "client_key"})
    existing = Annotation.objects.filter(user=actor, client_key=client_key).first() if actor.is_authenticated else None
    if existing is not None:
        if existing.supersedes_id != annotation_id or existing.kind != Annotation.Kind.LABEL:
            raise Conflict("This client_key was used for another answer.", code="client_key_reused")
        return existing, False
    try:
        with transaction.atomic():
            return _correct(actor=actor, annotation_id=annotation_id, category_key=category_key, client_key=client_key)
    except IntegrityError:
        existing = Annotation.objects.filter(user=actor, client_key=client_key).first()
        if existing is None:
            raise
        return existing, False


def _correct(*, actor, annotation_id: int, category_key: str, client_key: str) -> tuple[Annotation, bool]:
    old = (
        Annotation.objects.select_for_update(of=("self",))
        .select_related("image__project", "category")
        .filter(pk=annotation_id)
        .first()
    )
    missing = NotFound(f"Annotation {annotation_id} not found.")
    if old is None:
        raise missing
    project = old.image.project
    if old.user_id == getattr(actor, "pk", None):
        permissions.require(permissions.can_correct, user=actor, project=project)
    elif permissions.can_view(actor, project) and not permissions.can_correct_others(actor, project):
        raise missing  # moderators never see other people's answers, so this one does not exist for them
    else:
        permissions.require(permissions.can_correct_others, user=actor, project=project)
    if old.kind != Annotation.Kind.LABEL:
        raise ApplicationError(
            f"Annotation {annotation_id} is a {old.kind}, not a label; only labels can be corrected.",
            code="not_a_label",
            extra={"field": "annotation"},
        )
    later = old.superseded_by.order_by("pk").first()
    if later is not None:
        what = "undone" if later.kind == Annotation.Kind.RETRACT else f"corrected by annotation {later.pk}"
        raise Conflict(
            f"Annotation {annotation_id} was already {what}; correct the current label instead.",
            code="superseded",
            extra={"superseded_by": later.pk},
        )
    category = Category.objects.filter(project=project, key=category_key).first()
    if category is None:
        raise ApplicationError(
            f"Unknown category {category_key!r} for project {project.slug!r}.", extra={"field": "category"}
        )
    if category.pk == old.category_id:
        raise ApplicationError(
            f"Annotation {annotation_id} already says {category.key!r}.", code="unchanged", extra={"field": "category"}
        )
    correction = Annotation.objects.create(
        image=old.image,
        user=actor,
        round=old.round,
        kind=Annotation.Kind.LABEL,
        category=category,
        supersedes=old,
        client_key=client_key,
        note=f"correction of {old.category.key!r}",
    )
    activity_record(user=actor, project=project)
    return correction, True
