"""A moderator's display defaults on the labeling page, kept on their project membership.

``blur_strength`` is the extra CSS blur (px) laid over the stored blurred preview and
``greyscale`` whether images start in greyscale. The moderator can change both on the
page for the session and save them here as their defaults for the project.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from labeling.errors import ApplicationError
from labeling.models import Membership, Project

FIELDS = ("blur_strength", "greyscale")


@dataclass(frozen=True)
class DisplayPreferences:
    blur_strength: int
    greyscale: bool


def preferences_get(*, user, project: Project) -> DisplayPreferences:
    """The user's saved defaults, or the model defaults when they have no membership
    (a superuser looking at a project they are not a member of)."""
    membership = Membership.objects.filter(project=project, user=user).only(*FIELDS).first()
    if membership is None:
        membership = Membership()
    return DisplayPreferences(blur_strength=membership.blur_strength, greyscale=membership.greyscale)


@transaction.atomic
def preferences_set(*, user, project: Project, blur_strength: int, greyscale: bool) -> DisplayPreferences:
    """Save the user's display defaults for ``project``."""
    membership = Membership.objects.select_for_update().filter(project=project, user=user).first()
    if membership is None:
        raise ApplicationError(
            f"Only members of project {project.slug!r} can save display defaults.", code="not_a_member"
        )
    membership.blur_strength = blur_strength
    membership.greyscale = greyscale
    others = [f.name for f in Membership._meta.concrete_fields if f.name not in FIELDS]
    try:
        membership.clean_fields(exclude=others)
    except ValidationError as exc:
        fields = exc.message_dict
        detail = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in fields.items())
        raise ApplicationError(f"Invalid display defaults: {detail}", extra={"fields": fields}) from exc
    membership.save(update_fields=list(FIELDS))
    return DisplayPreferences(blur_strength=membership.blur_strength, greyscale=membership.greyscale)
