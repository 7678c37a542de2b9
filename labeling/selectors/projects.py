"""Which projects a user may see, and in which role."""

from __future__ import annotations

from django.db.models import QuerySet

from labeling import permissions
from labeling.errors import NotFound
from labeling.models import Membership, ModelVersion, Project
from labeling.permissions import project_role

__all__ = [
    "membership_get_for_user",
    "model_version_get_for_user",
    "project_get_for_user",
    "project_role",
    "projects_for_user",
]


def projects_for_user(*, user) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def membership_get_for_user(
    *, user, slug: str, admin: bool = False, rule: permissions.Rule | None = None
) -> Membership:
    """The user's membership of the project, project loaded, if ``rule`` lets them in
    (:data:`permissions.can_view`; :data:`permissions.can_administer` with ``admin``).

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
    rule = rule or (permissions.can_administer if admin else permissions.can_view)
    error = permissions.refusal(rule, permissions.role_of(user, membership.role), membership.project)
    if error is not None:
        raise error
    return membership


def project_get_for_user(*, user, slug: str, admin: bool = False, rule: permissions.Rule | None = None) -> Project:
    """The project if ``rule`` lets the user in; see :func:`membership_get_for_user`."""
    return membership_get_for_user(user=user, slug=slug, admin=admin, rule=rule).project


def model_version_get_for_user(
    *, user, slug: str, pk: int, kind: str | None = None, admin: bool = False, rule: permissions.Rule | None = None
) -> ModelVersion:
    """A model version of a project the user may see (as ``rule`` or ``admin`` says)."""
    project = project_get_for_user(user=user, slug=slug, admin=admin, rule=rule)
    versions = ModelVersion.objects.filter(project=project, pk=pk).select_related("project")
    version = versions.filter(kind=kind).first() if kind else versions.first()
    if version is None:
        raise NotFound(f"Model version {pk} not found in project {slug!r}.")
    return version
