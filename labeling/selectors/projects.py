"""Which projects a user may see, and in which role."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from labeling import permissions
from labeling.errors import NotFound
from labeling.models import Annotation, Membership, ModelVersion, Project, Round
from labeling.permissions import project_role
from labeling.services.wellbeing import reveal_budget

__all__ = [
    "membership_get_for_user",
    "model_version_get_for_user",
    "project_get_for_user",
    "project_links",
    "project_members",
    "project_overview",
    "project_role",
    "projects_for_user",
    "projects_overview",
]

# The pages of a project, in the order the navigation shows them: (URL name, title, rule).
PROJECT_PAGES = (
    ("project-detail", "Project", permissions.can_view),
    ("label", "Label", permissions.can_label),
    ("project-items", "Items", permissions.can_view),
    ("project-dashboard", "Dashboard", permissions.can_run_jobs),
    ("project-review", "Review", permissions.can_review),
    ("project-settings", "Settings", permissions.can_manage_project),
)


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


def project_links(*, project: Project, role: str | None) -> list[dict]:
    """The pages of ``project`` a user of ``role`` may open: ``{"name", "title", "url"}``,
    in :data:`PROJECT_PAGES` order. A page whose route is not installed is left out."""
    links = []
    for name, title, rule in PROJECT_PAGES:
        if not rule.allows(role):
            continue
        try:
            url = reverse(name, kwargs={"slug": project.slug})
        except NoReverseMatch:
            continue
        links.append({"name": name, "title": title, "url": url})
    return links


def project_overview(*, project: Project, role: str | None) -> dict:
    """What the project list says of one project: its open round's progress, today's
    labels, the active head's accuracy and the pages the user's role may open."""
    current = Round.objects.filter(project=project, status=Round.Status.OPEN).order_by("number").first()
    progress = {"total": 0, "done": 0}
    if current is not None:
        progress = current.items.aggregate(total=Count("pk"), done=Count("pk", filter=Q(done=True)))
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    head = ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.HEAD, is_active=True).first()
    return {
        "project": project,
        "role": role,
        "round": current,
        "done": progress["done"],
        "total": progress["total"],
        "labels_today": Annotation.objects.filter(
            image__project=project, kind=Annotation.Kind.LABEL, created__gte=start
        ).count(),
        "accuracy": head.metrics.get("accuracy") if head is not None else None,
        "links": project_links(project=project, role=role),
    }


def projects_overview(*, user) -> list[dict]:
    """:func:`project_overview` of every project the user may see."""
    roles = (
        dict(Membership.objects.filter(user=user).values_list("project_id", "role")) if user.is_authenticated else {}
    )
    projects = projects_for_user(user=user).prefetch_related("categories")
    return [
        project_overview(project=project, role=permissions.role_of(user, roles.get(project.pk))) for project in projects
    ]


def project_members(*, project: Project) -> list[dict]:
    """The members of a project, admins first, each with today's reveal budget."""
    memberships = Membership.objects.filter(project=project).select_related("user").order_by("role", "user__username")
    return [
        {"membership": m, "user": m.user, "budget": reveal_budget(user=m.user, project=project, membership=m)}
        for m in memberships
    ]
