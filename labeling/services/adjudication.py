"""Adjudication: an admin decides an image's final label, and says why."""

from __future__ import annotations

from django.db import transaction

from labeling.errors import ApplicationError, Forbidden
from labeling.models import Adjudication, Category, Image, Membership
from labeling.selectors.projects import project_role


@transaction.atomic
def adjudicate(*, actor, image: Image, category_key: str, reason: str) -> Adjudication:
    """Record the final label; earlier decisions stay in the history."""
    if project_role(user=actor, project=image.project) != Membership.Role.ADMIN:
        raise Forbidden("Only admins of the project may adjudicate.", code="admin_only")
    category = Category.objects.filter(project=image.project, key=category_key).first()
    if category is None:
        raise ApplicationError(f"Unknown category {category_key!r}.", extra={"field": "category"})
    if not reason.strip():
        raise ApplicationError("Say why: reason is required.", extra={"field": "reason"})
    return Adjudication.objects.create(image=image, category=category, decided_by=actor, reason=reason.strip())


@transaction.atomic
def gold_set(*, actor, image: Image, category_key: str | None) -> Image:
    """Mark an image as a gold item with a known label (None unmarks it)."""
    if project_role(user=actor, project=image.project) != Membership.Role.ADMIN:
        raise Forbidden("Only admins of the project may mark gold items.", code="admin_only")
    category = None
    if category_key is not None:
        category = Category.objects.filter(project=image.project, key=category_key).first()
        if category is None:
            raise ApplicationError(f"Unknown category {category_key!r}.", extra={"field": "category"})
    image.is_gold = category is not None
    image.gold_label = category
    image.save(update_fields=["is_gold", "gold_label"])
    return image
