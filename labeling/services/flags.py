"""Flags for policy review: an admin answers an image's open flags, and the answer is kept.

A moderator flags an item from the labeling page (an annotation of kind ``flag`` with an
optional note, :func:`labeling.services.queue.annotation_submit`). An admin resolves the
image's open flags one of three ways: relabel it (an adjudication, so the final label
follows), dismiss them, or rewrite a category's guideline. Each resolution records who,
when, what and why, and covers the flags up to the newest one the admin saw; a flag
raised later is open again.
"""

from __future__ import annotations

from django.db import transaction

from labeling import permissions
from labeling.errors import ApplicationError, Conflict
from labeling.models import Category, FlagResolution, Image
from labeling.selectors.flags import open_flags
from labeling.services.adjudication import adjudicate
from labeling.services.projects import category_guideline_set

MAX_NOTE = 5000


@transaction.atomic
def flag_resolve(
    *,
    actor,
    image: Image,
    action: str,
    note: str = "",
    category_key: str | None = None,
    guideline: str | None = None,
) -> FlagResolution:
    """Resolve ``image``'s open flags as ``actor``, an admin of its project.

    ``relabel`` adjudicates ``category_key`` with ``note`` as the reason (required);
    ``guideline`` replaces the guideline of ``category_key`` with ``guideline``;
    ``dismiss`` changes nothing else. Refused (409) when the image has no open flag.
    """
    permissions.require(permissions.can_resolve_flags, user=actor, project=image.project)
    if not action:
        raise ApplicationError("Choose what to do: action is required.", extra={"field": "action"})
    if action not in FlagResolution.Action.values:
        raise ApplicationError(
            f"Unknown action {str(action)[:32]!r}; use {', '.join(FlagResolution.Action.values)}.",
            extra={"field": "action"},
        )
    note = str(note or "").replace("\x00", "").strip()
    if len(note) > MAX_NOTE:
        raise ApplicationError(f"note is longer than {MAX_NOTE} characters.", extra={"field": "note"})
    # Lock the image's row so two admins answering the same flags at once record one resolution.
    Image.objects.select_for_update().filter(pk=image.pk).values_list("pk", flat=True).first()
    newest = open_flags(project=image.project).filter(image=image).order_by("-pk").first()
    if newest is None:
        raise Conflict(f"Image {image.pk} has no open flag.", code="no_open_flag")
    category = adjudication = None
    if action == FlagResolution.Action.RELABEL:
        if not note:
            raise ApplicationError("Say why: note is required to relabel.", extra={"field": "note"})
        adjudication = adjudicate(actor=actor, image=image, category_key=category_key, reason=note)
        category = adjudication.category
    elif action == FlagResolution.Action.GUIDELINE:
        category = _category(image, category_key)
        category_guideline_set(actor=actor, category=category, guideline="" if guideline is None else guideline)
    return FlagResolution.objects.create(
        image=image,
        flag=newest,
        action=action,
        note=note,
        category=category,
        adjudication=adjudication,
        resolved_by=actor,
    )


def _category(image: Image, key: str | None) -> Category:
    category = None
    if isinstance(key, str) and key and len(key) <= 64 and "\x00" not in key:
        category = Category.objects.filter(project=image.project, key=key).first()
    if category is None:
        message = "Choose the category whose guideline changes: category is required."
        if key:
            message = f"Unknown category {str(key)[:64]!r}."
        raise ApplicationError(message, extra={"field": "category"})
    return category
