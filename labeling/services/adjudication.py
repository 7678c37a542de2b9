"""Adjudication: an admin decides an image's final label, and says why."""

from __future__ import annotations

from django.db import transaction

from labeling import permissions
from labeling.errors import ApplicationError
from labeling.models import Adjudication, Category, Image, QueueItem, Round


@transaction.atomic
def adjudicate(*, actor, image: Image, category_key: str, reason: str) -> Adjudication:
    """Record the final label; earlier decisions stay in the history."""
    permissions.require(permissions.can_adjudicate, user=actor, project=image.project)
    category = _category(image, category_key)
    reason = reason.replace("\x00", "").strip()
    if not reason:
        raise ApplicationError("Say why: reason is required.", extra={"field": "reason"})
    if len(reason) > 5000:
        raise ApplicationError("reason is longer than 5000 characters.", extra={"field": "reason"})
    return Adjudication.objects.create(image=image, category=category, decided_by=actor, reason=reason)


def _category(image: Image, key: str) -> Category:
    if key is None or key == "":
        raise ApplicationError("Choose a category: category is required.", extra={"field": "category"})
    category = None
    if isinstance(key, str) and len(key) <= 64 and "\x00" not in key:
        category = Category.objects.filter(project=image.project, key=key).first()
    if category is None:
        raise ApplicationError(f"Unknown category {str(key)[:64]!r}.", extra={"field": "category"})
    return category


@transaction.atomic
def gold_set(*, actor, image: Image, category_key: str | None) -> Image:
    """Mark an image as a gold item with a known label (None unmarks it)."""
    permissions.require(permissions.can_adjudicate, user=actor, project=image.project)
    category = None if category_key is None else _category(image, category_key)
    image.is_gold = category is not None
    image.gold_label = category
    image.save(update_fields=["is_gold", "gold_label"])
    if image.is_gold:
        latest = Round.objects.filter(project=image.project, status=Round.Status.OPEN).order_by("-number").first()
        if latest is not None and not QueueItem.objects.filter(round=latest, image=image).exists():
            QueueItem.objects.create(round=latest, image=image, is_gold=True)
    else:
        QueueItem.objects.filter(image=image, is_gold=True, round__status=Round.Status.OPEN).delete()
    return image
