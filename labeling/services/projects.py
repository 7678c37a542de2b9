"""Projects, their taxonomies and their members."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from labeling import permissions
from labeling.errors import ApplicationError, NotFound
from labeling.models import DEFAULT_TAXONOMY, Category, Membership, Project
from labeling.services.wellbeing import reveal_budget_set
from ml.quality import QualityConfig

# What an admin may change on a project after it exists (its slug stays: URLs and exports name it).
PROJECT_SETTINGS = (
    "name",
    "description",
    "overlap",
    "batch_size",
    "strategy",
    "near_duplicate_radius",
    "blur_radius",
    "lease_minutes",
    "eval_fraction",
    "eval_cap",
    "gold_rate",
    "auto_start",
    "ocr",
    "weak_labels",
    "auto_accept",
    "auto_accept_precision",
    "auto_accept_min_support",
    "break_after_minutes",
    "break_after_sensitive_reveals",
    "daily_sensitive_reveals",
)
# Keys the labeling page keeps for itself (static/js/label.js): reveal, skip, undo, flag,
# sketch, greyscale, guidelines.
RESERVED_HOTKEYS = frozenset(" sufkg?")
CATEGORY_FIELDS = ("key", "name", "guideline", "hotkey", "sensitive")


@transaction.atomic
def project_create(
    *,
    slug: str,
    name: str = "",
    taxonomy: Iterable[Mapping] | None = None,
    quality: Mapping | None = None,
    **fields,
) -> Project:
    """Create a project with its categories (the default taxonomy unless one is given).

    Categories are dicts with ``key`` and optionally ``name``, ``guideline``,
    ``sensitive``, ``hotkey``; hotkeys default to 1..9 in order. Reading the text in
    images (``ocr``) is on by default for the default taxonomy, whose hateful memes
    carry their offence mostly in their captions.
    """
    if Project.objects.filter(slug=slug).exists():
        raise ApplicationError(f"Project {slug!r} already exists.", code="project_exists", extra={"field": "slug"})
    if taxonomy is not None:
        taxonomy = list(taxonomy)
        if not taxonomy:
            raise ApplicationError("A project needs at least one category.", extra={"field": "categories"})
    quality_dict = _quality(quality or {})
    fields.setdefault("ocr", taxonomy is None)
    project = Project(slug=slug, name=name or slug, quality=quality_dict, **fields)
    _full_clean(project)
    project.save()
    categories_set(project=project, taxonomy=DEFAULT_TAXONOMY if taxonomy is None else taxonomy)
    return project


@transaction.atomic
def project_create_by(*, actor, taxonomy: Iterable[Mapping] | None = None, **fields) -> Project:
    """A member of the site's staff creates a project and becomes its admin."""
    permissions.require_staff(actor)
    project = project_create(taxonomy=taxonomy, **fields)
    membership_set(project=project, user=actor, role=Membership.Role.ADMIN)
    return project


def project_get_or_create(*, slug: str, taxonomy: Iterable[Mapping] | None = None) -> tuple[Project, bool]:
    project = Project.objects.filter(slug=slug).first()
    if project is not None:
        return project, False
    return project_create(slug=slug, taxonomy=taxonomy), True


@transaction.atomic
def project_update(*, actor, project: Project, quality: Mapping | None = None, **fields) -> Project:
    """An admin of the project changes its settings (:data:`PROJECT_SETTINGS`) and, with
    ``quality``, its import quality thresholds (every field of ``QualityConfig`` not given
    keeps its default)."""
    permissions.require(permissions.can_manage_project, user=actor, project=project)
    unknown = sorted(set(fields) - set(PROJECT_SETTINGS))
    if unknown:
        raise ApplicationError(f"Unknown project setting {unknown[0]!r}.", code="invalid", extra={"field": unknown[0]})
    project = Project.objects.select_for_update().get(pk=project.pk)
    for name, value in fields.items():
        setattr(project, name, value)
    if quality is not None:
        project.quality = _quality(quality)
    _full_clean(project)
    project.save()
    return project


def _quality(quality: Mapping) -> dict:
    try:
        return QualityConfig.from_dict(dict(quality)).to_dict()
    except (TypeError, ValueError) as exc:
        raise ApplicationError(
            f"Invalid quality settings: {exc}", code="invalid_quality", extra={"field": "quality"}
        ) from exc


@transaction.atomic
def categories_set(*, project: Project, taxonomy: Iterable[Mapping]) -> list[Category]:
    """Add the given categories to a project, in order, validating each."""
    taxonomy = list(taxonomy)
    _check_taxonomy(taxonomy, existing=project.categories.all())
    existing = project.categories.count()
    hotkeys = _default_hotkeys(taxonomy, taken=set(project.categories.values_list("hotkey", flat=True)))
    created = []
    for offset, spec in enumerate(taxonomy):
        order = existing + offset
        hotkey = hotkeys[offset]
        category = Category(
            project=project,
            key=spec["key"],
            name=spec.get("name") or spec["key"].replace("_", " ").capitalize(),
            guideline=spec.get("guideline", ""),
            sensitive=bool(spec.get("sensitive", False)),
            hotkey=hotkey,
            order=order,
        )
        _full_clean(category, what=f"category {spec.get('key')!r}")
        category.save()
        created.append(category)
    return created


