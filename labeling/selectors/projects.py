"""Which projects a user may see, and in which role."""

from __future__ import annotations

from django.db.models import QuerySet

from labeling.errors import Forbidden, NotFound
from labeling.models import Membership, Project


def projects_for_user(*, user) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def project_role(*, user, project: Project) -> str | None:
    """``"admin"``, ``"moderator"`` or None. Superusers are admins of every project."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return Membership.Role.ADMIN
    return (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )


def project_get_for_user(*, user, slug: str, admin: bool = False) -> Project:
    """The project if the user is a member (an admin when ``admin``).

    A project the user cannot see answers "not found", so its existence is not revealed.
    For a member, the project and the role come in one query.
    """
    project, role = None, None
    if user.is_authenticated and user.is_superuser:
        project = Project.objects.filter(slug=slug).first()
        role = Membership.Role.ADMIN
    elif user.is_authenticated:
        membership = Membership.objects.select_related("project").filter(project__slug=slug, user=user).first()
        if membership is not None:
            project, role = membership.project, membership.role
    if project is None:
        raise NotFound(f"Project {slug!r} not found.")
    if admin and role != Membership.Role.ADMIN:
        raise Forbidden(f"Only admins of project {slug!r} may do this.", code="admin_only")
    return project
