"""What a user may see of the project's answers.

Moderators label independently: they see their own annotations, never what other
moderators answered nor an admin's decisions; admins see all. (The final labels a user
may see: ``labels.final_labels_for_user``.)
"""

from __future__ import annotations

from django.db.models import QuerySet

from labeling import permissions
from labeling.models import Adjudication, Annotation, Project
from labeling.selectors.images import image_get_for_user


def annotations_for_user(*, user, project: Project) -> QuerySet[Annotation]:
    """The project's annotations for a reviewer, the user's own for anyone else."""
    rows = Annotation.objects.filter(image__project=project).select_related("user", "category", "round")
    if not permissions.can_review(user, project):
        rows = rows.filter(user=user)
    return rows.order_by("pk")


def adjudications_for_user(*, user, image_id: int) -> QuerySet[Adjudication]:
    """The history of an image's adjudications, for a reviewer of its project."""
    image = image_get_for_user(user=user, image_id=image_id)
    permissions.require(permissions.can_review, user=user, project=image.project)
    return Adjudication.objects.filter(image=image).select_related("category", "decided_by").order_by("created", "pk")