@transaction.atomic
def category_add(*, actor, project: Project, category: Mapping) -> Category:
    """An admin of the project adds one category (see :func:`categories_set`)."""
    permissions.require(permissions.can_manage_project, user=actor, project=project)
    if project.categories.filter(key=category["key"]).exists():
        raise ApplicationError(f"Category {category['key']!r} exists.", code="category_exists", extra={"field": "key"})
    (added,) = categories_set(project=project, taxonomy=[category])
    return added


def category_in_use(category: Category) -> bool:
    """Whether anything refers to the category: a label, an adjudication, a prediction, a
    gold, model or import label of an image. Such a category keeps its key and stays."""
    for relation in Category._meta.get_fields(include_hidden=True):
        if relation.auto_created and not relation.concrete and relation.one_to_many:
            if relation.related_model._default_manager.filter(**{relation.field.name: category}).exists():
                return True
    return False


@transaction.atomic
def taxonomy_set(*, actor, project: Project, categories: Sequence[Mapping]) -> list[Category]:
    """An admin of the project replaces its taxonomy: ``categories`` in their new order,
    each a dict of :data:`CATEGORY_FIELDS` and, for a category that exists, its ``id``.

    Existing categories left out are removed, new ones (no ``id``) added. A category in
    use (:func:`category_in_use`) keeps its key and cannot be removed, so labels,
    exports and trained heads keep meaning what they meant. Keys and hotkeys must be
    unique; an error names the row (``extra["index"]``) and the field.
    """
    permissions.require(permissions.can_manage_project, user=actor, project=project)
    current = {c.pk: c for c in Category.objects.select_for_update().filter(project=project)}
    categories = [dict(spec) for spec in categories]
    if not categories:
        raise ApplicationError("A project needs at least one category.", extra={"field": "categories"})
    _check_taxonomy(categories)
    hotkeys = _default_hotkeys(categories)
    kept = set()
    for index, spec in enumerate(categories):
        pk = spec.get("id")
        if pk is None:
            continue
        category = current.get(int(pk))
        if category is None:
            raise ApplicationError(
                f"Category #{pk} is not in project {project.slug!r}.", extra={"index": index, "field": "id"}
            )
        if category.pk in kept:
            raise ApplicationError(f"Category {category.key!r} is listed twice.", extra={"index": index, "field": "id"})
        kept.add(category.pk)
        if spec["key"] != category.key and category_in_use(category):
            raise ApplicationError(
                f"Category {category.key!r} has labels, so its key cannot change (its name can).",
                code="category_in_use",
                extra={"index": index, "field": "key"},
            )
    for category in current.values():
        if category.pk not in kept and category_in_use(category):
            raise ApplicationError(
                f"Category {category.key!r} has labels and cannot be removed.",
                code="category_in_use",
                extra={"field": "categories", "key": category.key},
            )
    Category.objects.filter(project=project).exclude(pk__in=kept).delete()
    # Free keys and hotkeys first so that two categories may swap them.
    for pk in kept:
        Category.objects.filter(pk=pk).update(key=f"~{pk}", hotkey="")
    result = []
    for order, spec in enumerate(categories):
        category = current[int(spec["id"])] if spec.get("id") is not None else Category(project=project)
        category.key = spec["key"]
        category.name = spec.get("name") or spec["key"].replace("_", " ").capitalize()
        category.guideline = spec.get("guideline") or ""
        category.hotkey = hotkeys[order]
        category.sensitive = bool(spec.get("sensitive", False))
        category.order = order
        _full_clean(category, what=f"category {spec['key']!r}", index=order)
        category.save()
        result.append(category)
    return result


def _default_hotkeys(categories: Sequence[Mapping], taken: Iterable[str] = ()) -> list[str]:
    """Each category's hotkey: its own, or else the first digit 1..9 nobody has ("" when none is left)."""
    free = [d for d in "123456789" if d not in set(taken) | {c.get("hotkey") for c in categories}]
    return [spec.get("hotkey") or (free.pop(0) if free else "") for spec in categories]


def _check_taxonomy(categories: Sequence[Mapping], existing=()) -> None:
    """Keys and hotkeys unique (among ``categories`` and the ``existing`` ones kept),
    hotkeys not taken by the labeling page; the error names the row and the field."""
    keys = {c.key for c in existing}
    hotkeys = {c.hotkey for c in existing if c.hotkey}
    for index, spec in enumerate(categories):
        key = spec.get("key") or ""
        if not key:
            raise ApplicationError(f"Category {index + 1}: key is required.", extra={"index": index, "field": "key"})
        if key in keys:
            raise ApplicationError(
                f"Category {index + 1}: key {key!r} is used twice.",
                code="duplicate_key",
                extra={"index": index, "field": "key"},
            )
        keys.add(key)
        hotkey = spec.get("hotkey")
        if not hotkey:
            continue
        if hotkey.lower() in RESERVED_HOTKEYS:
            raise ApplicationError(
                f"Category {index + 1}: hotkey {hotkey!r} is one the labeling page uses (space, s, u, f, k, g, ?).",
                code="reserved_hotkey",
                extra={"index": index, "field": "hotkey"},
            )
        if hotkey in hotkeys:
            raise ApplicationError(
                f"Category {index + 1}: hotkey {hotkey!r} is used twice.",
                code="duplicate_hotkey",
                extra={"index": index, "field": "hotkey"},
            )
        hotkeys.add(hotkey)


