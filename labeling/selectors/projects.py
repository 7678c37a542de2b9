"""Which projects a user may see, and in which role."""

from __future__ import annotations

from django.db.models import QuerySet

from labeling.errors import Forbidden, NotFound
from labeling.models import Membership, ModelVersion, Project


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


def membership_get_for_user(*, user, slug: str, admin: bool = False) -> Membership:
    """The user's membership of the project (an admin's when ``admin``), project loaded.

    One query. Superusers act as admins of every project: one who is not a member gets
    an unsaved admin membership, one who is keeps their own (their streak and budget
    live on it). A project the user cannot see answers "not found", so its existence is
    not revealed.
    """
    membership = None
    if user.is_authenticated:
        membership = Membership.objects.select_related("project").filter(project__slug=slug, user=user).first()
        if membership is None and user.is_superuser:
            project = Project.objects.filter(slug=slug).first()
            membership = Membership(project=project, user=user, role=Membership.Role.ADMIN) if project else None
    if membership is None:
        raise NotFound(f"Project {slug!r} not found.")
    if admin and membership.role != Membership.Role.ADMIN and not user.is_superuser:
        raise Forbidden(f"Only admins of project {slug!r} may do this.", code="admin_only")
    return membership


def project_get_for_user(*, user, slug: str, admin: bool = False) -> Project:
    """The project if the user is a member (an admin when ``admin``); see :func:`membership_get_for_user`."""
    return membership_get_for_user(user=user, slug=slug, admin=admin).project


def model_version_get_for_user(*, user, slug: str, pk: int, kind: str | None = None, admin: bool = False):
    """A model version of a project the user may see (administers, with ``admin``)."""
    project = project_get_for_user(user=user, slug=slug, admin=admin)
    versions = ModelVersion.objects.filter(project=project, pk=pk).select_related("project")
    version = versions.filter(kind=kind).first() if kind else versions.first()
    if version is None:
        raise NotFound(f"Model version {pk} not found in project {slug!r}.")
    return version
