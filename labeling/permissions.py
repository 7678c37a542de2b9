"""Who may do what: each rule once, for the services, the API, the pages and the commands.

A project's members are its admins and its moderators (``Membership.Role``); a superuser
is an admin of every project; site staff may create projects. A rule names the roles
that may do one thing in a project. Write services check their actor with
:func:`require`; the API and the pages ask the same rules (through the selectors) to
answer early and to decide what to show.

A user who is not a member is told the project is not found, so its existence does not
leak; a member whose role may not is refused as forbidden.
"""

from __future__ import annotations

from dataclasses import dataclass

from labeling.errors import Forbidden, NotFound
from labeling.models import Membership, Project

MEMBERS = frozenset(Membership.Role.values)
ADMINS = frozenset({Membership.Role.ADMIN})


def role_of(user, membership_role: str | None) -> str | None:
    """The role the rules see for a user whose membership has ``membership_role`` (None:
    not a member): superusers are admins of every project."""
    if user is None or not user.is_authenticated:
        return None
    if user.is_superuser:
        return Membership.Role.ADMIN
    return membership_role


def project_role(*, user, project: Project) -> str | None:
    """``"admin"``, ``"moderator"`` or None. Superusers are admins of every project."""
    membership_role = None
    if user is not None and user.is_authenticated and not user.is_superuser:
        membership_role = Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    return role_of(user, membership_role)


@dataclass(frozen=True)
class Rule:
    """The roles that may do one thing in a project; ``doing`` completes "may ..."."""

    doing: str
    roles: frozenset[str]

    def allows(self, role: str | None) -> bool:
        return role in self.roles

    def __call__(self, user, project: Project) -> bool:
        return self.allows(project_role(user=user, project=project))


can_view = Rule("see the project", MEMBERS)
can_label = Rule("label its images", MEMBERS)
can_reveal = Rule("reveal its images", MEMBERS)
can_predict = Rule("ask its classifier", MEMBERS)
can_administer = Rule("do this", ADMINS)
can_manage_project = Rule("change its settings, categories and reveal budgets", ADMINS)
can_manage_members = Rule("add, change or remove its members", ADMINS)
can_import = Rule("import images", ADMINS)
can_run_jobs = Rule("start rounds and training jobs", ADMINS)
can_adjudicate = Rule("adjudicate or mark gold items", ADMINS)
can_resolve_flags = Rule("see and resolve flags for policy review", ADMINS)
can_review = Rule("see its reports and everyone's answers", ADMINS)
can_correct = Rule("correct their own past labels", MEMBERS)
can_correct_others = Rule("correct other people's labels", ADMINS)
can_export = Rule("export its labels and classifier", ADMINS)


def can_create_project(user) -> bool:
    return user is not None and user.is_authenticated and user.is_staff


def administers_any_project(user) -> bool:
    """Whether ``user`` is staff, a superuser or an admin of some project: the people the
    API's documentation is for (a moderator needs only the labeling page)."""
    if user is None or not user.is_authenticated:
        return False
    if user.is_staff or user.is_superuser:
        return True
    return Membership.objects.filter(user=user, role=Membership.Role.ADMIN).exists()


def refusal(rule: Rule, role: str | None, project: Project) -> Exception | None:
    """The error that refuses a user of ``role`` what ``rule`` guards, or None."""
    if role is None:
        return NotFound(f"Project {project.slug!r} not found.")
    if not rule.allows(role):
        return Forbidden(f"Only admins of project {project.slug!r} may {rule.doing}.", code="admin_only")
    return None


def require(rule: Rule, *, user, project: Project) -> str:
    """Raise unless ``rule`` lets ``user`` act in ``project``; returns their role."""
    role = project_role(user=user, project=project)
    error = refusal(rule, role, project)
    if error is not None:
        raise error
    return role


def require_staff(user) -> None:
    if not can_create_project(user):
        raise Forbidden("Only staff may create projects.", code="staff_only")