def _admins_left(project: Project, without) -> int:
    return (
        Membership.objects.select_for_update()
        .filter(project=project, role=Membership.Role.ADMIN)
        .exclude(user=without)
        .count()
    )


def _membership(project: Project, user) -> Membership:
    membership = Membership.objects.select_for_update().filter(project=project, user=user).first()
    if membership is None:
        raise NotFound(f"{user} is not a member of {project.slug}.", extra={"field": "username"})
    return membership


@transaction.atomic
def member_add(*, actor, project: Project, username: str, role: str = Membership.Role.MODERATOR) -> Membership:
    """An admin of the project makes an existing user a member of it."""
    permissions.require(permissions.can_manage_members, user=actor, project=project)
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise ApplicationError(
            f"There is no user {username!r}; create the account instead.",
            code="unknown_user",
            extra={"field": "username"},
        )
    if Membership.objects.filter(project=project, user=user).exists():
        raise ApplicationError(
            f"{username} is already a member of {project.slug}.", code="member_exists", extra={"field": "username"}
        )
    return membership_set(project=project, user=user, role=role)


@transaction.atomic
def member_create(
    *, actor, project: Project, username: str, role: str = Membership.Role.MODERATOR, password: str = ""
) -> tuple[Membership, str]:
    """An admin of the project creates an account and makes it a member. Returns the
    membership and the password (``password``, or one generated), which is not stored
    in clear anywhere: the caller shows it once."""
    permissions.require(permissions.can_manage_members, user=actor, project=project)
    users = get_user_model()
    if users.objects.filter(username=username).exists():
        raise ApplicationError(
            f"User {username!r} exists; invite it instead.", code="user_exists", extra={"field": "username"}
        )
    user = users(username=username)
    password = password or secrets.token_urlsafe(12)
    try:
        user.full_clean(exclude=["password"])
        validate_password(password, user)
    except ValidationError as exc:
        field = "username" if hasattr(exc, "error_dict") else "password"
        detail = "; ".join(exc.messages)
        raise ApplicationError(f"Invalid {field}: {detail}", extra={"field": field}) from exc
    user.set_password(password)
    user.save()
    return membership_set(project=project, user=user, role=role), password


@transaction.atomic
def member_role_set(*, actor, project: Project, user, role: str) -> Membership:
    """An admin of the project changes a member's role; the last admin stays an admin."""
    permissions.require(permissions.can_manage_members, user=actor, project=project)
    membership = _membership(project, user)
    if membership.role == Membership.Role.ADMIN and role != Membership.Role.ADMIN and not _admins_left(project, user):
        raise ApplicationError(
            f"{user} is the last admin of {project.slug}; make someone else an admin first.",
            code="last_admin",
            extra={"field": "role"},
        )
    return membership_set(project=project, user=user, role=role)


@transaction.atomic
def member_update(*, actor, project: Project, user, role: str, reveal_budget: int | None) -> Membership:
    """An admin of the project sets a member's role (:func:`member_role_set`) and daily
    sensitive-reveal budget (``reveal_budget_set``; None: the project's default) at once."""
    member_role_set(actor=actor, project=project, user=user, role=role)
    return reveal_budget_set(actor=actor, project=project, user=user, budget=reveal_budget)


@transaction.atomic
def member_remove(*, actor, project: Project, user) -> None:
    """An admin of the project removes a member. Their labels, reveals and the rest of
    their history stay; the last admin cannot be removed."""
    permissions.require(permissions.can_manage_members, user=actor, project=project)
    membership = _membership(project, user)
    if membership.role == Membership.Role.ADMIN and not _admins_left(project, user):
        raise ApplicationError(
            f"{user} is the last admin of {project.slug} and cannot be removed.",
            code="last_admin",
            extra={"field": "username"},
        )
    membership.delete()


def membership_set(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise ApplicationError(f"Unknown role {role!r}.", code="invalid_role", extra={"field": "role"})
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


def _full_clean(instance, *, what: str = "", index: int | None = None) -> None:
    try:
        instance.full_clean()
    except ValidationError as exc:
        fields = exc.message_dict
        label = what or instance._meta.verbose_name
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items())
        extra = {"fields": fields, "field": next(iter(fields))}
        if index is not None:
            extra["index"] = index
        raise ApplicationError(f"Invalid {label}: {detail}", code="invalid", extra=extra) from exc
